"""Multi-label classification metrics: per-class average precision.

The classifiers of the NormGrad chapters (:mod:`gsutils.experiments.normgrad.classifier_training`)
are judged by their mean average precision over classes, as the VOC07 and
COCO classifiers of Rebuffi et al. (2020).
"""

from __future__ import annotations

import numpy as np
import torch


def average_precision(scores: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-class average precision (area under the precision-recall steps, ties by score).

    Parameters
    ----------
    scores, labels:
        ``(N, C)`` scores and ``{0, 1}`` labels.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` APs; NaN for a class without positives.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels) > 0.5
    if s.shape != y.shape or s.ndim != 2:
        raise ValueError(f"scores and labels must both be (N, C), got {s.shape} and {y.shape}")
    aps = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        pos = int(y[:, c].sum())
        if pos == 0:
            continue
        order = np.argsort(-s[:, c], kind="stable")
        sc, tp = s[order, c], y[order, c].astype(np.float64)
        # group tied scores: precision/recall evaluated at the end of each tie block
        last = np.r_[sc[1:] != sc[:-1], True]
        ctp = np.cumsum(tp)[last]
        cnt = np.arange(1, len(sc) + 1)[last]
        prec, rec = ctp / cnt, ctp / pos
        aps[c] = float(np.sum(np.diff(np.r_[0.0, rec]) * prec))
    return aps


__all__ = ["average_precision"]
