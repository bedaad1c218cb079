"""Typed results of the identity-trick chapter (section B, Table 1).

* :class:`TrickLayer`: the two NormGrads (with and without the virtual
  identity trick) compared at one convolution;
* :class:`IdentityTrickRun`: what :func:`gsutils.experiments.normgrad.normgrad_maps.identity_trick_run`
  returns, one :class:`TrickLayer` per layer of Table 1.

:class:`IdentityTrickRun` is cached in the result store as a JSON object. It
converts to and from that stored form (:meth:`IdentityTrickRun.as_dict` /
:meth:`IdentityTrickRun.from_dict`), which is the form the string-keyed dict
it replaces had, so cached entries stay valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["IdentityTrickRun", "TRICK", "NO_TRICK", "TrickLayer"]

#: the map with the trick (``||x|| ||g||`` at the convolution's output)
TRICK = "normgrad"
#: the map without it (NormGrad of the convolution's own weights)
NO_TRICK = "normgrad_conv"


@dataclass(frozen=True)
class TrickLayer:
    """The two NormGrads at one layer of Table 1, over the test (scene, present class) pairs.

    Correlations are in ``[-1, 1]``, accuracies in ``[0, 1]`` (NaN for an empty subset).
    """

    #: mean over pairs of the Spearman correlation of the two maps (NaN when no pair has one)
    spearman_mean: float
    #: its standard deviation over pairs
    spearman_std: float
    #: its minimum over pairs
    spearman_min: float
    #: the pairs with a correlation (neither map constant)
    n_correlated: int
    #: the pairs without one (a map constant)
    n_constant: int
    #: per map (:data:`TRICK`, :data:`NO_TRICK`), per subset (``"all"``, ``"difficult"``): the pointing accuracy
    pointing: dict[str, dict[str, float]]
    #: per subset: the pairs the pointing game scored
    n_pointing_pairs: dict[str, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "pointing", {str(m): {str(s): float(a) for s, a in acc.items()}
                                              for m, acc in self.pointing.items()})
        object.__setattr__(self, "n_pointing_pairs", {str(s): int(n) for s, n in self.n_pointing_pairs.items()})

    def difference(self, subset: str) -> float:
        """Pointing accuracy with the trick minus without it, on ``subset`` (a fraction; NaN if either is)."""
        return self.pointing[TRICK][subset] - self.pointing[NO_TRICK][subset]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrickLayer:
        """From the stored form: one key per field."""
        return cls(spearman_mean=float(d["spearman_mean"]), spearman_std=float(d["spearman_std"]),
                   spearman_min=float(d["spearman_min"]), n_correlated=int(d["n_correlated"]),
                   n_constant=int(d["n_constant"]), pointing=d["pointing"], n_pointing_pairs=d["n_pointing_pairs"])

    def as_dict(self) -> dict[str, Any]:
        """The stored form (see :meth:`from_dict`)."""
        return {"spearman_mean": self.spearman_mean, "spearman_std": self.spearman_std,
                "spearman_min": self.spearman_min, "n_correlated": self.n_correlated, "n_constant": self.n_constant,
                "pointing": {m: dict(acc) for m, acc in self.pointing.items()},
                "n_pointing_pairs": dict(self.n_pointing_pairs)}


@dataclass(frozen=True)
class IdentityTrickRun:
    """Table 1 for one network: the two NormGrads compared at each of its layers."""

    #: the network (``"vgg16"`` / ``"resnet50"``)
    arch: str
    #: the test (scene, present class) pairs
    n_pairs: int
    #: per layer of Table 1 (in the table's order): the comparison there
    layers: dict[str, TrickLayer]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", {str(k): v if isinstance(v, TrickLayer) else TrickLayer.from_dict(v)
                                            for k, v in self.layers.items()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IdentityTrickRun:
        """From the stored form ``{"arch", "n_pairs", "layers": {layer: TrickLayer.as_dict()}}``."""
        return cls(arch=str(d["arch"]), n_pairs=int(d["n_pairs"]),
                   layers={k: TrickLayer.from_dict(v) for k, v in d["layers"].items()})

    def as_dict(self) -> dict[str, Any]:
        """The stored form (see :meth:`from_dict`)."""
        return {"arch": self.arch, "n_pairs": self.n_pairs,
                "layers": {k: v.as_dict() for k, v in self.layers.items()}}
