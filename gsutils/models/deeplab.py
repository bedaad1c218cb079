"""DeepLabv3+ (Chen et al., 2018) from segmentation-models-pytorch, as the supplement uses it.

:func:`deeplab` builds ``smp.DeepLabV3Plus`` at output stride 16 with
DeepLab's own atrous rates (6, 12, 18) (smp's default, 12/24/36, belongs to
output stride 8) and no downloaded weights. Encoders:

============================  ==========================================================
``"mobilenet_v2"``            smp's MobileNetV2 (the S2 network of the supplement)
``"xception65"``              timm's aligned Xception-65 (``tu-xception65``, DeepLab's
                              backbone; smp's own ``"xception"`` refuses dilation)
``"mobilenet_v2_035"``        timm's MobileNetV2 at width 0.35 (a reduced variant)
``"xception65_slim"``         Xception-65's layout (stem, 3 entry, 16 middle, 2 exit blocks)
                              at 1/8-1/12 of its widths (about as many weights as the
                              width-0.35 MobileNetV2), registered with timm here
============================  ==========================================================

The returned :class:`DeepLab` takes images in ``[0, 1]`` and normalises them
with ImageNet's mean and std inside, so grey values and saliency
perturbations live in image space. :func:`load_deeplab_checkpoint` loads a
local smp state dict (e.g. weights converted from the official release) for
users who have one; nothing is ever downloaded.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["ENCODERS", "DeepLab", "deeplab", "load_deeplab_checkpoint"]

#: encoder key -> smp encoder name
ENCODERS: dict[str, str] = {
    "mobilenet_v2": "mobilenet_v2",
    "xception65": "tu-xception65",
    "mobilenet_v2_035": "tu-mobilenetv2_035",
    "xception65_slim": "tu-xception65_slim",
}

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _register_slim_xception() -> None:
    """Register ``xception65_slim`` with timm: Xception-65's blocks at 1/8-1/12 of its widths."""
    import timm
    from timm.models import register_model
    from timm.models.xception_aligned import _xception

    if timm.models.is_model("xception65_slim"):
        return

    def xception65_slim(pretrained: bool = False, **kwargs):  # noqa: ANN202 - timm's signature
        if pretrained:
            raise ValueError("xception65_slim has no pretrained weights")
        block_cfg = [
            dict(in_chs=64, out_chs=16, stride=2),
            dict(in_chs=16, out_chs=32, stride=2),
            dict(in_chs=32, out_chs=64, stride=2),
            *([dict(in_chs=64, out_chs=64, stride=1)] * 16),
            dict(in_chs=64, out_chs=(64, 96, 96), stride=2),
            dict(in_chs=96, out_chs=(128, 128, 160), stride=1, no_skip=True, start_with_relu=False),
        ]
        args = dict(block_cfg=block_cfg, norm_layer=partial(nn.BatchNorm2d, eps=.001, momentum=.1))
        return _xception("xception65", pretrained=False, **dict(args, **kwargs))

    xception65_slim.__module__ = "timm.models.xception_aligned"
    register_model(xception65_slim)


class DeepLab(nn.Module):
    """An smp DeepLabV3+ that takes images in ``[0, 1]`` (ImageNet normalisation inside).

    ``forward`` returns logits ``(N, classes, H, W)``; ``net`` is the smp model
    (whose ``state_dict`` is what :func:`load_deeplab_checkpoint` reads).
    """

    def __init__(self, net: nn.Module, encoder: str) -> None:
        super().__init__()
        self.net = net
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DeepLab expects RGB images (N, 3, H, W) in [0, 1], got {tuple(x.shape)}")
        if x.shape[2] % 16 or x.shape[3] % 16:
            raise ValueError(f"image sides must be multiples of 16 (output stride 16), got "
                             f"{tuple(x.shape[2:])}; resize or pad the images")
        return self.net((x - self.mean) / self.std)


def deeplab(encoder: str, classes: int, *, output_stride: int = 16,
            atrous_rates: tuple[int, int, int] = (6, 12, 18), decoder_channels: int = 256) -> DeepLab:
    """A freshly initialised DeepLabv3+ (no downloaded weights).

    Parameters
    ----------
    encoder:
        One of :data:`ENCODERS`.
    classes:
        Output classes.
    output_stride:
        16 (the supplement's) or 8.
    atrous_rates:
        ASPP rates; DeepLab's (6, 12, 18) at output stride 16 (double them at 8).
    decoder_channels:
        ASPP/decoder width (256 in DeepLab; smaller in the reduced variants).
    """
    import segmentation_models_pytorch as smp

    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {sorted(ENCODERS)}, got {encoder!r}")
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
    if not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be an int >= 2, got {classes!r}")
    if encoder == "xception65_slim":
        _register_slim_xception()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    net = smp.DeepLabV3Plus(encoder_name=ENCODERS[encoder], encoder_weights=None,
                            encoder_output_stride=output_stride, decoder_atrous_rates=tuple(atrous_rates),
                            decoder_channels=decoder_channels, classes=classes)
    return DeepLab(net, encoder)


def load_deeplab_checkpoint(model: DeepLab, path: str | os.PathLike) -> DeepLab:
    """Load a local smp ``DeepLabV3Plus`` state dict into ``model`` (strictly).

    Accepts the smp model's own keys, or those of a saved :class:`DeepLab`
    (prefixed ``net.``), or a dict with the state dict under ``"state_dict"``.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Keys or shapes that do not match the model (listing a few of them).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; pass the path of a saved smp DeepLabV3Plus "
                                "state dict (torch.save(model.state_dict(), path))")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k[4:] if k.startswith("net.") else k: v for k, v in state.items()}
    own = model.net.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(
            f"the checkpoint {path} does not fit this DeepLab ({model.encoder}): "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
            f"{len(shapes)} shape mismatches {sorted(shapes)[:3]}; build the model with the encoder and "
            "number of classes the checkpoint was trained with")
    model.net.load_state_dict(state)
    return model
