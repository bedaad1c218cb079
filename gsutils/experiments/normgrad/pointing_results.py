"""Typed results of the NormGrad pointing-game chapters (sections A and C).

* :class:`PointingHits`: the pointing-game hits of a set of (test scene, class)
  pairs, keyed by map; what the summaries of
  :mod:`gsutils.experiments.normgrad.pointing_runs` (:func:`~gsutils.experiments.normgrad.pointing_runs.pointing_accuracies`,
  :func:`~gsutils.experiments.normgrad.pointing_runs.paired_bootstrap`, ...) read;
* :class:`PointingRun` (a :class:`PointingHits`): what
  :func:`gsutils.experiments.normgrad.pointing_runs.pointing_game_run` returns;
* :class:`LayerWeights`: what :func:`gsutils.experiments.normgrad.layer_combination.layer_weights`
  returns;
* :class:`CombinationRun` (a :class:`PointingHits`): what
  :func:`gsutils.experiments.normgrad.layer_combination.combination_run` returns.

All but the first are cached in the result store as JSON objects. Each converts
to and from that stored form (:meth:`PointingRun.as_dict` /
:meth:`PointingRun.from_dict`, ...), which is the form the string-keyed dicts
they replace had, so cached entries stay valid. In the stored form the hits'
tuple keys are joined by ``"|"`` (:func:`encode_hits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CENTER", "CombinationRun", "LayerWeights", "PointingHits", "PointingRun", "decode_hits", "encode_hits"]

#: the key of the center baseline among the hits
CENTER: tuple[str, ...] = ("center",)


def encode_hits(hits: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """Hits keyed by tuples (``(method, layer)``, ``CENTER``, ...) as JSON keys ``"method|layer"``."""
    return {"|".join(k): v for k, v in hits.items()}


def decode_hits(hits: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """The inverse of :func:`encode_hits`."""
    return {tuple(k.split("|")): v for k, v in hits.items()}


def _hits(hits: Mapping[Sequence[str], Sequence[Any]]) -> dict[tuple[str, ...], tuple[bool, ...]]:
    return {tuple(str(p) for p in k): tuple(bool(h) for h in v) for k, v in hits.items()}


@dataclass(frozen=True)
class PointingHits:
    """Pointing-game hits of ``n_pairs`` (test scene, class) pairs, one list per map.

    A map is keyed by ``(method, layer)``, by :data:`CENTER` for the center
    baseline, or (layer combinations) by ``(method, mode, weighting)``.
    """

    #: the network (``"vgg16"`` / ``"resnet50"``)
    arch: str
    #: the layers of the single-layer maps, shallow to deep (the columns of the accuracy tables)
    layers: tuple[str, ...]
    #: per pair: the index of its scene in the test split
    image_index: tuple[int, ...]
    #: per pair: its class
    class_id: tuple[int, ...]
    #: per pair: whether it is in the difficult subset
    difficult: tuple[bool, ...]
    #: per map key: whether the map's maximum hits the object, per pair
    hits: dict[tuple[str, ...], tuple[bool, ...]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(str(x) for x in self.layers))
        object.__setattr__(self, "image_index", tuple(int(i) for i in self.image_index))
        object.__setattr__(self, "class_id", tuple(int(c) for c in self.class_id))
        object.__setattr__(self, "difficult", tuple(bool(d) for d in self.difficult))
        object.__setattr__(self, "hits", _hits(self.hits))
        n = len(self.image_index)
        wrong = [k for k, v in (("class_id", self.class_id), ("difficult", self.difficult), *self.hits.items())
                 if len(v) != n]
        if wrong:
            raise ValueError(f"{wrong} do not hold one entry per pair ({n})")

    @property
    def n_pairs(self) -> int:
        """The number of (test scene, class) pairs."""
        return len(self.image_index)

    def _pairs_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "layers": list(self.layers), "n_pairs": self.n_pairs,
                "image_index": list(self.image_index), "class_id": list(self.class_id),
                "difficult": list(self.difficult), "hits": encode_hits({k: list(v) for k, v in self.hits.items()})}

    @staticmethod
    def _pairs_kwargs(d: Mapping[str, Any]) -> dict[str, Any]:
        hits = d["hits"]
        if any(isinstance(k, str) for k in hits):
            hits = decode_hits(hits)
        return {"arch": str(d["arch"]), "layers": d["layers"], "image_index": d["image_index"],
                "class_id": d["class_id"], "difficult": d["difficult"], "hits": hits}


@dataclass(frozen=True)
class PointingRun(PointingHits):
    """The pointing game of every method at every candidate layer of a network (section A, Table 2).

    ``hits`` holds ``(method, layer)`` for every method and candidate layer
    (``normgrad_conv`` at the layers it has a convolution for) and :data:`CENTER`.
    """

    #: the hit radius (pixels)
    tolerance: int
    #: ``[H, W]`` of the test scenes (the stand-in); ``None`` where images differ in size (VOC)
    image_size: tuple[int, int] | None
    #: present classes left out because all their boxes are VOC-difficult
    n_skipped: int
    #: where the pairs come from: ``"stand-in"`` or ``"VOC test at <root>"``
    data: str
    #: the classifier's test mAP (the stand-in's classifiers); ``None`` for a published VOC checkpoint
    test_map: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PointingRun:
        """From the stored form (see :meth:`as_dict`); ``hits`` keyed by ``"method|layer"`` or by tuples."""
        return cls(**cls._pairs_kwargs(d), tolerance=int(d["tolerance"]), image_size=d["image_size"],
                   n_skipped=int(d["n_skipped"]), data=str(d["data"]),
                   test_map=None if d.get("test_map") is None else float(d["test_map"]))

    def as_dict(self) -> dict[str, Any]:
        """The stored form: the fields (``hits`` by :func:`encode_hits`), ``n_pairs``; no ``test_map`` when ``None``."""
        out = {**self._pairs_dict(), "tolerance": self.tolerance,
               "image_size": None if self.image_size is None else list(self.image_size),
               "n_skipped": self.n_skipped, "data": self.data}
        if self.test_map is not None:
            out["test_map"] = self.test_map
        return out


@dataclass(frozen=True)
class LayerWeights:
    """Fig. 1: the four weightings of a network's combined layers (raw, one value per layer)."""

    #: the network
    arch: str
    #: the combined layers, shallow to deep
    layers: tuple[str, ...]
    #: the test mAP of a linear probe on each layer's pooled features
    accuracy: tuple[float, ...]
    #: the share of each layer's pooled-feature variance the classes explain
    spread: tuple[float, ...]
    #: ``1, 2, ..., L``
    linear: tuple[float, ...]
    #: all equal
    uniform: tuple[float, ...]
    #: the classifier's own test mAP
    test_map: float
    #: the training scenes the probes are fitted on
    n_probe_train: int
    #: the test scenes they are measured on
    n_probe_test: int
    #: where the scenes come from (:meth:`gsutils.experiments.normgrad.normgrad_data.NormGradData.label`)
    data: str

    #: the weightings, in Table 3's order
    WEIGHTINGS = ("accuracy", "spread", "linear", "uniform")

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(str(x) for x in self.layers))
        for name in self.WEIGHTINGS:
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != len(self.layers):
                raise ValueError(f"{name} has {len(values)} values for {len(self.layers)} layers")
            object.__setattr__(self, name, values)

    def weighting(self, name: str) -> tuple[float, ...]:
        """The raw weights of weighting ``name`` (one of :attr:`WEIGHTINGS`), one per layer."""
        if name not in self.WEIGHTINGS:
            raise ValueError(f"weighting must be one of {self.WEIGHTINGS}, got {name!r}")
        return getattr(self, name)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerWeights:
        """From the stored form: one key per field."""
        return cls(arch=str(d["arch"]), layers=d["layers"], **{k: d[k] for k in cls.WEIGHTINGS},
                   test_map=float(d["test_map"]), n_probe_train=int(d["n_probe_train"]),
                   n_probe_test=int(d["n_probe_test"]), data=str(d["data"]))

    def as_dict(self) -> dict[str, Any]:
        """The stored form (see :meth:`from_dict`)."""
        return {"arch": self.arch, "layers": list(self.layers), **{k: list(self.weighting(k)) for k in self.WEIGHTINGS},
                "test_map": self.test_map, "n_probe_train": self.n_probe_train, "n_probe_test": self.n_probe_test,
                "data": self.data}


@dataclass(frozen=True)
class CombinationRun(PointingHits):
    """The pointing game of single layers and of every layer combination (section C, Table 3).

    ``hits`` holds ``(method, layer)`` for the combined layers and
    ``(method, mode, weighting)`` for the combinations.
    """

    #: the weights the combinations used
    weights: LayerWeights
    #: the classifier's test mAP
    test_map: float

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CombinationRun:
        """From the stored form (see :meth:`as_dict`)."""
        return cls(**cls._pairs_kwargs(d), weights=LayerWeights.from_dict(d["weights"]),
                   test_map=float(d["test_map"]))

    def as_dict(self) -> dict[str, Any]:
        """The stored form: the fields (``hits`` by :func:`encode_hits`, ``weights`` by its own), ``n_pairs``."""
        return {**self._pairs_dict(), "weights": self.weights.as_dict(), "test_map": self.test_map}
