"""Typed results of the Fig. 7 chapter (Extract & Aggregate maps across VGG16's layers).

* :class:`Fig7Maps`: what :func:`gsutils.experiments.normgrad.normgrad_maps.fig7_maps` returns;
* :class:`GradCamEnergy`: what :func:`gsutils.experiments.normgrad.normgrad_maps.gradcam_energy_by_layer`
  returns;
* :class:`Fig7Selectivity`: what :func:`gsutils.experiments.normgrad.normgrad_claims.fig7_selectivity`
  returns.

The first two are cached in the result store. Each converts to and from the
form it is stored in (:meth:`Fig7Maps.to_arrays` / :meth:`Fig7Maps.from_arrays`,
the arrays of an ``.npz``; :meth:`GradCamEnergy.to_json` /
:meth:`GradCamEnergy.from_json`, a JSON object), which is the form the
string-keyed dicts they replace had, so cached entries stay valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = ["Fig7Maps", "Fig7Selectivity", "GradCamEnergy"]


@dataclass(frozen=True, eq=False)
class Fig7Maps:
    """Every method's map at every Fig. 7 layer for a few test scenes (``B`` scenes of side ``S``).

    Compared by identity (it holds arrays).
    """

    #: ``(B, len(METHODS), len(FIG7_LAYERS), S, S)`` float32 maps, rows in ``METHODS`` order (NaN: no map there)
    maps: np.ndarray
    #: ``(B, 3, S, S)`` float32 the scenes, RGB in ``[0, 1]``
    rgb: np.ndarray
    #: ``(B,)`` int64 the scenes' indices in the test split
    image_index: np.ndarray
    #: ``(B,)`` int64 the class each scene is explained for
    target: np.ndarray
    #: ``(B, 4, 4)`` int64 up to four boxes ``(x0, y0, x1, y1)`` of the target class, ``-1`` padded
    boxes: np.ndarray
    #: the dataset's class names, indexed by ``target``
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        b = len(self.image_index)
        wrong = [n for n in ("maps", "rgb", "target", "boxes") if len(getattr(self, n)) != b]
        if wrong:
            raise ValueError(f"{wrong} do not hold one row per scene ({b})")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    @property
    def n_images(self) -> int:
        """The number of scenes ``B``."""
        return len(self.image_index)

    def target_name(self, i: int) -> str:
        """The name of the class scene ``i`` is explained for."""
        return self.class_names[int(self.target[i])]

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Fig7Maps:
        """From the stored form: one array per field, under the field's name."""
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls)})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The stored form (see :meth:`from_arrays`; ``class_names`` as an array of strings)."""
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class GradCamEnergy:
    """The share of Grad-CAM's mass inside the target's boxes at each layer, over the test (scene, class) pairs."""

    #: per layer: the mean share over the pairs (maps that are zero everywhere left out); stored as ``"layers"``
    share: dict[str, float]
    #: per layer: how many pairs' maps are zero everywhere
    n_zero_maps: dict[str, int]
    #: mean share of the image the boxes cover (what a uniform map scores)
    box_area: float
    #: the (test scene, present class) pairs measured
    n_pairs: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GradCamEnergy:
        """From the stored form ``{"layers": {layer: share}, "n_zero_maps", "box_area", "n_pairs"}``."""
        return cls(share={str(k): float(v) for k, v in d["layers"].items()},
                   n_zero_maps={str(k): int(v) for k, v in d["n_zero_maps"].items()},
                   box_area=float(d["box_area"]), n_pairs=int(d["n_pairs"]))

    def to_json(self) -> dict[str, Any]:
        """The stored form (see :meth:`from_json`)."""
        return {"layers": dict(self.share), "n_zero_maps": dict(self.n_zero_maps), "box_area": self.box_area,
                "n_pairs": self.n_pairs}


@dataclass(frozen=True)
class Fig7Selectivity:
    """How strongly the Fig. 7 maps show the classes not explained, relative to the one explained."""

    #: per method, per layer: mean over the scenes of the map's mean on the other classes over its mean on the target
    ratio: dict[str, dict[str, float]]
    #: per method (those with a ratio): the mean of its ratios over the layers
    mean: dict[str, float]
    #: the scenes measured (those where both the target and another class have pixels)
    n_scenes: int
    #: mean share of the image the other classes cover (0 without a scene)
    other_area: float
