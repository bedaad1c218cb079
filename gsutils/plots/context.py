"""Figures in the layout of the papers' supplements (matplotlib only).

Each function returns a :class:`matplotlib.figure.Figure`; chapters display it
and may save it. Functions are grouped by the chapter that uses them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gsutils.plots.common import (BIAS_COLOUR, VALUE_CMAP, class_colours, method_colour, method_label, overlay_saliency,
                                  saliency_colorbar, show_saliency)

if TYPE_CHECKING:
    from gsutils.experiments.grid.context_evidence import GalleryViews

# --------------------------------------------------------------------------- grid saliency: S1.3/S1.4

def segmentation_rgb(probs: np.ndarray) -> np.ndarray:
    """An RGB image ``(H, W, 3)`` of softmax scores ``(K, H, W)``: the argmax class's
    colour, darkened by its score (confident pixels bright, uncertain ones dark)."""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (K, H, W), got shape {probs.shape}")
    k = probs.shape[0]
    palette = class_colours(k)
    arg = probs.argmax(0)  # (H, W)
    conf = probs.max(0)  # (H, W)
    return palette[arg] * (0.25 + 0.75 * conf[..., None])  # (H, W, 3)


def _cell_rows(textures: Sequence[int], bias_digits: Sequence[int]) -> list[tuple[int | None, int, int]]:
    """Rows of the S1.3/S1.4 figures: ``(texture index or None for the mean, bias-digit index, digit)``."""
    rows: list[tuple[int | None, int, int]] = [(t, di, d) for t in range(len(textures))
                                               for di, d in enumerate(bias_digits)]
    return rows + [(None, di, d) for di, d in enumerate(bias_digits)]


def _strip(ax, panel, rows, labels, *, cmap, vmin, vmax, bias_rows, n_mean):
    """One column of Fig. S4/S5: a row per network (texture, digit) and the mean rows, cells written."""
    import matplotlib.pyplot as plt

    im = ax.imshow(panel, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    mid = (vmin + vmax) / 2
    for (i, j), v in np.ndenumerate(panel):
        if np.isfinite(v):
            txt = f"{v:+.2f}" if vmin < 0 else (f"{v:.2f}"[1:] if 0 <= v < 1 else f"{v:.1f}")
            dark = (abs(v) > 0.5 * vmax) if vmin < 0 else (v < mid)
            ax.text(j, i, txt.replace("+0.", "+.").replace("-0.", "-."), ha="center", va="center",
                    fontsize=8, color="white" if dark else "black")
    for i, (_, _, d) in enumerate(rows):  # frame the cells where a bias exists
        ax.add_patch(plt.Rectangle((d - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.8))
    ax.axhline(len(rows) - n_mean - 0.5, color="white", linewidth=3)
    ax.set_xticks(range(10))
    if bias_rows:  # the first column names the rows; the others share them
        ax.set_yticks(range(len(rows)), labels)
    else:
        ax.tick_params(labelleft=False)
    ax.tick_params(labelsize=9)
    ax.set_xlabel("test digit", fontsize=9)
    return im


def plot_cbd_matrices(
    matrices: Mapping[str, np.ndarray],
    bias_digits: Sequence[int],
    textures: Sequence[int],
    *,
    iou_drop: np.ndarray | None = None,
    title: str | None = None,
):
    """Fig. S4/S5 in the supplement's layout: (a) the IoU drop, then one column per method.

    Each column holds one row per network (bias texture t, bias digit d), then
    one row per bias digit with the mean over textures; one cell per test
    digit; the cells of the bias digit framed in red. The methods' columns
    share one CBD colour scale (0 to the largest value), so that columns can be
    compared; the IoU drop has its own diverging scale.

    Parameters
    ----------
    matrices:
        ``method -> (textures, bias digits, 10)`` mean CBD.
    bias_digits, textures:
        Labels of the matrices' first two axes.
    iou_drop:
        ``(textures, bias digits, 10)``: the biased network's IoU on unbiased test data minus
        N's (column a; :func:`gsutils.experiments.grid.bias_results.iou_drop_by_texture`).
    title:
        Figure title.
    """
    import matplotlib.pyplot as plt

    methods = list(matrices)
    rows = _cell_rows(textures, bias_digits)
    labels = [f"t{textures[t]}, d{d}" if t is not None else f"mean, d{d}" for t, _, d in rows]

    def stack(mat):
        mat = np.asarray(mat, dtype=np.float64)  # (T, D, 10)
        with warnings.catch_warnings():  # an all-NaN cell stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(mat, axis=0)
        return np.stack([mat[t, di] if t is not None else mean[di] for t, di, _ in rows])  # (rows, 10)

    panels = [(f"{chr(97 + k + (iou_drop is not None))}) {method_label(m)}", stack(matrices[m])) for k, m in
              enumerate(methods)]
    cbd_max = max([float(np.nanmax(p)) for _, p in panels if np.isfinite(p).any()] + [1e-3])
    n = len(panels) + (iou_drop is not None)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n + 1.2, 0.42 * len(rows) + 1.6), squeeze=False,
                             constrained_layout=True, sharey=True)
    axes = axes[0]
    k0 = 0
    if iou_drop is not None:
        drop = stack(iou_drop)
        lim = max(float(np.nanmax(np.abs(drop))) if np.isfinite(drop).any() else 0.0, 1e-3)
        im = _strip(axes[0], drop, rows, labels, cmap="RdBu", vmin=-lim, vmax=lim, bias_rows=True,
                    n_mean=len(bias_digits))
        axes[0].set_title("a) IoU drop vs N", fontsize=10)
        fig.colorbar(im, ax=axes[0], location="bottom", shrink=0.9, pad=0.02, label="IoU - IoU of N")
        k0 = 1
    for k, (name, panel) in enumerate(panels):
        ax = axes[k0 + k]
        im = _strip(ax, panel, rows, labels, cmap=VALUE_CMAP, vmin=0.0, vmax=cbd_max, bias_rows=(k0 + k == 0),
                    n_mean=len(bias_digits))
        ax.set_title(name, fontsize=10)
    fig.colorbar(im, ax=list(axes[k0:]), location="bottom", shrink=0.5, pad=0.02, label="CBD")
    axes[0].set_ylabel("network: bias texture t, digit d", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_cbl(
    cbl: Mapping[str, np.ndarray],
    chance: np.ndarray,
    bias_digits: Sequence[int],
    textures: Sequence[int],
    *,
    excluded: Mapping[str, np.ndarray] | None = None,
    poster: Mapping[str, float] | None = None,
    title: str | None = None,
    ncols: int | None = None,
    width: float = 11.0,
):
    """CBL in the layout of Fig. S6/S7: one panel per method (a) VG, b) SG, ...), one y scale.

    In each panel a bar per network (bias texture t, bias digit d), chance as a
    dashed tick over each bar, and a last, hatched bar with the mean, the
    poster's value as a black tick on it.

    Parameters
    ----------
    cbl:
        ``method -> (textures, bias digits)`` mean CBL, empty maps counted as chance.
    chance:
        ``(textures, bias digits)`` CBL of a uniform map.
    excluded:
        ``method -> (textures, bias digits)`` mean CBL with empty maps left out;
        drawn as white diamonds on the bars (missing where every map was empty).
    poster:
        ``method -> value`` read off the poster's figure (drawn as a black tick on the mean bar).
    ncols:
        Panels per row; default: all in one row (as the supplement's columns) up
        to 8 networks, two columns beyond.
    width:
        Figure width in inches (11: a page width).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    methods = list(cbl)
    chance = np.asarray(chance, dtype=np.float64)
    cells = [(t, di, d) for t, di, d in _cell_rows(textures, bias_digits) if t is not None]
    names = [f"t{textures[t]}\nd{d}" for t, _, d in cells] + ["mean"]
    with warnings.catch_warnings():  # a method whose every map was empty has no excluded mean
        warnings.simplefilter("ignore", RuntimeWarning)

        def column(values):
            v = np.asarray(values, dtype=np.float64)
            return np.array([v[t, di] for t, di, _ in cells] + [np.nanmean(v)])

        ch = column(chance)
        vals = {m: column(cbl[m]) for m in methods}
        exc = {m: column(excluded[m]) for m in methods} if excluded else {}
    n = len(names)
    ncols = (len(methods) if n <= 9 else 2) if ncols is None else ncols
    ncols = max(1, min(ncols, len(methods)))
    nrows = -(-len(methods) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 2.9 * nrows + 0.9), squeeze=False, sharey=True,
                             constrained_layout=True)
    x = np.arange(n)
    for k, ax in enumerate(axes.flat):
        if k >= len(methods):
            ax.set_visible(False)
            continue
        m = methods[k]
        colour = method_colour(m, k)
        bars = ax.bar(x, vals[m], 0.7, color=colour, edgecolor=colour)
        bars[-1].set_hatch("///")
        bars[-1].set_facecolor("white")
        ax.hlines(ch, x - 0.42, x + 0.42, colors="k", linestyles="--", linewidth=1)
        if exc:
            ok = np.isfinite(exc[m])
            ax.plot(x[ok], exc[m][ok], marker="D", markersize=5, color="white", markeredgecolor="k",
                    linestyle="none")
        if poster and m in poster and poster[m] is not None and np.isfinite(poster[m]):
            ax.hlines(poster[m], n - 1 - 0.42, n - 1 + 0.42, colors="k", linewidth=3)
        ax.axvline(n - 1.5, color="0.6", linewidth=0.8)
        ax.set_title(f"{chr(97 + k)}) {method_label(m)}", fontsize=10)
        ax.set_xticks(x, names, fontsize=8)
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel("CBL", fontsize=9)
        if k // ncols == nrows - 1 or k + ncols >= len(methods):
            ax.set_xlabel("network: bias texture t, bias digit d", fontsize=8)
    handles = [Patch(facecolor="0.5", label="CBL (empty maps count as chance)"),
               Patch(facecolor="white", edgecolor="0.3", hatch="///", label="mean over networks"),
               Line2D([], [], color="k", ls="--", lw=1, label="chance (uniform map)")]
    if exc:
        handles.append(Line2D([], [], marker="D", color="white", markeredgecolor="k", ls="none", markersize=5,
                              label="empty maps excluded"))
    if poster:
        handles.append(Line2D([], [], color="k", lw=3, label="poster (mean)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_saliency_gallery(views: GalleryViews | Mapping[str, np.ndarray], *,
                          row_labels: Sequence[str] | None = None):
    """Grid-saliency panels in the layout of Fig. S13, one row per image.

    Columns: input, softmax on the input, perturbed context (``M = 0``), its
    softmax, optimised image ``x'(M*)``, its softmax, the saliency map (over
    the input). ``views``: a :class:`~gsutils.experiments.grid.context_evidence.GalleryViews`
    (:func:`gsutils.experiments.grid.context_evidence.gallery_views`), or the
    arrays of :func:`gsutils.saliency.grid.saliency_views` (as numpy) by name.
    """
    import matplotlib.pyplot as plt

    if not isinstance(views, Mapping):
        views = views.to_arrays()
    n = len(views["input"])
    cols = [("input", "input"), ("input_probs", "softmax(input)"),
            ("perturbed", "perturbed context"), ("perturbed_probs", "softmax(perturbed)"),
            ("optimised", "optimised image"), ("optimised_probs", "softmax(optimised)"),
            ("map", "saliency map")]
    fig, axes = plt.subplots(n, len(cols), figsize=(1.5 * len(cols) + 0.9, 1.5 * n + 0.8), squeeze=False,
                             constrained_layout=True)
    for i in range(n):
        for j, (key, name) in enumerate(cols):
            ax = axes[i, j]
            v = np.asarray(views[key][i])
            if key.endswith("probs"):
                ax.imshow(segmentation_rgb(v), interpolation="nearest")
            elif key == "map":
                sal = overlay_saliency(ax, np.asarray(views["input"][i]), v)
            else:
                ax.imshow(v[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=9)
    k = np.asarray(views["input_probs"]).shape[1]
    from matplotlib.patches import Patch

    names = [str(j) for j in range(min(k, 10))] + (["background"] if k == 11 else [])
    fig.legend([Patch(color=class_colours(k)[j]) for j in range(len(names))], names, loc="outside lower center",
               ncol=len(names), fontsize=8, title="class colours (darker = lower softmax score)",
               title_fontsize=8)
    saliency_colorbar(fig, sal, axes[:, -1].tolist(), label="saliency M", shrink=0.9)
    return fig


def plot_method_maps(
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    biased: np.ndarray | None = None,
    *,
    row_labels: Sequence[str] | None = None,
):
    """Input and each method's context map side by side, one row per image.

    ``images`` ``(n, 1, H, W)``; ``maps`` ``method -> (n, H, W)``; ``biased``
    ``(n, H, W)`` outlines the part of the context holding the bias texture.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    methods = list(maps)
    fig, axes = plt.subplots(n, len(methods) + 1, figsize=(1.7 * (len(methods) + 1), 1.75 * n + 0.3),
                             squeeze=False, constrained_layout=True)
    for i in range(n):
        axes[i, 0].imshow(np.asarray(images[i])[0], cmap="gray", vmin=0, vmax=1)
        if biased is not None and np.asarray(biased[i]).any():
            axes[i, 0].contour(np.asarray(biased[i]).astype(float), levels=[0.5], colors=BIAS_COLOUR,
                               linewidths=0.8)
        for j, m in enumerate(methods):
            v = np.asarray(maps[m][i], dtype=np.float64)
            sal = show_saliency(axes[i, j + 1], v / max(float(v.max()), 1e-6))
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=9)
    axes[0, 0].set_title("input (bias part in red)", fontsize=9)
    for j, m in enumerate(methods):
        axes[0, j + 1].set_title(method_label(m), fontsize=9)
    if methods:
        saliency_colorbar(fig, sal, axes[:, 1:].ravel().tolist(), label="context saliency (each map / its max)",
                          shrink=0.8)
    return fig
