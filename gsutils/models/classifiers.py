"""Multi-label image classifiers with the NormGrad paper's architectures.

Rebuffi et al. (2020) evaluate saliency on VGG16 and ResNet50 fine-tuned for
multi-label classification on PASCAL VOC 2007 and COCO 2014. This module builds
the same two architectures with torchvision's constructors, so that module
paths are exactly torchvision's (``features.29``, ``layer4``,
``classifier.6``, ``fc`` ...), and with a ``width`` multiplier: ``width < 1``
scales every channel count (the quick profile trains such narrow versions on
the multi-digit stand-in) while keeping the same module tree and names.

It also loads TorchRay's converted Caffe checkpoints of the pointing-game
models (VGG16 / ResNet50 with 20-class VOC or 80-class COCO heads) from a
local file; nothing is ever downloaded.

Every model returned here carries an attribute ``normalization`` (a
:class:`InputNormalization`) that says how an RGB image in ``[0, 1]`` must be
turned into the network's input; :func:`normalize_images` applies it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

ARCHS = ("vgg16", "resnet50")

#: Layers at which the pointing-game chapter extracts saliency (module paths,
#: plus ``"input"`` for the image itself). VGG16: the input and the last ReLU of
#: each of the five blocks, before max pooling; ResNet50: the input and the
#: four residual stages.
CANDIDATE_LAYERS: dict[str, tuple[str, ...]] = {
    "vgg16": ("input", "features.3", "features.8", "features.15", "features.22", "features.29"),
    "resnet50": ("input", "layer1", "layer2", "layer3", "layer4"),
}

#: The module holding each architecture's class scores.
HEAD_MODULE = {"vgg16": "classifier.6", "resnet50": "fc"}


@dataclass(frozen=True)
class InputNormalization:
    """``x = (scale * image - mean) / std`` per RGB channel, image in ``[0, 1]``."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1.0


#: What the classifiers trained in this project expect (ImageNet statistics).
IMAGENET_NORMALIZATION = InputNormalization(
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1.0
)
#: What TorchRay's converted Caffe models expect: RGB in ``[0, 255]`` minus the
#: Caffe channel means (given in BGR order by Caffe as 103.939, 116.779, 123.68).
CAFFE_NORMALIZATION = InputNormalization(
    mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0), scale=255.0
)


def normalize_images(images: torch.Tensor, normalization: InputNormalization) -> torch.Tensor:
    """Map RGB images in ``[0, 1]`` of shape ``(N, 3, H, W)`` to network inputs.

    Parameters
    ----------
    images:
        Float tensor ``(N, 3, H, W)`` (or ``(3, H, W)``) with values in ``[0, 1]``.
    normalization:
        The model's :class:`InputNormalization` (``model.normalization``).

    Returns
    -------
    torch.Tensor
        Same shape, ``(scale * images - mean) / std``.
    """
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got {type(images).__name__}"
                        + (f" of dtype {images.dtype}" if isinstance(images, torch.Tensor) else ""))
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
    mean = torch.tensor(normalization.mean, dtype=images.dtype, device=images.device)
    std = torch.tensor(normalization.std, dtype=images.dtype, device=images.device)
    # mean, std: (3, 1, 1), broadcast over (N, 3, H, W)
    return (images * normalization.scale - mean[:, None, None]) / std[:, None, None]


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 4."""
    return max(4, int(round(channels * width)))


def _check_args(arch: str, num_classes: int, width: float) -> None:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ValueError(f"width must be a float in (0, 1], got {width!r}")


def _init_head(classifier: nn.Sequential) -> None:
    """He initialisation of a narrow VGG head (fan-in, ReLU gain), biases zero.

    torchvision draws VGG's linear weights from N(0, 0.01), scaled for its
    25,088 inputs; with a few dozen inputs that makes the head's output (and
    the gradient reaching the convolutions) tiny and training stalls, so the
    narrow heads use He's initialisation instead (the last layer without the
    ReLU gain).
    """
    linears = [m for m in classifier if isinstance(m, nn.Linear)]
    for i, m in enumerate(linears):
        last = i == len(linears) - 1
        nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear" if last else "relu")
        nn.init.constant_(m.bias, 0)


def _vgg16(num_classes: int, width: float, pool: int) -> nn.Module:
    """torchvision's VGG16 (configuration "D"), channels scaled by ``width``.

    ``pool`` is the output size of ``avgpool`` (torchvision: 7); the first
    classifier layer takes ``channels * pool * pool`` inputs.
    """
    if width == 1.0 and pool == 7:
        return tv_vgg.vgg16(weights=None, num_classes=num_classes)
    cfg = [v if v == "M" else scaled_channels(int(v), width) for v in tv_vgg.cfgs["D"]]
    model = tv_vgg.VGG(tv_vgg.make_layers(cfg, batch_norm=False), num_classes=num_classes)
    c_last = cfg[-2]  # channels of the last conv block
    hidden = scaled_channels(4096, width)
    model.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
    # torchvision hard-codes 512 * 7 * 7 -> 4096 -> 4096; same indices, scaled widths
    model.classifier = nn.Sequential(
        nn.Linear(c_last * pool * pool, hidden),
        nn.ReLU(True),
        nn.Dropout(p=0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(True),
        nn.Dropout(p=0.5),
        nn.Linear(hidden, num_classes),
    )
    _init_head(model.classifier)
    return model


def add_vgg_batchnorm(model: nn.Module) -> nn.Module:
    """Put a BatchNorm after every convolution of a VGG's ``features`` (in place, for training).

    ``features.k`` becomes ``Sequential(conv, BatchNorm2d)``; after training,
    :func:`fold_vgg_batchnorm` merges each pair back into one convolution, so
    the trained network is a plain VGG16 with torchvision's module names.
    Training with the normalisation and folding it afterwards lets the deep
    VGG16 train from scratch at the quick profile's budget (it stays at chance
    without it).
    """
    for i, m in enumerate(model.features):
        if isinstance(m, nn.Conv2d):
            bn = nn.BatchNorm2d(m.out_channels).to(m.weight.device, m.weight.dtype)
            model.features[i] = nn.Sequential(m, bn)
    return model


@torch.no_grad()
def fold_vgg_batchnorm(model: nn.Module) -> nn.Module:
    """Merge each ``Sequential(conv, BatchNorm2d)`` of ``features`` into one convolution (in place).

    With ``s = gamma / sqrt(running_var + eps)``: ``W' = W * s`` (per output
    channel) and ``b' = (b - running_mean) * s + beta``; the folded network
    computes the eval-mode function of the unfolded one.
    """
    for i, m in enumerate(model.features):
        if isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[1], nn.BatchNorm2d):
            conv, bn = m[0], m[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                               conv.padding, bias=True).to(conv.weight.device, conv.weight.dtype)
            folded.weight.copy_(conv.weight * scale[:, None, None, None])  # (C_out, C_in, k, k)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)  # (C_out,)
            model.features[i] = folded
    return model


class NarrowResNet(tv_resnet.ResNet):
    """torchvision's Bottleneck ResNet with ``layers`` blocks per stage and every channel count times ``width``.

    Built from torchvision's own :class:`~torchvision.models.resnet.Bottleneck`
    and ``_make_layer``, so the module tree (``conv1``, ``layer1.0.conv1``,
    ``layer4``, ``fc`` ...) and the forward pass are torchvision's. With
    ``num_classes=None`` the head ``fc`` is the identity: the network returns
    its pooled features (``out_features`` of them).
    """

    def __init__(self, layers: Sequence[int], num_classes: int | None, width: float,
                 zero_init_residual: bool = False) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.inplanes = scaled_channels(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        block = tv_resnet.Bottleneck
        self.layer1 = self._make_layer(block, scaled_channels(64, width), layers[0])
        self.layer2 = self._make_layer(block, scaled_channels(128, width), layers[1], stride=2)
        self.layer3 = self._make_layer(block, scaled_channels(256, width), layers[2], stride=2)
        self.layer4 = self._make_layer(block, scaled_channels(512, width), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_features = scaled_channels(512, width) * block.expansion
        self.fc = nn.Identity() if num_classes is None else nn.Linear(self.out_features, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, tv_resnet.Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)


def _resnet50(num_classes: int, width: float, zero_init_residual: bool) -> nn.Module:
    if width == 1.0:
        return tv_resnet.resnet50(weights=None, num_classes=num_classes,
                                  zero_init_residual=zero_init_residual)
    return NarrowResNet([3, 4, 6, 3], num_classes, width, zero_init_residual)


# --------------------------------------------------------------------------------------
# TorchRay's converted Caffe checkpoints
# --------------------------------------------------------------------------------------

def _is_caffe_checkpoint(arch: str, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` uses the key layout of TorchRay's converted Caffe models."""
    if arch == "vgg16":
        # Caffe has no dropout modules: its classifier keys are 0, 2, 4
        return "classifier.4.weight" in state and "classifier.6.weight" not in state
    # Caffe's BatchNorm + Scale pairs become ``bn1.0.*`` / ``bn1.1.*``
    return any(re.search(r"bn\d\.[01]\.", k) for k in state)


def _convert_caffe_vgg16(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename and reshape a Caffe VGG16 state dict to torchvision's layout."""
    renames = {"classifier.2.": "classifier.3.", "classifier.4.": "classifier.6."}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old):]
        if key == "features.0.weight":
            value = value[:, [2, 1, 0]]  # (64, 3, 3, 3): BGR -> RGB input channels
        elif key.startswith("classifier.") and key.endswith(".weight"):
            value = value.reshape(value.shape[0], -1)  # conv-shaped FC weights -> (out, in)
        out[key] = value
    return out


def _convert_caffe_resnet50(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a Caffe ResNet50 state dict (BatchNorm + Scale pairs) to torchvision's."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = re.sub(r"(bn\d)\.[01]\.", r"\1.", key)
        key = re.sub(r"(downsample\.\d)\.[01]\.", r"\1.", key)
        if key == "conv1.weight":
            value = value[:, [2, 1, 0]]  # BGR -> RGB input channels
        out[key] = value
    return out


def _caffe_patch(arch: str, model: nn.Module) -> None:
    """Patch a torchvision model to the Caffe definition the checkpoints come from."""
    if arch == "resnet50":
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=7, stride=2, padding=3, bias=True)
        model.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        for name in ("layer2", "layer3", "layer4"):
            first = getattr(model, name)[0]
            first.conv1.stride = (2, 2)  # Caffe strides in the 1x1 reduction ...
            first.conv2.stride = (1, 1)  # ... not in the 3x3 convolution
    for m in model.modules():
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable or not a torch file
        raise ValueError(f"checkpoint {str(path)!r} could not be read as a torch state dict: {err}") from err
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"checkpoint {str(path)!r} does not hold a state dict of tensors")
    # checkpoints saved from nn.DataParallel carry a "module." prefix
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_checkpoint(model: nn.Module, arch: str, checkpoint: str | os.PathLike) -> nn.Module:
    """Load ``checkpoint`` into ``model`` (built by :func:`build_classifier`).

    Accepts a plain torchvision-layout state dict (as saved by this project)
    or TorchRay's converted Caffe checkpoints (``vgg16_voc-*.pth.tar``,
    ``resnet50_coco-*.pth.tar`` ...), which are recognised by their key
    layout, converted, and loaded into a model patched to the Caffe
    definition (ceil-mode pooling; ResNet's strided 1x1 convolutions and
    biased stem); such a model's ``normalization`` becomes
    :data:`CAFFE_NORMALIZATION`.

    Raises
    ------
    FileNotFoundError
        If ``checkpoint`` does not exist.
    ValueError
        If it cannot be read, or its tensors do not fit the model (the
        message lists the mismatching keys and shapes).
    """
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} does not exist; pass the local path of a saved "
            "state dict (e.g. TorchRay's vgg16_voc-b050e8c3.pth.tar), nothing is downloaded"
        )
    state = _read_state_dict(path)
    caffe = _is_caffe_checkpoint(arch, state)
    if caffe:
        state = _convert_caffe_vgg16(state) if arch == "vgg16" else _convert_caffe_resnet50(state)
        _caffe_patch(arch, model)
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - {k for k in own if k.endswith("num_batches_tracked")})
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state) if state[k].shape != own[k].shape
    )
    if missing or unexpected or wrong:
        def _few(items: list[str]) -> str:
            return ", ".join(items[:6]) + (f" ... ({len(items)} in all)" if len(items) > 6 else "")
        parts = []
        if missing:
            parts.append(f"missing keys: {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_few(unexpected)}")
        if wrong:
            parts.append(f"shape mismatches: {_few(wrong)}")
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit a {arch} with "
            f"{own[HEAD_MODULE[arch] + '.weight'].shape[0]} classes and this width: " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=False)  # strict apart from num_batches_tracked
    if caffe:
        model.normalization = CAFFE_NORMALIZATION
    return model


def build_classifier(
    arch: str,
    num_classes: int,
    width: float = 1.0,
    checkpoint: str | os.PathLike | None = None,
    *,
    vgg_pool: int = 7,
    zero_init_residual: bool = False,
) -> nn.Module:
    """A multi-label classifier with torchvision's module names.

    Parameters
    ----------
    arch:
        ``"vgg16"`` or ``"resnet50"``.
    num_classes:
        Number of outputs (20 for VOC, 80 for COCO, 10 for the digit scenes).
        The model returns one logit per class; train it with
        ``BCEWithLogitsLoss``.
    width:
        Channel multiplier in ``(0, 1]``; ``1.0`` gives torchvision's networks.
        Narrow versions keep the same module tree and names.
    checkpoint:
        Optional local path of a state dict to load (see
        :func:`load_checkpoint`); never downloaded.
    vgg_pool:
        VGG16 only: output size of ``avgpool`` (torchvision's 7). ``1`` makes
        the head global-average-pooled (``classifier.0`` then takes the
        channels alone), which small narrow networks learn much faster from
        small images; the module names are unchanged.
    zero_init_residual:
        ResNet50 only: start every residual branch's last BatchNorm at zero
        (torchvision's option), so that the deep narrow network trains quickly.

    Returns
    -------
    torch.nn.Module
        The model in training mode on the CPU, with a ``normalization``
        attribute (:class:`InputNormalization`).
    """
    _check_args(arch, num_classes, width)
    if isinstance(vgg_pool, bool) or not isinstance(vgg_pool, int) or vgg_pool < 1:
        raise ValueError(f"vgg_pool must be a positive int, got {vgg_pool!r}")
    if arch == "vgg16":
        model = _vgg16(num_classes, float(width), vgg_pool)
    else:
        model = _resnet50(num_classes, float(width), bool(zero_init_residual))
    model.normalization = IMAGENET_NORMALIZATION
    if checkpoint is not None:
        load_checkpoint(model, arch, checkpoint)
    return model


def input_normalization(model: nn.Module) -> InputNormalization:
    """The :class:`InputNormalization` a model built here expects."""
    norm = getattr(model, "normalization", None)
    if not isinstance(norm, InputNormalization):
        raise TypeError(
            f"model has no InputNormalization attribute 'normalization' (got {type(norm).__name__}); "
            "build it with gsutils.models.classifiers.build_classifier"
        )
    return norm


__all__ = [
    "ARCHS",
    "CANDIDATE_LAYERS",
    "HEAD_MODULE",
    "InputNormalization",
    "IMAGENET_NORMALIZATION",
    "CAFFE_NORMALIZATION",
    "normalize_images",
    "build_classifier",
    "load_checkpoint",
    "input_normalization",
    "add_vgg_batchnorm",
    "fold_vgg_batchnorm",
]
