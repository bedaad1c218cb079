"""Segmentation metrics: confusion matrix, per-class IoU and mIoU.

IoU of class ``c`` over a whole test set is
$\\mathrm{TP}_c / (\\mathrm{TP}_c + \\mathrm{FP}_c + \\mathrm{FN}_c)$, with the
counts summed over every pixel of every image (not averaged per image), as is
usual for semantic segmentation benchmarks. A class that appears neither in
the labels nor in the predictions has an undefined IoU (NaN), and
:func:`mean_iou` skips it.
"""

from __future__ import annotations

import numpy as np
import torch


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Pixel counts ``conf[t, p]`` of label ``t`` predicted as ``p``.

    Parameters
    ----------
    pred, target:
        Integer class maps of the same shape (e.g. ``(N, H, W)``), on any device.
    num_classes:
        Number of classes ``C``; labels must lie in ``[0, C)`` (or equal
        ``ignore_index``).
    ignore_index:
        A target label whose pixels are not counted.

    Returns
    -------
    torch.Tensor
        ``(C, C)`` int64 on ``pred``'s device.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.is_floating_point() or target.is_floating_point():
        raise TypeError("pred and target must be integer class maps (take argmax over the logits first)")
    p = pred.reshape(-1).long()  # (P,)
    t = target.reshape(-1).long().to(p.device)  # (P,)
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    if p.numel() and (min(int(p.min()), int(t.min())) < 0 or max(int(p.max()), int(t.max())) >= num_classes):
        raise ValueError(f"class labels must lie in [0, {num_classes}); got values in "
                         f"[{min(int(p.min()), int(t.min()))}, {max(int(p.max()), int(t.max()))}]")
    flat = t * num_classes + p  # (P,)
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(conf: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-class IoU ``(C,)`` float64 from a ``(C, C)`` confusion matrix (NaN where undefined)."""
    c = np.asarray(conf.cpu() if isinstance(conf, torch.Tensor) else conf, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"conf must be a square matrix, got shape {c.shape}")
    tp = np.diag(c)  # (C,)
    union = c.sum(0) + c.sum(1) - tp  # (C,) = TP + FP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def per_class_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> np.ndarray:
    """Per-class IoU ``(C,)`` of class maps ``pred`` against ``target``."""
    return iou_from_confusion(confusion_matrix(pred, target, num_classes))


def mean_iou(iou: np.ndarray) -> float:
    """Mean of the defined (non-NaN) per-class IoUs."""
    iou = np.asarray(iou, dtype=np.float64)
    if not np.isfinite(iou).any():
        return float("nan")
    return float(np.nanmean(iou))


class ConfusionMeter:
    """Accumulates a confusion matrix over batches of logits or class maps."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """``output``: logits ``(N, C, H, W)`` or a class map ``(N, H, W)``; ``target``: ``(N, H, W)``."""
        pred = output.argmax(1) if output.is_floating_point() else output  # (N, H, W)
        self.conf += confusion_matrix(pred, target, self.num_classes).cpu()

    def iou(self) -> np.ndarray:
        """Per-class IoU so far ``(C,)``."""
        return iou_from_confusion(self.conf)
