"""What every figure of the book shares: the class palette, the method palette and labels, the
saliency colormap (with its overlay and colourbar), and layer labels.

Chapters never pick colours or spell method names themselves; the figure
modules of :mod:`gsutils.plots` read them from here, so a digit, a bias
texture or a method looks and reads the same on every page.
"""

from __future__ import annotations

import numpy as np

#: colours of the 11 toy classes: digits 0-9 as matplotlib's tab10, the background (class 10) dark grey
CLASS_RGB = np.array(
    [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
     (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127),
     (38, 38, 38)], dtype=np.float64) / 255.0

#: frame colour of bias textures, outline colour of biased parts, and the "paper" markers
BIAS_COLOUR = "#d62728"
#: the colour of a reference (published) value drawn beside ours
REFERENCE_COLOUR = "#7f7f7f"

#: display names of every saliency method in the book (keys as the library names them)
METHOD_LABELS: dict[str, str] = {
    # Grid Saliency (Hoyer et al., 2019)
    "vg": "VG",
    "sg": "SG",
    "ig": "IG",
    "grid": "Grid saliency",
    "baseline": "Baseline",
    # Extract & Aggregate (Rebuffi et al., 2020), as gsutils.saliency.extract_aggregate.METHODS
    "gradient": "Gradient",
    "gradient_sum": "Gradient (sum)",
    "guided_backprop": "Guided backprop",
    "grad_cam": "Grad-CAM",
    "linear_approx": "Linear approx.",
    "normgrad": "NormGrad",
    "normgrad_conv": "NormGrad (conv)",
    "selective_normgrad": "Selective NormGrad",
    "excitation_backprop": "Excitation backprop",
    "contrastive_excitation_backprop": "Contr. excitation BP",
    "center": "Center baseline",
}


def method_label(method: str) -> str:
    """The display name of ``method`` (the key itself when the table has none)."""
    return METHOD_LABELS.get(method, method)


def class_colours(k: int = len(CLASS_RGB)) -> np.ndarray:
    """``(k, 3)`` RGB colours: the class palette, extended by fixed random colours past 11 classes."""
    if k <= len(CLASS_RGB):
        return CLASS_RGB[:k]
    return np.vstack([CLASS_RGB, np.random.default_rng(0).random((k - len(CLASS_RGB), 3))])


def segmentation_cmap():
    """A ``ListedColormap`` of the 11 toy classes (the class palette)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap([tuple(c) for c in CLASS_RGB], name="toy_segmentation")


# ------------------------------------------------------------------------------ methods

#: one colour per saliency method (the method palette). Qualitative and apart from the
#: class palette (tab10): Okabe-Ito's colour-blind-safe set first, so that a method never
#: looks like a class. Methods of one paper never share a colour; the two papers' methods
#: never appear in one figure.
METHOD_COLOURS: dict[str, str] = {
    # Grid Saliency
    "vg": "#E69F00",  # orange
    "sg": "#56B4E9",  # sky blue
    "ig": "#009E73",  # bluish green
    "grid": "#0072B2",  # blue
    "baseline": "#999999",  # grey: the dilated-contour baseline
    # Extract & Aggregate
    "gradient": "#E69F00",
    "gradient_sum": "#B8860B",
    "guided_backprop": "#56B4E9",
    "grad_cam": "#009E73",
    "linear_approx": "#D55E00",  # vermillion
    "normgrad": "#0072B2",
    "normgrad_conv": "#6A3D9A",
    "selective_normgrad": "#CC79A7",  # reddish purple
    "excitation_backprop": "#882255",  # wine
    "contrastive_excitation_backprop": "#000000",
    "center": "#999999",
}
#: colours for series that are no method (networks, map kinds), in order
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def method_colour(method: str, index: int = 0) -> str:
    """The colour of ``method`` (a fixed series colour by ``index`` when the table has none)."""
    return METHOD_COLOURS.get(method, SERIES_COLOURS[index % len(SERIES_COLOURS)])


# ------------------------------------------------------------------------------ saliency maps

#: the one sequential colormap of every saliency map and overlay in the book (perceptually
#: uniform, black -> purple -> orange -> pale yellow; no qualitative class colour reads as a value)
SALIENCY_CMAP = "magma"
#: the colormap of value matrices (CBD, IoU, shares): sequential, distinct from the saliency one
VALUE_CMAP = "viridis"


def normalise_map(m: np.ndarray) -> np.ndarray:
    """``m`` scaled to ``[0, 1]`` by its own minimum and maximum (zeros when constant; NaN -> 0)."""
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def grey_image(image: np.ndarray) -> np.ndarray:
    """An image as ``(H, W)`` grey in ``[0, 1]``: ``(3, H, W)``, ``(1, H, W)``, ``(H, W, 3)`` or ``(H, W)``."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.mean(0)
    elif a.ndim == 3:
        a = a.mean(-1)
    if a.max() > 1.0 + 1e-6:
        a = a / 255.0
    return np.clip(a, 0, 1)


def overlay_saliency(ax, image: np.ndarray, saliency: np.ndarray, *, vmin: float = 0.0, vmax: float = 1.0,
                     brighten: float = 1.0):
    """Draw ``saliency`` over the grey ``image`` in :data:`SALIENCY_CMAP` and return the mappable.

    The image is shown in grey (so that no class colour of the scene competes
    with the map), stretched to its own range and scaled by ``brighten``; the
    map's opacity grows with its value, so that zero saliency leaves the
    image visible and strong saliency covers it.
    """
    from matplotlib import colors

    grey = grey_image(image)
    lo, hi = np.percentile(grey, [1, 99]) if grey.size else (0.0, 1.0)
    grey = np.clip((grey - lo) / (hi - lo), 0, 1) if hi > lo else grey
    ax.imshow(np.clip(grey * brighten, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    s = np.nan_to_num(np.asarray(saliency, dtype=np.float64))
    norm = colors.Normalize(vmin=vmin, vmax=vmax)
    alpha = np.clip(0.25 + 0.65 * norm(s), 0, 0.9) * (s > vmin)
    im = ax.imshow(s, cmap=SALIENCY_CMAP, norm=norm, alpha=alpha, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def show_saliency(ax, saliency: np.ndarray, *, vmin: float = 0.0, vmax: float = 1.0):
    """Draw a saliency map on its own in :data:`SALIENCY_CMAP` and return the mappable."""
    im = ax.imshow(np.asarray(saliency, dtype=np.float64), cmap=SALIENCY_CMAP, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def saliency_colorbar(fig, mappable, axes, label: str = "saliency (each map scaled to [0, 1])", **kw):
    """One colourbar for the saliency maps of ``axes`` (a list of axes or one)."""
    kw = {"shrink": 0.8, "pad": 0.02, **kw}
    cb = fig.colorbar(mappable, ax=axes, **kw)
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=8)
    return cb


# ------------------------------------------------------------------------------ layers

#: VGG16's ReLU modules (``features.N``) by the name of the convolution they follow
_VGG16_RELU = {1: "conv1_1", 3: "conv1_2", 6: "conv2_1", 8: "conv2_2", 11: "conv3_1", 13: "conv3_2",
               15: "conv3_3", 18: "conv4_1", 20: "conv4_2", 22: "conv4_3", 25: "conv5_1", 27: "conv5_2",
               29: "conv5_3"}
_VGG16_CONV = {k - 1: v for k, v in _VGG16_RELU.items()}


def layer_label(layer: str, arch: str | None = None) -> str:
    """A layer's display name: its module path, with VGG16's conventional name where it has one.

    ``"features.29"`` (VGG16) -> ``"features.29 (relu5_3)"``, ``"features.28"`` -> ``"features.28
    (conv5_3)"``; ResNet paths
    (``"layer4"``) and ``"input"`` are returned as they are. The label is
    always built from the network's own module path, never from another
    architecture's.
    """
    layer = str(layer)
    if layer.startswith("features.") and arch in (None, "vgg16"):
        try:
            k = int(layer.split(".")[1])
        except (IndexError, ValueError):
            return layer
        name = _VGG16_RELU[k].replace("conv", "relu") if k in _VGG16_RELU else _VGG16_CONV.get(k)
        return f"{layer} ({name})" if name else layer
    return layer
