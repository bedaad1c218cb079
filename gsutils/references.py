"""Numbers the papers publish, each with its source.

Chapters compare their measurements with these values; no notebook holds a
paper's number of its own. Beside each group of numbers stand the thresholds
the ledger judges our measurements by (fixed before measuring): the criterion
of a claim reads them from here, so a reader sees in one place what the paper
reports and how close we must come.
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

# thresholds of the S1.2 claims (gsutils.experiments.bias_results)
#: how far a measured value may be from the reference to count as reproduced
REFERENCE_TOL = 0.05
#: the gap between consecutive strengths that counts as a clear ordering
ORDER_MARGIN = 0.05
#: "other digits stay high": their mean IoU at least this (and within REFERENCE_TOL of N)
HIGH_IOU = 0.8

# thresholds of the S1.3 / S1.4 claims (gsutils.experiments.context_claims)
#: S1.3 detection: mean grid CBD on the bias digit at least this ...
DETECT_ON = 0.1
#: ... at most this on the other digits ...
DETECT_OFF = 0.05
#: ... and at least this many times the other digits'
DETECT_RATIO = 5.0
#: S1.3 texture dependence: (max - min) / mean over bias textures of the bias digit's CBD
TEXTURE_SPREAD = 0.3
#: informative maps: at least this share of the bias digit's maps is non-empty ...
INFORMATIVE_NONEMPTY = 0.9
#: ... and the bias digit's mean CBD is at least this many times the other digits'
INFORMATIVE_RATIO = 1.25
#: S1.4: grid saliency's mean CBL exceeds the best gradient method's by at least this
CBL_MARGIN = 0.2

#: TorchRay's published pointing accuracies on PASCAL VOC 2007 test (all / difficult, %),
#: from the pointing-game benchmark table of TorchRay's documentation; shown for context
#: only: a different dataset and full-size fine-tuned networks
TORCHRAY_VOC07: dict[str, dict[str, tuple[float, float]]] = {
    "vgg16": {"gradient": (76.3, 56.9), "guided_backprop": (75.9, 53.0), "grad_cam": (86.6, 74.0),
              "excitation_backprop": (77.1, 56.6), "contrastive_excitation_backprop": (79.9, 66.5)},
    "resnet50": {"grad_cam": (90.4, 82.3)},
}

#: NormGrad section B, Table 1 (Rebuffi et al., 2020, supplement): the range of the Spearman
#: correlation (%) between NormGrad with and without the virtual identity trick over the
#: layers of VGG16 and ResNet50
IDENTITY_TRICK_SPEARMAN: tuple[float, float] = (94.3, 99.5)
#: NormGrad section B (text): |pointing-accuracy difference| with and without the trick,
#: mean and standard deviation (percentage points)
IDENTITY_TRICK_POINTING_DIFF: tuple[float, float] = (0.53, 0.62)

#: where the Grid Saliency S2 (Cityscapes) numbers come from
GRID_SALIENCY_POSTER_S2 = (
    "Hoyer, Munoz, Katiyar, Khoreva, Fischer: Grid Saliency for Context Explanations of "
    "Semantic Segmentation, NeurIPS 2019, poster, Cityscapes context statistics (rider requests: "
    "share of salient context on bicycles, grid saliency vs the dilated-contour baseline; the values "
    "as quoted in the project's plan, 'about 0.31 vs 0.06'; not re-read from the poster here)"
)
#: Grid Saliency S2 / poster: mean share of the salient context of *rider* requests that falls on
#: *bicycle*, ``(grid saliency, baseline)`` (:data:`GRID_SALIENCY_POSTER_S2`)
CITYSCAPES_RIDER_BICYCLE_POSTER: tuple[float, float] = (0.31, 0.06)
#: Grid Saliency S2: the supplement's request and baseline sizes on 1024 x 2048 Cityscapes frames
#: (px): correct-prediction requests >= 10k, erroneous ones >= 625 (after 3x3 erosion); the
#: dilated-contour baseline's budget of 400k px per frame; samples with preservation loss > 0.1 dropped
CITYSCAPES_S2_SETTINGS: dict[str, float] = {"min_correct": 10_000, "min_erroneous": 625,
                                            "baseline_budget": 400_000, "max_preservation": 0.1}
