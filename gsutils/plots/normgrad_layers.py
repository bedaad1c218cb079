"""Figures of NormGrad sections C, D and E (layer combination, meta-saliency, randomisation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gsutils.plots.common import (REFERENCE_COLOUR, layer_label, method_colour, method_label, normalise_map,
                                  saliency_colorbar, show_saliency)

if TYPE_CHECKING:
    from gsutils.experiments.normgrad.meta_saliency import MetaExamples
    from gsutils.experiments.normgrad.pointing_results import LayerWeights
    from gsutils.experiments.normgrad.randomisation import RandomisationRun

#: one colour per weighting of Fig. 1 / Table 3
WEIGHTING_COLOURS = {"accuracy": "#1f77b4", "spread": "#ff7f0e", "linear": "#2ca02c", "uniform": REFERENCE_COLOUR}
WEIGHTING_LABELS = {"accuracy": "accuracy (probe mAP)", "spread": "feature spread", "linear": "linear",
                    "uniform": "uniform"}


def plot_fig1_weights(weights: Sequence[LayerWeights]):
    """Fig. 1: the normalised weight of each layer under each weighting, one panel per architecture."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(weights), figsize=(4.6 * len(weights), 3.2), squeeze=False)
    for ax, w in zip(axes[0], weights):
        layers = w.layers
        x = np.arange(len(layers))
        for k in ("accuracy", "spread", "linear", "uniform"):
            v = np.asarray(w.weighting(k), dtype=float)
            ax.plot(x, v / v.sum(), marker="o", color=WEIGHTING_COLOURS[k], label=WEIGHTING_LABELS[k],
                    ls="-" if k in ("accuracy", "spread") else ":")
        ax.set_xticks(x, [layer_label(v, w.arch) for v in layers], rotation=30, ha="right", fontsize=8)
        ax.set_title(w.arch)
        ax.set_ylabel("normalised weight $\\tilde w_l$")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_raw_measures(weights: Sequence[LayerWeights]):
    """The raw probe mAP and feature spread per layer (the measures behind Fig. 1)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3), squeeze=False)
    for k, ax in zip(("accuracy", "spread"), axes[0]):
        for w, ls in zip(weights, ("-", "--")):
            ax.plot(np.arange(len(w.layers)), w.weighting(k), marker="o", ls=ls, color=WEIGHTING_COLOURS[k],
                    label=w.arch)
        n = max(len(w.layers) for w in weights)
        ax.set_xticks(np.arange(n), [str(i + 1) for i in range(n)])
        ax.set_xlabel("combined layer (1 = shallowest)")
        ax.set_title({"accuracy": "linear-probe test mAP", "spread": "feature spread"}[k])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_table3_gains(tables: dict[str, Any]):
    """Table 3 as bars: gain over the best single layer (points), per combination, all and difficult."""
    import matplotlib.pyplot as plt

    archs = list(tables)
    fig, axes = plt.subplots(len(archs), 2, figsize=(11, 3.2 * len(archs)), squeeze=False)
    for r, arch in enumerate(archs):
        t = tables[arch]
        for c, subset in enumerate(("all", "difficult")):
            ax = axes[r][c]
            labels, vals, cols = [], [], []
            for (method, mode, weighting), row in t.iterrows():
                labels.append(f"{method_label(method)} {'+' if mode == 'sum' else 'x'} {weighting}")
                vals.append(row[f"gain {subset}"])
                cols.append(WEIGHTING_COLOURS[weighting])
            y = np.arange(len(vals))
            ax.barh(y, vals, color=cols)
            if subset == "all" and "low" in t.columns:
                ax.errorbar(vals, y, xerr=[np.asarray(vals) - t["low"].to_numpy(), t["high"].to_numpy() - vals],
                            fmt="none", ecolor="k", lw=0.8)
            ax.axvline(0, color="k", lw=0.8)
            ax.set_yticks(y, labels, fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{arch}, {subset} pairs: gain over the best single layer (points)", fontsize=9)
    fig.tight_layout()
    return fig


def _show(ax, m: np.ndarray, title: str = ""):
    """A map scaled to ``[0, 1]`` by its own range, in the saliency colormap; returns the mappable."""
    im = show_saliency(ax, normalise_map(m))
    if title:
        ax.set_title(title, fontsize=8)
    return im


def _panel_legend(ax, ncols: int = 1) -> None:
    """The panel's own legend, below it (its labels name this panel's network's layers)."""
    ax.legend(fontsize=8, ncols=ncols, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)


def plot_fig5(run: RandomisationRun, rgb: np.ndarray, pair: int = 0, layer: str = "input"):
    """Fig. 5: one test pair's maps at every randomisation stage (rows: map kind; columns: stage)."""
    import matplotlib.pyplot as plt

    keys = [k for k in run.figure_maps if k[2] == layer]  # (kind, method, layer)
    stages = run.stages
    cell = min(1.5, 9.8 / (len(stages) + 1))
    fig, axes = plt.subplots(len(keys), len(stages) + 1, figsize=(cell * (len(stages) + 1) + 1.2, cell * len(keys) + 0.6),
                             squeeze=False, layout="constrained")
    for r, key in enumerate(keys):
        axes[r][0].imshow(np.clip(np.transpose(rgb, (1, 2, 0)), 0, 1))
        axes[r][0].set_xticks([])
        axes[r][0].set_yticks([])
        kind, method, _ = key
        axes[r][0].set_ylabel(f"{kind}\n{method_label(method)}", fontsize=8)
        for c, stage in enumerate(stages):
            m = np.asarray(run.figure_maps[key][c, pair].float())
            im = _show(axes[r][c + 1], m, stage if r == 0 else "")
    if keys:
        saliency_colorbar(fig, im, axes[:, 1:].ravel().tolist(), shrink=0.6)
    fig.suptitle(f"{run.arch}: maps at '{layer_label(layer, run.arch)}' as the blocks are randomised "
                 "from the top", fontsize=9)
    return fig


def plot_randomisation_curves(curves: dict[str, Any]):
    """Mean Spearman correlation with the original map per stage, one panel per architecture.

    Each panel has its own legend, below it, naming that network's layers.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 5.4), squeeze=False, layout="constrained")
    for ax, (arch, table) in zip(axes[0], curves.items()):
        x = np.arange(len(table.index))
        for key in table.columns:
            kind, method, layer = key
            ax.plot(x, table[key], marker="o" if layer == "input" else "s", color=method_colour(method),
                    ls="-" if kind == "plain" else "--", ms=3,
                    label=f"{kind} {method_label(method)} @{layer_label(layer, arch)}")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, table.index, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("Spearman with the original")
        ax.set_title(f"{arch}: cascading randomisation", fontsize=9)
        ax.grid(alpha=0.3)
        _panel_legend(ax)
    return fig


def _epoch_panels(tables: dict[str, Any], series, ylabel: str):
    """One panel per architecture: ``series(t, arch)`` yields ``(values, style, label)`` against the epochs;
    each panel has its own legend below it."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 5.0), squeeze=False, layout="constrained")
    for ax, (arch, t) in zip(axes[0], tables.items()):
        for values, style, label in series(t, arch):
            ax.plot(t.index, values, marker="o", ms=3, label=label, **style)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(arch, fontsize=9)
        ax.grid(alpha=0.3)
        _panel_legend(ax)
    return fig


def plot_fig2(tables: dict[str, Any]):
    """Fig. 2: mean Spearman(meta, plain) over training epochs, training vs validation images."""

    def series(t, arch):
        for split, method, layer in t.columns:
            style = dict(ls="-" if split == "train" else "--", color=method_colour(method),
                         alpha=1.0 if layer == "input" else 0.5)
            yield t[(split, method, layer)], style, f"{split}: {method_label(method)} @{layer_label(layer, arch)}"

    return _epoch_panels(tables, series, "Spearman(meta, plain)")


def plot_fig3(tables: dict[str, Any]):
    """Fig. 3: Spearman of each epoch's validation meta-maps with the final epoch's."""

    def series(t, arch):
        for method, layer in t.columns:
            style = dict(ls="-" if layer == "input" else "--", color=method_colour(method))
            yield t[(method, layer)], style, f"{method_label(method)} @{layer_label(layer, arch)}"

    return _epoch_panels(tables, series, "Spearman with the final meta-map")


def plot_fig4(examples: MetaExamples, method: str = "selective_normgrad", layer: str = "input"):
    """Fig. 4: plain and meta maps for a present (positive) and an absent (negative) class.

    ``examples``: :func:`gsutils.experiments.normgrad.meta_saliency.meta_examples`'s result.
    """
    import matplotlib.pyplot as plt

    n = examples.n_images
    cols = [("plain", "positive"), ("meta", "positive"), ("plain", "negative"), ("meta", "negative")]
    fig, axes = plt.subplots(n, 5, figsize=(10, 2.0 * n + 0.5), squeeze=False, layout="constrained")
    for i in range(n):
        axes[i][0].imshow(np.clip(np.transpose(np.asarray(examples.rgb[i]), (1, 2, 0)), 0, 1))
        axes[i][0].set_xticks([])
        axes[i][0].set_yticks([])
        for c, (kind, sign) in enumerate(cols):
            cls = (examples.present if sign == "positive" else examples.absent)[i]
            m = np.asarray(examples.maps[kind, sign, method, layer][i])
            im = _show(axes[i][c + 1], m, f"{kind}, {sign} ('{cls}')")
    saliency_colorbar(fig, im, axes[:, 1:].ravel().tolist(), shrink=0.7)
    fig.suptitle(f"{method_label(method)} at '{layer_label(layer)}': meta-saliency for positive and negative "
                 "examples", fontsize=9)
    return fig


__all__ = [
    "plot_fig1_weights",
    "plot_raw_measures",
    "plot_table3_gains",
    "plot_fig5",
    "plot_randomisation_curves",
    "plot_fig2",
    "plot_fig3",
    "plot_fig4",
]
