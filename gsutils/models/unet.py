"""U-Nets for the textured-MNIST segmentation experiments (Grid Saliency S1.2, S1.5).

:func:`build_unet` returns a U-Net whose encoder is one of

``"tiny"``
    a small VGG-style encoder with batch norm (widths :data:`TINY_WIDTHS`,
    three poolings) and a global context block for the quick profile (the
    eleven shipped quick networks; built by this module, bit for bit as
    trained);
``"small"``
    the same design with five levels (widths :data:`SMALL_WIDTHS`, four
    poolings, 1.3M parameters): the quick profile's S1 network at 64 px;
``"vgg16"``, ``"mobilenet_v2"``, ``"resnet18"``
    segmentation-models-pytorch U-Nets with torchvision's encoders (the
    paper's three backbones, S1.5), randomly initialised
    (``encoder_weights=None``);
``"slim_vgg16"``, ``"slim_mobilenet_v2"``, ``"slim_resnet18"`` and ``"small_*"``
    smp U-Nets with reduced variants of the same three encoder families (the
    quick profile's backbone comparison).

The smp networks are built by :mod:`gsutils.models.smp_unet` (see there for
their sizes and module names: ``encoder.features.29``, ``encoder.layer4``,
``decoder.blocks.*``, ``segmentation_head``). Every network's first layer
takes ``in_channels`` channels (1 for the grayscale toy data); the output is
one logit map per class (softmax over dimension 1 for probabilities); every
network has ``backbone``, ``arch`` and ``size_multiple`` (input sides must be
multiples of it) and checks its input's shape.

Module names of the tiny U-Net (saliency code addresses layers by path):
``encoder.features.0`` ... ``encoder.features.27`` (conv/BN/ReLU triples,
pools at 6, 13, 20); skips after 5, 12, 19; bottleneck ``encoder.features.27``,
a :class:`GlobalContext` (1/8 resolution). Its decoder blocks are
``decoder.up1`` (from the bottleneck to the next finer resolution) ...
``decoder.up<K>`` (back at the input resolution), each with ``upsample`` (a
stride-2 transposed convolution), ``conv1``/``bn1``/``relu1`` and
``conv2``/``bn2``/``relu2``; ``head`` is the final 1x1 convolution giving the
logits. No ReLU is in-place, so forward and backward hooks may be put on any
of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gsutils.models.input_check import check_unet_input

#: the encoders :func:`build_unet` knows
BACKBONES: tuple[str, ...] = ("tiny", "small", "vgg16", "mobilenet_v2", "resnet18",
                              "slim_vgg16", "slim_mobilenet_v2", "slim_resnet18",
                              "small_vgg16", "small_mobilenet_v2", "small_resnet18",
                              "small_mobilenet_v2_fs", "small_resnet18_fs")

#: channel widths of the tiny encoder's four resolutions (1, 1/2, 1/4, 1/8). Measured on
#: the quick profile's 32 px data (AdamW + one cycle, batch 32, one thread): three levels
#: (16, 32, 64) reached a mean digit IoU of 0.30 after 1,500 steps, four levels with the
#: global context block 0.35 (the U-Net's bottleneck then sees the whole image). The
#: fourth level stays at 64 channels so that the shipped quick networks stay small
#: (323k parameters, 1.3 MB each).
TINY_WIDTHS: tuple[int, ...] = (16, 32, 64, 64)

#: channel widths of the "small" encoder's five resolutions (1 ... 1/16): the quick profile's
#: network at the paper's 64 px (Grid Saliency S1.2). Chosen by ``benchmarks/s1_network_study.py``:
#: rendered and trained at 64 px, this 1.3M-parameter U-Net passes the quick gate (mean digit
#: IoU >= 0.75) where every 32 px variant stays below it.
SMALL_WIDTHS: tuple[int, ...] = (16, 32, 64, 128, 128)

#: the hand-written encoders' widths by backbone name
HAND_WIDTHS: dict[str, tuple[int, ...]] = {"tiny": TINY_WIDTHS, "small": SMALL_WIDTHS}

#: marks a checkpoint written by :func:`save_unet`
CHECKPOINT_FORMAT = "gsutils.unet/1"


def _check_backbone(backbone: Any) -> str:
    if not isinstance(backbone, str) or backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(map(repr, BACKBONES))}; got {backbone!r}")
    return backbone


class SequentialEncoder(nn.Module):
    """An encoder that is one ``nn.Sequential`` called ``features``.

    Parameters
    ----------
    features:
        The layers, run in order.
    taps:
        Indices into ``features`` whose outputs are skip connections (fine to
        coarse); the output of the last layer is the bottleneck.
    channels:
        Channels of the skips (in the order returned by :meth:`forward`,
        including the input when ``input_skip``) followed by the bottleneck's.
    input_skip:
        Whether the input image itself is the finest skip.
    """

    def __init__(
        self, features: nn.Sequential, taps: tuple[int, ...], channels: tuple[int, ...], input_skip: bool
    ) -> None:
        super().__init__()
        self.features = features
        self.taps = tuple(taps)
        self.channels = tuple(channels)
        self.input_skip = input_skip

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Skips from fine to coarse, then the bottleneck."""
        outs: list[torch.Tensor] = [x] if self.input_skip else []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
        outs.append(x)  # the bottleneck
        return outs


class GlobalContext(nn.Module):
    """Adds an image-wide context vector to every position of the bottleneck.

    ``y = x + relu(fc(mean_hw(x)))``: a one-layer summary of the whole image,
    so the tiny U-Net's bottleneck sees all of it (a VGG16 bottleneck at 64 px
    does through its receptive field).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.relu(self.fc(x.mean(dim=(2, 3))))  # (N, C)
        return x + g[:, :, None, None]  # (N, C, H, W)


def _tiny_features(in_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = in_channels
    for level, w in enumerate(widths):
        if level > 0:
            layers.append(nn.MaxPool2d(2))
        for _ in range(2):
            layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            c_in = w
    layers.append(GlobalContext(c_in))
    return nn.Sequential(*layers)


def _make_encoder(backbone: str, in_channels: int, widths: tuple[int, ...] | None = None) -> nn.Module:
    """The hand-written encoder of the tiny and small U-Nets (every other backbone is an smp U-Net);
    ``widths`` (one per resolution) replaces the backbone's (for studies of other sizes)."""
    if backbone in HAND_WIDTHS:
        widths = HAND_WIDTHS[backbone] if widths is None else tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths must hold at least two positive channel counts, got {widths!r}")
        feats = _tiny_features(in_channels, widths)
        n = len(widths)
        # level l ends at index 7 * l + 5 (6 layers per level, plus a pool before it)
        taps = tuple(7 * lvl + 5 for lvl in range(n - 1))
        return SequentialEncoder(feats, taps, widths, input_skip=False)
    raise AssertionError(backbone)  # unreachable: checked by the caller


class UpBlock(nn.Module):
    """Up-sample x2 (transposed conv), concatenate the skip, two conv/BN/ReLU."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2)
        self.conv1 = nn.Conv2d(c_out + c_skip, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)  # (N, c_out, 2h, 2w) == skip's resolution
        x = torch.cat([x, skip], dim=1)  # (N, c_out + c_skip, 2h, 2w)
        x = self.relu1(self.bn1(self.conv1(x)))  # (N, c_out, 2h, 2w)
        return self.relu2(self.bn2(self.conv2(x)))  # (N, c_out, 2h, 2w)


class Decoder(nn.Module):
    """``up1`` ... ``up<K>``: one :class:`UpBlock` per skip, coarse to fine."""

    def __init__(self, channels: tuple[int, ...], min_width: int = 16) -> None:
        super().__init__()
        skips, c = channels[:-1], channels[-1]
        self.depth = len(skips)
        for k, c_skip in enumerate(reversed(skips), start=1):
            c_out = max(c_skip, min_width)
            setattr(self, f"up{k}", UpBlock(c, c_skip, c_out))
            c = c_out
        self.out_channels = c

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x, skips = feats[-1], feats[:-1]
        for k, skip in enumerate(reversed(skips), start=1):
            x = getattr(self, f"up{k}")(x, skip)
        return x



class UNet(nn.Module):
    """Encoder, decoder with a skip at every resolution, and a 1x1 ``head``.

    Build it with :func:`build_unet`. ``forward(x)`` takes ``(N, in_channels,
    H, W)`` with ``H`` and ``W`` multiples of :attr:`size_multiple` and
    returns logits ``(N, num_classes, H, W)``.
    """

    def __init__(self, backbone: str, num_classes: int, in_channels: int,
                 widths: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.encoder = _make_encoder(backbone, in_channels, widths)
        self.decoder = Decoder(self.encoder.channels)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, kernel_size=1)
        #: input height and width must be multiples of this
        self.size_multiple = 2 ** self.decoder.depth

    @property
    def arch(self) -> dict[str, Any]:
        """What :func:`build_unet` needs to rebuild this network."""
        return {"backbone": self.backbone, "num_classes": self.num_classes, "in_channels": self.in_channels}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_unet_input(x, self.in_channels, self.size_multiple, self.backbone)
        feats = self.encoder(x)  # skips (fine -> coarse) + bottleneck
        y = self.decoder(feats)  # (N, C_dec, H, W)
        return self.head(y)  # (N, num_classes, H, W)


def _is_unet(model: object) -> bool:
    """Whether ``model`` was built by :func:`build_unet` (the tiny UNet or an smp U-Net)."""
    if isinstance(model, UNet):
        return True
    from gsutils.models.smp_unet import smp_unet_class

    return isinstance(model, smp_unet_class())


def _guess_backbone(keys: set[str]) -> str:
    """A readable name for the architecture a state dict's keys belong to."""
    prefix = "encoder." if any(k.startswith("encoder.") for k in keys) else ""
    if f"{prefix}layer4.0.conv1.weight" in keys:
        return "resnet18" if f"{prefix}layer4.1.conv1.weight" in keys and f"{prefix}layer4.2.conv1.weight" not in keys else "a ResNet"
    if f"{prefix}features.18.0.weight" in keys:
        return "mobilenet_v2"
    if f"{prefix}features.28.weight" in keys:
        return "vgg16"
    if f"{prefix}features.27.fc.weight" in keys:  # the global context block after four levels
        return "tiny"
    if f"{prefix}features.34.fc.weight" in keys:  # the global context block after five levels
        return "small"
    if "segmentation_head.0.weight" in keys:
        return "an smp U-Net of another encoder"
    return "an unknown architecture"


def save_unet(model: UNet, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights and architecture atomically to ``path``.

    The file loads with ``torch.load(..., weights_only=True)`` and through
    ``build_unet(..., checkpoint=path)``.
    """
    import io

    from gsutils.io import atomic_write_bytes

    if not _is_unet(model):
        raise TypeError(f"model must be a U-Net from build_unet, got {type(model).__name__}")
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "arch": model.arch, "state_dict": state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint_into(model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, Any]) -> nn.Module:
    """Load a checkpoint into ``model`` (in place), checking the architecture.

    ``checkpoint`` is a path or an already loaded object: either a file from
    :func:`save_unet`, a plain ``state_dict`` of a U-Net, or a plain torchvision
    state dict of the encoder's network (e.g. ImageNet VGG16 weights), whose
    first convolution is summed over its RGB channels when ``in_channels`` is 1.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"checkpoint {str(path)!r} could not be read as a torch file: {err}") from err
        where = repr(str(path))
    else:
        obj, where = checkpoint, "the given checkpoint"
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where} must hold a dict (state dict), got {type(obj).__name__}")
    want = model.arch
    if obj.get("format") == CHECKPOINT_FORMAT:
        have = dict(obj["arch"])
        if have != want:
            raise ValueError(
                f"{where} holds a U-Net with {have} but build_unet was asked for {want}"
            )
        model.load_state_dict(obj["state_dict"])
        return model
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    keys = set(state)
    if any(k.startswith("encoder.") for k in keys):
        target, sd = model, state
    else:  # a torchvision network's state dict: load its encoder part
        enc_keys = set(model.encoder.state_dict())
        sd = {k: v for k, v in state.items() if k in enc_keys}
        target = model.encoder
        first = "conv1.weight" if model.backbone == "resnet18" else (
            "features.0.0.weight" if model.backbone == "mobilenet_v2" else "features.0.weight")
        w = sd.get(first)
        if w is not None and w.ndim == 4 and w.shape[1] != model.in_channels and model.in_channels == 1:
            sd[first] = w.sum(dim=1, keepdim=True)  # RGB filters -> one grayscale filter
    expected = target.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    bad_shape = sorted(k for k in set(sd) & set(expected) if sd[k].shape != expected[k].shape)
    if missing or unexpected or bad_shape:
        raise ValueError(
            f"{where} looks like {_guess_backbone(keys)} and does not fit the {model.backbone!r} U-Net "
            f"(num_classes={model.num_classes}, in_channels={model.in_channels}): "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
            f"{len(bad_shape)} shape mismatches {bad_shape[:3]}"
        )
    target.load_state_dict(sd)
    return model


def build_unet(
    backbone: str,
    num_classes: int = 11,
    in_channels: int = 1,
    checkpoint: str | os.PathLike | None = None,
    *,
    seed: int | None = None,
) -> nn.Module:
    """A U-Net with the given encoder, randomly initialised or from a local checkpoint.

    Parameters
    ----------
    backbone:
        One of :data:`BACKBONES`: ``"tiny"`` (this module's), ``"vgg16"``,
        ``"mobilenet_v2"``, ``"resnet18"`` and their ``"slim_*"`` and ``"small_*"`` variants
        (smp U-Nets, :mod:`gsutils.models.smp_unet`).
    num_classes:
        Output channels (11 for textured MNIST: digits 0-9 and background 10).
    in_channels:
        Input channels (1 for the grayscale toy data).
    checkpoint:
        Optional local file: a :func:`save_unet` checkpoint (its architecture
        must match), a U-Net ``state_dict``, or a torchvision state dict of the
        encoder's network. Nothing is ever downloaded.
    seed:
        When given, the random initialisation is drawn from this seed (the
        global RNG state is restored afterwards); otherwise from the global RNG.

    Returns
    -------
    nn.Module
        :class:`UNet` (tiny) or an smp U-Net;
        ``forward(x: (N, in_channels, H, W)) -> logits (N, num_classes, H, W)``.

    Raises
    ------
    ValueError
        Unknown backbone, bad sizes, or a checkpoint of another architecture.
    FileNotFoundError
        ``checkpoint`` does not exist.
    """
    _check_backbone(backbone)
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    def make() -> nn.Module:
        if backbone in HAND_WIDTHS:
            return UNet(backbone, num_classes, in_channels)
        from gsutils.models.smp_unet import build_smp_unet

        return build_smp_unet(backbone, num_classes, in_channels)

    if seed is None:
        model = make()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = make()
    if checkpoint is not None:
        load_checkpoint_into(model, checkpoint)
    return model
