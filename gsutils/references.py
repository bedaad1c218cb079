"""Numbers the papers publish, each with its source.

Chapters compare their measurements with these values; no notebook holds a
paper's number of its own. Beside each group of numbers stand the thresholds
the ledger judges our measurements by (fixed before measuring): the criterion
of a claim reads them from here, so a reader sees in one place what the paper
reports and how close we must come.

Every number here has one source: a supplement (:data:`SUPPLEMENTS`; its text
is ``../shared/papers/<file>``), the Grid Saliency poster, or TorchRay's
documentation. :data:`CITED` lists, for each constant taken from a supplement,
the section, table or figure it comes from and the printed text that holds
its numbers; ``tests/test_references.py`` finds each such text in the
supplement and each number of the constant in that text.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the two supplements, by paper; their text is ``../shared/papers/<SUPPLEMENT_FILES[paper]>``
SUPPLEMENTS: dict[str, str] = {
    "grid_saliency": "Hoyer, Munoz, Katiyar, Khoreva, Fischer: Grid Saliency for Context Explanations of "
                     "Semantic Segmentation, NeurIPS 2019, supplementary material",
    "normgrad": "Rebuffi, Fong, Ji, Vedaldi: There and Back Again: Revisiting Backpropagation Saliency "
                "Methods, CVPR 2020, supplementary material",
}
SUPPLEMENT_FILES: dict[str, str] = {"grid_saliency": "grid_saliency_supplement.txt",
                                    "normgrad": "normgrad_supplement.txt"}

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

# thresholds of the S1.2 claims (gsutils.experiments.grid.bias_results)
#: how far a measured value may be from the reference to count as reproduced
REFERENCE_TOL = 0.05
#: the gap between consecutive strengths that counts as a clear ordering
ORDER_MARGIN = 0.05
#: "other digits stay high": their mean IoU at least this (and within REFERENCE_TOL of N)
HIGH_IOU = 0.8

# thresholds of the S1.3 / S1.4 claims (gsutils.experiments.grid.context_claims)
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
#: from the pointing-game benchmark table of TorchRay's documentation (not a supplement); kept
#: for context only: a different dataset and full-size fine-tuned networks. Table 2 of the
#: NormGrad supplement (:data:`TABLE2_BEST_LAYERS`) is what section A compares with.
TORCHRAY_VOC07: dict[str, dict[str, tuple[float, float]]] = {
    "vgg16": {"gradient": (76.3, 56.9), "guided_backprop": (75.9, 53.0), "grad_cam": (86.6, 74.0),
              "excitation_backprop": (77.1, 56.6), "contrastive_excitation_backprop": (79.9, 66.5)},
    "resnet50": {"grad_cam": (90.4, 82.3)},
}

# ------------------------------------------------------------------------------ NormGrad supplement

#: the supplement's names of the two networks, by this project's architecture name
NORMGRAD_ARCH_LABELS: dict[str, str] = {"resnet50": "ResNet50", "vgg16": "VGG16"}

#: NormGrad section A: the pointing game's tolerance (px) on PASCAL VOC and COCO
POINTING_TOLERANCE_PX = 15
#: NormGrad section A: images of the PASCAL VOC 2007 test split
VOC07_TEST_IMAGES = 4952
#: NormGrad section A: a (image, class) pair is *difficult* when the class covers less than this
#: share of the image (%) and another class is present
DIFFICULT_AREA_PERCENT = 25

#: NormGrad section B, Table 1: correlation (%) between NormGrad maps with and without the
#: virtual identity trick, ``(mean, std)`` per (architecture, layer). The supplement says
#: "correlation" and does not name the coefficient; this project measures Spearman's.
IDENTITY_TRICK_TABLE1: dict[tuple[str, str], tuple[float, float]] = {
    ("resnet50", "layer1.0.conv1"): (99.48, 0.55),
    ("resnet50", "layer2.0.conv1"): (99.32, 0.35),
    ("resnet50", "layer3.0.conv1"): (99.16, 0.42),
    ("resnet50", "layer4.0.conv1"): (98.35, 1.05),
    ("vgg16", "features.2"): (97.77, 1.34),
    ("vgg16", "features.7"): (99.15, 0.42),
    ("vgg16", "features.14"): (98.99, 0.57),
    ("vgg16", "features.21"): (97.79, 1.42),
    ("vgg16", "features.28"): (94.33, 3.09),
}
#: the range (%) of Table 1's mean correlations over its layers, ``(min, max)``
IDENTITY_TRICK_CORRELATION_RANGE: tuple[float, float] = (
    min(m for m, _ in IDENTITY_TRICK_TABLE1.values()), max(m for m, _ in IDENTITY_TRICK_TABLE1.values()))
#: the name the chapters have used for :data:`IDENTITY_TRICK_CORRELATION_RANGE`
IDENTITY_TRICK_SPEARMAN = IDENTITY_TRICK_CORRELATION_RANGE
#: NormGrad section B (text): the difference of pointing accuracy with and without the trick,
#: ``(mean, std)`` in %; read here as the absolute difference in percentage points
IDENTITY_TRICK_POINTING_DIFF: tuple[float, float] = (0.53, 0.62)

#: NormGrad Table 2's abbreviations of the methods, by this project's method name
TABLE2_ABBREVIATIONS: dict[str, str] = {
    "contrastive_excitation_backprop": "CEB", "excitation_backprop": "EB", "grad_cam": "GC",
    "gradient": "Gd", "gradient_sum": "Gds", "guided_backprop": "Gui", "linear_approx": "LA",
    "normgrad": "NG", "selective_normgrad": "sNG",
}
#: NormGrad section A/C, Table 2: the best single layer of each method in the pointing game on
#: VOC07, as printed, ``{method: {arch: (all, difficult)}}`` (``feat.N`` is VGG16's
#: ``features.N``; :func:`table2_best_layer` gives the module name)
TABLE2_BEST_LAYERS: dict[str, dict[str, tuple[str, str]]] = {
    "contrastive_excitation_backprop": {"resnet50": ("layer3", "layer4"), "vgg16": ("feat.29", "feat.29")},
    "excitation_backprop": {"resnet50": ("layer4", "layer4"), "vgg16": ("feat.29", "feat.29")},
    "grad_cam": {"resnet50": ("layer4", "layer4"), "vgg16": ("feat.29", "feat.29")},
    "gradient": {"resnet50": ("layer2", "layer2"), "vgg16": ("feat.29", "feat.22")},
    "gradient_sum": {"resnet50": ("layer2", "layer2"), "vgg16": ("feat.8", "feat.8")},
    "guided_backprop": {"resnet50": ("layer3", "layer3"), "vgg16": ("input", "input")},
    "linear_approx": {"resnet50": ("layer4", "layer4"), "vgg16": ("feat.29", "feat.29")},
    "normgrad": {"resnet50": ("layer3", "layer3"), "vgg16": ("feat.22", "feat.22")},
    "selective_normgrad": {"resnet50": ("layer4", "layer4"), "vgg16": ("feat.29", "feat.29")},
}


def table2_best_layer(method: str, arch: str, subset: str = "all") -> str:
    """Table 2's best layer of ``method`` on ``arch`` (``subset`` ``"all"`` or ``"difficult"``), as a module path."""
    if method not in TABLE2_BEST_LAYERS:
        raise ValueError(f"Table 2 has no method {method!r}; it has {sorted(TABLE2_BEST_LAYERS)}")
    if arch not in NORMGRAD_ARCH_LABELS:
        raise ValueError(f"Table 2 has no architecture {arch!r}; it has {sorted(NORMGRAD_ARCH_LABELS)}")
    if subset not in ("all", "difficult"):
        raise ValueError(f"subset must be 'all' or 'difficult', got {subset!r}")
    layer = TABLE2_BEST_LAYERS[method][arch][0 if subset == "all" else 1]
    return "features." + layer[len("feat."):] if layer.startswith("feat.") else layer


#: NormGrad section C, Table 3: gain (percentage points) of each weighted combination of layers
#: over the best single layer, pointing game on VOC07, ``{(method, mode, weighting): {arch:
#: (all, difficult)}}``; mode ``"sum"`` is the table's "+", ``"product"`` its "x"
TABLE3_GAINS: dict[tuple[str, str, str], dict[str, tuple[float, float]]] = {
    ("linear_approx", "sum", "accuracy"): {"resnet50": (0.57, 1.47), "vgg16": (0.22, 2.09)},
    ("linear_approx", "sum", "spread"): {"resnet50": (0.81, 1.66), "vgg16": (-3.01, -7.18)},
    ("linear_approx", "sum", "linear"): {"resnet50": (0.68, 0.74), "vgg16": (0.36, 2.22)},
    ("linear_approx", "sum", "uniform"): {"resnet50": (0.58, 1.29), "vgg16": (-0.61, -0.20)},
    ("linear_approx", "product", "accuracy"): {"resnet50": (0.87, 1.84), "vgg16": (0.42, 2.91)},
    ("linear_approx", "product", "spread"): {"resnet50": (1.01, 1.78), "vgg16": (-2.92, -6.80)},
    ("linear_approx", "product", "linear"): {"resnet50": (0.52, 0.72), "vgg16": (0.49, 2.87)},
    ("linear_approx", "product", "uniform"): {"resnet50": (0.32, 0.83), "vgg16": (-0.25, 0.52)},
    ("selective_normgrad", "sum", "accuracy"): {"resnet50": (1.08, 1.37), "vgg16": (0.48, 0.85)},
    ("selective_normgrad", "sum", "spread"): {"resnet50": (0.94, 1.40), "vgg16": (-3.66, -6.43)},
    ("selective_normgrad", "sum", "linear"): {"resnet50": (0.94, 1.67), "vgg16": (0.62, 0.85)},
    ("selective_normgrad", "sum", "uniform"): {"resnet50": (0.25, 0.54), "vgg16": (-0.93, -2.55)},
    ("selective_normgrad", "product", "accuracy"): {"resnet50": (1.26, 1.65), "vgg16": (0.83, 1.88)},
    ("selective_normgrad", "product", "spread"): {"resnet50": (1.12, 2.09), "vgg16": (-3.13, -6.18)},
    ("selective_normgrad", "product", "linear"): {"resnet50": (0.63, 0.95), "vgg16": (0.72, 0.62)},
    ("selective_normgrad", "product", "uniform"): {"resnet50": (0.89, 1.79), "vgg16": (-0.27, -1.76)},
}


def table3_gain(method: str, mode: str, weighting: str, arch: str, subset: str = "all") -> float:
    """Table 3's gain (percentage points) of one combination on ``arch`` and ``subset``."""
    key = (method, mode, weighting)
    if key not in TABLE3_GAINS:
        raise ValueError(f"Table 3 has no row {key!r}")
    if subset not in ("all", "difficult"):
        raise ValueError(f"subset must be 'all' or 'difficult', got {subset!r}")
    return TABLE3_GAINS[key][arch][0 if subset == "all" else 1]


# ------------------------------------------------------------------------ Grid Saliency supplement

#: Grid Saliency S1.1 and S1.2: the toy data, training recipe and grid-saliency settings the
#: paper profile and :class:`gsutils.saliency.grid.GridSaliencyConfig` default to
GRID_SALIENCY_S1_SETTINGS: dict[str, float] = {
    "image_side": 64, "textures": 25, "classes": 11, "n_train": 50_000, "n_test": 1_000,
    "epochs": 50, "batch_size": 100, "lr": 1e-3, "lr_late": 1e-4, "early_epochs": 40, "late_epochs": 10,
    "mask_side": 4, "greys": (0, 0.25, 0.5, 0.75, 1.0), "erosion": 3,
    "sgd_momentum": 0.5, "sgd_lr": 0.2, "steps": 100, "init": 0.5, "clip_below": 0.2, "lam": 0.05,
    "ig_steps": 25, "sg_samples": 25, "sg_noise": 0.15, "seeds": 5, "bias_textures": 5,
}

#: where the Grid Saliency S2 (Cityscapes) number of the poster comes from
GRID_SALIENCY_POSTER_S2 = (
    "Hoyer, Munoz, Katiyar, Khoreva, Fischer: Grid Saliency for Context Explanations of "
    "Semantic Segmentation, NeurIPS 2019, poster, Cityscapes context statistics (rider requests: "
    "share of salient context on bicycles, grid saliency vs the dilated-contour baseline). The "
    "supplement's S2 gives no value for it (Fig. S14 is a figure; its text states only that "
    "riders' salient context falls on bikes), and the poster is not among this project's sources "
    "(../shared/papers), so the value is the poster's as the project first recorded it, unverified here"
)
#: Grid Saliency S2 / poster: mean share of the salient context of *rider* requests that falls on
#: *bicycle*, ``(grid saliency, baseline)`` (:data:`GRID_SALIENCY_POSTER_S2`)
CITYSCAPES_RIDER_BICYCLE_POSTER: tuple[float, float] = (0.31, 0.06)
#: Grid Saliency S2.1: the supplement's request and baseline sizes on Cityscapes frames (px):
#: correct-prediction requests >= 10k, erroneous ones >= 625 (after 3x3 erosion); the
#: dilated-contour baseline's budget of 400k px per frame; samples with preservation loss > 0.1 dropped
CITYSCAPES_S2_SETTINGS: dict[str, float] = {"min_correct": 10_000, "min_erroneous": 625,
                                            "baseline_budget": 400_000, "max_preservation": 0.1}
#: Grid Saliency S2.1: the Cityscapes validation images the analysis starts from
CITYSCAPES_VAL_IMAGES = 500
#: Grid Saliency S2.1, Table S1: explained samples per request (prediction) class that pass the
#: selection (a component of >= 10k px after erosion, non-empty map, preservation loss <= 0.1)
TABLE_S1_COUNTS: dict[str, int] = {"rider": 39, "car": 249, "person": 45, "bicycle": 105,
                                   "motorcycle": 16, "pole": 162, "traffic sign": 81}
#: Grid Saliency S2.1, Table S2: explained samples per (ground-truth class, predicted class) whose
#: request (their intersection) passes the selection (>= 625 px after erosion, non-empty map,
#: preservation loss <= 0.1). The table's layout is recovered from the text: each ground-truth
#: class is followed by its predicted classes and counts.
TABLE_S2_COUNTS: dict[tuple[str, str], int] = {
    ("rider", "rider"): 160, ("rider", "person"): 67,
    ("person", "person"): 217, ("person", "rider"): 45, ("person", "car"): 29,
    ("bicycle", "bicycle"): 262, ("bicycle", "motorcycle"): 12,
    ("car", "car"): 323, ("car", "motorcycle"): 8, ("car", "person"): 33,
    ("motorcycle", "motorcycle"): 44, ("motorcycle", "bicycle"): 18, ("motorcycle", "car"): 9,
    ("pole", "pole"): 410, ("pole", "building"): 324, ("pole", "vegetation"): 145,
}


# ------------------------------------------------------------------------------------ the sources


@dataclass(frozen=True)
class Cited:
    """The source of one constant of this module.

    Attributes
    ----------
    name:
        The constant's name in this module.
    source:
        ``"grid_saliency"`` or ``"normgrad"`` (a supplement, :data:`SUPPLEMENTS`), ``"poster"``
        (the Grid Saliency poster) or ``"torchray"`` (TorchRay's documentation).
    where:
        Section, table or figure.
    quotes:
        For a supplement: passages of its text (whitespace collapsed to single spaces) that hold
        every number of the constant; empty for other sources.
    """

    name: str
    source: str
    where: str
    quotes: tuple[str, ...] = ()


def _f2(v: float) -> str:
    return f"{v:.2f}"


def _table1_quotes() -> tuple[str, ...]:
    rows = tuple(f"{NORMGRAD_ARCH_LABELS[a]} {layer} {_f2(m)} ± {_f2(s)}"
                 for (a, layer), (m, s) in IDENTITY_TRICK_TABLE1.items())
    return rows + (f"min of {_f2(IDENTITY_TRICK_CORRELATION_RANGE[0])}",)


def _table2_quotes() -> tuple[str, ...]:
    return tuple(f"{TABLE2_ABBREVIATIONS[m]} {' '.join(v['resnet50'])} {' '.join(v['vgg16'])}"
                 for m, v in TABLE2_BEST_LAYERS.items())


def _table3_quotes() -> tuple[str, ...]:
    abbrev = {"linear_approx": "LA", "selective_normgrad": "sNG"}
    op = {"sum": "+", "product": "×"}
    return tuple(f"{abbrev[m]} {op[mode]} {w} " + " ".join(_f2(x) for x in (*v["resnet50"], *v["vgg16"]))
                 for (m, mode, w), v in TABLE3_GAINS.items())


def _table_s1_quote() -> str:
    return "Number of samples " + " ".join(f"{c} {n}" for c, n in TABLE_S1_COUNTS.items())


def _table_s2_quote() -> str:
    parts, last = [], None
    for (gt, pred), n in TABLE_S2_COUNTS.items():
        if gt != last:
            parts.append(gt)
            last = gt
        parts.append(f"{pred} {n}")
    return "Prediction class Number of samples " + " ".join(parts)


#: the source of every constant above that holds a published number
CITED: tuple[Cited, ...] = (
    Cited("CBL_POSTER", "poster", "CBL bar chart of the toy experiment (read off the figure)"),
    Cited("BIAS_DIGIT_IOU_POSTER", "poster", "IoU of the bias digit on unbiased data (read off the figure)"),
    Cited("CITYSCAPES_RIDER_BICYCLE_POSTER", "poster", "Cityscapes context statistics, rider -> bicycle"),
    Cited("TORCHRAY_VOC07", "torchray", "TorchRay documentation, pointing-game benchmark table"),
    Cited("POINTING_TOLERANCE_PX", "normgrad", "Section A (text)", ("within a threshold of 15 pixels",)),
    Cited("VOC07_TEST_IMAGES", "normgrad", "Section A (text)", ("$N = 4952$ images",)),
    Cited("DIFFICULT_AREA_PERCENT", "normgrad", "Section A (text)", ("less than 25% of the image size",)),
    Cited("IDENTITY_TRICK_TABLE1", "normgrad", "Section B, Table 1", _table1_quotes()),
    Cited("IDENTITY_TRICK_CORRELATION_RANGE", "normgrad", "Section B, Table 1 (min and max over its rows)",
          _table1_quotes()),
    Cited("IDENTITY_TRICK_POINTING_DIFF", "normgrad", "Section B (text)", ("0.53\\% \\pm 0.62\\%",)),
    Cited("TABLE2_BEST_LAYERS", "normgrad", "Sections A and C, Table 2", _table2_quotes()),
    Cited("TABLE3_GAINS", "normgrad", "Section C, Table 3", _table3_quotes()),
    Cited("GRID_SALIENCY_S1_SETTINGS", "grid_saliency", "S1.1 and S1.2 (text)", (
        "grayscale images of size 64 × 64 pixels", "a pool of 25 textures", "Overall, 11 semantic classes",
        "The training set contains 50k images and the test set consist of 1k images",
        "trained for 50 epochs, with the batch size 100; the learning rate is set to 10−3 and 10−4 for "
        "the first 40 and last 10 epochs",
        "4 × 4 for Mcontext", "{0, 0.25, 0.5, 0.75, 1.0}", "eroded with a 3× 3 kernel size",
        "momentum of 0.5 and a learning rate of 0.2 for 100 steps, starting with the initial map M = 0.5 "
        "and clipping saliency map values below 0.2 to 0", "λ = 0.05",
        "the number of interpolation steps n is set to 25",
        "25 Gaussian noise samples with µ = 0, σ = 0.15(max(x)−min(x)))",
        "averaged over 5 different random seeds", "averaging over five different bias textures",
    )),
    Cited("CITYSCAPES_S2_SETTINGS", "grid_saliency", "S2.1 (text)", (
        "smaller than 10k (or 625 for context explanations of erroneous predictions)",
        "using a total of 400k pixels for the dilated region", "preservation loss of 0.1 or smaller")),
    Cited("CITYSCAPES_VAL_IMAGES", "grid_saliency", "S2.1 (text)", ("We use the 500 (finely annotated) validation",)),
    Cited("TABLE_S1_COUNTS", "grid_saliency", "S2.1, Table S1", (_table_s1_quote(),)),
    Cited("TABLE_S2_COUNTS", "grid_saliency", "S2.1, Table S2", (_table_s2_quote(),)),
)


def cited(name: str) -> Cited:
    """The source of constant ``name``."""
    for c in CITED:
        if c.name == name:
            return c
    raise KeyError(f"no source recorded for {name!r}")


def source_line(name: str) -> str:
    """``"NormGrad supplement, Section B, Table 1"``-style label of constant ``name``'s source."""
    c = cited(name)
    label = {"grid_saliency": "Grid Saliency supplement", "normgrad": "NormGrad supplement",
             "poster": "Grid Saliency poster", "torchray": "TorchRay documentation"}[c.source]
    return f"{label}, {c.where}"
