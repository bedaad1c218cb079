"""Made-up results of the real-scene runners (S2, S3) for the tests of their tables, claims and figures.

Each builder takes the arrays a test cares about and fills the rest with
neutral values of the right shapes, so a test names only what it checks.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from gsutils.data.cityscapes import TRAIN_CLASSES
from gsutils.experiments.grid.coco_context import COCOContextResult
from gsutils.experiments.grid.street_context import StreetContextResult, scaled_thresholds
from gsutils.saliency.grid import GridSaliencyConfig


def street_result(*, cls: np.ndarray, masks: np.ndarray, data: Any = None, model: Any = None,
                  **arrays: np.ndarray) -> StreetContextResult:
    """A :class:`StreetContextResult` of ``len(cls)`` explained requests on ``masks``' frame size.

    Unnamed arrays: every request explained is correct, in its own frame, kept,
    with an all-zero map and baseline; the ``all_*`` arrays repeat the
    explained requests; the confusion matrix is a perfect prediction.
    """
    cls = np.asarray(cls)
    masks = np.asarray(masks, dtype=bool)
    r, k = len(cls), len(TRAIN_CLASSES)
    h, w = masks.shape[1:]
    per_request = {
        "frame": np.arange(r), "cls": cls, "gt_cls": cls, "correct": np.ones(r, bool),
        "size": masks.reshape(r, -1).sum(1), "masks": masks, "maps": np.zeros((r, h, w), np.float16),
        "baseline": np.zeros((r, h, w), bool), "preservation": np.zeros(r, np.float32),
        "loss": np.zeros(r, np.float32), "empty": np.zeros(r, bool), "empty_loss": np.ones(r, np.float32),
        "grey": np.full(r, 0.5, np.float32), "kept": np.ones(r, bool), "dropped_loss": np.zeros(r, bool),
        "dropped_empty": np.zeros(r, bool), "grid_shares": np.zeros((r, k)), "baseline_shares": np.zeros((r, k)),
    }
    per_request.update(arrays)  # (given ``all_*`` arrays or a confusion matrix pass through too)
    stored = {"confusion": np.diag(np.bincount(np.asarray(per_request["gt_cls"]), minlength=k)[:k]),
              "all_cls": per_request["cls"], "all_gt_cls": per_request["gt_cls"],
              "all_correct": per_request["correct"], "all_size": per_request["size"], **per_request}
    data = SimpleNamespace(val_y=None) if data is None else data
    return StreetContextResult.from_arrays(stored, model=model, history=[], data=data,
                                           thresholds=scaled_thresholds(h, w), grid_config=GridSaliencyConfig())


def coco_result(reliance: list[np.ndarray], *, encoders: tuple[str, ...] = ("mobilenet_v2", "xception65"),
                miou: tuple[float, ...] = (0.7, 0.5), cls: np.ndarray | None = None,
                class_names: tuple[str, ...] = ("background", "boat", "train", "tv"),
                **per_network: np.ndarray) -> COCOContextResult:
    """A :class:`COCOContextResult` of ``len(reliance[0])`` requests on 4 x 4 images, one network per
    ``encoders`` entry; ``miou`` becomes each network's IoU of one class ("boat"), hence its mIoU."""
    e, r = len(encoders), len(reliance[0])
    arrays = {"reliance": np.stack(reliance), "maps": np.zeros((e, r, 4, 4), np.float16),
              "empty": np.zeros((e, r), bool), "grey": np.full((e, r), 0.5, np.float32),
              "kept_without_context": np.zeros((e, r), np.float32)}
    arrays.update(per_network)
    stored = {"image": np.arange(r), "cls": np.ones(r, int) if cls is None else np.asarray(cls),
              "masks": np.zeros((r, 4, 4), bool)}
    for j in range(e):
        stored.update({f"{name}_{j}": v[j] for name, v in arrays.items()})
    iou = {enc: {"boat": m} for enc, m in zip(encoders, miou)}
    return COCOContextResult.from_arrays(stored, data=SimpleNamespace(class_names=class_names),
                                         encoders=encoders, nets={}, iou=iou)
