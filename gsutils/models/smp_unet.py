"""U-Nets from segmentation-models-pytorch for the backbone comparison (Grid Saliency S1.5).

:func:`build_smp_unet` returns an :class:`SmpUNet`, an ``smp.Unet`` (encoder,
``decoder.blocks.*``, ``segmentation_head``) with a randomly initialised
encoder (``encoder_weights=None``: nothing is ever downloaded) and the
attributes the rest of :mod:`gsutils` reads (``backbone``, ``arch``,
``size_multiple``, an input check that names the expected shape).

Two sizes of the same three encoder families:

=====================  ==========================================================  ========
backbone               encoder                                                      params
=====================  ==========================================================  ========
``vgg16``              smp's ``vgg16`` (torchvision VGG16 ``features``), depth 5    23.7 M
``mobilenet_v2``       smp's ``mobilenet_v2`` (torchvision MobileNetV2), depth 5     6.6 M
``resnet18``           smp's ``resnet18`` (torchvision ResNet18), depth 5           14.3 M
``slim_vgg16``         VGG16's 2-2-3-3-3 convs, widths 8-16-32-32-32, depth 4       135 k
``slim_mobilenet_v2``  MobileNetV2 at width 0.35, depth 4                           129 k
``slim_resnet18``      ResNet18's BasicBlocks, stem 16, stages 16-24-40, depth 4    133 k
X
``small_mobilenet_v2`` MobileNetV2 at width 0.5, depth 5                           2.53 M
``small_resnet18``     ResNet18's BasicBlocks, stem 32, stages 32-64-128-128, depth 5  1.95 M
=====================  ==========================================================  ========

The full networks are the paper's (S1.5: "VGG16, MobileNetV2, ResNet18").
The slim ones are the quick profile's stand-ins on 32 px images: the same
layer layouts at reduced width and encoder depth 4 (bottleneck at 1/16, 2x2
pixels at 32 px), with a decoder of widths ``(32, 16, 16, 16)``; about 83 k of
each one's parameters are in the encoder, so the three are of one size. They are
registered in smp's encoder table under ``gsutils_slim_*`` so that smp builds
them like its own encoders.

The small ones are the quick profile's networks at the paper's 64 px: encoder
depth 5 (bottleneck at 2x2 pixels), a decoder of widths ``(128, 64, 32, 16, 16)``,
about the size of the quick profile's own five-level U-Net (``"small"`` in
:mod:`gsutils.models.unet`); the slim ones at 32 px never reached the gate.

Module names follow torchvision's, as smp keeps them: ``encoder.features.29``
is the ReLU after VGG16's ``conv5_3``; ``encoder.layer4`` is ResNet18's last
stage; ``encoder.features.18`` is MobileNetV2's last 1x1 convolution (the
slim variants stop at depth 4: VGG at ``features.29``, MobileNetV2 at
``features.13``, ResNet at ``layer3``).
No activation is in-place, so forward and backward hooks may be put anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gsutils.models.input_check import check_unet_input

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # smp imports the hub client; never reach out

__all__ = ["SMP_BACKBONES", "SLIM_BACKBONES", "SMALL_BACKBONES", "FAMILY", "SmpSpec", "SPECS", "SmpUNet", "build_smp_unet",
           "architecture_config"]

#: the paper's three encoders (S1.5), at full size
SMP_BACKBONES: tuple[str, ...] = ("vgg16", "mobilenet_v2", "resnet18")
#: reduced variants of the same three families for 32 px images (depth 4)
SLIM_BACKBONES: tuple[str, ...] = ("slim_vgg16", "slim_mobilenet_v2", "slim_resnet18")
#: reduced variants of the same three families for 64 px images (depth 5)
SMALL_BACKBONES: tuple[str, ...] = ("small_vgg16", "small_mobilenet_v2", "small_resnet18")
#: the small ResNet18 and MobileNetV2 with a full-resolution stem (see :func:`_full_res_stem`)
FULL_STEM_BACKBONES: tuple[str, ...] = ("small_mobilenet_v2_fs", "small_resnet18_fs")
#: the family of every smp backbone (for tables and labels)
FAMILY: dict[str, str] = {f"{size}{name}": family
                          for name, family in (("vgg16", "VGG16"), ("mobilenet_v2", "MobileNetV2"),
                                               ("resnet18", "ResNet18"))
                          for size in ("", "slim_", "small_")} | {
    "small_mobilenet_v2_fs": "MobileNetV2", "small_resnet18_fs": "ResNet18"}

#: VGG16's layer layout (configuration "D": 2-2-3-3-3 convs) at 1/8 of its widths, capped at 32
SLIM_VGG_CONFIG: list[int | str] = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M", 32, 32, 32, "M"]
#: MobileNetV2 width multiplier of the slim variant
SLIM_MOBILENET_WIDTH = 0.35
#: ResNet18 stage widths of the slim variant (torchvision: 64, 128, 256, 512)
SLIM_RESNET_WIDTHS: tuple[int, ...] = (16, 24, 40, 80)
#: VGG16's layout at 1/4 of its widths, capped at 128 (the small variant)
SMALL_VGG_CONFIG: list[int | str] = [16, 16, "M", 32, 32, "M", 64, 64, 64, "M", 128, 128, 128, "M",
                                     128, 128, 128, "M"]
#: MobileNetV2 width multiplier of the small variant
SMALL_MOBILENET_WIDTH = 0.5
#: ResNet18 stage widths of the small variant
SMALL_RESNET_WIDTHS: tuple[int, ...] = (32, 64, 128, 128)


@dataclass(frozen=True)
class SmpSpec:
    """How one backbone is built with ``smp.Unet``."""

    encoder: str
    depth: int
    decoder: tuple[int, ...]


SPECS: dict[str, SmpSpec] = {
    "vgg16": SmpSpec("vgg16", 5, (256, 128, 64, 32, 16)),
    "mobilenet_v2": SmpSpec("mobilenet_v2", 5, (256, 128, 64, 32, 16)),
    "resnet18": SmpSpec("resnet18", 5, (256, 128, 64, 32, 16)),
    "slim_vgg16": SmpSpec("gsutils_slim_vgg16", 4, (32, 16, 16, 16)),
    "slim_mobilenet_v2": SmpSpec("gsutils_slim_mobilenet_v2", 4, (32, 16, 16, 16)),
    "slim_resnet18": SmpSpec("gsutils_slim_resnet18", 4, (32, 16, 16, 16)),
    "small_vgg16": SmpSpec("gsutils_small_vgg16", 5, (128, 64, 32, 16, 16)),
    "small_mobilenet_v2": SmpSpec("gsutils_small_mobilenet_v2", 5, (128, 64, 32, 16, 16)),
    "small_resnet18": SmpSpec("gsutils_small_resnet18", 5, (128, 64, 32, 16, 16)),
    "small_mobilenet_v2_fs": SmpSpec("gsutils_small_mobilenet_v2_fs", 5, (128, 64, 32, 16, 16)),
    "small_resnet18_fs": SmpSpec("gsutils_small_resnet18_fs", 5, (128, 64, 32, 16, 16)),
}

#: the layer widths of every reduced variant: (VGG config, MobileNetV2 multiplier, ResNet widths)
REDUCED_WIDTHS: dict[str, Any] = {
    "slim_vgg16": SLIM_VGG_CONFIG, "slim_mobilenet_v2": SLIM_MOBILENET_WIDTH,
    "slim_resnet18": list(SLIM_RESNET_WIDTHS), "small_vgg16": SMALL_VGG_CONFIG,
    "small_mobilenet_v2": SMALL_MOBILENET_WIDTH, "small_resnet18": list(SMALL_RESNET_WIDTHS),
    "small_mobilenet_v2_fs": SMALL_MOBILENET_WIDTH, "small_resnet18_fs": list(SMALL_RESNET_WIDTHS),
}
#: channels of the full-resolution convolution of the ``_fs`` variants' stems
FULL_STEM_WIDTH = 16


def _full_res_stem(first: nn.Module, out_channels: int, activation: type[nn.Module]) -> nn.Sequential:
    """A 3x3 convolution at the input's resolution (``FULL_STEM_WIDTH`` channels, batch norm,
    ``activation``) followed by ``first``, the family's own stride-2 stem convolution, rebuilt to
    take those channels. On 64 px digits the families' stride-2 stems see every pixel through one
    strided convolution; this gives the first skip connection (at 1/2) features computed at full
    resolution, as VGG16's first block does."""
    w = FULL_STEM_WIDTH
    strided = nn.Conv2d(w, out_channels, kernel_size=first.kernel_size, stride=first.stride,
                        padding=first.padding, bias=first.bias is not None)
    return nn.Sequential(nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), activation(), strided)


def _slim_resnet_encoder_class():
    from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
    from torchvision.models.resnet import BasicBlock

    class SlimResNetEncoder(ResNetEncoder):
        """smp's ResNet encoder with narrower stages (ResNet18's block layout)."""

        def __init__(self, out_channels: list[int], depth: int = 5, output_stride: int = 32,
                     widths: tuple[int, ...] = SLIM_RESNET_WIDTHS, full_stem: bool = False) -> None:
            super().__init__(out_channels, depth=depth, output_stride=output_stride,
                             block=BasicBlock, layers=[2, 2, 2, 2])
            w = tuple(widths)
            self.inplanes = w[0]
            self.conv1 = nn.Conv2d(3, w[0], kernel_size=7, stride=2, padding=3, bias=False)
            if full_stem:
                self.conv1 = _full_res_stem(self.conv1, w[0], nn.ReLU)
            self.bn1 = nn.BatchNorm2d(w[0])
            self.layer1 = self._make_layer(BasicBlock, w[0], 2)
            self.layer2 = self._make_layer(BasicBlock, w[1], 2, stride=2)
            self.layer3 = self._make_layer(BasicBlock, w[2], 2, stride=2)
            self.layer4 = self._make_layer(BasicBlock, w[3], 2, stride=2)
            for m in self.modules():  # torchvision's ResNet initialisation
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            if depth < 5:  # unused stages: not built into the checkpoint
                del self.layer4
            if depth < 4:
                del self.layer3

    return SlimResNetEncoder


def _slim_mobilenet_encoder_class():
    from segmentation_models_pytorch.encoders.mobilenet import MobileNetV2Encoder

    class SlimMobileNetV2Encoder(MobileNetV2Encoder):
        """smp's MobileNetV2 encoder at a width multiplier, without the stages its depth does not use."""

        def __init__(self, out_channels: list[int], depth: int = 5, output_stride: int = 32,
                     width_mult: float = SLIM_MOBILENET_WIDTH, full_stem: bool = False) -> None:
            super().__init__(out_channels, depth=depth, output_stride=output_stride, width_mult=width_mult)
            if full_stem:  # features[0] is (stride-2 conv, batch norm, ReLU6)
                stem = self.features[0]
                stem[0] = _full_res_stem(stem[0], stem[0].out_channels, nn.ReLU6)
                for m in stem[0].modules():  # torchvision's MobileNetV2 initialisation
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight, mode="fan_out")
                    elif isinstance(m, nn.BatchNorm2d):
                        nn.init.ones_(m.weight)
                        nn.init.zeros_(m.bias)
            if depth < 5:  # the stages after the depth's last output are never run
                last = self._out_indexes[depth - 1]
                self.features = self.features[: last + 1]

    return SlimMobileNetV2Encoder


def _slim_vgg_encoder_class():
    from segmentation_models_pytorch.encoders.vgg import VGGEncoder

    class SlimVGGEncoder(VGGEncoder):
        """smp's VGG encoder on a narrow configuration, without the layers its depth does not use."""

        def __init__(self, out_channels: list[int], config: list, depth: int = 5, output_stride: int = 32,
                     batch_norm: bool = False) -> None:
            super().__init__(out_channels, config, batch_norm=batch_norm, depth=depth, output_stride=output_stride)
            last = self._out_indexes[depth]
            self.features = self.features[: last + 1]
            self._out_indexes = [i for i in self._out_indexes if i <= last]
            for m in self.features.modules():  # torchvision's VGG initialisation
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)

    return SlimVGGEncoder


def _out_channels(widths: list[int]) -> list[int]:
    return [3, *widths]


def _register() -> None:
    """Add the reduced encoders to smp's encoder table (idempotent)."""
    from segmentation_models_pytorch.encoders import encoders
    from torchvision.models._utils import _make_divisible

    for size in ("slim", "small"):
        if f"gsutils_{size}_vgg16" in encoders:
            continue
        vgg = REDUCED_WIDTHS[f"{size}_vgg16"]
        vgg_stage = [c for i, c in enumerate(vgg[:-1]) if vgg[i + 1] == "M"]
        encoders[f"gsutils_{size}_vgg16"] = {
            "encoder": _slim_vgg_encoder_class(), "pretrained_settings": {},
            "params": {"out_channels": [*vgg_stage, vgg_stage[-1]], "config": vgg},
        }
        width = REDUCED_WIDTHS[f"{size}_mobilenet_v2"]
        mw = [_make_divisible(c * width, 8) for c in (16, 24, 32, 96, 320)]
        encoders[f"gsutils_{size}_mobilenet_v2"] = {
            "encoder": _slim_mobilenet_encoder_class(), "pretrained_settings": {},
            "params": {"out_channels": _out_channels([*mw[:4], 1280]), "width_mult": width},
        }
        rw = tuple(REDUCED_WIDTHS[f"{size}_resnet18"])
        encoders[f"gsutils_{size}_resnet18"] = {
            "encoder": _slim_resnet_encoder_class(), "pretrained_settings": {},
            "params": {"out_channels": _out_channels([rw[0], rw[0], rw[1], rw[2], rw[3]]), "widths": rw},
        }
    for name in ("mobilenet_v2", "resnet18"):  # the full-resolution-stem variants of the small ones
        base = encoders[f"gsutils_small_{name}"]
        encoders[f"gsutils_small_{name}_fs"] = {**base, "params": {**base["params"], "full_stem": True}}


def _no_inplace(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if hasattr(m, "inplace") and isinstance(getattr(m, "inplace"), bool):
            m.inplace = False
    return module


def _smp_unet_class():
    import segmentation_models_pytorch as smp

    class _SmpUNet(smp.Unet):
        """An ``smp.Unet`` with :mod:`gsutils`'s U-Net attributes (see :class:`SmpUNet`)."""

        def __init__(self, backbone: str, num_classes: int, in_channels: int) -> None:
            spec = SPECS[backbone]
            super().__init__(encoder_name=spec.encoder, encoder_depth=spec.depth, encoder_weights=None,
                             decoder_channels=spec.decoder, in_channels=in_channels, classes=num_classes)
            self.backbone = backbone
            self.num_classes = num_classes
            self.in_channels = in_channels
            #: input height and width must be multiples of this
            self.size_multiple = 2 ** spec.depth
            _no_inplace(self)

        @property
        def arch(self) -> dict[str, Any]:
            """What :func:`gsutils.models.unet.build_unet` needs to rebuild this network."""
            return {"backbone": self.backbone, "num_classes": self.num_classes, "in_channels": self.in_channels}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            check_unet_input(x, self.in_channels, self.size_multiple, self.backbone)
            return super().forward(x)  # (N, num_classes, H, W) logits

    return _SmpUNet


_CLASS: list[type] = []


def smp_unet_class() -> type:
    """The :class:`SmpUNet` class (built on first use, so importing this module stays cheap)."""
    if not _CLASS:
        _register()
        _CLASS.append(_smp_unet_class())
    return _CLASS[0]


class SmpUNet:  # documentation stand-in; isinstance checks use smp_unet_class()
    """``smp.Unet`` with ``backbone``, ``num_classes``, ``in_channels``, ``arch``, ``size_multiple``.

    ``forward(x: (N, in_channels, H, W)) -> logits (N, num_classes, H, W)``,
    with ``H`` and ``W`` multiples of ``size_multiple`` (a clear error
    otherwise). Build it with :func:`build_smp_unet`.
    """


def architecture_config(backbone: str) -> dict[str, Any]:
    """What determines ``backbone``'s layers: its smp spec and, for a slim variant, its widths.

    Hashed into a trained network's cache key, so that a change of the slim
    encoders' widths retrains instead of loading a network of another shape.
    """
    if backbone not in SPECS:
        raise ValueError(f"backbone must be one of {', '.join(map(repr, SPECS))}; got {backbone!r}")
    spec = SPECS[backbone]
    out: dict[str, Any] = {"encoder": spec.encoder, "depth": spec.depth, "decoder": list(spec.decoder)}
    if backbone in REDUCED_WIDTHS:
        out["widths"] = REDUCED_WIDTHS[backbone]
    return out


def build_smp_unet(backbone: str, num_classes: int = 11, in_channels: int = 1) -> nn.Module:
    """An smp U-Net of one of :data:`SMP_BACKBONES` or :data:`SLIM_BACKBONES`, randomly initialised.

    Seeding and checkpoints are handled by :func:`gsutils.models.unet.build_unet`,
    which calls this for every backbone but ``"tiny"``.

    Raises
    ------
    ValueError
        ``backbone`` is not an smp backbone of this module.
    """
    if backbone not in SPECS:
        raise ValueError(f"backbone must be one of {', '.join(map(repr, SPECS))}; got {backbone!r}")
    return smp_unet_class()(backbone, num_classes, in_channels)
