"""What every figure of the book shares: one class palette, one method-label table.

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
