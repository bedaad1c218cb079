"""Multi-label classifiers on the multi-digit stand-in, and the pointing game (NormGrad Sec. A).

:func:`train_or_load_classifier` returns a VGG16 or ResNet50
(:func:`gsutils.models.classifiers.build_classifier`, width from the profile)
trained for multi-label classification of the digit scenes
(:mod:`gsutils.data.scenes`), the stand-in for the VOC07 models of Rebuffi et
al. (2020). Training: Adam, binary cross-entropy on the 10 logits, a constant
learning rate divided by ten for the last epoch, no augmentation. To train
from scratch at a small budget, VGG16 is trained with a BatchNorm after every
convolution that is folded into the convolution afterwards
(:func:`gsutils.models.classifiers.fold_vgg_batchnorm`: the stored network is
a plain VGG16), and ResNet50 starts with zero-initialised residual branches.
The result is cached under ``<results_dir>/normgrad_classifier/<key>.pt``
(key: a hash of :func:`classifier_config`); a checkpoint is written after
every epoch (atomic, checksummed) and training resumes from it when
interrupted. Runs are deterministic: initialisation, shuffling and dropout
draw from seeds derived from the profile's seed, in a forked RNG state that
leaves the caller's untouched.

:func:`pointing_game_run` plays the pointing game with every Extract &
Aggregate method at every candidate layer, on the stand-in's test scenes or
on a real VOC-format test set with TorchRay's checkpoints;
:func:`pointing_accuracies`, :func:`best_layers` (Table 2),
:func:`center_accuracy` and :func:`paired_bootstrap` summarise a run.

From the command line::

    python -m gsutils.experiments.classification --profile gpu --arch vgg16 resnet50
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gsutils.data.scenes import DIGIT_CLASSES, SceneSet, load_voc_split, scene_config, write_scenes
from gsutils.data.voc import VOCDataset
from gsutils.experiments.store import Store, config_key, quarantine, read_checked, write_checked
from gsutils.models.classifiers import (
    ARCHS,
    add_vgg_batchnorm,
    build_classifier,
    fold_vgg_batchnorm,
    input_normalization,
    normalize_images,
)

NUM_CLASSES = len(DIGIT_CLASSES)
KIND = "normgrad_classifier"
#: bump when the training recipe changes
RECIPE_VERSION = 4


def _mix(*ints: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms)."""
    return int(config_key({"ints": list(ints)}), 16) & ((1 << 63) - 1)


def _check(profile: Any, arch: str) -> None:
    if not hasattr(profile, "normgrad") or not hasattr(profile, "results_dir"):
        raise TypeError(f"profile must be a gsutils.profiles.Profile, got {type(profile).__name__}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def classifier_config(profile: Any, arch: str) -> dict[str, Any]:
    """Everything that determines a trained classifier (its cache key is a hash of this)."""
    _check(profile, arch)
    ng = profile.normgrad
    return {
        "recipe": RECIPE_VERSION,
        "arch": arch,
        "width": float(ng.width),
        "epochs": int(ng.epochs),
        "batch_size": int(ng.batch_size),
        "lr": float(ng.lr),
        "vgg_pool": int(ng.vgg_pool) if arch == "vgg16" else None,
        "dropout": float(ng.dropout) if arch == "vgg16" else None,
        "seed": int(profile.seed),
        "scenes": scene_config(profile).key(),
    }


def scenes_root(profile: Any, *, progress: bool = False) -> Path:
    """The profile's scene set in VOC format, generated on first use."""
    return write_scenes(scene_config(profile), progress=progress)


def _load_uint8(root: Path, split: str, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 3, S, S)`` uint8 images and ``(N, C)`` float labels of a VOC split."""
    from tqdm.auto import tqdm

    ds = VOCDataset(root, split, DIGIT_CLASSES)
    first = ds[0]
    x = torch.empty((len(ds),) + tuple(first.image.shape), dtype=torch.uint8)  # (N, 3, S, S)
    y = torch.empty(len(ds), NUM_CLASSES)  # (N, C)
    for i in tqdm(range(len(ds)), desc=f"read {split}", disable=not progress, leave=False):
        s = first if i == 0 else ds[i]
        x[i] = (s.image * 255).round().to(torch.uint8)  # exact: images were read from uint8
        y[i] = s.labels
    return x, y


def _checkpoint_bytes(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, history: list) -> bytes:
    buf = io.BytesIO()
    torch.save({"epoch": epoch,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "history": json.dumps(history)}, buf)
    return buf.getvalue()


def _lr_at(epoch: int, epochs: int, lr: float) -> float:
    """``lr``, then ``lr / 10`` for the last epoch (when there are at least three)."""
    return lr / 10 if epochs >= 3 and epoch == epochs - 1 else lr


def checkpoint_path(profile: Any, arch: str) -> Path:
    """The per-epoch checkpoint of an unfinished training run."""
    return Path(profile.results_dir) / KIND / f"{config_key(classifier_config(profile, arch))}.partial.pt"


def _training_model(cfg: dict[str, Any], device: torch.device) -> nn.Module:
    """The network as trained: VGG16 with BatchNorms (folded later), ResNet50 zero-init residuals."""
    arch = cfg["arch"]
    model = build_classifier(arch, NUM_CLASSES, cfg["width"], vgg_pool=cfg["vgg_pool"] or 7,
                             zero_init_residual=(arch == "resnet50"))
    if arch == "vgg16":
        add_vgg_batchnorm(model)
        for m in model.classifier:
            if isinstance(m, nn.Dropout):
                m.p = cfg["dropout"]
    return model.to(device)


def _final_state(model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """The state dict of the deployed network (VGG16's BatchNorms folded)."""
    if arch == "vgg16":
        model = fold_vgg_batchnorm(copy.deepcopy(model).cpu())
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _train(profile: Any, arch: str, progress: bool) -> dict[str, Any]:
    """Train (resuming from the last epoch checkpoint) and return the final result dict."""
    from tqdm.auto import tqdm

    cfg = classifier_config(profile, arch)
    device = torch.device(profile.device)
    ckpt = checkpoint_path(profile, arch)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_mix(cfg["seed"], 1))
        model = _training_model(cfg, device)
        norm = input_normalization(model)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        start, history = 0, []
        if ckpt.exists():
            try:
                state = torch.load(io.BytesIO(read_checked(ckpt)), map_location=device, weights_only=True)
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                start, history = int(state["epoch"]), json.loads(state["history"])
            except Exception as err:  # corrupt or stale: moved aside (not lost), start over
                moved = quarantine(ckpt)
                warnings.warn(f"unreadable checkpoint {ckpt} moved aside to {moved.name}; "
                              f"training starts over: {err}", stacklevel=2)
                torch.manual_seed(_mix(cfg["seed"], 1))
                model = _training_model(cfg, device)
                opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
                start, history = 0, []
        if start < cfg["epochs"]:
            x8, y = _load_uint8(scenes_root(profile, progress=progress), "train", progress)
            n, bs = x8.shape[0], cfg["batch_size"]
            steps = math.ceil(n / bs)
            loss_fn = nn.BCEWithLogitsLoss()
            bar = tqdm(total=cfg["epochs"] * steps, initial=start * steps, desc=f"train {arch}",
                       disable=not progress, leave=False)
            for epoch in range(start, cfg["epochs"]):
                lr = _lr_at(epoch, cfg["epochs"], cfg["lr"])
                for group in opt.param_groups:
                    group["lr"] = lr
                order = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(cfg["seed"], 2, epoch)))
                torch.manual_seed(_mix(cfg["seed"], 3, epoch))  # dropout of this epoch
                model.train()
                t0, loss_sum, correct = time.perf_counter(), 0.0, 0
                for i in range(0, n, bs):
                    idx = order[i:i + bs]  # (B,)
                    xb = normalize_images(x8[idx].to(device).float() / 255.0, norm)  # (B, 3, S, S)
                    yb = y[idx].to(device)  # (B, C)
                    logits = model(xb)  # (B, C)
                    loss = loss_fn(logits, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss_sum += float(loss.detach()) * len(idx)
                    correct += int(((logits.detach() > 0).float() == yb).all(1).sum())
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.3f}")
                history.append({"epoch": epoch + 1, "lr": lr, "loss": loss_sum / n,
                                "exact_match": correct / n, "seconds": time.perf_counter() - t0})
                write_checked(ckpt, _checkpoint_bytes(model, opt, epoch + 1, history))
            bar.close()
    return {"state_dict": _final_state(model, arch), "history": json.dumps(history)}


def train_or_load_classifier(profile: Any, arch: str, *, progress: bool = True) -> nn.Module:
    """The profile's trained classifier for ``arch`` (``"vgg16"`` or ``"resnet50"``).

    Loaded from the result store when it exists, else trained (resuming from
    the last epoch checkpoint if a run was interrupted) and stored.

    Returns
    -------
    torch.nn.Module
        In eval mode, on ``profile.device``, with ``normalization`` set (see
        :func:`gsutils.models.classifiers.build_classifier`).
    """
    _check(profile, arch)
    cfg = classifier_config(profile, arch)
    store = Store(profile.results_dir)
    result = store.get_or_compute(KIND, cfg, lambda: _train(profile, arch, progress), fmt="pt")
    ckpt = checkpoint_path(profile, arch)
    for p in (ckpt, ckpt.with_name(ckpt.name + ".sha256")):
        p.unlink(missing_ok=True)
    model = build_classifier(arch, NUM_CLASSES, cfg["width"], vgg_pool=cfg["vgg_pool"] or 7)
    model.load_state_dict(result["state_dict"])
    return model.to(torch.device(profile.device)).eval()


def classifier_history(profile: Any, arch: str) -> list[dict[str, Any]]:
    """Per-epoch loss, exact-match accuracy, learning rate and seconds of a trained classifier."""
    cfg = classifier_config(profile, arch)
    store = Store(profile.results_dir)
    if not store.exists(KIND, cfg, "pt"):
        raise FileNotFoundError(f"no trained {arch} for this profile in {store.root}; "
                                "call train_or_load_classifier first")
    return json.loads(store.load(KIND, cfg, "pt")["history"])


def test_scenes(profile: Any) -> SceneSet:
    """The profile's test scenes, normalised as the trained classifiers expect.

    Returns a :class:`gsutils.data.scenes.SceneSet` with ``images``
    ``(N, 3, S, S)`` float32, ``labels`` ``(N, 10)``, per-image objects (boxes
    and VOC-difficult flags) and the ``SegmentationObject`` maps.
    """
    from gsutils.models.classifiers import IMAGENET_NORMALIZATION

    return load_voc_split(scenes_root(profile), "test", DIGIT_CLASSES,
                          normalization=IMAGENET_NORMALIZATION, with_masks=True)


@torch.no_grad()
def predict_scores(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``(N, C)`` logits of ``images`` ``(N, 3, S, S)`` (already normalised), on the model's device."""
    device = next(model.parameters()).device
    out = [model(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out)  # (N, C)


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


def evaluate_classifier(model: nn.Module, scenes: SceneSet) -> dict[str, Any]:
    """Mean average precision and per-class AP of ``model`` on ``scenes``."""
    scores = predict_scores(model, scenes.images)
    ap = average_precision(scores, scenes.labels)
    return {"mAP": float(np.nanmean(ap)), "ap": [float(a) for a in ap]}


# --------------------------------------------------------------------------------------
# the pointing game on the test scenes (Rebuffi et al., 2020, Sec. A and Table 2)
# --------------------------------------------------------------------------------------

#: bump when what :func:`pointing_game_run` computes changes
POINTING_VERSION = 1
#: the papers' pointing-game tolerance on real VOC / COCO images (pixels)
DEFAULT_TOLERANCE_PX = 15

#: ``normgrad_conv`` (NormGrad without the identity trick) needs a convolution; its
#: entry in a candidate layer's column is computed at this convolution: for VGG16 the
#: one feeding the ReLU, for ResNet50 the last convolution of the stage.
CONV_FOR_LAYER: dict[str, dict[str, str]] = {
    "vgg16": {"features.3": "features.2", "features.8": "features.7", "features.15": "features.14",
              "features.22": "features.21", "features.29": "features.28"},
    "resnet50": {"layer1": "layer1.2.conv3", "layer2": "layer2.3.conv3", "layer3": "layer3.5.conv3",
                 "layer4": "layer4.2.conv3"},
}
#: TorchRay's published pointing accuracies on PASCAL VOC 2007 test (all / difficult, %),
#: shown for context only: a different dataset and full-size fine-tuned networks.
TORCHRAY_VOC07: dict[str, dict[str, tuple[float, float]]] = {
    "vgg16": {"gradient": (76.3, 56.9), "guided_backprop": (75.9, 53.0), "grad_cam": (86.6, 74.0),
              "excitation_backprop": (77.1, 56.6), "contrastive_excitation_backprop": (79.9, 66.5)},
    "resnet50": {"grad_cam": (90.4, 82.3)},
}


def pointing_config(profile: Any, arch: str, voc_root: str | os.PathLike | None = None,
                    checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """Everything that determines :func:`pointing_game_run`'s result."""
    from gsutils.models.classifiers import CANDIDATE_LAYERS
    from gsutils.saliency.extract_aggregate import METHODS

    _check(profile, arch)
    base = {"version": POINTING_VERSION, "layers": list(CANDIDATE_LAYERS[arch]),
            "conv_layers": CONV_FOR_LAYER[arch], "methods": list(METHODS)}
    if voc_root is None:
        return {**base, "classifier": classifier_config(profile, arch),
                "tolerance": int(profile.normgrad.tolerance)}
    if checkpoint is None:
        raise ValueError(f"voc_root={str(voc_root)!r} needs the checkpoint of a VOC-trained {arch} "
                         "(e.g. TorchRay's vgg16_voc-b050e8c3.pth.tar); checkpoint=None was given")
    ck = Path(checkpoint).expanduser()
    if not ck.is_file():
        raise FileNotFoundError(f"checkpoint {str(ck)!r} does not exist")
    return {**base, "arch": arch, "voc_root": str(Path(voc_root).expanduser().resolve()),
            "checkpoint": str(ck.resolve()), "checkpoint_bytes": ck.stat().st_size,
            "input_size": int(profile.normgrad.image_size), "tolerance": DEFAULT_TOLERANCE_PX}


def _points(maps: torch.Tensor) -> list[tuple[int, int]]:
    """``(x, y)`` of each map's maximum, ``maps`` ``(B, 1, H, W)`` (first maximum on ties)."""
    w = maps.shape[-1]
    flat = maps.flatten(1).argmax(1).tolist()  # (B,)
    return [(i % w, i // w) for i in flat]


def _pointing_keys(arch: str) -> tuple[list[str], list[str]]:
    from gsutils.models.classifiers import CANDIDATE_LAYERS
    from gsutils.saliency.extract_aggregate import METHODS

    methods = [m for m in METHODS if m != "normgrad_conv"]
    keys = [f"{m}@{layer}" for m in methods for layer in CANDIDATE_LAYERS[arch]]
    keys += [f"normgrad_conv@{layer}" for layer in CONV_FOR_LAYER[arch]]
    return methods, keys


def score_pairs(model: nn.Module, arch: str, x: torch.Tensor, target: torch.Tensor,
                gts: Sequence[torch.Tensor], tolerance: int) -> dict[str, list[bool]]:
    """Pointing-game hits of every method at every candidate layer for a batch of pairs.

    Parameters
    ----------
    model, arch:
        The classifier and its architecture (``"vgg16"`` / ``"resnet50"``).
    x:
        ``(B, 3, h, w)`` network inputs (one per pair; an image may repeat).
    target:
        ``(B,)`` the class of each pair.
    gts:
        ``B`` ground-truth masks ``(H, W)`` (all the same size); maps are
        upsampled bilinearly to ``(H, W)`` (the image's original size) before
        their maximum is taken.
    tolerance:
        Hit radius in pixels.

    Returns
    -------
    dict
        ``{"method@layer": [bool] * B, "center": [bool] * B}``.
    """
    import torch.nn.functional as F

    from gsutils.metrics.pointing import hit_region
    from gsutils.models.classifiers import CANDIDATE_LAYERS
    from gsutils.saliency.extract_aggregate import extract_aggregate

    methods, keys = _pointing_keys(arch)
    convs = CONV_FOR_LAYER[arch]
    maps = extract_aggregate(model, x, target, CANDIDATE_LAYERS[arch], methods)  # each (B, 1, h, w)
    conv_maps = extract_aggregate(model, x, target, list(convs.values()), ["normgrad_conv"])
    for layer, conv in convs.items():
        maps["normgrad_conv", layer] = conv_maps["normgrad_conv", conv]
    size = tuple(gts[0].shape)
    out: dict[str, list[bool]] = {}
    regions = [hit_region(g, tolerance) for g in gts]  # B x (H, W) bool
    for k in keys:
        m = maps[tuple(k.split("@"))]  # (B, 1, h, w)
        if tuple(m.shape[-2:]) != size:
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)  # (B, 1, H, W)
        out[k] = [bool(r[py, px]) for r, (px, py) in zip(regions, _points(m))]
    cy, cx = size[0] // 2, size[1] // 2
    out["center"] = [bool(r[cy, cx]) for r in regions]
    return out


def _run_record(arch: str, tolerance: int, size: Any, hits: dict[str, list[bool]], pairs: list[tuple],
                n_skipped: int, **extra: Any) -> dict[str, Any]:
    from gsutils.models.classifiers import CANDIDATE_LAYERS

    return {"arch": arch, "layers": list(CANDIDATE_LAYERS[arch]), "tolerance": tolerance,
            "image_size": size, "n_pairs": len(pairs), "n_skipped": n_skipped,
            "image_index": [p[0] for p in pairs], "class_id": [p[1] for p in pairs],
            "difficult": [bool(p[2]) for p in pairs], "hits": hits, **extra}


def _pointing_compute(profile: Any, arch: str, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    tol = int(profile.normgrad.tolerance)
    model = train_or_load_classifier(profile, arch, progress=progress)
    device = next(model.parameters()).device
    scenes = test_scenes(profile)
    pairs = [p for p in scenes.pairs() if not p.skip]
    hits: dict[str, list[bool]] = {}
    bs = int(profile.normgrad.batch_size)
    for start in tqdm(range(0, len(pairs), bs), desc=f"pointing game {arch}", disable=not progress,
                      leave=False):
        batch = pairs[start:start + bs]
        x = scenes.images[torch.tensor([p.index for p in batch])].to(device)  # (B, 3, S, S)
        target = torch.tensor([p.class_id for p in batch], device=device)  # (B,)
        gts = [scenes.gt_mask(p.index, p.class_id) for p in batch]  # B x (S, S)
        for k, v in score_pairs(model, arch, x, target, gts, tol).items():
            hits.setdefault(k, []).extend(v)
    scores = predict_scores(model, scenes.images)
    return _run_record(arch, tol, list(scenes.image_size), hits,
                       [(p.index, p.class_id, p.difficult) for p in pairs],
                       len(scenes.pairs()) - len(pairs), data="stand-in",
                       test_map=float(np.nanmean(average_precision(scores, scenes.labels))))


def _pointing_compute_voc(profile: Any, arch: str, voc_root: Any, checkpoint: Any,
                          progress: bool) -> dict[str, Any]:
    """The pointing game on a real VOC-format test set with a VOC-trained checkpoint."""
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from gsutils.data.voc import VOC_CLASSES, VOCDataset
    from gsutils.metrics.pointing import is_difficult_pair

    model = build_classifier(arch, len(VOC_CLASSES), checkpoint=checkpoint)
    model = model.to(torch.device(profile.device)).eval()
    device = next(model.parameters()).device
    norm = input_normalization(model)
    ds = VOCDataset(voc_root, "test", VOC_CLASSES)
    side = int(profile.normgrad.image_size)
    hits: dict[str, list[bool]] = {}
    pairs, skipped = [], 0
    for i in tqdm(range(len(ds)), desc=f"pointing game VOC {arch}", disable=not progress, leave=False):
        sample = ds[i]
        present = sample.present_classes()
        keep = [c for c in present if not bool(sample.class_difficult(c).all())]
        skipped += len(present) - len(keep)
        if not keep:
            continue
        h, w = sample.size
        scale = side / min(h, w)  # shorter side to `side`, as TorchRay's benchmark transform
        img = F.interpolate(sample.image[None], size=(round(h * scale), round(w * scale)),
                            mode="bilinear", align_corners=False, antialias=True)  # (1, 3, h', w')
        x = normalize_images(img, norm).to(device).repeat(len(keep), 1, 1, 1)  # (K, 3, h', w')
        gts = [sample.gt_mask(c) for c in keep]  # K x (H, W) at the original size
        for k, v in score_pairs(model, arch, x, torch.tensor(keep, device=device), gts,
                                DEFAULT_TOLERANCE_PX).items():
            hits.setdefault(k, []).extend(v)
        pairs += [(i, c, is_difficult_pair(g, len(present))) for c, g in zip(keep, gts)]
    return _run_record(arch, DEFAULT_TOLERANCE_PX, None, hits, pairs, skipped,
                       data=f"VOC test at {voc_root}")


def pointing_game_run(profile: Any, arch: str, *, voc_root: str | os.PathLike | None = None,
                      checkpoint: str | os.PathLike | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """The pointing game of every method at every candidate layer of ``arch`` (cached).

    Every (test image, present class) pair whose boxes are not all
    VOC-difficult is explained for that class by every method of
    :data:`gsutils.saliency.extract_aggregate.METHODS` at every layer of
    :data:`gsutils.models.classifiers.CANDIDATE_LAYERS` (``normgrad_conv`` at
    the convolutions of :data:`CONV_FOR_LAYER`), each map upsampled to the
    image; its maximum is a hit when within the tolerance of the union of
    the class's boxes. The center baseline points at the image's centre pixel.

    Parameters
    ----------
    profile:
        The :class:`gsutils.profiles.Profile`.
    arch:
        ``"vgg16"`` or ``"resnet50"``.
    voc_root:
        ``None`` (default): the stand-in's test scenes with the classifier
        trained on the stand-in, tolerance ``profile.normgrad.tolerance``.
        Else a VOC directory (``<root>/VOCdevkit/VOC2007`` with
        ``ImageSets/Main/test.txt``): its test images with the 20-class
        ``checkpoint`` (e.g. TorchRay's ``vgg16_voc-b050e8c3.pth.tar``),
        images resized so their shorter side is
        ``profile.normgrad.image_size``, maps upsampled to the original
        image, tolerance 15 px.
    checkpoint:
        The VOC checkpoint (required with ``voc_root``).
    progress:
        Show progress bars.

    Returns
    -------
    dict
        ``hits``: ``{"method@layer": [bool per pair], "center": [...]}``, with the
        pairs' ``image_index``, ``class_id`` and ``difficult`` flags; also
        ``layers``, ``n_pairs``, ``n_skipped``, ``tolerance``, ``data`` and (on
        the stand-in) ``image_size`` and the classifier's ``test_map``.
        :func:`pointing_accuracies` turns it into accuracies.
    """
    config = pointing_config(profile, arch, voc_root, checkpoint)
    if voc_root is None:
        compute = lambda: _pointing_compute(profile, arch, progress)  # noqa: E731
    else:
        compute = lambda: _pointing_compute_voc(profile, arch, voc_root, checkpoint, progress)  # noqa: E731
    return Store(profile.results_dir).get_or_compute("normgrad_pointing", config, compute)


def torchray_checkpoint(checkpoint_dir: str | os.PathLike, arch: str, dataset: str = "voc") -> Path:
    """The TorchRay checkpoint of ``arch`` for ``dataset`` in a folder (``<arch>_<dataset>*.pth*``)."""
    folder = Path(checkpoint_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint_dir {str(folder)!r} is not a folder")
    if dataset not in ("voc", "coco"):
        raise ValueError(f"dataset must be 'voc' or 'coco', got {dataset!r}")
    found = sorted(folder.glob(f"{arch}_{dataset}*.pth*"))
    found = [f for f in found if not f.name.endswith(".sha256")]
    if not found:
        raise FileNotFoundError(
            f"no {arch}_{dataset}*.pth* in {str(folder)!r} (TorchRay's files are named like "
            f"vgg16_voc-b050e8c3.pth.tar); present: {sorted(p.name for p in folder.iterdir())}")
    return found[0]


def pointing_data_args(arch: str, voc_root: str = "", checkpoint_dir: str = "") -> dict[str, Any]:
    """Keyword arguments of :func:`pointing_game_run` for a chapter's parameters.

    Empty ``voc_root`` (the default): ``{}``, the stand-in. Otherwise the VOC
    directory and ``arch``'s TorchRay VOC checkpoint found in ``checkpoint_dir``.
    """
    if not voc_root:
        return {}
    if not checkpoint_dir:
        raise ValueError(f"voc_root={voc_root!r} was given without checkpoint_dir, the folder "
                         "holding TorchRay's VOC checkpoints (vgg16_voc-*.pth.tar, resnet50_voc-*.pth.tar)")
    return {"voc_root": voc_root, "checkpoint": torchray_checkpoint(checkpoint_dir, arch, "voc")}


def _game_accuracy(hits: Sequence[bool], class_id: Sequence[int], difficult: Sequence[bool],
                   subset: str) -> float:
    from gsutils.metrics.pointing import PointingGame

    game = PointingGame(NUM_CLASSES)
    for hit, c, d in zip(hits, class_id, difficult):
        game.record(bool(hit), int(c), difficult=bool(d))
    return game.accuracy(subset)


def pointing_accuracies(run: dict[str, Any]):
    """Accuracy (mean over classes, %) per method and layer, all pairs and the difficult subset.

    Returns
    -------
    pandas.DataFrame
        Index: method; columns: ``(subset, layer)``; NaN where a method has no
        map at a layer (``normgrad_conv`` at the input).
    """
    import pandas as pd

    from gsutils.metrics.pointing import SUBSETS

    from gsutils.saliency.extract_aggregate import METHODS

    rows: dict[str, dict[tuple[str, str], float]] = {}
    layers = list(run["layers"])
    for key, hits in run["hits"].items():
        if key == "center":
            continue
        method, layer = key.split("@")
        for s in SUBSETS:
            rows.setdefault(method, {})[s, layer] = 100 * _game_accuracy(
                hits, run["class_id"], run["difficult"], s)
    cols = pd.MultiIndex.from_tuples([(s, layer) for s in SUBSETS for layer in layers],
                                     names=["subset", "layer"])
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols)
    return frame.reindex([m for m in METHODS if m in rows])


def center_accuracy(run: dict[str, Any]) -> dict[str, float]:
    """The center baseline's accuracy (%), all pairs and the difficult subset."""
    from gsutils.metrics.pointing import SUBSETS

    return {s: 100 * _game_accuracy(run["hits"]["center"], run["class_id"], run["difficult"], s)
            for s in SUBSETS}


def best_layers(run: dict[str, Any], subset: str = "all"):
    """Table 2: each method's best layer (highest accuracy on ``subset``) and its accuracies (%).

    Ties go to the earlier (shallower) layer.
    """
    import pandas as pd

    acc = pointing_accuracies(run)
    rows = []
    for method, row in acc.iterrows():
        on = row[subset].dropna()
        best = on.index[int(np.argmax(on.to_numpy()))]
        rows.append({"method": method, "best layer": best, "all %": row["all", best],
                     "difficult %": row["difficult", best]})
    return pd.DataFrame(rows).set_index("method")


def paired_bootstrap(run: dict[str, Any], key_a: str, key_b: str, subset: str = "all",
                     n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Accuracy difference ``a - b`` (percentage points) with a 95 % bootstrap interval.

    Test scenes are resampled with replacement (all pairs of a scene move
    together, both methods see the same resample); the accuracy is the mean
    over classes as in the pointing game.

    Parameters
    ----------
    key_a, key_b:
        Keys of ``run["hits"]`` (``"method@layer"`` or ``"center"``).
    """
    for k in (key_a, key_b):
        if k not in run["hits"]:
            raise ValueError(f"{k!r} is not in the run's hits; available: {sorted(run['hits'])}")
    img = np.asarray(run["image_index"])
    cls = np.asarray(run["class_id"])
    dif = np.asarray(run["difficult"], dtype=bool)
    a = np.asarray(run["hits"][key_a], dtype=bool)
    b = np.asarray(run["hits"][key_b], dtype=bool)
    keep = dif if subset == "difficult" else np.ones_like(dif)
    images = np.unique(img)
    by_image = {i: np.flatnonzero((img == i) & keep) for i in images}

    def acc(h: np.ndarray, idx: np.ndarray) -> float:
        per_class = [h[idx][cls[idx] == c].mean() for c in range(NUM_CLASSES) if (cls[idx] == c).any()]
        return float(np.mean(per_class)) if per_class else float("nan")

    all_idx = np.flatnonzero(keep)
    diff = 100 * (acc(a, all_idx) - acc(b, all_idx))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = rng.choice(images, size=len(images), replace=True)
        idx = np.concatenate([by_image[i] for i in pick])
        if idx.size:
            boots.append(100 * (acc(a, idx) - acc(b, idx)))
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return {"difference": diff, "low": float(lo), "high": float(hi)}


def plot_pointing_by_layer(runs: Sequence[dict[str, Any]]):
    """Pointing accuracy against layer, one line per method (rows: architectures; columns: subsets).

    The center baseline is the dashed grey line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from gsutils.metrics.pointing import SUBSETS

    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 3.4 * len(runs)), squeeze=False,
                             layout="constrained")
    colours = plt.get_cmap("tab10")
    for r, run in enumerate(runs):
        acc = pointing_accuracies(run)
        centre = center_accuracy(run)
        for c, s in enumerate(SUBSETS):
            ax = axes[r, c]
            layers = list(acc[s].columns)
            for k, (method, row) in enumerate(acc[s].iterrows()):
                ax.plot(range(len(layers)), row.to_numpy(), marker="o", ms=3, color=colours(k % 10),
                        label=method.replace("_", " "))
            ax.axhline(centre[s], color="0.5", ls="--", label="center baseline")
            ax.set_xticks(range(len(layers)), layers, fontsize=8)
            ax.set_ylim(0, 100)
            ax.set_title(f"{run['arch']}: {s} ({run['tolerance']} px tolerance)", fontsize=10)
            if c == 0:
                ax.set_ylabel("pointing accuracy (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=6, fontsize=8)
    return fig


def classifier_summary(profile: Any, runs: Sequence[dict[str, Any]]):
    """One row per pointing run: data, classifier, test mAP and training time (stand-in only).

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    rows = []
    for run in runs:
        row = {"arch": run["arch"], "data": run.get("data", "stand-in"), "pairs": run["n_pairs"],
               "skipped (all boxes difficult)": run["n_skipped"],
               "difficult pairs": int(np.sum(run["difficult"])), "tolerance px": run["tolerance"]}
        if "test_map" in run:
            history = classifier_history(profile, run["arch"])
            row.update({"width": profile.normgrad.width, "epochs": len(history),
                        "final train loss": history[-1]["loss"],
                        "train minutes": sum(h["seconds"] for h in history) / 60,
                        "test mAP %": 100 * run["test_map"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("arch")


def plot_scene_examples(scenes: SceneSet, indices: Sequence[int]):
    """Test scenes with their boxes (dashed: VOC-difficult) and class names.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    indices = list(indices)
    fig, axes = plt.subplots(1, len(indices), figsize=(2.3 * len(indices), 2.6), squeeze=False,
                             layout="constrained")
    colours = plt.get_cmap("tab10")
    for ax, i in zip(axes[0], indices):
        ax.imshow(scenes.rgb(i).permute(1, 2, 0).numpy())
        for o in scenes.objects[i]:
            x0, y0, x1, y1 = o.box
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False,
                                   edgecolor=colours(o.class_id), linewidth=1.5,
                                   linestyle="--" if o.difficult else "-"))
            ax.text(x0, y0 - 1, o.name, color=colours(o.class_id), fontsize=7, va="bottom")
        ax.set_title(scenes.image_ids[i], fontsize=8)
        ax.axis("off")
    return fig


def published_table(runs: Sequence[dict[str, Any]]):
    """Table 2 (best layer per method, all / difficult %) beside TorchRay's published VOC07 numbers.

    The published numbers come from full-size networks fine-tuned on PASCAL
    VOC 2007 and evaluated on its test set (a different dataset): context,
    not a target.
    """
    import pandas as pd

    frames = []
    for run in runs:
        best = best_layers(run)
        pub = TORCHRAY_VOC07.get(run["arch"], {})
        best["TorchRay VOC07 all %"] = [pub.get(m, (np.nan, np.nan))[0] for m in best.index]
        best["TorchRay VOC07 difficult %"] = [pub.get(m, (np.nan, np.nan))[1] for m in best.index]
        best.insert(0, "arch", run["arch"])
        frames.append(best)
    return pd.concat(frames).reset_index().set_index(["arch", "method"])


def main(argv: Sequence[str] | None = None) -> None:
    """The command line; a user error is one line on stderr with exit status 2."""
    from gsutils.cli import Parser, profile_or_exit
    from gsutils.profiles import PROFILE_NAMES

    parser = Parser(prog="python -m gsutils.experiments.classification",
                    description="Train the NormGrad stand-in classifiers")
    parser.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    args = parser.parse_args(argv)
    profile = profile_or_exit(parser, args.profile, device=args.device, seed=args.seed,
                              data_root=args.data_root)
    scenes = test_scenes(profile)
    for arch in args.arch:
        model = train_or_load_classifier(profile, arch)
        print(f"{arch}: test mAP {evaluate_classifier(model, scenes)['mAP']:.3f}")


if __name__ == "__main__":
    main()
