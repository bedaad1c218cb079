"""Figures of the real-scene chapters: Grid Saliency S2 (Cityscapes) and S3 (MS COCO).

Label maps are drawn in Cityscapes' official class colours (S2) or in the
shared palette (S3); the method colours and names come from
:mod:`gsutils.plots.common`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gsutils.plots.common import (SERIES_COLOURS, VALUE_CMAP, method_label, overlay_saliency, saliency_colorbar,
                                  show_saliency)

if TYPE_CHECKING:  # the S2 runner imports torch; the figures only read its results
    from gsutils.experiments.grid.street_context import S13Views, ScaledThresholds

__all__ = ["colorize", "plot_context_shares", "plot_gallery", "plot_request_sizes", "plot_s13_panels",
           "plot_scenes", "plot_reliance"]


def colorize(labels: np.ndarray, colours: np.ndarray, ignore: int = 255) -> np.ndarray:
    """``(H, W)`` class ids -> ``(H, W, 3)`` float RGB (ignored pixels black)."""
    lab = np.asarray(labels)
    cols = np.asarray(colours, dtype=np.float64)
    if cols.max() > 1:
        cols = cols / 255.0
    out = np.zeros((*lab.shape, 3))
    ok = lab != ignore
    out[ok] = cols[np.clip(lab[ok], 0, len(cols) - 1)]
    return out


def _rgb(image) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    return np.clip(a.transpose(1, 2, 0) if a.shape[0] == 3 else a, 0, 1)


def plot_scenes(images, labels, preds, colours: np.ndarray, n: int = 3):
    """Rows of frames: image, ground truth, prediction."""
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    fig, axes = plt.subplots(n, 3, figsize=(9, 1.6 * n + 0.4), squeeze=False)
    for i in range(n):
        for ax, im, title in zip(axes[i], (_rgb(images[i]), colorize(labels[i], colours),
                                           colorize(preds[i], colours)), ("image", "ground truth", "prediction")):
            ax.imshow(im, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_request_sizes(sizes: np.ndarray, correct: np.ndarray, thresholds: ScaledThresholds):
    """Fig. S12: histogram of request-mask sizes, correct and erroneous predictions, with the thresholds
    (``thresholds.min_correct``, ``thresholds.min_erroneous``)."""
    import matplotlib.pyplot as plt

    sizes, correct = np.asarray(sizes), np.asarray(correct, dtype=bool)
    fig, ax = plt.subplots(figsize=(10, 3.4), constrained_layout=True)
    bins = np.logspace(0, np.log10(max(2, sizes.max() + 1)), 30)
    ax.hist([sizes[correct], sizes[~correct]], bins=bins, stacked=True, color=SERIES_COLOURS[:2],
            label=[f"correct prediction ({correct.sum()} requests)",
                   f"erroneous prediction ({(~correct).sum()} requests)"])
    for name, value, style in (("correct", thresholds.min_correct, "-"),
                               ("erroneous", thresholds.min_erroneous, "--")):
        ax.axvline(value, color="k", ls=style, lw=1.2, label=f"threshold, {name}: {value} px")
    ax.set_xscale("log")
    ax.set_xlabel("request mask size after 3x3 erosion (px, log scale)", fontsize=9)
    ax.set_ylabel("number of requests", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
    return fig


def plot_s13_panels(views: S13Views, request: np.ndarray, colours: np.ndarray, title: str = ""):
    """Fig. S13: the eight intermediate panels of one explanation.

    ``views``: :func:`gsutils.experiments.grid.street_context.s13_views`'s
    ``input``, ``input_probs``, ``perturbed``, ``perturbed_probs``,
    ``optimised``, ``optimised_probs`` (``(C, H, W)`` / ``(K, H, W)``) and ``map`` ``(H, W)``.
    """
    import matplotlib.pyplot as plt

    panels = [
        ("input image", _rgb(views.input)),
        ("request mask", np.asarray(request, dtype=float)),
        ("prediction", colorize(np.asarray(views.input_probs).argmax(0), colours)),
        ("perturbed, M = 0", _rgb(views.perturbed)),
        ("its prediction", colorize(np.asarray(views.perturbed_probs).argmax(0), colours)),
        ("optimised x'(M*)", _rgb(views.optimised)),
        ("its prediction", colorize(np.asarray(views.optimised_probs).argmax(0), colours)),
        ("saliency map M*", np.asarray(views.map, dtype=float)),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(11, 3.9), constrained_layout=True)
    for ax, (name, im) in zip(axes.flat, panels):
        if name.startswith("saliency"):
            sal = show_saliency(ax, im)
        else:
            ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    saliency_colorbar(fig, sal, axes[1, 3], label="M*", shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _matrix(ax, values: np.ndarray, *, vmax: float, fmt: str = "{:.2f}"):
    """``values`` as an image with the value written in every cell (white on dark cells)."""
    im = ax.imshow(values, cmap=VALUE_CMAP, vmin=0, vmax=vmax, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, fmt.format(v).replace("0.", ".", 1) if 0 <= v < 1 else fmt.format(v), ha="center",
                    va="center", fontsize=8, color="white" if v < 0.55 * vmax else "black")
    return im


def plot_context_shares(grid: np.ndarray, baseline: np.ndarray, request_names: Sequence[str],
                        context_names: Sequence[str], counts: Sequence[int], *, min_share: float = 0.02):
    """Fig. S14: per request class (rows), the mean share of salient context per context class (columns),
    as two matrices, grid saliency above the baseline, on one colour scale.

    ``grid`` / ``baseline``: ``(R, K)`` mean shares. Context classes below
    ``min_share`` for both methods in every request class are left out (so,
    as in the supplement, the rows need not sum to 1).
    """
    import matplotlib.pyplot as plt

    grid, baseline = np.asarray(grid, dtype=float), np.asarray(baseline, dtype=float)
    top = np.nan_to_num(np.maximum(np.nan_to_num(grid), np.nan_to_num(baseline)))
    keep = [k for k in range(len(context_names)) if top[:, k].max() >= min_share] or list(range(len(context_names)))
    r = len(request_names)
    vmax = max(float(top[:, keep].max()), 1e-3)
    fig, axes = plt.subplots(2, 1, figsize=(min(12.0, 0.6 * len(keep) + 3.2), 2 * (0.42 * r + 0.9) + 0.6),
                             squeeze=False, sharex=True, constrained_layout=True)
    for ax, (name, m) in zip(axes[:, 0], ((method_label("grid"), grid), (method_label("baseline") +
                                                                           " (dilated contour)", baseline))):
        im = _matrix(ax, m[:, keep], vmax=vmax)
        ax.set_yticks(range(r), [f"{request_names[i]} (n={counts[i]})" for i in range(r)], fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("request class", fontsize=9)
    axes[-1, 0].set_xticks(range(len(keep)), [context_names[k] for k in keep], rotation=40, ha="right", fontsize=8)
    axes[-1, 0].set_xlabel("context class", fontsize=9)
    cb = fig.colorbar(im, ax=axes[:, 0].tolist(), shrink=0.8, pad=0.02)
    cb.set_label("mean share of the salient context", fontsize=8)
    cb.ax.tick_params(labelsize=8)
    return fig


def plot_gallery(images, requests, maps, titles: Sequence[str], cols: int | None = None, *,
                 missing: Sequence[str] = (), width: float = 11.0):
    """Fig. S15-style gallery: each image with its request outlined (cyan) and its context saliency
    overlaid in the saliency colormap, one colourbar for all (``cols`` panels a row; default up to 3).

    ``missing``: classes the supplement's figure shows that our data has no
    explanation of; they are named in the title.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    cols = max(1, min(3, n) if cols is None else cols)
    rows = int(np.ceil(n / cols))
    h, w = np.asarray(images[0]).shape[-2:] if n else (1, 1)
    panel_w = (width - 1.0) / cols
    fig, axes = plt.subplots(rows, cols, figsize=(width, rows * (panel_w * h / w + 0.45) + 0.5), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat:
        ax.axis("off")
    sal = None
    for ax, im, req, m, t in zip(axes.flat, images, requests, maps, titles):
        ax.axis("on")
        sal = overlay_saliency(ax, im, m, brighten=1.15)
        ax.contour(np.asarray(req, dtype=float), levels=[0.5], colors="cyan", linewidths=1.2)
        ax.set_title(t, fontsize=9)
    if sal is not None:
        saliency_colorbar(fig, sal, axes.ravel().tolist(), label="context saliency M* (cyan: request R)",
                          shrink=0.7)
    if missing:
        fig.suptitle(f"not in our data: no explanation of {', '.join(missing)}", fontsize=9)
    return fig


def plot_reliance(reliance: Mapping[str, Mapping[str, float]], class_names: Sequence[str]):
    """S3: per network (rows) and class (columns), the mean salient-context mass, as a matrix."""
    import matplotlib.pyplot as plt

    nets = list(reliance)
    vals = np.array([[reliance[net].get(c, np.nan) for c in class_names] for net in nets], dtype=float)
    vmax = max(float(np.nanmax(vals)) if np.isfinite(vals).any() else 0.0, 1e-3)
    fig, ax = plt.subplots(figsize=(min(11.0, 1.1 * len(class_names) + 3.5), 0.55 * len(nets) + 1.6),
                           constrained_layout=True)
    im = _matrix(ax, vals, vmax=vmax, fmt="{:.3f}")
    ax.set_xticks(range(len(class_names)), class_names, fontsize=9)
    ax.set_yticks(range(len(nets)), nets, fontsize=9)
    ax.set_xlabel("request class", fontsize=9)
    ax.set_ylabel("network", fontsize=9)
    cb = fig.colorbar(im, ax=ax, pad=0.02)
    cb.set_label("salient context mass\n(mean map value outside R)", fontsize=8)
    cb.ax.tick_params(labelsize=8)
    return fig
