"""Box and mask geometry of the pointing game's ground truth (Zhang et al., 2016).

The ground truth of a class in an image is the union of its bounding boxes
(:func:`boxes_to_mask`, VOC) or of its instance masks (COCO); a pair is
*difficult* when the class covers less than a quarter of the image while
another class is present (:func:`is_difficult_pair`). The datasets
(:mod:`gsutils.data.voc`, :mod:`gsutils.data.scenes`) build both; the pointing
game itself, which scores maps against them, is :mod:`gsutils.metrics.pointing`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: A class is "small" when its ground truth covers less than this fraction of the image.
DIFFICULT_AREA_FRACTION = 0.25

__all__ = ["DIFFICULT_AREA_FRACTION", "as_2d", "as_bool_mask", "boxes_to_mask", "is_difficult_pair"]


def as_2d(t, name: str) -> torch.Tensor:
    """A ``(H, W)`` tensor from a tensor or array of shape ``(H, W)`` or ``(1, H, W)``."""
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a (H, W) tensor or array, got {type(t).__name__}")
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (H, W) or (1, H, W), got {tuple(t.shape)}")
    return t


def as_bool_mask(gt, name: str = "gt") -> torch.Tensor:
    """A ``(H, W)`` bool tensor from a tensor or array (``(1, H, W)`` is squeezed)."""
    gt = as_2d(gt, name)
    if gt.dtype != torch.bool:
        if gt.is_floating_point() or gt.dtype in (torch.uint8, torch.int32, torch.int64):
            gt = gt != 0
        else:
            raise TypeError(f"{name} must be boolean or numeric, got dtype {gt.dtype}")
    return gt


def boxes_to_mask(boxes: Sequence[Sequence[int]] | torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Union of boxes as a ``(height, width)`` bool mask.

    Parameters
    ----------
    boxes:
        ``(K, 4)`` integer boxes ``(xmin, ymin, xmax, ymax)`` in 0-based pixel
        coordinates, both ends inclusive (VOC's 1-based XML values minus one).
        A box that reaches past the image is clipped to it (VOC's XML holds
        the odd ``0`` or ``width + 1``).
    height, width:
        Image size.

    Raises
    ------
    ValueError
        A box that is not four numbers, is degenerate (``xmax < xmin`` or
        ``ymax < ymin``) or lies entirely outside the image; the message
        names the box and its index.
    """
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    mask = torch.zeros(height, width, dtype=torch.bool)
    for i, box in enumerate(boxes.tolist() if isinstance(boxes, torch.Tensor) else boxes):
        if len(box) != 4:
            raise ValueError(f"each box must be (xmin, ymin, xmax, ymax), got box {i} = {box!r}")
        x0, y0, x1, y1 = (int(v) for v in box)
        if x1 < x0 or y1 < y0:
            raise ValueError(f"box {i} = {box!r} has xmax < xmin or ymax < ymin")
        if x1 < 0 or y1 < 0 or x0 >= width or y0 >= height:
            raise ValueError(f"box {i} = {box!r} lies entirely outside the {height}x{width} image "
                             "(0-based inclusive coordinates)")
        # clip to the image: a negative bound must not wrap around as a Python slice
        mask[max(y0, 0): min(y1, height - 1) + 1, max(x0, 0): min(x1, width - 1) + 1] = True
    return mask


def is_difficult_pair(gt: torch.Tensor | np.ndarray, n_classes_present: int) -> bool:
    """The difficult subset: the class covers < 1/4 of the image and another class is present."""
    gt = as_bool_mask(gt)
    frac = float(gt.sum()) / gt.numel()
    return frac < DIFFICULT_AREA_FRACTION and n_classes_present > 1
