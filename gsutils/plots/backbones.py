"""Figures of the backbone comparison (Grid Saliency S1.5: Fig. S8, S9, S10)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gsutils.experiments.grid.context_results import METHODS
from gsutils.experiments.grid.seg_runs import SegIoU
from gsutils.plots.common import BIAS_COLOUR, REFERENCE_COLOUR, VALUE_CMAP, method_colour, method_label

__all__ = ["backbone_label", "plot_iou_mean_std", "plot_cbd_panels", "plot_cbl_bars"]


def backbone_label(backbone: str) -> str:
    """``"VGG16"``, ``"MobileNetV2"``, ``"ResNet18"`` (``"slim "``/``"small "`` prefixed for reduced variants)."""
    from gsutils.models.smp_unet import FAMILY

    name = FAMILY.get(backbone, backbone)
    for size in ("slim", "small"):
        if backbone.startswith(f"{size}_"):
            return f"{size} {name}"
    return name


def _iou_rows(results: Sequence[SegIoU], backbone: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Rows N, then every weak bias digit: mean and std (over textures, seeds) of the per-digit IoU.

    A row of one network has no spread: its std is NaN (shown as such), not 0.
    """
    groups: dict[str, list[np.ndarray]] = {}
    for res in results:
        if res.run.backbone != backbone:
            continue
        b = res.run.bias
        row = "N" if b.strength == "none" else f"weak, bias digit {b.digit}"
        groups.setdefault(row, []).append(np.array([np.nan if v is None else v for v in res.iou[:10]]))
    names = ["N"] + sorted(k for k in groups if k != "N")
    names = [n for n in names if n in groups]
    mean = np.stack([np.nanmean(groups[n], axis=0) for n in names])
    std = np.stack([np.nanstd(groups[n], axis=0) if len(groups[n]) > 1 else np.full(10, np.nan)
                    for n in names])
    return names, mean, std


def plot_iou_mean_std(results: Sequence[SegIoU], backbones: Sequence[str]):
    """Fig. S9 a/b: per backbone, per-digit IoU on unbiased test data, (a) mean and (b) std.

    Rows: the unbiased network N, then the weakly biased networks of each bias
    digit (mean / std over bias textures and seeds); columns: test digits. The
    bias digit's cell is framed in red.
    """
    import matplotlib.pyplot as plt

    nb = len(backbones)
    first = _iou_rows(results, backbones[0])[0]
    fig, axes = plt.subplots(2, nb, figsize=(3.9 * nb, 1.6 + 0.95 * len(first)), squeeze=False,
                             constrained_layout=True)
    any_spread = any(np.isfinite(_iou_rows(results, bb)[2]).any() for bb in backbones)
    for col, bb in enumerate(backbones):
        names, mean, std = _iou_rows(results, bb)
        for row, (vals, title, vmax) in enumerate(((mean, "(a) mean IoU", 1.0), (std, "(b) std of IoU", None))):
            ax = axes[row, col]
            finite = std[np.isfinite(std)]
            top = vmax if vmax is not None else max(0.05, float(finite.max()) if finite.size else 0.05)
            im = ax.imshow(vals, vmin=0, vmax=top, cmap=VALUE_CMAP, aspect="auto")
            for i in range(vals.shape[0]):
                if not np.isfinite(vals[i]).any():
                    ax.text(4.5, i, "one network: no spread", ha="center", va="center", fontsize=8)
                for j in range(10):
                    v = vals[i, j]
                    if np.isfinite(v):
                        ax.text(j, i, f"{v:.2f}".replace("0.", ".", 1), ha="center", va="center", fontsize=8,
                                color="black" if v > 0.6 * top else "white")
                d = names[i].rsplit(" ", 1)[-1]
                if d.isdigit():
                    ax.add_patch(plt.Rectangle((int(d) - 0.5, i - 0.5), 1, 1, fill=False,
                                               edgecolor=BIAS_COLOUR, linewidth=1.5))
            ax.set_xticks(range(10))
            ax.set_yticks(range(len(names)), names if col == 0 else [""] * len(names), fontsize=8)
            ax.set_xlabel("test digit", fontsize=8)
            ax.set_title(f"{title}: {backbone_label(bb)}", fontsize=9)
            if col == nb - 1 and (row == 0 or any_spread):
                fig.colorbar(im, ax=ax, shrink=0.9)
    fig.suptitle("Fig. S9: per-digit IoU on unbiased test data (N and weak bias)", fontsize=10)
    return fig


def plot_cbd_panels(per_backbone: dict[str, Any]):
    """Fig. S8: CBD per method (rows) and backbone (columns), 12 panels for four methods x three backbones.

    Each panel: rows = bias digits, columns = test digits, mean CBD over bias
    textures and seeds, annotated ``mean`` over ``±std``; the bias digit's
    cell (where a detecting method is high) framed in red.
    """
    import matplotlib.pyplot as plt

    bbs = list(per_backbone)
    any_res = per_backbone[bbs[0]]
    nd = len(any_res.bias_digits)
    fig, axes = plt.subplots(len(METHODS), len(bbs), figsize=(3.9 * len(bbs), 0.9 + (0.55 + 0.45 * nd) * len(METHODS)),
                             squeeze=False, constrained_layout=True)
    for c, bb in enumerate(bbs):
        res = per_backbone[bb]
        for r, m in enumerate(METHODS):
            mats = res.cbd_matrix("weak", m)  # (textures, bias digits, 10)
            mean, std = np.nanmean(mats, axis=0), np.nanstd(mats, axis=0)
            spread = mats.shape[0] > 1  # one network per cell has no std to show
            ax = axes[r, c]
            im = ax.imshow(mean, vmin=0, vmax=max(0.05, float(np.nanmax(mean))), cmap=VALUE_CMAP, aspect="auto")
            top = max(0.05, float(np.nanmax(mean)))
            for i in range(mean.shape[0]):
                for j in range(10):
                    text = f"{mean[i, j]:.2f}" + (f"\n±{std[i, j]:.2f}" if spread else "")
                    ax.text(j, i, text.replace("0.", "."), ha="center", va="center",
                            fontsize=7.5,
                            color="black" if mean[i, j] > 0.6 * top else "white")
                ax.add_patch(plt.Rectangle((res.bias_digits[i] - 0.5, i - 0.5), 1, 1, fill=False,
                                           edgecolor=BIAS_COLOUR, linewidth=1.5))
            ax.set_xticks(range(10))
            ax.set_yticks(range(nd), [str(d) for d in res.bias_digits])
            if c == 0:
                ax.set_ylabel(f"{method_label(m)}\nbias digit", fontsize=8)
            if r == 0:
                ax.set_title(backbone_label(bb), fontsize=10)
            if r == len(METHODS) - 1:
                ax.set_xlabel("test digit", fontsize=8)
            fig.colorbar(im, ax=ax, shrink=0.8, pad=0.01)
    one = all(per_backbone[bb].cbd_matrix("weak", METHODS[0]).shape[0] == 1 for bb in bbs)
    fig.suptitle("Fig. S8: CBD of weakly biased networks "
                 + ("(one network per backbone: no spread to show)" if one
                    else "(mean ± std over bias textures and seeds)"), fontsize=10)
    return fig


def plot_cbl_bars(cbl) -> Any:
    """Fig. S10: CBL per backbone and method, error bars = std over bias digits (textures, seeds).

    ``cbl`` is :func:`gsutils.experiments.grid.backbones.cbl_table`; the dotted line
    is the chance level (a uniform map's CBL).
    """
    import matplotlib.pyplot as plt

    bbs = list(dict.fromkeys(cbl.index.get_level_values(0)))
    fig, ax = plt.subplots(figsize=(1.8 + 2.0 * len(bbs), 3.6), constrained_layout=True)
    width = 0.8 / len(METHODS)
    for k, m in enumerate(METHODS):
        vals = [cbl.loc[(bb, m), "cbl"] for bb in bbs]
        err = [cbl.loc[(bb, m), "cbl_std"] for bb in bbs]
        x = np.arange(len(bbs)) + (k - (len(METHODS) - 1) / 2) * width
        ax.bar(x, vals, width, yerr=err, capsize=3, color=method_colour(m, k), label=method_label(m))
        for xi, v, e in zip(x, vals, err):
            if np.isfinite(v):  # above the error bar's cap, where there is one
                ax.text(xi, v + (e if np.isfinite(e) else 0.0) + 0.02, f"{v:.2f}", ha="center", va="bottom",
                        fontsize=8)
    chance = float(np.nanmean(cbl["chance"]))
    ax.axhline(chance, color=REFERENCE_COLOUR, ls=":", lw=1, label=f"chance ({chance:.2f})")
    ax.set_xticks(range(len(bbs)), [backbone_label(b) for b in bbs])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("CBL (bias digit, weak bias)")
    ax.set_title("Fig. S10: bias localisation per backbone", fontsize=10)
    ax.legend(fontsize=8, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return fig


def plot_training_curves(histories: dict[str, Sequence[dict[str, Any]]]):
    """Training loss and pixel accuracy per epoch of each network (``label -> history``).

    A curve still falling at its last epoch is a network stopped before it
    converged: the evidence of why a quick network misses the gate.
    """
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3))
    for label, hist in histories.items():
        epochs = [h["epoch"] for h in hist]
        ax_loss.plot(epochs, [h["loss"] for h in hist], marker="o", ms=3, label=label)
        ax_acc.plot(epochs, [h["pixel_acc"] for h in hist], marker="o", ms=3, label=label)
    ax_loss.set_ylabel("training loss (cross entropy)")
    ax_acc.set_ylabel("training pixel accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    return fig
