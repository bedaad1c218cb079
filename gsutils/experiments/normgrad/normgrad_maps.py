"""Experiments of the NormGrad supplement on Extract & Aggregate maps (Sec. B and Fig. 7).

* :func:`identity_trick_run`: NormGrad with the virtual identity trick
  (``||x|| ||g||`` at a convolution's output) against NormGrad of the
  convolution's own weights (``||patch(x_in)|| ||g||``) at the layers of
  Table 1, over every (image, present class) pair of the test scenes:
  the Spearman rank correlation of the two maps per pair, and the pointing
  accuracy of each (Rebuffi et al., 2020, Sec. B); typed results:
  :mod:`gsutils.experiments.normgrad.identity_trick_results`.
* :func:`fig7_maps`: every method's map at every VGG16 candidate layer for a
  few test scenes (Fig. 7, drawn by :func:`gsutils.plots.normgrad.plot_fig7`), and :func:`gradcam_energy_by_layer`, the share of
  Grad-CAM's positive mass inside the target's boxes at each layer (typed results:
  :mod:`gsutils.experiments.normgrad.fig7_results`).

Results are cached in the profile's :class:`~gsutils.experiments.common.store.Store`
under a hash of everything that determines them (the classifier's config, the
layers, the methods), so re-running a chapter only loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad.classifier_training import (
    NUM_CLASSES,
    classifier_config,
    test_scenes,
    train_or_load_classifier,
)
from gsutils.experiments.normgrad.fig7_results import Fig7Maps, GradCamEnergy
from gsutils.experiments.normgrad.identity_trick_results import NO_TRICK, TRICK, IdentityTrickRun, TrickLayer
from gsutils.metrics.pointing import SUBSETS, PointingGame, hit_region
from gsutils.models.classifiers import CANDIDATE_LAYERS
from gsutils.profiles import Profile
from gsutils.saliency.extract_aggregate import METHODS, extract_aggregate

#: bump when what these runs compute changes
RESULT_VERSION = 1

#: Table 1's layers: the convolutions whose NormGrad is computed with and without the trick
TRICK_LAYERS: dict[str, tuple[str, ...]] = {
    "vgg16": ("features.2", "features.7", "features.14", "features.21", "features.28"),
    "resnet50": ("layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1"),
}
#: Fig. 7's layers (VGG16's candidate layers: the input and the last ReLU of each block)
FIG7_LAYERS: tuple[str, ...] = CANDIDATE_LAYERS["vgg16"]
#: the number of test scenes Fig. 7 shows
FIG7_IMAGES = 2


def _preceding_conv(layer: str) -> str | None:
    """VGG16: the convolution feeding the ReLU ``features.k`` (``features.k-1``); None for the input."""
    if layer == "input":
        return None
    head, idx = layer.rsplit(".", 1)
    return f"{head}.{int(idx) - 1}"


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b``.

    Ties get their average rank. A row where either map is constant has no
    defined correlation and gives NaN.

    Parameters
    ----------
    a, b:
        ``(P, D)`` arrays (``P`` maps of ``D`` values each).

    Returns
    -------
    numpy.ndarray
        ``(P,)`` correlations in ``[-1, 1]`` (or NaN).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"a and b must both have shape (P, D), got {a.shape} and {b.shape}")
    ra = rankdata(a, axis=1)  # (P, D) average ranks
    rb = rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))  # (P,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


# --------------------------------------------------------------------------------------
# Table 1: the virtual identity trick
# --------------------------------------------------------------------------------------


def identity_trick_config(profile: Profile, arch: str) -> dict[str, Any]:
    """Everything that determines :func:`identity_trick_run`'s result."""
    if arch not in TRICK_LAYERS:
        raise ValueError(f"arch must be one of {tuple(TRICK_LAYERS)}, got {arch!r}")
    return {
        "version": RESULT_VERSION,
        "classifier": classifier_config(profile, arch),
        "layers": list(TRICK_LAYERS[arch]),
        # the stand-in's tolerance scales with its image size (see NormGradSettings)
        "tolerance": int(profile.normgrad.tolerance),
    }


def _identity_trick_compute(profile: Profile, arch: str, progress: bool) -> IdentityTrickRun:
    from tqdm.auto import tqdm

    layers = TRICK_LAYERS[arch]
    methods = (TRICK, NO_TRICK)
    model = train_or_load_classifier(profile, arch, progress=progress)
    device = next(model.parameters()).device
    scenes = test_scenes(profile)
    pairs = scenes.pairs()
    games = {(m, layer): PointingGame(NUM_CLASSES) for m in methods for layer in layers}
    rho: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for sl in tqdm(_batches(len(pairs), int(profile.normgrad.batch_size)), desc=f"identity trick {arch}",
                   disable=not progress, leave=False):
        batch = pairs[sl]
        idx = torch.tensor([p.index for p in batch])
        x = scenes.images[idx].to(device)  # (B, 3, S, S)
        target = torch.tensor([p.class_id for p in batch], device=device)  # (B,)
        maps = extract_aggregate(model, x, target, layers, methods)  # each (B, 1, S, S)
        maps = {k: v.cpu() for k, v in maps.items()}
        for layer in layers:
            a = maps["normgrad", layer].flatten(1).numpy()  # (B, S*S)
            b = maps["normgrad_conv", layer].flatten(1).numpy()
            rho[layer].append(spearman_rows(a, b))
        for j, p in enumerate(batch):
            if p.skip:
                for game in games.values():
                    game.add((0, 0), None, p.class_id, skip=True)
                continue
            gt = scenes.gt_mask(p.index, p.class_id)  # (S, S) bool
            region = hit_region(gt, int(profile.normgrad.tolerance))
            for (m, layer), game in games.items():
                game.add(maps[m, layer][j, 0], gt, p.class_id, difficult=p.difficult, region=region)
    out: dict[str, TrickLayer] = {}
    for layer in layers:
        r = np.concatenate(rho[layer])
        ok = r[np.isfinite(r)]
        out[layer] = TrickLayer(
            spearman_mean=float(ok.mean()) if ok.size else float("nan"),
            spearman_std=float(ok.std()) if ok.size else float("nan"),
            spearman_min=float(ok.min()) if ok.size else float("nan"),
            n_correlated=int(ok.size),
            n_constant=int(r.size - ok.size),
            pointing={m: {s: games[m, layer].accuracy(s) for s in SUBSETS} for m in methods},
            n_pointing_pairs={s: games[methods[0], layer].n_pairs(s) for s in SUBSETS},
        )
    return IdentityTrickRun(arch=arch, n_pairs=len(pairs), layers=out)


def identity_trick_run(profile: Profile, arch: str, *, progress: bool = True) -> IdentityTrickRun:
    """Table 1 for one architecture (cached).

    Parameters
    ----------
    profile:
        A :class:`gsutils.profiles.Profile`; its trained classifier and test
        scenes are used (:mod:`gsutils.experiments.normgrad.classifier_training`).
    arch:
        ``"vgg16"`` or ``"resnet50"``.
    progress:
        Show progress bars.

    Returns
    -------
    IdentityTrickRun
        One :class:`~gsutils.experiments.normgrad.identity_trick_results.TrickLayer`
        per layer of Table 1; correlations in ``[-1, 1]``, accuracies in
        ``[0, 1]`` (NaN for an empty subset). Cached in
        :meth:`IdentityTrickRun.as_dict`'s form.
    """
    config = identity_trick_config(profile, arch)
    return IdentityTrickRun.from_dict(Store(profile.results_dir).get_or_compute(
        "normgrad_identity_trick", config, lambda: _identity_trick_compute(profile, arch, progress).as_dict()))


def identity_trick_table(runs: Sequence[IdentityTrickRun]):
    """Table 1 as a DataFrame: one row per (architecture, layer).

    Columns: Spearman correlation in % (mean and std over pairs), pointing
    accuracy in % with the trick (``normgrad``) and without (``normgrad_conv``)
    for all pairs and the difficult subset, and their differences in
    percentage points.
    """
    import pandas as pd

    rows = []
    for run in runs:
        for layer in TRICK_LAYERS[run.arch]:
            r = run.layers[layer]
            row = {"arch": run.arch, "layer": layer,
                   "spearman %": 100 * r.spearman_mean, "spearman std %": 100 * r.spearman_std}
            for s in SUBSETS:
                row[f"pointing {s}, trick %"] = 100 * r.pointing[TRICK][s]
                row[f"pointing {s}, no trick %"] = 100 * r.pointing[NO_TRICK][s]
                row[f"difference {s} (pp)"] = 100 * r.difference(s)
            rows.append(row)
    return pd.DataFrame(rows)


def pointing_differences(runs: Sequence[IdentityTrickRun]) -> np.ndarray:
    """Absolute pointing-accuracy differences (percentage points) with vs without the trick.

    One value per (architecture, layer, subset) where both accuracies exist.
    """
    diffs = []
    for run in runs:
        for r in run.layers.values():
            for s in SUBSETS:
                d = r.difference(s)
                if np.isfinite(d):
                    diffs.append(abs(100 * d))
    return np.asarray(diffs)


# --------------------------------------------------------------------------------------
# Fig. 7: every method at every layer
# --------------------------------------------------------------------------------------


def fig7_config(profile: Profile, n_images: int) -> dict[str, Any]:
    return {"version": RESULT_VERSION, "classifier": classifier_config(profile, "vgg16"),
            "layers": list(FIG7_LAYERS), "methods": list(METHODS), "n_images": int(n_images)}


def _fig7_compute(profile: Profile, n_images: int, progress: bool) -> dict[str, np.ndarray]:
    model = train_or_load_classifier(profile, "vgg16", progress=progress)
    device = next(model.parameters()).device
    scenes = test_scenes(profile)
    # the first test scenes with at least two classes, explained for their best-scored present class
    multi = [i for i in range(len(scenes)) if int(scenes.labels[i].sum()) >= 2][:n_images]
    if len(multi) < n_images:
        multi = list(range(min(n_images, len(scenes))))
    idx = torch.tensor(multi)
    x = scenes.images[idx].to(device)  # (B, 3, S, S)
    with torch.no_grad():
        logits = model(x).cpu()  # (B, 10)
    present = scenes.labels[idx] > 0.5  # (B, 10)
    target = torch.where(present, logits, torch.full_like(logits, -torch.inf)).argmax(1)  # (B,)
    others = [m for m in METHODS if m != "normgrad_conv"]
    maps = extract_aggregate(model, x, target.to(device), FIG7_LAYERS, others)
    deep = [layer for layer in FIG7_LAYERS if layer != "input"]
    conv_maps = extract_aggregate(model, x, target.to(device), [_preceding_conv(layer) for layer in deep],
                                  ["normgrad_conv"])
    for layer in deep:
        maps["normgrad_conv", layer] = conv_maps["normgrad_conv", _preceding_conv(layer)]
    s = scenes.image_size
    stack = np.full((len(multi), len(METHODS), len(FIG7_LAYERS), *s), np.nan, dtype=np.float32)
    for i, method in enumerate(METHODS):
        for j, layer in enumerate(FIG7_LAYERS):
            if (method, layer) in maps:
                stack[:, i, j] = maps[method, layer][:, 0].cpu().numpy()
    boxes = np.zeros((len(multi), 4, 4), dtype=np.int64) - 1  # up to 4 boxes of the target class
    for k, (i, c) in enumerate(zip(multi, target.tolist())):
        b = scenes.class_boxes(i, c).numpy()[:4]
        boxes[k, : len(b)] = b
    return {"maps": stack, "rgb": scenes.rgb(idx).numpy().astype(np.float32),
            "image_index": np.asarray(multi), "target": target.numpy(), "boxes": boxes,
            "class_names": np.asarray(scenes.class_names)}


def fig7_maps(profile: Profile, *, n_images: int = FIG7_IMAGES, progress: bool = True) -> Fig7Maps:
    """Every method's map at every VGG16 candidate layer for a few test scenes (cached).

    The scenes are the first test scenes holding at least two classes; each
    is explained for its present class with the highest score.
    ``normgrad_conv`` is computed at the convolution that feeds each ReLU
    column (NaN at the input). The maps' rows follow :data:`METHODS`, their
    columns :data:`FIG7_LAYERS`. Cached as the arrays of :meth:`Fig7Maps.to_arrays`.
    """
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be a positive int, got {n_images!r}")
    return Fig7Maps.from_arrays(Store(profile.results_dir).get_or_compute(
        "normgrad_fig7", fig7_config(profile, n_images), lambda: _fig7_compute(profile, n_images, progress),
        fmt="npz"))


def gradcam_energy_config(profile: Profile) -> dict[str, Any]:
    return {"version": RESULT_VERSION, "classifier": classifier_config(profile, "vgg16"),
            "layers": list(FIG7_LAYERS)}


def _gradcam_energy_compute(profile: Profile, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    model = train_or_load_classifier(profile, "vgg16", progress=progress)
    device = next(model.parameters()).device
    scenes = test_scenes(profile)
    pairs = [p for p in scenes.pairs() if not p.skip]
    energy = {layer: [] for layer in FIG7_LAYERS}
    area = []
    for sl in tqdm(_batches(len(pairs), int(profile.normgrad.batch_size)), desc="Grad-CAM energy",
                   disable=not progress, leave=False):
        batch = pairs[sl]
        x = scenes.images[torch.tensor([p.index for p in batch])].to(device)  # (B, 3, S, S)
        target = torch.tensor([p.class_id for p in batch], device=device)
        maps = extract_aggregate(model, x, target, FIG7_LAYERS, ["grad_cam"])
        gts = torch.stack([scenes.gt_mask(p.index, p.class_id) for p in batch])  # (B, S, S) bool
        area.extend(gts.flatten(1).float().mean(1).tolist())
        for layer in FIG7_LAYERS:
            m = maps["grad_cam", layer][:, 0].cpu().double()  # (B, S, S), non-negative
            total = m.flatten(1).sum(1)
            inside = (m * gts).flatten(1).sum(1)
            share = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, float("nan")))
            energy[layer].extend(share.tolist())
    return {"layers": {layer: float(np.nanmean(v)) for layer, v in energy.items()},
            "n_zero_maps": {layer: int(np.isnan(v).sum()) for layer, v in energy.items()},
            "box_area": float(np.mean(area)), "n_pairs": len(pairs)}


def gradcam_energy_by_layer(profile: Profile, *, progress: bool = True) -> GradCamEnergy:
    """Share of Grad-CAM's mass inside the target's boxes, per VGG16 candidate layer (cached).

    For each (test scene, present class) pair, the Grad-CAM map (upsampled to
    the image) is summed inside the union of the class's boxes and divided by
    its total; the result is the mean over pairs (maps that are zero
    everywhere are left out and counted). ``box_area`` is the mean share of
    the image the boxes cover: what a uniform map would score. Cached in
    :meth:`GradCamEnergy.to_json`'s form.
    """
    return GradCamEnergy.from_json(Store(profile.results_dir).get_or_compute(
        "normgrad_gradcam_energy", gradcam_energy_config(profile),
        lambda: _gradcam_energy_compute(profile, progress)))


__all__ = [
    "TRICK_LAYERS",
    "FIG7_LAYERS",
    "FIG7_IMAGES",
    "spearman_rows",
    "identity_trick_config",
    "identity_trick_run",
    "identity_trick_table",
    "pointing_differences",
    "fig7_maps",
    "gradcam_energy_by_layer",
]
