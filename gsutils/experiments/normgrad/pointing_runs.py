"""The pointing game on the NormGrad classifiers (Rebuffi et al., 2020, Sec. A and Table 2).

:func:`pointing_game_run` plays the pointing game with every Extract &
Aggregate method at every candidate layer, on the stand-in's test scenes with
the classifiers of :mod:`gsutils.experiments.normgrad.classifier_training`, or on a
real VOC-format test set with TorchRay's checkpoints. Both paths score each
(image, class) pair with :func:`gsutils.metrics.pointing.is_hit`, and every
summary counts the hits with the one accumulator,
:class:`gsutils.metrics.pointing.PointingGame`. A run is a
:class:`gsutils.experiments.normgrad.pointing_results.PointingRun`.

:func:`pointing_accuracies`, :func:`best_layers` (Table 2),
:func:`center_accuracy` and :func:`paired_bootstrap` summarise a run; the
chapter's figures and tables are in :mod:`gsutils.plots.normgrad`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gsutils.claims import Gate
from gsutils.data.boxes import is_difficult_pair
from gsutils.data.voc import VOC_CLASSES, VOCDataset
from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad.classifier_training import (
    NUM_CLASSES,
    check_profile_arch,
    classifier_config,
    evaluate_classifier,
)
from gsutils.experiments.normgrad.normgrad_data import STAND_IN, torchray_checkpoint
from gsutils.experiments.normgrad.pointing_results import (  # noqa: F401  (CENTER, encode_hits, decode_hits re-exported)
    CENTER,
    PointingHits,
    PointingRun,
    decode_hits,
    encode_hits,
)
from gsutils.metrics.pointing import (
    DEFAULT_TOLERANCE,
    SUBSETS,
    PointingGame,
    hit_region,
    is_hit,
)
from gsutils.models.classifiers import CANDIDATE_LAYERS, build_classifier, input_normalization, normalize_images
from gsutils.profiles import Profile
from gsutils.references import TORCHRAY_VOC07  # noqa: F401  (re-exported)
from gsutils.saliency.extract_aggregate import METHODS, extract_aggregate

#: bump when what :func:`pointing_game_run` computes changes
POINTING_VERSION = 2  # 2: hits keyed by (method, layer) tuples, stored as "method|layer"

#: ``normgrad_conv`` (NormGrad without the identity trick) needs a convolution; its
#: entry in a candidate layer's column is computed at this convolution: for VGG16 the
#: one feeding the ReLU, for ResNet50 the last convolution of the stage.
CONV_FOR_LAYER: dict[str, dict[str, str]] = {
    "vgg16": {"features.3": "features.2", "features.8": "features.7", "features.15": "features.14",
              "features.22": "features.21", "features.29": "features.28"},
    "resnet50": {"layer1": "layer1.2.conv3", "layer2": "layer2.3.conv3", "layer3": "layer3.5.conv3",
                 "layer4": "layer4.2.conv3"},
}
def pointing_config(profile: Profile, arch: str, voc_root: str | os.PathLike | None = None,
                    checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """Everything that determines :func:`pointing_game_run`'s result."""
    check_profile_arch(profile, arch)
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
            "input_size": int(profile.normgrad.image_size), "tolerance": DEFAULT_TOLERANCE}


def _pointing_keys(arch: str) -> tuple[list[str], list[tuple[str, str]]]:
    methods = [m for m in METHODS if m != "normgrad_conv"]
    keys = [(m, layer) for m in methods for layer in CANDIDATE_LAYERS[arch]]
    keys += [("normgrad_conv", layer) for layer in CONV_FOR_LAYER[arch]]
    return methods, keys


def score_pairs(model: nn.Module, arch: str, x: torch.Tensor, target: torch.Tensor,
                gts: Sequence[torch.Tensor], tolerance: int) -> dict[tuple[str, ...], list[bool]]:
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

    A map's point is its first maximum in row-major order
    (:func:`gsutils.metrics.pointing.map_argmax_point`); the center baseline
    points at pixel ``(W // 2, H // 2)``.

    Returns
    -------
    dict
        ``{(method, layer): [bool] * B, CENTER: [bool] * B}``.
    """
    import torch.nn.functional as F

    methods, keys = _pointing_keys(arch)
    convs = CONV_FOR_LAYER[arch]
    maps = extract_aggregate(model, x, target, CANDIDATE_LAYERS[arch], methods)  # each (B, 1, h, w)
    conv_maps = extract_aggregate(model, x, target, list(convs.values()), ["normgrad_conv"])
    for layer, conv in convs.items():
        maps["normgrad_conv", layer] = conv_maps["normgrad_conv", conv]
    size = tuple(gts[0].shape)
    out: dict[tuple[str, ...], list[bool]] = {}
    regions = [hit_region(g, tolerance) for g in gts]  # B x (H, W) bool
    for k in keys:
        m = maps[k]  # (B, 1, h, w)
        if tuple(m.shape[-2:]) != size:
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)  # (B, 1, H, W)
        m = m.cpu()  # one transfer per key; each map's maximum is then found on the CPU
        out[k] = [is_hit(m[i], g, region=r) for i, (g, r) in enumerate(zip(gts, regions))]
    cy, cx = size[0] // 2, size[1] // 2
    out[CENTER] = [is_hit((cx, cy), g, region=r) for g, r in zip(gts, regions)]
    return out


def _run_record(arch: str, tolerance: int, size: Any, hits: dict[tuple[str, ...], list[bool]],
                pairs: list[tuple], n_skipped: int, data: str, test_map: float | None = None) -> PointingRun:
    """The run of ``pairs`` ``(image index, class, difficult)``."""
    return PointingRun(arch=arch, layers=CANDIDATE_LAYERS[arch], image_index=[p[0] for p in pairs],
                       class_id=[p[1] for p in pairs], difficult=[bool(p[2]) for p in pairs], hits=hits,
                       tolerance=tolerance, image_size=size, n_skipped=n_skipped, data=data, test_map=test_map)


def stand_in_hits(profile: Profile, arch: str, score: Callable[..., dict[tuple[str, ...], list[bool]]], desc: str,
                  progress: bool, data: Any = None) -> tuple[nn.Module, Any, list[Any], dict[tuple[str, ...], list[bool]]]:
    """Play the pointing game on every (test scene, present class) pair of the stand-in.

    ``score(model, x, target, gts, tolerance)`` returns, for a batch of pairs,
    the hits of each of its maps by key; returns the classifier, the test
    scenes, the pairs played and the hits per key. ``data``
    (:class:`gsutils.experiments.normgrad.normgrad_data.NormGradData`, default the
    stand-in) may name a VOC directory and checkpoint instead.
    """
    from tqdm.auto import tqdm

    data = STAND_IN if data is None else data
    tol = data.tolerance(profile)
    model = data.model(profile, arch, progress=progress)
    device = next(model.parameters()).device
    scenes = data.test(profile)
    pairs = [p for p in scenes.pairs() if not p.skip]
    hits: dict[tuple[str, ...], list[bool]] = {}
    bs = int(profile.normgrad.batch_size)
    for start in tqdm(range(0, len(pairs), bs), desc=f"{desc} {arch}", disable=not progress, leave=False):
        batch = pairs[start:start + bs]
        x = scenes.images[torch.tensor([p.index for p in batch])].to(device)  # (B, 3, S, S)
        target = torch.tensor([p.class_id for p in batch], device=device)  # (B,)
        gts = [scenes.gt_mask(p.index, p.class_id) for p in batch]  # B x (S, S)
        for k, v in score(model, x, target, gts, tol).items():
            hits.setdefault(k, []).extend(v)
    return model, scenes, pairs, hits


def _pointing_compute(profile: Profile, arch: str, progress: bool) -> PointingRun:
    model, scenes, pairs, hits = stand_in_hits(
        profile, arch, lambda m, x, t, g, tol: score_pairs(m, arch, x, t, g, tol), "pointing game", progress)
    return _run_record(arch, int(profile.normgrad.tolerance), list(scenes.image_size), hits,
                       [(p.index, p.class_id, p.difficult) for p in pairs],
                       len(scenes.pairs()) - len(pairs), data="stand-in",
                       test_map=evaluate_classifier(model, scenes)["mAP"])


def _pointing_compute_voc(profile: Profile, arch: str, voc_root: Any, checkpoint: Any,
                          progress: bool) -> PointingRun:
    """The pointing game on a real VOC-format test set with a VOC-trained checkpoint."""
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    model = build_classifier(arch, len(VOC_CLASSES), checkpoint=checkpoint)
    model = model.to(torch.device(profile.device)).eval()
    device = next(model.parameters()).device
    norm = input_normalization(model)
    ds = VOCDataset(voc_root, "test", VOC_CLASSES)
    side = int(profile.normgrad.image_size)
    hits: dict[tuple[str, ...], list[bool]] = {}
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
                                DEFAULT_TOLERANCE).items():
            hits.setdefault(k, []).extend(v)
        pairs += [(i, c, is_difficult_pair(g, len(present))) for c, g in zip(keep, gts)]
    return _run_record(arch, DEFAULT_TOLERANCE, None, hits, pairs, skipped,
                       data=f"VOC test at {voc_root}")


def pointing_game_run(profile: Profile, arch: str, *, voc_root: str | os.PathLike | None = None,
                      checkpoint: str | os.PathLike | None = None,
                      progress: bool = True) -> PointingRun:
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
    PointingRun
        ``hits``: ``{(method, layer): (bool per pair), CENTER: (...)}``, with the
        pairs' ``image_index``, ``class_id`` and ``difficult`` flags; also
        ``layers``, ``n_pairs``, ``n_skipped``, ``tolerance``, ``data`` and (on
        the stand-in) ``image_size`` and the classifier's ``test_map``.
        :func:`pointing_accuracies` turns it into accuracies. Stored as
        :meth:`PointingRun.as_dict`.
    """
    config = pointing_config(profile, arch, voc_root, checkpoint)
    if voc_root is None:
        compute = lambda: _pointing_compute(profile, arch, progress).as_dict()  # noqa: E731
    else:
        compute = lambda: _pointing_compute_voc(profile, arch, voc_root, checkpoint, progress).as_dict()  # noqa: E731
    return PointingRun.from_dict(Store(profile.results_dir).get_or_compute("normgrad_pointing", config, compute))


def last_block_grid(profile: Profile, arch: str) -> int:
    """The side of the last candidate layer's map for the profile's image size (measured by a forward pass)."""
    from gsutils.experiments.normgrad.classifier_training import deployed_model

    model = deployed_model(classifier_config(profile, arch)).eval()
    layer = CANDIDATE_LAYERS[arch][-1]
    found: dict[str, int] = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda _m, _i, out: found.__setitem__("side", int(out.shape[-1])))
    try:
        with torch.no_grad():
            side = int(profile.normgrad.image_size)
            model(torch.zeros(1, 3, side, side))
    finally:
        handle.remove()
    return found["side"]


def runs_gate(profile: Profile, runs: Sequence[PointingRun]) -> Gate:
    """The gate of the depth claims for pointing runs (:func:`gsutils.experiments.normgrad.classifier_training.gate`).

    Runs on the stand-in carry their classifier's test mAP; runs of published
    VOC checkpoints do not, and are not gated.
    """
    from gsutils.experiments.normgrad.classifier_training import gate, no_gate

    maps = {run.arch: run.test_map for run in runs if run.test_map is not None}
    if not maps:
        return no_gate("published VOC checkpoints: no gate")
    return gate(profile, maps)


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


def num_classes(run: PointingHits) -> int:
    """The size of a run's accumulator: the stand-in's 10 classes, or as many as its class ids need."""
    return max([NUM_CLASSES, *(c + 1 for c in run.class_id)])


def game_accuracy(hits: Sequence[bool], class_id: Sequence[int], difficult: Sequence[bool],
                   subset: str, num_classes: int) -> float:
    """The pointing-game accuracy (mean over classes) of scored pairs, counted by :class:`PointingGame`."""
    game = PointingGame(num_classes)
    game.record_many(hits, class_id, difficult)
    return game.accuracy(subset)


def pointing_accuracies(run: PointingHits):
    """Accuracy (mean over classes, %) per method and layer, all pairs and the difficult subset.

    Returns
    -------
    pandas.DataFrame
        Index: method; columns: ``(subset, layer)``; NaN where a method has no
        map at a layer (``normgrad_conv`` at the input).
    """
    import pandas as pd

    n = num_classes(run)
    rows: dict[str, dict[tuple[str, str], float]] = {}
    layers = list(run.layers)
    for key, hits in run.hits.items():
        if key == CENTER:
            continue
        method, layer = key
        for s in SUBSETS:
            rows.setdefault(method, {})[s, layer] = 100 * game_accuracy(
                hits, run.class_id, run.difficult, s, n)
    cols = pd.MultiIndex.from_tuples([(s, layer) for s in SUBSETS for layer in layers],
                                     names=["subset", "layer"])
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols)
    return frame.reindex([m for m in METHODS if m in rows])


def center_accuracy(run: PointingHits) -> dict[str, float]:
    """The center baseline's accuracy (%) by subset: all pairs and the difficult subset."""
    n = num_classes(run)
    return {s: 100 * game_accuracy(run.hits[CENTER], run.class_id, run.difficult, s, n)
            for s in SUBSETS}


def best_layers(run: PointingHits, subset: str = "all"):
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


def paired_bootstrap(run: PointingHits, key_a: tuple[str, ...], key_b: tuple[str, ...], subset: str = "all",
                     n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Accuracy difference ``a - b`` (percentage points) with a 95 % bootstrap interval.

    Test scenes are resampled with replacement (all pairs of a scene move
    together, both methods see the same resample); the accuracy is the mean
    over classes, counted by :class:`PointingGame` as in
    :func:`pointing_accuracies`.

    Parameters
    ----------
    key_a, key_b:
        Keys of ``run.hits`` (``(method, layer)`` or :data:`CENTER`).
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    for k in (key_a, key_b):
        if k not in run.hits:
            raise ValueError(f"{k!r} is not in the run's hits; available: {sorted(run.hits)}")
    img = np.asarray(run.image_index)
    cls = np.asarray(run.class_id)
    dif = np.asarray(run.difficult, dtype=bool)
    a = np.asarray(run.hits[key_a], dtype=bool)
    b = np.asarray(run.hits[key_b], dtype=bool)
    keep = dif if subset == "difficult" else np.ones_like(dif)
    images = np.unique(img)
    by_image = {i: np.flatnonzero((img == i) & keep) for i in images}
    n = num_classes(run)

    def acc(h: np.ndarray, idx: np.ndarray) -> float:
        game = PointingGame(n)
        game.record_many(h[idx], cls[idx], dif[idx])
        per_class = game.class_accuracies(subset)
        per_class = per_class[~np.isnan(per_class)]  # the classes with a pair, in class order
        return float(np.mean(per_class)) if per_class.size else float("nan")

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

