"""Figures and tables of the NormGrad chapters (Rebuffi et al., 2020).

One module per part of the book: this one draws what
:mod:`gsutils.experiments.normgrad.pointing_runs`,
:mod:`gsutils.experiments.normgrad.classifier_training` and
:mod:`gsutils.experiments.normgrad.normgrad_maps` compute; it computes nothing itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gsutils.data.scenes import SceneSet
from gsutils.experiments.normgrad.classifier_training import classifier_history
from gsutils.experiments.normgrad.fig7_results import Fig7Maps, GradCamEnergy
from gsutils.experiments.normgrad.normgrad_maps import FIG7_LAYERS
from gsutils.experiments.normgrad.pointing_results import PointingRun
from gsutils.experiments.normgrad.pointing_runs import center_accuracy, pointing_accuracies
from gsutils.metrics.pointing import SUBSETS
from gsutils.plots.common import (class_colours, layer_label, method_colour, method_label, normalise_map,
                                  saliency_colorbar, show_saliency)
from gsutils.profiles import Profile
from gsutils.saliency.extract_aggregate import METHODS


def plot_scene_examples(scenes: SceneSet, indices: Sequence[int]):
    """Test scenes with their boxes (dashed: VOC-difficult) and class names.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    indices = list(indices)
    fig, axes = plt.subplots(1, len(indices), figsize=(2.3 * len(indices), 2.6), squeeze=False,
                             layout="constrained")
    colours = class_colours(1 + max([o.class_id for i in indices for o in scenes.objects[i]], default=0))
    for ax, i in zip(axes[0], indices):
        ax.imshow(scenes.rgb(i).permute(1, 2, 0).numpy())
        for o in scenes.objects[i]:
            x0, y0, x1, y1 = o.box
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False,
                                   edgecolor=colours[o.class_id], linewidth=1.5,
                                   linestyle="--" if o.difficult else "-"))
            ax.text(x0, y0 - 1, o.name, color=colours[o.class_id], fontsize=8, va="bottom")
        ax.set_title(scenes.image_ids[i], fontsize=8)
        ax.axis("off")
    return fig


def plot_pointing_by_layer(runs: Sequence[PointingRun]):
    """Pointing accuracy against layer, one line per method (rows: architectures; columns: subsets).

    The center baseline is the dashed grey line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 3.4 * len(runs)), squeeze=False,
                             layout="constrained")
    for r, run in enumerate(runs):
        acc = pointing_accuracies(run)
        centre = center_accuracy(run)
        for c, s in enumerate(SUBSETS):
            ax = axes[r, c]
            layers = list(acc[s].columns)
            for k, (method, row) in enumerate(acc[s].iterrows()):
                ax.plot(range(len(layers)), row.to_numpy(), marker="o", ms=3, color=method_colour(method, k),
                        label=method_label(method))
            ax.axhline(centre[s], color=method_colour("center"), ls="--", label=method_label("center"))
            ax.set_xticks(range(len(layers)), [layer_label(x, run.arch).replace(" (", "\n(") for x in layers],
                          fontsize=8)
            ax.set_ylim(0, 100)
            ax.set_title(f"{run.arch}: {s} ({run.tolerance} px tolerance)", fontsize=10)
            if c == 0:
                ax.set_ylabel("pointing accuracy (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=6, fontsize=8)
    return fig


def classifier_summary(profile: Profile, runs: Sequence[PointingRun]):
    """One row per pointing run: data, classifier, test mAP and training time (stand-in only).

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    rows = []
    for run in runs:
        row = {"arch": run.arch, "data": run.data, "pairs": run.n_pairs,
               "skipped (all boxes difficult)": run.n_skipped,
               "difficult pairs": int(np.sum(run.difficult)), "tolerance px": run.tolerance}
        if run.test_map is not None:
            history = classifier_history(profile, run.arch)
            row.update({"width": profile.normgrad.width, "epochs": len(history),
                        "final train loss": history[-1]["loss"],
                        "train minutes": sum(h["seconds"] for h in history) / 60,
                        "test mAP %": 100 * run.test_map})
        rows.append(row)
    return pd.DataFrame(rows).set_index("arch")


def plot_fig7(data: Fig7Maps, image: int = 0, *, width: float = 10.5):
    """Fig. 7's layout for one scene: methods in rows, VGG16 layers in columns.

    The scene (with the target's boxes) heads the ``input`` column; each map is
    scaled to ``[0, 1]`` by its own minimum and maximum and drawn in the
    saliency colormap, with one colourbar for all. Columns are named by the
    network's module paths and VGG16's layer names.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    maps = data.maps
    if not 0 <= image < maps.shape[0]:
        raise ValueError(f"image must be in [0, {maps.shape[0]}), got {image}")
    n_rows, n_cols = maps.shape[1], maps.shape[2]
    cell = (width - 2.6) / n_cols
    fig, axes = plt.subplots(n_rows + 1, n_cols + 1, figsize=(width, cell * (n_rows + 1) + 0.5),
                             width_ratios=[1.5] + [1.0] * n_cols, squeeze=False, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
    for a in list(axes[0, 2:]) + list(axes[:, 0]):
        a.axis("off")
    ax = axes[0, 1]
    ax.imshow(np.clip(np.transpose(data.rgb[image], (1, 2, 0)), 0, 1))
    cls = data.target_name(image)
    for b in data.boxes[image]:
        if b[0] >= 0:
            ax.add_patch(Rectangle((b[0] - 0.5, b[1] - 0.5), b[2] - b[0] + 1, b[3] - b[1] + 1,
                                   fill=False, edgecolor="cyan", linewidth=1.5))
    axes[0, 0].text(1.0, 0.5, f"test scene {int(data.image_index[image])}\ntarget: {cls}\n(cyan: its boxes)",
                    ha="right", va="center", fontsize=9, transform=axes[0, 0].transAxes)
    sal = None
    for i in range(n_rows):
        axes[i + 1, 0].text(1.0, 0.5, method_label(METHODS[i]), ha="right", va="center", fontsize=9,
                            transform=axes[i + 1, 0].transAxes)
        for j in range(n_cols):
            a = axes[i + 1, j + 1]
            m = maps[image, i, j]
            if np.isnan(m).all():
                a.imshow(np.ones(m.shape), cmap="gray", vmin=0, vmax=1)  # keeps the panel square
                a.text(0.5, 0.5, "n/a", ha="center", va="center", fontsize=8, transform=a.transAxes)
                continue
            sal = show_saliency(a, normalise_map(m))
            if float(np.nanmax(m)) <= float(np.nanmin(m)):
                a.text(0.5, 0.5, "constant", ha="center", va="center", fontsize=8, color="w",
                       transform=a.transAxes)
            if i == 0:
                a.set_title(layer_label(FIG7_LAYERS[j], "vgg16").replace(" (", "\n("), fontsize=8)
    if sal is not None:
        cb = saliency_colorbar(fig, sal, axes[0, 3:].tolist(), label="saliency (each map scaled to [0, 1])",
                               location="top", shrink=0.9, aspect=30, anchor=(0.5, 0.3))
        cb.ax.set_box_aspect(0.04)
    return fig


__all__ = [
    "classifier_summary",
    "plot_fig7",
    "plot_pointing_by_layer",
    "plot_scene_examples",
]


def plot_gradcam_energy(energy: GradCamEnergy, layers: Sequence[str]):
    """Bar chart: the share of Grad-CAM's mass inside the class's boxes at each layer.

    ``energy`` is :func:`gsutils.experiments.normgrad.normgrad_maps.gradcam_energy_by_layer`'s result;
    the dashed line is the share a uniform map gets (the boxes' area).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), layout="constrained")
    shares = [100 * energy.share[layer] for layer in layers]
    ax.bar(range(len(layers)), shares, color=method_colour("grad_cam"))
    ax.axhline(100 * energy.box_area, color="k", ls="--", lw=1, label="uniform map (box area)")
    ax.set_xticks(range(len(layers)), [layer_label(x, "vgg16").replace(" (", "\n(") for x in layers], fontsize=8)
    ax.set_ylabel("Grad-CAM mass in the boxes (%)")
    ax.legend(fontsize=8)
    return fig
