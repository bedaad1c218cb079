"""Figures of the captioning chapter (NormGrad supplement F, Fig. 6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gsutils.experiments.normgrad.caption_results import ExplainedCaptions, SharpnessSummary
from gsutils.plots.common import (REFERENCE_COLOUR, SERIES_COLOURS, method_label, normalise_map, overlay_saliency,
                                  saliency_colorbar)

#: short column titles of the explained layers
LAYER_TITLES = {
    "encoder.layer3.0.relu": "layer3.0.relu\n(after shortcut)",
    "encoder.layer4.0.relu": "layer4.0.relu\n(after shortcut)",
    "encoder.layer4": "layer4\n(before pooling)",
    "combined": "product\n(linear weights)",
}


def plot_fig6(explained: ExplainedCaptions, captions: Sequence[str], names: Sequence[str],
              rows: Sequence[int], *, maps: np.ndarray | None = None, words: Sequence[str] | None = None):
    """Fig. 6's layout: per image a row, the image then each layer's map and the combination.

    Parameters
    ----------
    explained:
        :func:`gsutils.experiments.normgrad.caption_saliency.explain_captions`'s result.
    captions:
        The generated caption of every explained image.
    names:
        The map names, in the order of ``maps``'s second axis.
    rows:
        The explained images to draw.
    maps:
        ``(N, M, S, S)`` the maps to draw: ``explained.maps`` (whole caption, the default) or
        ``explained.word_maps`` (one word; ``words`` gives it per row).

    Each map is drawn over the greyed image with its own ``[0, 1]`` scaling;
    the outline marks the objects the caption names.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    maps = explained.maps if maps is None else np.asarray(maps)
    if maps.shape[0] != explained.n_images or maps.shape[1] != len(names):
        raise ValueError(f"maps {tuple(maps.shape)} must hold {len(names)} maps (names) for each of the "
                         f"{explained.n_images} explained images")
    if len(rows) == 0:
        raise ValueError("rows is empty: pass the indices of the explained images to draw")
    if any(not 0 <= r < maps.shape[0] for r in rows):
        raise ValueError(f"rows must index the {maps.shape[0]} explained images, got {list(rows)}")
    n_cols = 1 + len(names)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(min(11.0, 1.9 * n_cols + 1.0), 2.15 * len(rows) + 0.3),
                             squeeze=False, layout="constrained")
    for r, i in enumerate(rows):
        rgb = np.transpose(explained.images[i], (1, 2, 0)) / 255.0  # (S, S, 3)
        mask = explained.named_mask[i] > 0
        title = captions[i] if words is None else f"{captions[i]}\nword: \u201c{words[r]}\u201d"
        axes[r, 0].imshow(rgb)
        axes[r, 0].set_title(_wrap(title), fontsize=8)
        for j, name in enumerate(names):
            a = axes[r, j + 1]
            sal = overlay_saliency(a, rgb, normalise_map(maps[i, j]))
            if r == 0:
                a.set_title(LAYER_TITLES.get(name, name), fontsize=8)
        for j in range(n_cols):
            a = axes[r, j]
            if mask.any():
                a.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
            a.set_xticks([])
            a.set_yticks([])
    saliency_colorbar(fig, sal, axes[:, 1:].ravel().tolist(), shrink=0.8,
                      label="saliency (each map scaled to [0, 1]; white: named objects)")
    return fig


def _wrap(text: str, width: int = 30) -> str:
    words, lines, line = text.split(" "), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "\n".join(lines)


def plot_sharpness(summary: SharpnessSummary, names: Sequence[str]):
    """Bars per map: mass on the named objects, normalised entropy, half-maximum area.

    The named objects' share of the image is drawn as a reference line in the
    first and last panels (the value a map that ignores the objects would reach).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), layout="constrained")
    x = np.arange(len(names))
    colours = [SERIES_COLOURS[0]] * (len(names) - 1) + [SERIES_COLOURS[1]]  # single layers, the combination
    per = [summary.maps[n] for n in names]
    # (values, label, whether the named objects' area is drawn as the reference)
    panels = [([s.mass for s in per], "mass on the named objects", True),
              ([s.entropy for s in per], "normalised entropy", False),
              ([s.half_max for s in per], "area above half the maximum", True)]
    for a, (values, label, reference) in zip(axes, panels):
        a.bar(x, values, color=colours)
        a.set_xticks(x, [LAYER_TITLES.get(n, n).replace("\n", " ") for n in names], rotation=25, ha="right", fontsize=8)
        a.set_ylabel(label)
        a.set_ylim(0, 1)
        if reference:
            a.axhline(summary.named_area, color=REFERENCE_COLOUR, ls="--", lw=1, label="named objects' area")
            a.legend(fontsize=8)
    fig.suptitle(f"{method_label('selective_normgrad')}: mean over "
                 f"{summary.n_named} explained captions", fontsize=9)
    return fig


def plot_caption_training(history: Sequence[Mapping[str, Any]]):
    """The captioner's training loss and next-word accuracy per epoch."""
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 2.6), layout="constrained")
    a.plot(epochs, [h["loss"] for h in history], "o-")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy per word")
    b.plot(epochs, [100 * h["word_accuracy"] for h in history], "o-")
    b.set_xlabel("epoch")
    b.set_ylabel("next-word accuracy (%)")
    return fig


__all__ = ["LAYER_TITLES", "plot_fig6", "plot_sharpness", "plot_caption_training", "plot_caption_examples"]


def plot_caption_examples(images: np.ndarray, captions: Sequence[Sequence[str]], n: int = 4):
    """The first ``n`` scenes (``(N, 3, S, S)`` uint8) with their reference captions."""
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 3.1), squeeze=False, layout="constrained")
    for k in range(n):
        a = axes[0, k]
        a.imshow(np.transpose(images[k], (1, 2, 0)))
        a.set_title("\n".join(_wrap(c, 34) for c in captions[k]), fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    return fig
