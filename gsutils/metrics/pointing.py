"""The pointing game (Zhang et al., 2016; used by Rebuffi et al., 2020, Sec. A).

For an image and a class present in it, a saliency method *points* at the
location of its map's maximum. The point is a hit when it lies within a
tolerance (15 px in the papers) of the class's ground truth: the union of the
class's bounding boxes on PASCAL VOC, the union of its instance masks on COCO.
Accuracy is computed per class, ``hits / (hits + misses)``, then averaged over
classes. The *difficult* subset keeps the (image, class) pairs whose class
covers less than a quarter of the image while another class is present.
Pairs whose boxes are all marked VOC-"difficult" are skipped.

Distances are measured between pixel centres in integer pixel coordinates and
a hit needs ``dx**2 + dy**2 < tolerance**2`` (strictly), which is TorchRay's
``PointingGame.evaluate``; the two agree exactly (``tests/test_pointing.py``).
One deliberate difference: the mean over classes here skips classes that had
no pair at all (TorchRay counts them as accuracy 0), which matters for the
difficult subset of a small test set.

The ground truth's geometry (boxes to masks, the difficult subset's rule) is
:mod:`gsutils.data.boxes`, which the datasets use too; its public names are
re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from gsutils.data.boxes import (  # noqa: F401  (the ground truth's geometry, re-exported in __all__)
    DIFFICULT_AREA_FRACTION,
    as_2d,
    as_bool_mask,
    boxes_to_mask,
    is_difficult_pair,
)

#: The papers' tolerance in pixels.
DEFAULT_TOLERANCE = 15
SUBSETS = ("all", "difficult")


def map_argmax_point(saliency: torch.Tensor) -> tuple[int, int]:
    """The ``(x, y)`` pixel of a map's maximum (the first one in row-major order on ties).

    Parameters
    ----------
    saliency:
        ``(H, W)`` or ``(1, H, W)`` map.
    """
    saliency = as_2d(saliency, "saliency map")
    if not torch.isfinite(saliency).all():
        raise ValueError("saliency map contains NaN or infinite values")
    width = saliency.shape[1]
    idx = int(torch.argmax(saliency.reshape(-1)))  # first maximum in row-major order
    return idx % width, idx // width


def hit_region(gt: torch.Tensor | np.ndarray, tolerance: int = DEFAULT_TOLERANCE) -> torch.Tensor:
    """Pixels from which a point counts as a hit: within ``tolerance`` of ``gt``.

    ``region[y, x]`` is True when some ground-truth pixel ``(u, v)`` has
    ``(x - u)**2 + (y - v)**2 < tolerance**2`` (exact integer arithmetic).

    Parameters
    ----------
    gt:
        ``(H, W)`` boolean ground truth, not empty.
    tolerance:
        Radius in pixels (a positive int).
    """
    gt = as_bool_mask(gt)
    if not bool(gt.any()):
        raise ValueError("ground truth mask gt is empty (no pixel of the class); the pair cannot be scored")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
        raise ValueError(f"tolerance must be a positive int (pixels), got {tolerance!r}")
    g = gt.cpu().numpy()
    # nearest ground-truth pixel of every pixel (exact Euclidean transform), as indices
    _, (iy, ix) = ndimage.distance_transform_edt(~g, return_indices=True)
    yy, xx = np.indices(g.shape)
    d2 = (yy - iy) ** 2 + (xx - ix) ** 2  # (H, W) exact squared integer distances
    return torch.from_numpy(d2 < tolerance**2)


def is_hit(map_or_point, gt: torch.Tensor | np.ndarray, tolerance: int = DEFAULT_TOLERANCE, *,
           region: torch.Tensor | None = None) -> bool:
    """Whether a map's maximum (or a point) lies within ``tolerance`` of ``gt``: one pair, not counted.

    :meth:`PointingGame.add` scores with it and counts the result.

    Parameters
    ----------
    map_or_point:
        A saliency map ``(H, W)`` / ``(1, H, W)`` (its maximum is the point,
        :func:`map_argmax_point`) or a point ``(x, y)`` in pixels.
    gt:
        ``(H, W)`` bool ground truth of the class (union of its boxes or
        instance masks); must not be empty and must match the map's size.
    tolerance:
        Hit radius in pixels (not used when ``region`` is given).
    region:
        Optional precomputed :func:`hit_region` of ``gt`` (to score many
        maps against the same ground truth quickly).
    """
    gt = as_bool_mask(gt)
    if region is None:
        region = hit_region(gt, tolerance)
    else:
        if not bool(gt.any()):  # as hit_region does on the plain path
            raise ValueError("ground truth mask gt is empty (no pixel of the class); "
                             "the pair cannot be scored")
        if not isinstance(region, torch.Tensor):
            raise TypeError(f"region must be a (H, W) bool tensor, got {type(region).__name__}")
        if region.shape != gt.shape:
            raise ValueError(f"region has shape {tuple(region.shape)} but gt has {tuple(gt.shape)}")
    if isinstance(map_or_point, torch.Tensor):
        shape = tuple(map_or_point.shape[-2:])
        if shape != tuple(gt.shape):
            raise ValueError(f"saliency map has size {shape} but the ground truth gt has "
                             f"{tuple(gt.shape)}; resize the map to the image first")
        x, y = map_argmax_point(map_or_point)
    else:
        try:
            x, y = (int(v) for v in map_or_point)
        except (TypeError, ValueError) as err:
            raise TypeError(f"map_or_point must be a (H, W) tensor or an (x, y) pair, "
                            f"got {map_or_point!r}") from err
        if not (0 <= x < gt.shape[1] and 0 <= y < gt.shape[0]):
            raise ValueError(f"point (x={x}, y={y}) lies outside the {tuple(gt.shape)} image")
    return bool(region[y, x])


class PointingGame:
    """Accumulates pointing-game hits and misses per class, for all pairs and the difficult subset.

    Parameters
    ----------
    num_classes:
        Number of classes.
    tolerance:
        Hit radius in pixels (default 15, as in the papers).
    class_names:
        Optional names, for :meth:`summary`.

    Examples
    --------
    >>> game = PointingGame(num_classes=2, tolerance=15)
    >>> gt = torch.zeros(64, 64, dtype=torch.bool); gt[10:20, 10:20] = True
    >>> game.add((30, 15), gt, class_id=0)    # 11 px right of the box: a hit
    1
    >>> game.accuracy()
    1.0
    """

    def __init__(self, num_classes: int, tolerance: int = DEFAULT_TOLERANCE,
                 class_names: Sequence[str] | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
            raise ValueError(f"tolerance must be a positive int (pixels), got {tolerance!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
        self.num_classes = num_classes
        self.tolerance = tolerance
        self.class_names = tuple(class_names) if class_names is not None else None
        self.hits = {s: np.zeros(num_classes, dtype=np.int64) for s in SUBSETS}
        self.misses = {s: np.zeros(num_classes, dtype=np.int64) for s in SUBSETS}
        self.skipped = 0

    def add(self, map_or_point, gt, class_id: int, *, difficult: bool = False,
            skip: bool = False, region: torch.Tensor | None = None) -> int:
        """Score one (image, class) pair.

        Parameters
        ----------
        map_or_point:
            A saliency map ``(H, W)`` / ``(1, H, W)`` (its maximum is the point)
            or a point ``(x, y)`` in pixels.
        gt:
            ``(H, W)`` bool ground truth of the class (union of its boxes or
            instance masks); must not be empty and must match the map's size.
        class_id:
            The class, ``0 <= class_id < num_classes``.
        difficult:
            Whether the pair belongs to the difficult subset (see
            :func:`gsutils.data.boxes.is_difficult_pair`).
        skip:
            Skip the pair (e.g. all its VOC boxes are marked difficult).
        region:
            Optional precomputed :func:`hit_region` of ``gt`` (to score many
            maps against the same ground truth quickly).

        Returns
        -------
        int
            ``+1`` for a hit, ``-1`` for a miss, ``0`` when skipped.
        """
        self._check_class(class_id)
        if skip:
            self.skipped += 1
            return 0
        hit = is_hit(map_or_point, gt, self.tolerance, region=region)
        return self.record(hit, class_id, difficult=difficult)

    def _check_class(self, class_id) -> None:
        if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)) \
                or not 0 <= int(class_id) < self.num_classes:
            raise ValueError(f"class_id must be an int in [0, {self.num_classes}), got {class_id!r}")

    def record(self, hit: bool, class_id: int, *, difficult: bool = False) -> int:
        """Count an already scored pair (``hit`` True or False); returns ``+1`` or ``-1``."""
        self._check_class(class_id)
        c = int(class_id)
        for s in (SUBSETS if difficult else ("all",)):
            (self.hits if hit else self.misses)[s][c] += 1
        return 1 if hit else -1

    def record_many(self, hits: Sequence[bool] | np.ndarray, class_ids: Sequence[int] | np.ndarray,
                    difficult: Sequence[bool] | np.ndarray | None = None) -> None:
        """Count many already scored pairs at once (what :meth:`record` does for each).

        Parameters
        ----------
        hits, class_ids:
            ``(P,)`` hit flags and classes of the pairs.
        difficult:
            Optional ``(P,)`` flags of the difficult subset.
        """
        hit = np.asarray(hits, dtype=bool).reshape(-1)
        cls = np.asarray(class_ids).reshape(-1)
        dif = np.zeros_like(hit) if difficult is None else np.asarray(difficult, dtype=bool).reshape(-1)
        if not len(hit) == len(cls) == len(dif):
            raise ValueError(f"hits, class_ids and difficult must have the same length, "
                             f"got {len(hit)}, {len(cls)}, {len(dif)}")
        if not cls.size:
            return
        if cls.dtype.kind not in "iu" or cls.min() < 0 or cls.max() >= self.num_classes:
            raise ValueError(f"class_ids must be ints in [0, {self.num_classes}), got values from "
                             f"{cls.min()!r} to {cls.max()!r}")
        n = self.num_classes
        for s, keep in (("all", np.ones_like(hit)), ("difficult", dif)):
            self.hits[s] += np.bincount(cls[keep & hit], minlength=n)
            self.misses[s] += np.bincount(cls[keep & ~hit], minlength=n)

    def counts(self, subset: str = "all") -> tuple[np.ndarray, np.ndarray]:
        """``(hits, misses)`` per class for ``subset`` ("all" or "difficult")."""
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
        return self.hits[subset].copy(), self.misses[subset].copy()

    def class_accuracies(self, subset: str = "all") -> np.ndarray:
        """Per-class accuracy ``hits / (hits + misses)``; NaN for classes with no pair."""
        hits, misses = self.counts(subset)
        total = hits + misses
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, hits / np.maximum(total, 1), np.nan)

    def accuracy(self, subset: str = "all") -> float:
        """Mean of the per-class accuracies over the classes that had at least one pair."""
        acc = self.class_accuracies(subset)
        if np.isnan(acc).all():
            return float("nan")
        return float(np.nanmean(acc))

    def n_pairs(self, subset: str = "all") -> int:
        hits, misses = self.counts(subset)
        return int(hits.sum() + misses.sum())

    def summary(self) -> str:
        parts = []
        for s in SUBSETS:
            parts.append(f"{s}: {100 * self.accuracy(s):.1f}% ({self.n_pairs(s)} pairs)")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"PointingGame(num_classes={self.num_classes}, tolerance={self.tolerance}; {self.summary()})"


def pointing_accuracy(
    maps: torch.Tensor,
    gts: Sequence[torch.Tensor] | torch.Tensor,
    class_ids: Sequence[int] | torch.Tensor,
    num_classes: int,
    *,
    difficult: Sequence[bool] | torch.Tensor | None = None,
    skip: Sequence[bool] | torch.Tensor | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> dict[str, float]:
    """Pointing accuracy of a batch of maps, all pairs and the difficult subset.

    Parameters
    ----------
    maps:
        ``(P, H, W)`` or ``(P, 1, H, W)``: one map per (image, class) pair.
    gts:
        ``(P, H, W)`` bool ground truths (or a sequence of ``(H, W)``).
    class_ids:
        ``(P,)`` class of each pair.
    num_classes:
        Number of classes.
    difficult, skip:
        Optional ``(P,)`` flags (see :meth:`PointingGame.add`).
    tolerance:
        Hit radius in pixels.

    Returns
    -------
    dict
        ``{"all": accuracy, "difficult": accuracy}`` (NaN when a subset is empty).
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a (P, H, W) tensor, got {type(maps).__name__}")
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise ValueError(f"maps must have shape (P, H, W) or (P, 1, H, W), got {tuple(maps.shape)}")
    n = maps.shape[0]
    class_ids = [int(c) for c in class_ids]
    if len(gts) != n or len(class_ids) != n:
        raise ValueError(f"maps, gts and class_ids must have the same length, got {n}, {len(gts)}, {len(class_ids)}")
    difficult = [False] * n if difficult is None else [bool(d) for d in difficult]
    skip = [False] * n if skip is None else [bool(s) for s in skip]
    if len(difficult) != n or len(skip) != n:
        raise ValueError(f"difficult and skip must have length {n}")
    game = PointingGame(num_classes, tolerance)
    for i in range(n):
        game.add(maps[i], gts[i], class_ids[i], difficult=difficult[i], skip=skip[i])
    return {s: game.accuracy(s) for s in SUBSETS}


__all__ = [
    "DEFAULT_TOLERANCE",
    "DIFFICULT_AREA_FRACTION",
    "SUBSETS",
    "PointingGame",
    "pointing_accuracy",
    "boxes_to_mask",
    "hit_region",
    "map_argmax_point",
    "is_difficult_pair",
    "is_hit",
]
