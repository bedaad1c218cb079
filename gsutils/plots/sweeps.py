"""Figure of the optimisation-parameter sweeps (Grid Saliency S1.6, Fig. S11)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gsutils.experiments.grid.sweeps import PARAM_LABELS, PARAMS
from gsutils.plots.common import BIAS_COLOUR

__all__ = ["plot_sweeps"]


def plot_sweeps(table: Any):
    """Fig. S11: mCBD (bias digit and the other digits) and mCBL per value of each swept parameter.

    ``table`` is :func:`gsutils.experiments.grid.sweeps.sweep_table`. Columns: the
    parameters (λ, learning rate, momentum, initial mask value, grey value);
    top row mCBD of the biased digit (solid) and of the unbiased digits
    (dashed), bottom row mCBL with the chance level; the S1.2 setting is
    drawn as red points.
    """
    import matplotlib.pyplot as plt

    params = [p for p in PARAMS if (table.param == p).any()]
    fig, axes = plt.subplots(2, len(params), figsize=(2.7 * len(params), 5.0), squeeze=False,
                             constrained_layout=True, sharey="row")
    for c, p in enumerate(params):
        t = table[table.param == p].reset_index(drop=True)
        x = np.arange(len(t))
        chosen = t["chosen"].to_numpy()
        top, bottom = axes[0, c], axes[1, c]
        top.plot(x, t["mcbd_biased"], "-o", color="black", ms=4, label="biased digit")
        top.plot(x, t["mcbd_unbiased"], "--s", color="gray", ms=3.5, label="unbiased digits")
        top.scatter(x[chosen], t["mcbd_biased"][chosen], color=BIAS_COLOUR, s=45, zorder=5, label="S1.2 setting")
        top.scatter(x[chosen], t["mcbd_unbiased"][chosen], color=BIAS_COLOUR, s=30, zorder=5, marker="s")
        bottom.plot(x, t["mcbl"], "-o", color="black", ms=4, label="mCBL")
        bottom.scatter(x[chosen], t["mcbl"][chosen], color=BIAS_COLOUR, s=45, zorder=5)
        bottom.plot(x, t["chance"], ":", color="gray", lw=1, label="chance")
        for ax in (top, bottom):
            ax.set_xticks(x, list(t["value"]), fontsize=8, rotation=0)
            ax.grid(alpha=0.3)
        bottom.set_xlabel(PARAM_LABELS[p], fontsize=9)
        if c == 0:
            top.set_ylabel("mCBD")
            bottom.set_ylabel("mCBL")
            top.legend(fontsize=8, loc="best")
            bottom.legend(fontsize=8, loc="lower right")
    axes[0, 0].set_ylim(bottom=0)
    axes[1, 0].set_ylim(0, 1.05)
    fig.suptitle("Fig. S11: grid saliency's optimisation parameters (red: the S1.2 setting)", fontsize=10)
    return fig
