"""The networks of the Grid Saliency bias grid: :class:`SegRun`, :func:`grid_runs` and
their scores, :class:`SegIoU`.

A run is one U-Net of S1.2: a bias config (strength, digit, texture), a
backbone and a seed. :mod:`gsutils.experiments.grid.segmentation` trains and
evaluates runs (:func:`~gsutils.experiments.grid.segmentation.evaluate_iou` gives a
:class:`SegIoU`); the saliency experiments explain them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gsutils.data.toy import BiasConfig
from gsutils.models.unet import BACKBONES
from gsutils.profiles import Profile, check_profile


@dataclass(frozen=True)
class SegRun:
    """One network of the experiment grid.

    Attributes
    ----------
    bias:
        The bias of its training data (``BiasConfig(strength="none")`` for
        the unbiased network).
    backbone:
        The U-Net encoder (see :data:`gsutils.models.unet.BACKBONES`).
    seed:
        The dataset seed; it also seeds the initialisation and the shuffling.
    """

    bias: BiasConfig
    backbone: str
    seed: int

    def __post_init__(self) -> None:
        if not isinstance(self.bias, BiasConfig):
            raise TypeError(f"bias must be a BiasConfig, got {type(self.bias).__name__}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(map(repr, BACKBONES))}; got {self.backbone!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")

    @property
    def label(self) -> str:
        """A short readable name, e.g. ``tiny/strong-d2-t0/s0`` or ``tiny/N/s0``."""
        b = self.bias
        what = "N" if b.strength == "none" else f"{b.strength}-d{b.digit}-t{b.texture}"
        return f"{self.backbone}/{what}/s{self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {"bias": dataclasses.asdict(self.bias), "backbone": self.backbone, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegRun:
        """The run of :meth:`as_dict`'s ``d``."""
        return cls(BiasConfig(**d["bias"]), d["backbone"], int(d["seed"]))


@dataclass(frozen=True)
class SegIoU:
    """One network's scores on the unbiased test set (:func:`gsutils.experiments.grid.segmentation.evaluate_iou`).

    Stored as :meth:`as_dict` in the result store and read back with :meth:`from_dict`.
    """

    #: the network
    run: SegRun
    #: IoU per class, digits 0-9 then the background; ``None`` for a class absent from test set and predictions
    iou: tuple[float | None, ...]
    #: mean of ``iou`` over the classes present
    miou: float
    #: mean of ``iou`` over the digits present (the gate's measure)
    digit_miou: float
    #: share of the test pixels whose predicted class is their label
    pixel_acc: float
    #: number of test images
    n_test: int
    #: the network's cache key (the name of its model folder)
    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.run, SegRun):
            raise TypeError(f"run must be a SegRun, got {type(self.run).__name__}")
        object.__setattr__(self, "iou", tuple(self.iou))

    @property
    def bias_digit_iou(self) -> float | None:
        """The IoU of the run's bias digit (``None`` for an unbiased network)."""
        d = self.run.bias.digit
        return None if d is None else self.iou[d]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``run`` as :meth:`SegRun.as_dict`, ``iou`` a list), as cached on disk."""
        return {"iou": list(self.iou), "miou": self.miou, "digit_miou": self.digit_miou, "pixel_acc": self.pixel_acc,
                "n_test": self.n_test, "run": self.run.as_dict(), "key": self.key}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegIoU:
        """The scores of :meth:`as_dict`'s (or a cache file's) ``d``."""
        return cls(run=SegRun.from_dict(d["run"]), iou=tuple(None if v is None else float(v) for v in d["iou"]),
                   miou=float(d["miou"]), digit_miou=float(d["digit_miou"]), pixel_acc=float(d["pixel_acc"]),
                   n_test=int(d["n_test"]), key=str(d["key"]))



def grid_runs(profile: Profile, backbones: Sequence[str] | None = None) -> list[SegRun]:
    """The networks of the bias grid, for each backbone.

    Per backbone: one unbiased network per seed, then every
    ``strength x bias digit x bias texture x seed`` of ``profile.grid``.
    The biased digit always carries the bias texture (``probability=1``);
    under weak bias every other digit carries it at the pool rate (see
    :mod:`gsutils.data.toy`).

    Parameters
    ----------
    profile:
        A :class:`gsutils.profiles.Profile`.
    backbones:
        Encoders to include; default ``(profile.train.backbone,)``. Pass
        ``profile.grid.backbones`` for the backbone comparison (Fig. S9).
    """
    check_profile(profile)
    if backbones is None:
        backbones = (profile.train.backbone,)
    if isinstance(backbones, str):
        raise TypeError(f"backbones must be a sequence of names, got the string {backbones!r}")
    g = profile.grid
    runs: list[SegRun] = []
    for bb in backbones:
        for seed in g.seeds:
            runs.append(SegRun(BiasConfig(strength="none"), bb, seed))
        for strength in g.strengths:
            for digit in g.bias_digits:
                for tex in g.bias_textures:
                    for seed in g.seeds:
                        bias = BiasConfig(strength=strength, digit=digit, texture=tex, probability=1.0)
                        runs.append(SegRun(bias, bb, seed))
    return runs
