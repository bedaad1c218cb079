"""The figures of :mod:`gsutils.plots` on synthetic inputs of the real shapes.

Each test draws a figure the way its page does and checks its layout: the
panels, the colourbars, page width, the palettes of :mod:`gsutils.plots.common`
and the labels.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gsutils.plots import common  # noqa: E402

H, W = 32, 64


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _colorbars(fig) -> list:
    """The colourbar axes of ``fig``."""
    return [a for a in fig.axes if a.get_label() == "<colorbar>"]


def _image_axes(fig) -> list:
    return [a for a in fig.axes if a.images and a.get_label() != "<colorbar>"]


def _cmaps(fig) -> set[str]:
    return {im.get_cmap().name for a in _image_axes(fig) for im in a.images}


# ------------------------------------------------------------------------------ common


def test_palettes_are_apart():
    """Methods and classes have one palette each; no method colour is a class colour."""
    from matplotlib.colors import to_rgb

    classes = {tuple(np.round(c, 3)) for c in common.CLASS_RGB}
    for m, c in common.METHOD_COLOURS.items():
        assert tuple(np.round(to_rgb(c), 3)) not in classes, m
    grid = [common.method_colour(m) for m in ("vg", "sg", "ig", "grid", "baseline")]
    assert len(set(grid)) == len(grid)
    assert common.method_colour("unknown", 1) == common.SERIES_COLOURS[1]
    assert common.SALIENCY_CMAP not in ("jet", "tab10") and common.SALIENCY_CMAP != common.VALUE_CMAP


def test_layer_label_uses_the_networks_own_names():
    assert common.layer_label("features.29", "vgg16") == "features.29 (relu5_3)"
    assert common.layer_label("features.28") == "features.28 (conv5_3)"
    assert common.layer_label("layer4", "resnet50") == "layer4"
    assert common.layer_label("input", "vgg16") == "input"


def test_overlay_has_the_saliency_colormap():
    fig, ax = plt.subplots()
    im = common.overlay_saliency(ax, np.random.default_rng(0).random((3, H, W)), np.zeros((H, W)))
    assert im.get_cmap().name == common.SALIENCY_CMAP
    cb = common.saliency_colorbar(fig, im, ax)
    assert cb.ax in _colorbars(fig)
    assert common.normalise_map(np.ones((2, 2))).max() == 0.0


# ------------------------------------------------------------------------------ scenes (S2, S3)


def test_context_shares_are_matrices():
    from gsutils.plots.scenes import plot_context_shares

    rng = np.random.default_rng(0)
    names = [f"class {k}" for k in range(19)]
    g, b = rng.dirichlet(np.ones(19) * 0.3, 5), rng.dirichlet(np.ones(19) * 0.3, 5)
    fig = plot_context_shares(g, b, names[:5], names, [3] * 5)
    mats = _image_axes(fig)
    assert len(mats) == 2 and [a.get_title() for a in mats] == ["Grid saliency", "Baseline (dilated contour)"]
    assert all(a.images[0].get_array().shape[0] == 5 for a in mats)
    assert len(mats[0].texts) == mats[0].images[0].get_array().size  # a number in every cell
    assert len(_colorbars(fig)) == 1
    assert fig.get_size_inches()[0] <= 12


def test_gallery_is_large_with_a_colourbar_and_names_missing_classes():
    from gsutils.plots.scenes import plot_gallery

    rng = np.random.default_rng(0)
    imgs, maps = rng.random((5, 3, H, W)) * 0.3, rng.random((5, H, W)).astype(np.float32)
    reqs = np.zeros((5, H, W), bool)
    reqs[:, 10:20, 10:20] = True
    fig = plot_gallery(imgs, reqs, maps, ["rider", "person", "pole", "sign", "empty"], missing=["car"])
    panels = [a for a in _image_axes(fig) if a.axison]
    assert len(panels) == 5 and 10 <= fig.get_size_inches()[0] <= 12
    assert len(_colorbars(fig)) == 1 and _cmaps(fig) >= {common.SALIENCY_CMAP}
    assert "car" in fig._suptitle.get_text()
    fig.canvas.draw()  # each panel is at least a quarter of the page wide (after the layout)
    assert min(a.get_position().width for a in panels) > 0.25


def test_request_sizes_histogram_and_s13_colourbar():
    from gsutils.experiments.grid.street_context import S13Views, ScaledThresholds
    from gsutils.plots.scenes import plot_request_sizes, plot_s13_panels

    sizes = np.r_[np.arange(1, 200), np.arange(5, 50)]
    fig = plot_request_sizes(sizes, np.r_[np.ones(199), np.zeros(45)],
                             ScaledThresholds(min_correct=40, min_erroneous=3, baseline_budget=100))
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == "log" and fig.axes[0].patches
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "threshold, correct: 40 px" in labels and "threshold, erroneous: 3 px" in labels
    rng = np.random.default_rng(0)
    views = {k: rng.random((3, H, W)) for k in ("input", "perturbed", "optimised")}
    views |= {k: rng.random((5, H, W)) for k in ("input_probs", "perturbed_probs", "optimised_probs")}
    views["map"] = rng.random((H, W))
    fig = plot_s13_panels(S13Views(**views), views["map"] > 0.5, rng.random((5, 3)))
    assert len(_image_axes(fig)) == 8 and len(_colorbars(fig)) == 1


def test_reliance_is_a_matrix():
    from gsutils.plots.scenes import plot_reliance

    fig = plot_reliance({"mn": {"boat": 0.1, "train": 0.2}, "xc": {"boat": 0.3}}, ["boat", "train"])
    (ax,) = _image_axes(fig)
    assert ax.images[0].get_array().shape == (2, 2) and len(ax.texts) == 3  # NaN cell left blank
    assert len(_colorbars(fig)) == 1


# ------------------------------------------------------------------------------ NormGrad


def _fig7_data(S: int = 24):
    from gsutils.experiments.normgrad.fig7_results import Fig7Maps
    from gsutils.experiments.normgrad.normgrad_maps import FIG7_LAYERS
    from gsutils.saliency.extract_aggregate import METHODS

    rng = np.random.default_rng(0)
    maps = rng.random((1, len(METHODS), len(FIG7_LAYERS), S, S)).astype(np.float32)
    maps[0, METHODS.index("normgrad_conv"), 0] = np.nan
    return Fig7Maps(maps=maps, rgb=rng.random((1, 3, S, S)), image_index=np.array([3]), target=np.array([1]),
                    boxes=np.array([[[2, 3, 10, 12], [-1] * 4]]), class_names=("cat", "dog"))


def test_fig7_has_a_colourbar_and_the_layers_names():
    from gsutils.plots.normgrad import plot_fig7

    data = _fig7_data()
    n_rows, n_cols = data.maps.shape[1:3]
    fig = plot_fig7(data, 0)
    assert len(_colorbars(fig)) == 1
    assert len(_image_axes(fig)) == n_rows * n_cols + 1  # the maps (n/a ones kept square) and the scene
    assert common.SALIENCY_CMAP in _cmaps(fig) and "jet" not in _cmaps(fig)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert "features.29\n(relu5_3)" in titles and "input" in titles
    assert 10 <= fig.get_size_inches()[0] <= 12
    with pytest.raises(ValueError, match="image"):
        plot_fig7(data, 1)


def _legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_layer_legends_name_each_networks_own_layers():
    """Each architecture's panel has its own legend, with its own layer names (no layer4 on VGG16)."""
    import pandas as pd

    from gsutils.plots.normgrad_layers import plot_fig2, plot_fig3, plot_randomisation_curves

    rng = np.random.default_rng(0)
    last = {"vgg16": "features.29", "resnet50": "layer4"}
    ep = pd.Index([1, 2, 3], name="epoch")
    fig2 = {a: pd.DataFrame({(sp, m, lay): rng.random(3) for sp in ("train", "val")
                             for m in ("normgrad", "selective_normgrad") for lay in ("input", last[a])}, index=ep)
            for a in last}
    fig3 = {a: pd.DataFrame({(m, lay): rng.random(3) for m in ("normgrad", "selective_normgrad")
                             for lay in ("input", last[a])}, index=ep) for a in last}
    curves = {a: pd.DataFrame({(k, m, lay): rng.random(3) for k in ("plain", "meta")
                               for m in ("linear_approx", "selective_normgrad") for lay in ("input", last[a])},
                              index=["original", "top", "next"]) for a in last}
    for fig in (plot_fig2(fig2), plot_fig3(fig3), plot_randomisation_curves(curves)):
        vgg, resnet = fig.axes
        assert vgg.get_title().startswith("vgg16") and resnet.get_title().startswith("resnet50")
        assert not any("layer4" in t for t in _legend_labels(vgg))
        assert any("@features.29 (relu5_3)" in t for t in _legend_labels(vgg))
        assert any(t.endswith("@layer4") for t in _legend_labels(resnet))
        assert not any("features" in t for t in _legend_labels(resnet))
        colours = {line.get_color() for line in vgg.get_lines() if line.get_label().startswith(("train", "plain"))}
        assert colours <= set(common.METHOD_COLOURS.values())


def test_fig4_fig5_maps_have_a_colourbar():
    import torch

    from gsutils.experiments.normgrad.meta_saliency import MetaExamples
    from gsutils.experiments.normgrad.randomisation import RandomisationRun
    from gsutils.plots.normgrad_layers import plot_fig4, plot_fig5

    S, rng = 16, np.random.default_rng(0)
    stages = ["original", "classifier", "block5"]
    run = RandomisationRun(arch="vgg16", stages=stages, spearman={}, spearman_abs={}, hits={}, pairs=[(0, 1)],
                           figure_maps={(k, m, "input"): torch.rand(len(stages), 1, S, S)
                                        for k in ("plain", "meta") for m in ("linear_approx", "selective_normgrad")})
    fig = plot_fig5(run, rng.random((3, S, S)), 0, "input")
    assert len(_colorbars(fig)) == 1 and len(_image_axes(fig)) == 4 * (len(stages) + 1)
    assert fig.get_size_inches()[0] <= 12
    ex = MetaExamples(rgb=rng.random((2, 3, S, S)), present=["dog", "cat"], absent=["car", "bus"],
                      maps={(k, sg, "normgrad", "input"): rng.random((2, S, S)) for k in ("plain", "meta")
                            for sg in ("positive", "negative")})
    fig = plot_fig4(ex, "normgrad", "input")
    assert len(_colorbars(fig)) == 1 and len(_image_axes(fig)) == 10
    assert common.SALIENCY_CMAP in _cmaps(fig)


def test_pointing_lines_use_the_method_palette(monkeypatch):
    import pandas as pd

    from gsutils.metrics.pointing import SUBSETS
    from gsutils.plots import normgrad as ng

    layers = ["input", "features.3", "features.29"]
    cols = pd.MultiIndex.from_tuples([(s, lay) for s in SUBSETS for lay in layers])
    acc = pd.DataFrame(np.full((2, len(cols)), 50.0), index=["gradient", "normgrad"], columns=cols)
    monkeypatch.setattr(ng, "pointing_accuracies", lambda run: acc)
    monkeypatch.setattr(ng, "center_accuracy", lambda run: {s: 30.0 for s in SUBSETS})
    from gsutils.experiments.normgrad.pointing_results import PointingRun

    run = PointingRun(arch="vgg16", layers=layers, image_index=[], class_id=[], difficult=[], hits={},
                      tolerance=15, image_size=None, n_skipped=0, data="made up")
    fig = ng.plot_pointing_by_layer([run])
    ax = fig.axes[0]
    assert [line.get_color() for line in ax.get_lines()[:2]] == [common.method_colour("gradient"),
                                                                 common.method_colour("normgrad")]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "features.29\n(relu5_3)"


# ------------------------------------------------------------------------------ context (S1.3, S1.4)


def _toy_views(n: int = 2, S: int = 16, k: int = 11):
    rng = np.random.default_rng(0)
    views = {key: rng.random((n, 1, S, S)) for key in ("input", "perturbed", "optimised")}
    views |= {key: rng.dirichlet(np.ones(k), (n, S, S)).transpose(0, 3, 1, 2)
              for key in ("input_probs", "perturbed_probs", "optimised_probs")}
    views["map"] = rng.random((n, S, S))
    return views


def test_toy_galleries_overlay_saliency_with_a_colourbar():
    from gsutils.experiments.grid.context_evidence import GalleryViews
    from gsutils.plots.context import plot_method_maps, plot_saliency_gallery

    views = _toy_views()
    fig = plot_saliency_gallery(views, row_labels=["a", "b"])
    assert len(_colorbars(fig)) == 1 and len(_image_axes(fig)) == 2 * 7
    assert common.SALIENCY_CMAP in _cmaps(fig) and "jet" not in _cmaps(fig)
    typed = GalleryViews(**views, digits=np.array([3, 4]), request=views["map"] > 0.5, biased=views["map"] < 0.2,
                         grey=np.zeros(2), empty=np.zeros(2, dtype=bool))
    fig = plot_saliency_gallery(typed, row_labels=["a", "b"])
    assert len(_colorbars(fig)) == 1 and len(_image_axes(fig)) == 2 * 7
    maps = {m: views["map"] for m in ("vg", "sg", "ig", "grid")}
    fig = plot_method_maps(views["input"], maps, views["map"] > 0.5, row_labels=["a", "b"])
    assert len(_colorbars(fig)) == 1 and len(_image_axes(fig)) == 2 * 5
    assert [a.get_title() for a in fig.axes[1:5]] == ["VG", "SG", "IG", "Grid saliency"]


# ------------------------------------------------------------------------------ captioning, backbones


def test_fig6_overlays_with_one_colourbar():
    from gsutils.experiments.normgrad.caption_results import ExplainedCaptions
    from gsutils.plots.captioning import plot_fig6

    rng, S = np.random.default_rng(0), 16
    names = ["encoder.layer3.0.relu", "encoder.layer4.0.relu", "encoder.layer4", "combined"]
    per_map = np.full((3, len(names)), np.nan)
    ex = ExplainedCaptions(
        maps=rng.random((3, len(names), S, S)), word_maps=np.zeros((3, len(names), S, S)),
        word_pos=np.full(3, -1), mass=per_map, word_mass=per_map, entropy=per_map, half_max=per_map,
        named_mask=(rng.random((3, S, S)) > 0.7).astype(np.uint8), named_area=np.full(3, np.nan),
        images=rng.integers(0, 255, (3, 3, S, S), dtype=np.uint8), index=np.arange(3))
    fig = plot_fig6(ex, ["a dog on grass"] * 3, names, [0, 2])
    assert len(_colorbars(fig)) == 1 and len(_image_axes(fig)) == 2 * 5
    assert common.SALIENCY_CMAP in _cmaps(fig) and "jet" not in _cmaps(fig)
    assert fig.get_size_inches()[0] <= 12


def test_cbl_bars_use_the_method_palette():
    import pandas as pd

    from gsutils.experiments.grid.context_results import METHODS
    from gsutils.plots.backbones import plot_cbl_bars

    idx = pd.MultiIndex.from_tuples([(bb, m) for bb in ("vgg16", "resnet18") for m in METHODS])
    cbl = pd.DataFrame({"cbl": 0.6, "cbl_std": 0.1, "chance": 0.5}, index=idx)
    fig = plot_cbl_bars(cbl)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0]
    from matplotlib.colors import to_hex

    assert {to_hex(p.get_facecolor()) for p in bars} == {common.method_colour(m).lower() for m in METHODS}


def test_fig_s9_std_of_one_network_is_no_spread_not_zero():
    """Fig. S9 b: a row resting on one network shows "no spread", never a row of zeros."""
    from types import SimpleNamespace

    from gsutils.plots.backbones import _iou_rows, plot_iou_mean_std

    def res(strength, texture, values):
        bias = SimpleNamespace(strength=strength, digit=2, texture=texture)
        return SimpleNamespace(run=SimpleNamespace(backbone="small_vgg16", bias=bias), iou=tuple(values))

    one = [res("none", 0, [0.8] * 11), res("weak", 0, [0.7] * 11)]
    names, mean, std = _iou_rows(one, "small_vgg16")
    assert names == ["N", "weak, bias digit 2"] and np.isnan(std).all()
    two = one + [res("weak", 1, [0.5] * 11)]
    _, _, std2 = _iou_rows(two, "small_vgg16")
    assert np.isnan(std2[0]).all() and np.allclose(std2[1], 0.1)
    fig = plot_iou_mean_std(one, ["small_vgg16"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("one network: no spread") == 2 and ".00" not in texts
    plt.close(fig)
