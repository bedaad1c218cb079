"""Figures and the interactive explorer of the textured-MNIST chapter (Grid Saliency S1.1).

* :func:`plot_samples` -- Fig. S1's layout: per sample, the image, its
  segmentation, the background and the biased background part.
* :func:`plot_texture_bank` -- Fig. S2: one crop per texture, bias textures framed.
* :func:`plot_texture_crops` -- Fig. S3: how much random crops of one texture vary.
* :func:`bias_table` -- per-digit share of images carrying the bias texture.
* :func:`toy_explorer` -- an ipywidgets explorer (digit, texture, bias, seed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from gsutils.data.textures import TextureBank
from gsutils.plots.common import BIAS_COLOUR, segmentation_cmap
from gsutils.data.toy import BACKGROUND, BiasConfig, ToyConfig, ToyData, bias_fraction_per_digit, make_toy_dataset

def pick_examples(data: ToyData, digit: int | None = None, biased: bool | None = None, k: int = 1,
                  exclude_digit: int | None = None) -> list[int]:
    """The first ``k`` sample indices matching the filters (fewer if not enough match)."""
    ok = np.ones(len(data), dtype=bool)
    if digit is not None:
        ok &= data.digits == digit
    if exclude_digit is not None:
        ok &= data.digits != exclude_digit
    if biased is not None:
        ok &= data.is_biased == biased
    return [int(i) for i in np.flatnonzero(ok)[:k]]


def plot_samples(rows: Sequence[tuple[str, ToyData, Sequence[int]]], *, panel: float = 1.35):
    """Fig. S1's layout: one row per ``(label, data, indices)``, four panels per sample.

    Panels: the image; the segmentation (digit class colours, background dark);
    the background mask; the biased part (the background pixels filled with the
    bias texture; empty for an unbiased sample).
    """
    import matplotlib.pyplot as plt

    per_row = max(len(idx) for _, _, idx in rows)
    titles = ("image", "segmentation", "background", "biased part")
    fig, axes = plt.subplots(len(rows), 4 * per_row, figsize=(panel * 4 * per_row, (panel + 0.3) * len(rows) + 0.3),
                             squeeze=False)
    cmap = segmentation_cmap()
    for r, (label, data, idx) in enumerate(rows):
        for s in range(per_row):
            ax4 = axes[r, 4 * s:4 * s + 4]
            for a in ax4:
                a.set_xticks([])
                a.set_yticks([])
            if s >= len(idx):
                for a in ax4:
                    a.axis("off")
                continue
            i = idx[s]
            ax4[0].imshow(data.images[i, 0], cmap="gray", vmin=0, vmax=1)
            ax4[1].imshow(data.labels[i], cmap=cmap, vmin=-0.5, vmax=BACKGROUND + 0.5, interpolation="nearest")
            ax4[2].imshow(data.background_mask[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax4[3].imshow(data.biased_mask[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if data.is_biased[i]:
                ax4[0].contour(data.biased_mask[i], levels=[0.5], colors=BIAS_COLOUR, linewidths=0.8)
            ax4[0].set_xlabel(f"digit {int(data.digits[i])}" + (", biased" if data.is_biased[i] else ""),
                              fontsize=8.5)
            if r == 0:
                for a, t in zip(ax4, titles):
                    a.set_title(t, fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.6)
    return fig


def _crop(texture: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
    return texture[y:y + size, x:x + size]


def plot_texture_bank(bank: TextureBank, *, size: int = 64, seed: int = 0, cols: int = 5, panel: float = 1.3):
    """Fig. S2: one random ``size`` crop per texture; the five bias textures framed and labelled."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    n = len(bank)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel * cols, (panel + 0.5) * rows), squeeze=False)
    bias_rank = {t: k for k, t in enumerate(bank.bias_indices)}
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        t = bank.textures[i]
        y, x = rng.integers(0, t.shape[0] - size + 1), rng.integers(0, t.shape[1] - size + 1)
        ax.imshow(_crop(t, y, x, size), cmap="gray", vmin=0, vmax=1)
        name = bank.names[i]
        if i in bias_rank:
            for sp in ax.spines.values():
                sp.set_edgecolor(BIAS_COLOUR)
                sp.set_linewidth(3)
            ax.set_title(f"{name}\nbias texture {bias_rank[i]}", fontsize=8.5, color=BIAS_COLOUR)
        else:
            ax.set_title(name, fontsize=8.5)
    fig.tight_layout(pad=0.3)
    return fig


def plot_texture_crops(bank: TextureBank, indices: Sequence[int], *, n_crops: int = 8, size: int = 64,
                       seed: int = 0, panel: float = 1.1):
    """Fig. S3: ``n_crops`` random crops of each texture in ``indices`` (one row per texture)."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(indices), n_crops, figsize=(panel * n_crops, panel * len(indices)), squeeze=False)
    for r, ti in enumerate(indices):
        t = bank.textures[ti]
        for c in range(n_crops):
            y, x = rng.integers(0, t.shape[0] - size + 1), rng.integers(0, t.shape[1] - size + 1)
            ax = axes[r, c]
            ax.imshow(_crop(t, y, x, size), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        label = bank.names[ti] + ("\n(bias)" if ti in bank.bias_indices else "")
        axes[r, 0].set_ylabel(label, fontsize=8.5)
    fig.tight_layout(pad=0.3)
    return fig


def bias_table(datasets: Mapping[str, ToyData]):
    """Per-digit share of images carrying the bias texture, one row per named dataset (pandas)."""
    import pandas as pd

    rows = {name: bias_fraction_per_digit(d) for name, d in datasets.items()}
    table = pd.DataFrame(rows, index=[f"digit {k}" for k in range(10)]).T
    table["all"] = [float(d.is_biased.mean()) if len(d) else np.nan for d in datasets.values()]
    return table


def explorer_figure(config: ToyConfig, n: int = 6, split: str = "train"):
    """The explorer's picture for one setting: ``n`` samples of the biased digit and ``n`` of others.

    Top row: images of the biased digit (with the biased part outlined);
    bottom row: images of other digits. Unbiased settings show the first
    ``n`` images of digit ``config.bias.digit`` (or 0) and of other digits.
    """
    import matplotlib.pyplot as plt

    data = make_toy_dataset(config, split, 40 * n)
    d = config.bias.digit if config.bias.digit is not None else 0
    top = pick_examples(data, digit=d, k=n)
    bottom = pick_examples(data, exclude_digit=d, k=n)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.6), squeeze=False)
    for r, idx in enumerate((top, bottom)):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(idx):
                ax.axis("off")
                continue
            i = idx[c]
            ax.imshow(data.images[i, 0], cmap="gray", vmin=0, vmax=1)
            if data.is_biased[i]:
                ax.contour(data.biased_mask[i], levels=[0.5], colors=BIAS_COLOUR, linewidths=0.8)
            ax.set_title(f"{int(data.digits[i])}" + (" biased" if data.is_biased[i] else ""), fontsize=8.5)
    b = config.bias
    axes[0, 0].set_ylabel(f"digit {d}", fontsize=9)
    axes[1, 0].set_ylabel("other digits", fontsize=9)
    fig.suptitle(f"bias {b.strength}, digit {b.digit}, bias texture {b.texture}, seed {config.seed}"
                 f" ({int(data.is_biased.sum())}/{len(data)} images biased)", fontsize=9)
    fig.tight_layout(pad=0.3)
    return fig


def toy_explorer(base: ToyConfig, n: int = 6):
    """An ipywidgets explorer over digit, bias texture, bias strength and seed.

    Returns a widget box; each change redraws :func:`explorer_figure` in its
    output area. In a static page the controls do nothing, so draw
    :func:`explorer_figure` of ``base`` beside it.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    b = base.bias
    digit = w.Dropdown(options=list(range(10)), value=b.digit if b.digit is not None else 2, description="digit")
    texture = w.Dropdown(options=list(range(5)), value=b.texture, description="texture")
    strength = w.Dropdown(options=["none", "weak", "strong"], value=b.strength, description="bias")
    seed = w.BoundedIntText(value=base.seed, min=0, max=10_000, description="seed")
    out = w.Output()

    def redraw(_=None) -> None:
        none = strength.value == "none"
        bias = BiasConfig(strength.value, digit=None if none else digit.value, texture=texture.value,
                          probability=b.probability)
        cfg = dataclasses.replace(base, bias=bias, seed=int(seed.value))
        with out:
            out.clear_output(wait=True)
            explorer_figure(cfg, n)
            plt.show()

    for ctl in (digit, texture, strength, seed):
        ctl.observe(redraw, names="value")
    return w.VBox([w.HBox([digit, texture]), w.HBox([strength, seed]), out])


def texture_stats(bank: TextureBank):
    """One row per texture: name, whether it is a bias texture, mean and standard deviation."""
    import pandas as pd

    bias = {i: k for k, i in enumerate(bank.bias_indices)}
    return pd.DataFrame([
        {"texture": name, "bias texture": "" if i not in bias else str(bias[i]),
         "mean": float(t.mean()), "std": float(t.std())}
        for i, (name, t) in enumerate(zip(bank.names, bank.textures))
    ]).set_index("texture")
