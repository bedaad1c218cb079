"""Figures of the real-scene chapters: Grid Saliency S2 (Cityscapes) and S3 (MS COCO).

Label maps are drawn in Cityscapes' official class colours (S2) or in the
shared palette (S3); the method colours and names come from
:mod:`gsutils.plots.common`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gsutils.plots.common import REFERENCE_COLOUR, class_colours, method_label

__all__ = ["colorize", "plot_context_shares", "plot_gallery", "plot_request_sizes", "plot_s13_panels",
           "plot_scenes", "plot_reliance"]

_GRID_COLOUR = "#1f77b4"


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


def plot_request_sizes(sizes: np.ndarray, correct: np.ndarray, thresholds: Mapping[str, int]):
    """Fig. S12: histogram of request-mask sizes, correct and erroneous predictions, with the thresholds."""
    import matplotlib.pyplot as plt

    sizes, correct = np.asarray(sizes), np.asarray(correct, dtype=bool)
    fig, ax = plt.subplots(figsize=(6, 3))
    bins = np.logspace(0, np.log10(max(2, sizes.max() + 1)), 30)
    ax.hist([sizes[correct], sizes[~correct]], bins=bins, stacked=True, color=[_GRID_COLOUR, "#ff7f0e"],
            label=[f"correct ({correct.sum()})", f"erroneous ({(~correct).sum()})"])
    for key, style in (("min_correct", "-"), ("min_erroneous", "--")):
        ax.axvline(thresholds[key], color=REFERENCE_COLOUR, ls=style, lw=1,
                   label=f"{key.replace('_', ' ')}: {thresholds[key]} px")
    ax.set_xscale("log")
    ax.set_xlabel("request mask size after 3x3 erosion (px)")
    ax.set_ylabel("requests")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_s13_panels(views: Mapping[str, np.ndarray], request: np.ndarray, colours: np.ndarray, title: str = ""):
    """Fig. S13: the eight intermediate panels of one explanation.

    ``views``: ``input``, ``input_probs``, ``perturbed``, ``perturbed_probs``,
    ``optimised``, ``optimised_probs`` (``(C, H, W)`` / ``(K, H, W)``) and ``map`` ``(H, W)``.
    """
    import matplotlib.pyplot as plt

    panels = [
        ("input image", _rgb(views["input"])),
        ("request mask", np.asarray(request, dtype=float)),
        ("prediction", colorize(np.asarray(views["input_probs"]).argmax(0), colours)),
        ("perturbed, M = 0", _rgb(views["perturbed"])),
        ("its prediction", colorize(np.asarray(views["perturbed_probs"]).argmax(0), colours)),
        ("optimised x'(M*)", _rgb(views["optimised"])),
        ("its prediction", colorize(np.asarray(views["optimised_probs"]).argmax(0), colours)),
        ("saliency map M*", np.asarray(views["map"], dtype=float)),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(11, 3.9))
    for ax, (name, im) in zip(axes.flat, panels):
        ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_context_shares(grid: np.ndarray, baseline: np.ndarray, request_names: Sequence[str],
                        context_names: Sequence[str], counts: Sequence[int], *, min_share: float = 0.02):
    """Fig. S14: per request class, the mean share of salient context per context class, grid vs baseline.

    ``grid`` / ``baseline``: ``(R, K)`` mean shares. Context classes below
    ``min_share`` for both methods in every request class are left out.
    """
    import matplotlib.pyplot as plt

    grid, baseline = np.nan_to_num(np.asarray(grid)), np.nan_to_num(np.asarray(baseline))
    keep = [k for k in range(len(context_names)) if max(grid[:, k].max(), baseline[:, k].max()) >= min_share]
    r = len(request_names)
    fig, axes = plt.subplots(r, 1, figsize=(0.45 * len(keep) + 2.5, 1.5 * r + 0.6), squeeze=False, sharex=True)
    x = np.arange(len(keep))
    for i, ax in enumerate(axes[:, 0]):
        ax.bar(x - 0.2, grid[i, keep], 0.4, color=_GRID_COLOUR, label=method_label("grid"))
        ax.bar(x + 0.2, baseline[i, keep], 0.4, color=REFERENCE_COLOUR, label=method_label("baseline"))
        ax.set_ylabel(f"{request_names[i]}\n(n={counts[i]})", fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=2, loc="upper right")
    axes[-1, 0].set_xticks(x)
    axes[-1, 0].set_xticklabels([context_names[k] for k in keep], rotation=45, ha="right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_gallery(images, requests, maps, titles: Sequence[str], cols: int | None = None):
    """Fig. S15-style gallery: each image with its request outlined and its context saliency overlaid
    (``cols`` panels a row; default up to 4)."""
    import matplotlib.pyplot as plt

    n = len(images)
    cols = min(4, n) if cols is None else cols
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, im, req, m, t in zip(axes.flat, images, requests, maps, titles):
        ax.imshow(_rgb(im) * 0.6, interpolation="nearest")
        ax.imshow(np.asarray(m, dtype=float), cmap="inferno", alpha=0.55, vmin=0, vmax=1)
        ax.contour(np.asarray(req, dtype=float), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(t, fontsize=8)
    fig.tight_layout()
    return fig


def plot_reliance(reliance: Mapping[str, Mapping[str, float]], class_names: Sequence[str]):
    """S3: per class, each network's mean salient-context mass (grouped bars)."""
    import matplotlib.pyplot as plt

    nets = list(reliance)
    colours = class_colours(len(nets) + 2)[1:]
    x = np.arange(len(class_names))
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 3))
    w = 0.8 / len(nets)
    for j, net in enumerate(nets):
        ax.bar(x + (j - (len(nets) - 1) / 2) * w, [reliance[net].get(c, np.nan) for c in class_names], w,
               color=colours[j], label=net)
    ax.set_xticks(x)
    ax.set_xticklabels(class_names, fontsize=8)
    ax.set_ylabel("salient context mass\n(mean map value outside R)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
