"""Numbers the papers publish, each with its source.

Chapters compare their measurements with these values; no notebook holds a
paper's number of its own.
"""

from __future__ import annotations

#: where the Grid Saliency (Hoyer et al., 2019) context-bias numbers come from
GRID_SALIENCY_POSTER = (
    "Hoyer, Munoz, Katiyar, Khoreva, Fischer: Grid Saliency for Context Explanations of "
    "Semantic Segmentation, NeurIPS 2019, poster, CBL bar chart of the toy experiment "
    "(values read off the figure, about +-0.05)"
)

#: mean context bias localisation (CBL) per method, ``(strong bias, weak bias)``,
#: read off the poster's figure (:data:`GRID_SALIENCY_POSTER`)
CBL_POSTER: dict[str, tuple[float, float]] = {
    "vg": (0.50, 0.49),
    "sg": (0.45, 0.46),
    "ig": (0.61, 0.55),
    "grid": (0.95, 0.89),
}

#: how precisely a value can be read off the poster's figure
CBL_POSTER_READING = 0.05


def cbl_poster(method: str, strength: str) -> float:
    """The poster's mean CBL of ``method`` (``vg``, ``sg``, ``ig``, ``grid``) under ``strength`` bias."""
    if method not in CBL_POSTER:
        raise ValueError(f"no poster CBL for method {method!r}; have {sorted(CBL_POSTER)}")
    if strength not in ("strong", "weak"):
        raise ValueError(f"strength must be 'strong' or 'weak', got {strength!r}")
    return CBL_POSTER[method][0 if strength == "strong" else 1]


#: IoU of the biased digit on *unbiased* test data (Grid Saliency S1.2, Fig. S4a / S5a), for
#: the unbiased network ("none"), weak and strong bias, read off the poster's figure
#: (:data:`GRID_SALIENCY_POSTER`, about +-0.05)
BIAS_DIGIT_IOU_POSTER: dict[str, float] = {"none": 0.96, "weak": 0.74, "strong": 0.14}

#: TorchRay's published pointing accuracies on PASCAL VOC 2007 test (all / difficult, %),
#: from the pointing-game benchmark table of TorchRay's documentation; shown for context
#: only: a different dataset and full-size fine-tuned networks
TORCHRAY_VOC07: dict[str, dict[str, tuple[float, float]]] = {
    "vgg16": {"gradient": (76.3, 56.9), "guided_backprop": (75.9, 53.0), "grad_cam": (86.6, 74.0),
              "excitation_backprop": (77.1, 56.6), "contrastive_excitation_backprop": (79.9, 66.5)},
    "resnet50": {"grad_cam": (90.4, 82.3)},
}

