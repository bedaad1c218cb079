"""The S2 pipeline of Hoyer et al. (2019): context explanations of a street-scene DeepLab.

Steps, as the supplement specifies them (the stand-in's scaled values in brackets):

1. **Requests** (:func:`request_masks`). For every class ``c`` the network
   predicts in a held-out frame, the prediction's pixels of ``c`` are split
   into the *correct* part (ground truth also ``c``) and the *erroneous* part
   (ground truth another labelled class); each part is eroded with a 3x3
   square and cut into connected components (8-connectivity). Correct
   components of at least 10,000 px and erroneous ones of at least 625 px on
   a 1024 x 2048 frame are kept (scaled by the frame's area:
   :func:`scaled_thresholds`). A request records its predicted class and its
   ground-truth class (the majority inside it), for Table S2.
2. **Grid saliency** (:func:`gsutils.saliency.explain.explain`, context
   saliency with the optimised mask upsampled bilinearly). Samples whose
   preservation loss stays above 0.1, and empty maps, are dropped and counted.
3. **Baseline** (:func:`baseline_masks`): each kept request's contour dilated
   outwards until it covers its share of a budget of 400,000 px per frame
   (shared equally among the frame's kept requests), scaled like the thresholds.
4. **Class statistics** (:func:`context_shares`): for each explanation, the
   share of its saliency (of the baseline's pixels) on each ground-truth
   context class; averaged per request class (Fig. S14).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from gsutils.data.cityscapes import IGNORE, TRAIN_CLASSES, CityscapesScenes
from gsutils.data.street_scenes import StreetConfig, write_street_scenes
from gsutils.experiments.common.store import Store
from gsutils.experiments.grid.deeplab_training import (DeepLabRecipe, confusion, iou_table, predict,
                                                       train_deeplab)
from gsutils.io import config_key
from gsutils.models.deeplab import DeepLab
from gsutils.profiles import Profile, check_profile
from gsutils.saliency.explain import explain
from gsutils.saliency.grid import GridSaliencyConfig

__all__ = ["FULL_AREA", "Request", "S13Views", "ScaledThresholds", "StreetContextResult", "StreetData",
           "baseline_masks", "context_shares", "gallery_indices", "request_masks", "run_street_context",
           "s13_views", "scaled_thresholds", "select_requests", "street_data", "street_network"]

#: a Cityscapes frame's area, 1024 x 2048 px: the supplement's pixel thresholds refer to it
FULL_AREA = 1024 * 2048
#: the supplement's thresholds at full resolution
MIN_CORRECT, MIN_ERRONEOUS, BASELINE_BUDGET, MAX_PRESERVATION = 10_000, 625, 400_000, 0.1
VERSION = 2


@dataclass(frozen=True)
class ScaledThresholds:
    """The supplement's pixel counts at one frame size (:func:`scaled_thresholds`)."""

    #: fewest pixels a correct request keeps after the 3x3 erosion
    min_correct: int
    #: fewest pixels an erroneous request keeps after the 3x3 erosion
    min_erroneous: int
    #: the baseline's pixels per frame, shared among the frame's kept requests
    baseline_budget: int


def scaled_thresholds(height: int, width: int) -> ScaledThresholds:
    """The supplement's pixel counts scaled by ``height * width / (1024 * 2048)`` (at least 1 px)."""
    f = height * width / FULL_AREA
    return ScaledThresholds(min_correct=max(1, round(MIN_CORRECT * f)),
                            min_erroneous=max(1, round(MIN_ERRONEOUS * f)),
                            baseline_budget=max(1, round(BASELINE_BUDGET * f)))


@dataclass
class Request:
    """One request mask: frame index, predicted class, ground-truth class, correct or not, the mask."""

    frame: int
    cls: int
    gt_cls: int
    correct: bool
    mask: np.ndarray  # (H, W) bool

    @property
    def size(self) -> int:
        return int(self.mask.sum())


_EIGHT = np.ones((3, 3), dtype=bool)


def request_masks(pred: np.ndarray, gt: np.ndarray, frame: int, thresholds: ScaledThresholds) -> list[Request]:
    """The kept request masks of one frame (see the module's step 1), in class order."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must be (H, W) of one shape, got {pred.shape} and {gt.shape}")
    out = []
    for c in np.unique(pred):
        for correct in (True, False):
            region = (pred == c) & ((gt == c) if correct else ((gt != c) & (gt != IGNORE)))
            eroded = ndimage.binary_erosion(region, structure=_EIGHT, border_value=1)
            labels, n = ndimage.label(eroded, structure=_EIGHT)
            need = thresholds.min_correct if correct else thresholds.min_erroneous
            for i in range(1, n + 1):
                comp = labels == i
                if comp.sum() < need:
                    continue
                g = int(c) if correct else int(np.bincount(gt[comp].astype(np.int64)).argmax())
                out.append(Request(frame, int(c), g, correct, comp))
    return out


def baseline_masks(requests: list[np.ndarray], budget: int) -> list[np.ndarray]:
    """Per request of one frame: its contour dilated outwards to ``budget / len(requests)`` pixels.

    The dilation (3x3 steps) stops at the first step whose ring (dilated mask
    minus the request) holds at least the request's share of the budget, or
    when the ring fills the frame.
    """
    if not requests:
        return []
    share = budget / len(requests)
    out = []
    for r in requests:
        grown = r.copy()
        while True:
            nxt = ndimage.binary_dilation(grown, structure=_EIGHT)
            if nxt.sum() == grown.sum():
                break
            grown = nxt
            if (grown & ~r).sum() >= share:
                break
        out.append(grown & ~r)
    return out


def context_shares(weight: np.ndarray, gt: np.ndarray, classes: int = len(TRAIN_CLASSES)) -> np.ndarray:
    """``(K,)`` share of ``weight``'s mass on each ground-truth class (ignored pixels left out).

    All NaN when the weight has no mass on labelled pixels.
    """
    w = np.asarray(weight, dtype=np.float64)
    valid = np.asarray(gt) != IGNORE
    mass = np.bincount(np.asarray(gt)[valid].astype(np.int64), weights=w[valid], minlength=classes)[:classes]
    total = mass.sum()
    return mass / total if total > 0 else np.full(classes, np.nan)


def select_requests(reqs: list[Request], classes: tuple[str, ...], max_per_class: int) -> list[int]:
    """Indices of the requests explained: those of ``classes`` (all when empty), at most
    ``max_per_class`` of each (all when 0): correct predictions first, larger requests first
    (so a capped run explains the requests the network gets right, not 2 px fragments)."""
    unknown = [c for c in classes if c not in TRAIN_CLASSES]
    if unknown:
        raise ValueError(f"explain_classes holds {unknown}, which are not Cityscapes train classes "
                         f"({', '.join(TRAIN_CLASSES)})")
    wanted = {TRAIN_CLASSES.index(c) for c in classes} if classes else set(range(len(TRAIN_CLASSES)))
    taken: dict[int, int] = {}
    out = []
    order = sorted(range(len(reqs)), key=lambda i: (not reqs[i].correct, -reqs[i].size, i))
    for i in order:
        r = reqs[i]
        if r.cls in wanted and (max_per_class == 0 or taken.get(r.cls, 0) < max_per_class):
            taken[r.cls] = taken.get(r.cls, 0) + 1
            out.append(i)
    return sorted(out)


# --------------------------------------------------------------------------- data and network


@dataclass
class StreetData:
    """The training and held-out frames, in memory (images in [0, 1], trainId labels)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    root: Path
    source: str
    key: str


def street_data(profile: Profile, *, progress: bool = True) -> StreetData:
    """The stand-in written in Cityscapes' layout (or ``<data_root>/cityscapes``), read by the native loader."""
    check_profile(profile)
    s = profile.scenes
    if s.source == "standin":
        cfg = StreetConfig(height=s.height, width=s.width, n_train=s.n_train, n_val=s.n_val, seed=profile.seed)
        root, key = write_street_scenes(cfg, progress=progress), cfg.key()
    elif s.source == "cityscapes":
        if profile.data_root is None:
            raise FileNotFoundError("profile.scenes.source is 'cityscapes' but no data root was given; pass "
                                    "data_root=<folder holding cityscapes/leftImg8bit and cityscapes/gtFine>")
        root = profile.data_root / "cityscapes"
        key = config_key({"root": str(root), "size": [s.height, s.width]})
    else:
        raise ValueError(f"profile.scenes.source must be 'standin' or 'cityscapes', got {s.source!r}")
    train = CityscapesScenes(root, "train", size=(s.height, s.width))
    val = CityscapesScenes(root, "val", size=(s.height, s.width))
    tx, ty = train.arrays()
    vx, vy = val.arrays()
    return StreetData(tx, ty, vx, vy, root, s.source, key)


def street_recipe(profile: Profile) -> DeepLabRecipe:
    s = profile.scenes
    return DeepLabRecipe(s.encoder, len(TRAIN_CLASSES), s.decoder_channels, s.epochs, s.batch_size, s.lr,
                         profile.seed)


def street_network(profile: Profile, data: StreetData, *, progress: bool = True) -> tuple[DeepLab, list[dict]]:
    """The DeepLab of the S2 chapter, trained on ``data`` (or loaded from the result store)."""
    return train_deeplab(profile, street_recipe(profile), data.train_x, data.train_y, data_key=data.key,
                         progress=progress)


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool; results compare by identity
class StreetContextResult:
    """What :func:`run_street_context` returns: the explained requests' arrays and what produced them.

    ``A`` counts every request of the explained frames, ``R`` the explained
    ones (a capped profile explains some of each class), ``K`` the train
    classes. The arrays are what the result store keeps
    (:meth:`to_arrays`, :meth:`from_arrays`); the rest is rebuilt on each run.
    """

    #: ``(K, K)`` int64 pixel counts on the held-out frames, rows ground truth, columns prediction
    confusion: np.ndarray
    #: ``(A,)`` predicted class of every request of the explained frames
    all_cls: np.ndarray
    #: ``(A,)`` its ground-truth class (the majority inside it)
    all_gt_cls: np.ndarray
    #: ``(A,)`` bool, whether it is a correct prediction
    all_correct: np.ndarray
    #: ``(A,)`` its size in pixels after the 3x3 erosion
    all_size: np.ndarray
    #: ``(R,)`` held-out frame of each explained request
    frame: np.ndarray
    #: ``(R,)`` its predicted (request) class
    cls: np.ndarray
    #: ``(R,)`` its ground-truth class
    gt_cls: np.ndarray
    #: ``(R,)`` bool, whether it is a correct prediction
    correct: np.ndarray
    #: ``(R,)`` its size in pixels
    size: np.ndarray
    #: ``(R, H, W)`` bool request masks
    masks: np.ndarray
    #: ``(R, H, W)`` float16 context-saliency maps (bilinear mask, zero inside the request)
    maps: np.ndarray
    #: ``(R, H, W)`` bool baseline rings of the kept requests (all False for the dropped ones)
    baseline: np.ndarray
    #: ``(R,)`` preservation loss of the returned mask (its loss less the L1 term)
    preservation: np.ndarray
    #: ``(R,)`` loss of the returned mask
    loss: np.ndarray
    #: ``(R,)`` bool, the empty mask was returned or every cell was clipped to 0
    empty: np.ndarray
    #: ``(R,)`` loss of the empty mask (M = 0) at the chosen grey value
    empty_loss: np.ndarray
    #: ``(R,)`` the grey value chosen per request
    grey: np.ndarray
    #: ``(R,)`` bool, neither dropped for its loss nor for an empty map
    kept: np.ndarray
    #: ``(R,)`` bool, dropped: preservation loss above 0.1
    dropped_loss: np.ndarray
    #: ``(R,)`` bool, dropped: an empty map (and not dropped for its loss)
    dropped_empty: np.ndarray
    #: ``(R, K)`` share of each map's mass on each ground-truth class (NaN rows: no mass on labelled pixels)
    grid_shares: np.ndarray
    #: ``(R, K)`` the same for the baseline rings
    baseline_shares: np.ndarray
    #: the explained network (eval mode, on the profile's device)
    model: DeepLab
    #: its training history, one dict per epoch (``loss``, ``seconds``, ...)
    history: list[dict]
    #: the training and held-out frames
    data: StreetData
    #: the pixel thresholds at the profile's frame size
    thresholds: ScaledThresholds
    #: the grid-saliency settings the maps were optimised with
    grid_config: GridSaliencyConfig
    #: IoU per train class present in the held-out ground truth, by name
    iou: dict[str, float]

    @property
    def miou(self) -> float:
        """Mean of :attr:`iou` (over the classes the held-out frames contain)."""
        return float(np.mean(list(self.iou.values())))

    @classmethod
    def array_names(cls) -> tuple[str, ...]:
        """The fields the result store keeps, one array each under its own name."""
        return tuple(f.name for f in fields(cls) if f.type in ("np.ndarray", np.ndarray))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The stored form: the array fields by name (the result store writes them as one ``.npz``)."""
        return {name: getattr(self, name) for name in self.array_names()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, model: DeepLab, history: list[dict],
                    data: StreetData, thresholds: ScaledThresholds,
                    grid_config: GridSaliencyConfig) -> StreetContextResult:
        """The result of the stored ``arrays`` (:meth:`to_arrays`) and the run's other parts; the IoU
        comes from the stored confusion matrix."""
        _check_names(arrays, cls.array_names(), "street_context")
        got: dict[str, Any] = {name: np.asarray(arrays[name]) for name in cls.array_names()}
        return cls(**got, model=model, history=history, data=data, thresholds=thresholds,
                   grid_config=grid_config, iou=iou_table(got["confusion"], TRAIN_CLASSES))


def _check_names(arrays: Mapping[str, Any], names: tuple[str, ...], kind: str) -> None:
    missing, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
    if missing or extra:
        raise ValueError(f"stored {kind} arrays do not match the result's fields: missing {missing}, "
                         f"unexpected {extra}")


# --------------------------------------------------------------------------- the run


def _explain_all(model: DeepLab, data: StreetData, reqs: list[Request], cfg: GridSaliencyConfig,
                 progress: bool) -> dict[str, np.ndarray]:
    dev = next(model.parameters()).device
    maps, loss, pres, empty, empty_loss, grey = [], [], [], [], [], []
    chunk = 32
    from tqdm.auto import tqdm

    for s in tqdm(range(0, len(reqs), chunk), desc="grid saliency", disable=not progress, leave=False):
        part = reqs[s:s + chunk]
        x = data.val_x[[r.frame for r in part]].to(dev)
        m = torch.from_numpy(np.stack([r.mask for r in part])).to(dev)
        res = explain(model, x, m, [r.cls for r in part], "context", upsample="bilinear", config=cfg)
        maps.append(res.maps.cpu().numpy().astype(np.float32))
        loss.append(res.loss.cpu().numpy())
        pres.append((res.loss - cfg.lam * res.grid_masks.flatten(1).sum(1)).cpu().numpy())
        empty.append(res.empty.cpu().numpy())
        empty_loss.append(res.empty_loss.cpu().numpy())
        grey.append(res.grey.cpu().numpy())
    return {"maps": np.concatenate(maps), "loss": np.concatenate(loss), "preservation": np.concatenate(pres),
            "empty": np.concatenate(empty), "empty_loss": np.concatenate(empty_loss),
            "grey": np.concatenate(grey)}


def run_street_context(profile: Profile, *, progress: bool = True) -> StreetContextResult:
    """Train/load the network, gate it, build requests, explain them, and compute the statistics.

    The arrays are cached in the result store by config (:meth:`StreetContextResult.to_arrays`).
    """
    s = profile.scenes
    data = street_data(profile, progress=progress)
    model, history = street_network(profile, data, progress=progress)
    thr = scaled_thresholds(s.height, s.width)
    cfg = GridSaliencyConfig(grid=tuple(s.mask_grid), steps=s.grid_steps)
    key_cfg = {"kind": "street_context", "version": VERSION, "data": data.key, "recipe": street_recipe(profile).__dict__,
               "n_explain": s.n_explain, "grid": list(s.mask_grid), "steps": s.grid_steps, "thr": asdict(thr),
               "explain_classes": list(s.explain_classes), "max_per_class": s.max_per_class}

    def compute() -> dict[str, np.ndarray]:
        pred = predict(model, data.val_x)
        conf = confusion(pred, data.val_y, len(TRAIN_CLASSES))
        n = min(s.n_explain, len(data.val_x))
        reqs = [r for f in range(n) for r in request_masks(pred[f].numpy(), data.val_y[f].numpy(), f, thr)]
        if not reqs:
            raise ValueError("no request mask survived the size thresholds on the explained frames; "
                             "explain more frames (profile.scenes.n_explain) or larger images")
        all_reqs = reqs
        chosen = select_requests(reqs, s.explain_classes, s.max_per_class)
        reqs = [reqs[i] for i in chosen]
        ex = _explain_all(model, data, reqs, cfg, progress)
        dropped_loss = ex["preservation"] > MAX_PRESERVATION
        # empty: the empty mask was returned, or every cell was clipped to 0 by the optimisation
        empty = ex["empty"] | (ex["maps"].reshape(len(reqs), -1).max(1) == 0)
        dropped_empty = empty & ~dropped_loss
        kept = ~dropped_loss & ~dropped_empty
        base = np.zeros((len(reqs), s.height, s.width), dtype=bool)
        for f in sorted({r.frame for r in reqs}):
            idx = [i for i, r in enumerate(reqs) if r.frame == f and kept[i]]
            for i, ring in zip(idx, baseline_masks([reqs[i].mask for i in idx], thr.baseline_budget)):
                base[i] = ring
        gt = data.val_y.numpy()
        grid_sh = np.stack([context_shares(ex["maps"][i], gt[r.frame]) for i, r in enumerate(reqs)])
        base_sh = np.stack([context_shares(base[i], gt[r.frame]) for i, r in enumerate(reqs)])
        return {"confusion": conf, "all_cls": np.array([r.cls for r in all_reqs]),
                "all_gt_cls": np.array([r.gt_cls for r in all_reqs]),
                "all_correct": np.array([r.correct for r in all_reqs]),
                "all_size": np.array([r.size for r in all_reqs]), "frame": np.array([r.frame for r in reqs]),
                "cls": np.array([r.cls for r in reqs]), "gt_cls": np.array([r.gt_cls for r in reqs]),
                "correct": np.array([r.correct for r in reqs]), "size": np.array([r.size for r in reqs]),
                "masks": np.stack([r.mask for r in reqs]), "maps": ex["maps"].astype(np.float16),
                "baseline": base, "preservation": ex["preservation"], "loss": ex["loss"],
                "empty": empty, "empty_loss": ex["empty_loss"], "grey": ex["grey"], "kept": kept,
                "dropped_loss": dropped_loss, "dropped_empty": dropped_empty, "grid_shares": grid_sh,
                "baseline_shares": base_sh}

    arrays = Store(Path(profile.results_dir)).get_or_compute("street_context", key_cfg, compute, fmt="npz")
    return StreetContextResult.from_arrays(arrays, model=model, history=history, data=data, thresholds=thr,
                                           grid_config=cfg)


# --------------------------------------------------------------------------- figures' inputs


@dataclass(frozen=True, eq=False)
class S13Views:
    """The Fig. S13 panels of one explanation (:func:`s13_views`), ``K`` classes, ``(H, W)`` frames."""

    #: ``(3, H, W)`` the held-out frame
    input: np.ndarray
    #: ``(K, H, W)`` the network's class scores (softmax) on it
    input_probs: np.ndarray
    #: ``(3, H, W)`` the frame with its context replaced by the chosen grey value (M = 0)
    perturbed: np.ndarray
    #: ``(K, H, W)`` the class scores on the perturbed frame
    perturbed_probs: np.ndarray
    #: ``(3, H, W)`` the frame under the optimised mask, x'(M*)
    optimised: np.ndarray
    #: ``(K, H, W)`` the class scores on it
    optimised_probs: np.ndarray
    #: ``(H, W)`` the saliency map M*
    map: np.ndarray


def s13_views(res: StreetContextResult, i: int) -> S13Views:
    """The Fig. S13 panels of explained request ``i``: inputs, perturbations and their class scores."""
    model, data = res.model, res.data
    dev = next(model.parameters()).device
    x = data.val_x[int(res.frame[i])][None].to(dev)
    r = torch.from_numpy(res.masks[i]).to(x)[None, None]
    m = torch.from_numpy(res.maps[i].astype(np.float32)).to(x)[None, None]
    p = x * r + float(res.grey[i]) * (1 - r)  # M = 0: the context replaced by the grey value
    x_opt = p + m * (x - p)  # the map is zero inside R, where x - p = 0 anyway
    model.eval()
    with torch.no_grad():
        views = {"input": x, "input_probs": model(x).softmax(1), "perturbed": p,
                 "perturbed_probs": model(p).softmax(1), "optimised": x_opt,
                 "optimised_probs": model(x_opt).softmax(1), "map": m[:, 0]}
    return S13Views(**{k: v[0].cpu().numpy() for k, v in views.items()})


def gallery_indices(res: StreetContextResult,
                    classes: tuple[str, ...] = ("rider", "person", "car", "traffic sign")) -> list[int]:
    """Fig. S15's examples: the first kept explanation of each of ``classes`` (where there is one)
    and the first empty map."""
    out = []
    for c in classes:
        hit = np.flatnonzero((res.cls == TRAIN_CLASSES.index(c)) & res.kept)
        if len(hit):
            out.append(int(hit[0]))
    empty = np.flatnonzero(res.dropped_empty)
    if len(empty):
        out.append(int(empty[0]))
    return out
