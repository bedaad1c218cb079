"""Grid Saliency S3: how much two DeepLabv3+ networks rely on context on MS COCO.

Two DeepLabv3+ networks that differ only in their backbone (MobileNetV2 and
Xception-65 in the supplement; at the quick profile their reduced variants)
are trained on the same images and explained on the same requests: every
ground-truth object region of the chosen categories in the first held-out
images, eroded 3x3 and kept when it covers at least 1 % of the image. Each
request gets a context-saliency map (bilinear mask) from each network; its
**context reliance** is the map's mean over the context (salient context
mass per context pixel; an empty map, one whose every cell is 0, counts 0). The supplement's claim: the
MobileNetV2 network relies more on context than the Xception one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from gsutils.data.coco_semantic import (STANDIN_CATEGORIES, COCOSemantic, COCOStandinConfig,
                                        write_coco_standin)
from gsutils.experiments.common.store import Store
from gsutils.experiments.grid.deeplab_training import DeepLabRecipe, confusion, iou_table, predict, train_deeplab
from gsutils.io import config_key
from gsutils.models.deeplab import DeepLab
from gsutils.profiles import Profile, check_profile
from gsutils.saliency.explain import explain
from gsutils.saliency.grid import GridSaliencyConfig

__all__ = ["COCOContextResult", "COCOData", "coco_data", "coco_recipes", "coco_requests", "run_coco_context"]

VERSION = 3
#: a request must cover at least this fraction of the image (after the 3x3 erosion)
MIN_FRACTION = 0.01
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class COCOData:
    """The training and held-out images, in memory (images in [0, 1], category labels, 0 = background)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    class_names: tuple[str, ...]
    key: str


def coco_data(profile: Profile) -> COCOData:
    """The COCO-format stand-in (or ``<data_root>/coco`` 2017), read by :class:`COCOSemantic`."""
    check_profile(profile)
    s = profile.scenes
    cats = [n for _, n in STANDIN_CATEGORIES]
    size = (s.coco_size, s.coco_size)
    if s.coco_source == "standin":
        cfg = COCOStandinConfig(size=s.coco_size, n_train=s.coco_n_train, n_val=s.coco_n_val, seed=profile.seed)
        root, key = write_coco_standin(cfg), cfg.key()
        dirs = {sp: (root / "images" / sp, root / "annotations" / f"instances_{sp}.json") for sp in ("train", "val")}
    elif s.coco_source == "coco":
        if profile.data_root is None:
            raise FileNotFoundError("profile.scenes.coco_source is 'coco' but no data root was given; pass "
                                    "data_root=<folder holding coco/train2017, coco/val2017, coco/annotations>")
        root = profile.data_root / "coco"
        key = config_key({"root": str(root), "size": list(size), "cats": cats})
        dirs = {sp: (root / f"{sp}2017", root / "annotations" / f"instances_{sp}2017.json") for sp in ("train", "val")}
    else:
        raise ValueError(f"profile.scenes.coco_source must be 'standin' or 'coco', got {s.coco_source!r}")
    tx, ty = COCOSemantic(*dirs["train"], cats, size=size).arrays()
    vx, vy = COCOSemantic(*dirs["val"], cats, size=size).arrays()
    return COCOData(tx, ty, vx, vy, ("background", *cats), key)


def coco_requests(labels: torch.Tensor, n_images: int) -> list[tuple[int, int, np.ndarray]]:
    """``(image, class, mask)`` for every eroded ground-truth object region covering >= 1 % of its image."""
    out = []
    for i in range(min(n_images, len(labels))):
        lab = labels[i].numpy()
        need = MIN_FRACTION * lab.size
        for c in np.unique(lab):
            if c == 0:
                continue
            eroded = ndimage.binary_erosion(lab == c, structure=_EIGHT, border_value=1)
            comps, n = ndimage.label(eroded, structure=_EIGHT)
            for k in range(1, n + 1):
                m = comps == k
                if m.sum() >= need:
                    out.append((i, int(c), m))
    return out


def _kept_without_context(model, x: torch.Tensor, m: torch.Tensor, reqs, grey: torch.Tensor) -> np.ndarray:
    """Per request: the fraction of its pixels still predicted as its class when the whole context
    is replaced by the chosen grey value (M = 0): how much of the prediction needs no context."""
    r = m[:, None].to(x.dtype)
    p = x * r + grey[:, None, None, None].to(x.dtype) * (1 - r)
    pred = predict(model, p)
    cls = torch.tensor([q[1] for q in reqs])[:, None, None]
    return (((pred == cls) & m).flatten(1).sum(1) / m.flatten(1).sum(1)).numpy()


def coco_recipes(profile: Profile, data: COCOData) -> list[DeepLabRecipe]:
    """The training recipe of each compared network (they differ only in the encoder)."""
    s = profile.scenes
    return [DeepLabRecipe(enc, len(data.class_names), s.decoder_channels, s.coco_epochs, s.batch_size, s.lr,
                          profile.seed) for enc in s.coco_encoders]


#: the per-network arrays of :class:`COCOContextResult`, stored as ``<name>_<network index>``
_PER_NETWORK = ("maps", "reliance", "empty", "grey", "kept_without_context")


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool; results compare by identity
class COCOContextResult:
    """What :func:`run_coco_context` returns: the shared requests, each network's explanations of them,
    and the networks.

    ``R`` counts the requests, ``E`` the networks (in :attr:`encoders` order).
    The arrays are what the result store keeps (:meth:`to_arrays`,
    :meth:`from_arrays`; a per-network array ``x`` is stored as ``x_0``,
    ``x_1``, ...); the rest is rebuilt on each run.
    """

    #: ``(R,)`` held-out image of each request
    image: np.ndarray
    #: ``(R,)`` its class (a category id, 0 is background)
    cls: np.ndarray
    #: ``(R, H, W)`` bool request masks (eroded ground-truth object regions)
    masks: np.ndarray
    #: ``(E, R, H, W)`` float16 context-saliency maps of each network (bilinear mask)
    maps: np.ndarray
    #: ``(E, R)`` context reliance: the map's mean over the context (an empty map counts 0)
    reliance: np.ndarray
    #: ``(E, R)`` bool, the empty mask was returned or every cell was clipped to 0
    empty: np.ndarray
    #: ``(E, R)`` the grey value chosen per request
    grey: np.ndarray
    #: ``(E, R)`` fraction of the request still predicted as its class with the context greyed out (M = 0)
    kept_without_context: np.ndarray
    #: the training and held-out images
    data: COCOData
    #: the compared networks' encoders, in the order of the arrays' first axis
    encoders: tuple[str, ...]
    #: the trained networks by encoder (eval mode, on the profile's device)
    nets: dict[str, DeepLab]
    #: per encoder, the IoU per class present in the held-out ground truth, by name
    iou: dict[str, dict[str, float]]

    @property
    def miou(self) -> dict[str, float]:
        """Per encoder, the mean of its :attr:`iou` (background included)."""
        return {e: float(np.mean(list(v.values()))) for e, v in self.iou.items()}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The stored form: ``image``, ``cls``, ``masks`` and, per network ``j``, ``maps_j``,
        ``reliance_j``, ``empty_j``, ``grey_j``, ``kept_without_context_j``."""
        out = {"image": self.image, "cls": self.cls, "masks": self.masks}
        for j in range(len(self.encoders)):
            out.update({f"{name}_{j}": getattr(self, name)[j] for name in _PER_NETWORK})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, data: COCOData, encoders: tuple[str, ...],
                    nets: dict[str, DeepLab], iou: dict[str, dict[str, float]]) -> COCOContextResult:
        """The result of the stored ``arrays`` (:meth:`to_arrays`) and the run's other parts."""
        names = {"image", "cls", "masks"} | {f"{n}_{j}" for n in _PER_NETWORK for j in range(len(encoders))}
        missing, extra = sorted(names - set(arrays)), sorted(set(arrays) - names)
        if missing or extra:
            raise ValueError(f"stored coco_context arrays do not match {len(encoders)} networks: missing "
                             f"{missing}, unexpected {extra}")
        per_net = {n: np.stack([np.asarray(arrays[f"{n}_{j}"]) for j in range(len(encoders))])
                   for n in _PER_NETWORK}
        return cls(image=np.asarray(arrays["image"]), cls=np.asarray(arrays["cls"]),
                   masks=np.asarray(arrays["masks"]), **per_net, data=data, encoders=tuple(encoders),
                   nets=nets, iou=iou)


def run_coco_context(profile: Profile, *, progress: bool = True) -> COCOContextResult:
    """Train/load both networks, gate them, explain the shared requests with each; the arrays are cached
    by config (:meth:`COCOContextResult.to_arrays`)."""
    s = profile.scenes
    data = coco_data(profile)
    nets, iou = {}, {}
    for enc, recipe in zip(s.coco_encoders, coco_recipes(profile, data)):
        nets[enc], _ = train_deeplab(profile, recipe, data.train_x, data.train_y, data_key=data.key,
                                     progress=progress)
        iou[enc] = iou_table(confusion(predict(nets[enc], data.val_x), data.val_y, len(data.class_names)),
                             data.class_names)
    reqs = coco_requests(data.val_y, s.coco_n_explain)
    if not reqs:
        raise ValueError("no object region of the explained images covers 1 % of its image; explain more "
                         "images (profile.scenes.coco_n_explain)")
    cfg = GridSaliencyConfig(grid=tuple(s.coco_mask_grid), steps=s.grid_steps)
    key = {"kind": "coco_context", "version": VERSION, "data": data.key, "encoders": list(s.coco_encoders),
           "epochs": s.coco_epochs, "n_explain": s.coco_n_explain, "grid": list(s.coco_mask_grid),
           "steps": s.grid_steps, "decoder": s.decoder_channels, "lr": s.lr, "seed": profile.seed}

    def compute() -> dict[str, np.ndarray]:
        x = data.val_x[[r[0] for r in reqs]]
        m = torch.from_numpy(np.stack([r[2] for r in reqs]))
        out = {"image": np.array([r[0] for r in reqs]), "cls": np.array([r[1] for r in reqs]),
               "masks": m.numpy()}
        for j, enc in enumerate(s.coco_encoders):
            dev = next(nets[enc].parameters()).device
            res = explain(nets[enc], x.to(dev), m.to(dev), [r[1] for r in reqs], "context",
                          upsample="bilinear", config=cfg, batch_size=32, progress=progress)
            maps = res.maps.cpu().numpy()
            ctx = ~m.numpy()
            out[f"maps_{j}"] = maps.astype(np.float16)
            out[f"reliance_{j}"] = (maps * ctx).reshape(len(reqs), -1).sum(1) / ctx.reshape(len(reqs), -1).sum(1)
            out[f"empty_{j}"] = res.empty.cpu().numpy() | (maps.reshape(len(reqs), -1).max(1) == 0)
            out[f"grey_{j}"] = res.grey.cpu().numpy()
            out[f"kept_without_context_{j}"] = _kept_without_context(nets[enc], x, m, reqs, res.grey.cpu())
        return out

    arrays = Store(Path(profile.results_dir)).get_or_compute("coco_context", key, compute, fmt="npz")
    return COCOContextResult.from_arrays(arrays, data=data, encoders=tuple(s.coco_encoders), nets=nets, iou=iou)
