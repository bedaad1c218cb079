"""Figures in the layout of the papers' supplements (matplotlib only).

Each function returns a :class:`matplotlib.figure.Figure`; chapters display it
and may save it. Functions are grouped by the chapter that uses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# --------------------------------------------------------------------------- grid saliency: S1.3/S1.4

#: colours of the 11 toy classes (digits 0-9 from tab10, background light grey)
_CLASS_RGB = np.array(
    [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
     (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127),
     (225, 225, 225)], dtype=np.float64) / 255.0

_METHOD_LABELS = {"vg": "VG", "sg": "SG", "ig": "IG", "grid": "Grid saliency"}


def _label(method: str) -> str:
    return _METHOD_LABELS.get(method, method)


def segmentation_rgb(probs: np.ndarray) -> np.ndarray:
    """An RGB image ``(H, W, 3)`` of softmax scores ``(K, H, W)``: the argmax class's
    colour, darkened by its score (confident pixels bright, uncertain ones dark)."""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (K, H, W), got shape {probs.shape}")
    k = probs.shape[0]
    palette = _CLASS_RGB if k <= len(_CLASS_RGB) else np.vstack(
        [_CLASS_RGB, np.random.default_rng(0).random((k - len(_CLASS_RGB), 3))])
    arg = probs.argmax(0)  # (H, W)
    conf = probs.max(0)  # (H, W)
    return palette[arg] * (0.25 + 0.75 * conf[..., None])  # (H, W, 3)


def plot_cbd_matrices(
    matrices: Mapping[str, np.ndarray],
    bias_digits: Sequence[int],
    textures: Sequence[int],
    *,
    title: str | None = None,
):
    """CBD matrices in the layout of Fig. S4/S5: one row per method, one column per
    bias texture plus their average; each panel bias digit (rows) x test digit
    (columns), the cells of the bias digit framed in red.

    Parameters
    ----------
    matrices:
        ``method -> (textures, bias digits, 10)`` mean CBD.
    bias_digits, textures:
        Labels of the matrices' first two axes.
    title:
        Figure title.
    """
    import matplotlib.pyplot as plt

    methods = list(matrices)
    n_cols = len(textures) + 1
    fig, axes = plt.subplots(len(methods), n_cols, figsize=(2.9 * n_cols + 0.8, 0.55 * len(bias_digits) * len(methods) + 1.3 * len(methods)),
                             squeeze=False, constrained_layout=True)
    for i, method in enumerate(methods):
        mat = np.asarray(matrices[method], dtype=np.float64)  # (T, D, 10)
        panels = [mat[t] for t in range(len(textures))] + [np.nanmean(mat, axis=0)]
        vmax = max(float(np.nanmax(mat)) if np.isfinite(mat).any() else 0.0, 1e-3)
        for j, panel in enumerate(panels):
            ax = axes[i, j]
            im = ax.imshow(panel, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
            for (di, tj), v in np.ndenumerate(panel):
                if np.isfinite(v):
                    ax.text(tj, di, f"{v:.2f}"[1:] if 0 <= v < 1 else f"{v:.1f}", ha="center",
                            va="center", fontsize=6.5,
                            color="black" if v > 0.6 * vmax else "white")
            for di, d in enumerate(bias_digits):  # frame the cells where a bias exists
                ax.add_patch(plt.Rectangle((d - 0.5, di - 0.5), 1, 1, fill=False, edgecolor="red",
                                           linewidth=1.5))
            ax.set_xticks(range(10))
            ax.set_yticks(range(len(bias_digits)), [str(d) for d in bias_digits])
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title("average" if j == len(textures) else f"bias texture {textures[j]}",
                             fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{_label(method)}\nbias digit", fontsize=9)
            if i == len(methods) - 1:
                ax.set_xlabel("test digit", fontsize=8)
        fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.9, pad=0.01, label="CBD")
    if title:
        fig.suptitle(title)
    return fig


def plot_cbl(
    cbl: Mapping[str, np.ndarray],
    chance: np.ndarray,
    bias_digits: Sequence[int],
    textures: Sequence[int],
    *,
    poster: Mapping[str, float] | None = None,
    title: str | None = None,
):
    """CBL in the layout of Fig. S6/S7: per bias texture, grouped bars per bias digit
    (one bar per method) with chance as a dashed line; a last panel with the mean
    per method beside the poster's values.

    Parameters
    ----------
    cbl:
        ``method -> (textures, bias digits)`` mean CBL.
    chance:
        ``(textures, bias digits)`` CBL of a uniform map.
    poster:
        ``method -> value`` read off the poster's figure (drawn as black ticks).
    """
    import matplotlib.pyplot as plt

    methods = list(cbl)
    n_t = len(textures)
    fig, axes = plt.subplots(1, n_t + 1, figsize=(max(3.2, 0.75 * len(bias_digits) * len(methods) / 2.5) * n_t + 3.0, 3.2),
                             squeeze=False, constrained_layout=True,
                             gridspec_kw={"width_ratios": [max(1.0, len(bias_digits) / 2)] * n_t + [1.0]})
    axes = axes[0]
    width = 0.8 / len(methods)
    colours = plt.get_cmap("tab10")
    x = np.arange(len(bias_digits))
    for t in range(n_t):
        ax = axes[t]
        for m, method in enumerate(methods):
            ax.bar(x + (m - (len(methods) - 1) / 2) * width, np.asarray(cbl[method])[t], width,
                   color=colours(m), label=_label(method))
        for di in range(len(bias_digits)):
            ax.hlines(np.asarray(chance)[t, di], di - 0.45, di + 0.45, colors="k", linestyles="--",
                      linewidth=1)
        ax.set_xticks(x, [str(d) for d in bias_digits])
        ax.set_xlabel("bias digit")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"bias texture {textures[t]}", fontsize=9)
        if t == 0:
            ax.set_ylabel("CBL")
    ax = axes[-1]
    means = [float(np.nanmean(cbl[m])) for m in methods]
    ax.bar(np.arange(len(methods)), means, 0.7, color=[colours(m) for m in range(len(methods))])
    if poster:
        for m, method in enumerate(methods):
            if method in poster:
                ax.hlines(poster[method], m - 0.35, m + 0.35, colors="k", linewidth=2,
                          label="poster" if m == 0 else None)
    ax.axhline(float(np.nanmean(chance)), color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(np.arange(len(methods)), [_label(m).replace("Grid saliency", "Grid") for m in methods])
    ax.set_ylim(0, 1.05)
    ax.set_title("mean", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    h2, l2 = ax.get_legend_handles_labels()
    fig.legend(handles + h2, labels + l2, loc="outside right upper", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_saliency_gallery(views: Mapping[str, np.ndarray], *, row_labels: Sequence[str] | None = None):
    """Grid-saliency panels in the layout of Fig. S13, one row per image.

    Columns: input, softmax on the input, perturbed context (``M = 0``), its
    softmax, optimised image ``x'(M*)``, its softmax, the saliency map (over
    the input). ``views`` holds the arrays of
    :func:`gsutils.saliency.grid.saliency_views` (as numpy).
    """
    import matplotlib.pyplot as plt

    n = len(views["input"])
    cols = [("input", "input"), ("input_probs", "softmax(input)"),
            ("perturbed", "perturbed context"), ("perturbed_probs", "softmax(perturbed)"),
            ("optimised", "optimised image"), ("optimised_probs", "softmax(optimised)"),
            ("map", "saliency map")]
    fig, axes = plt.subplots(n, len(cols), figsize=(1.55 * len(cols), 1.6 * n + 0.3), squeeze=False,
                             constrained_layout=True)
    for i in range(n):
        for j, (key, name) in enumerate(cols):
            ax = axes[i, j]
            v = np.asarray(views[key][i])
            if key.endswith("probs"):
                ax.imshow(segmentation_rgb(v), interpolation="nearest")
            elif key == "map":
                ax.imshow(np.asarray(views["input"][i])[0], cmap="gray", vmin=0, vmax=1)
                ax.imshow(v, cmap="jet", vmin=0, vmax=1, alpha=0.5 * (v > 0) + 0.0,
                          interpolation="nearest")
            else:
                ax.imshow(v[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    k = np.asarray(views["input_probs"]).shape[1]
    from matplotlib.patches import Patch

    names = [str(j) for j in range(min(k, 10))] + (["background"] if k == 11 else [])
    fig.legend([Patch(color=_CLASS_RGB[j]) for j in range(len(names))], names, loc="outside lower center",
               ncol=len(names), fontsize=7, title="class colours (darker = lower softmax score)",
               title_fontsize=7)
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
            axes[i, 0].contour(np.asarray(biased[i]).astype(float), levels=[0.5], colors="r",
                               linewidths=0.8)
        for j, m in enumerate(methods):
            v = np.asarray(maps[m][i])
            axes[i, j + 1].imshow(v, cmap="magma", vmin=0, vmax=max(float(v.max()), 1e-6))
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    axes[0, 0].set_title("input (bias part in red)", fontsize=8)
    for j, m in enumerate(methods):
        axes[0, j + 1].set_title(_label(m), fontsize=8)
    return fig
