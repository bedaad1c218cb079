"""The NormGrad supplement's tables beside ours, and the ledger rows of Table 2, Table 3 and Fig. 7.

Every criterion is exercised on made-up measurements whose verdict is known,
and the Table 3 criteria on the supplement's own Table 3, which they must accept.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gsutils.claims import Gate
from gsutils.experiments.normgrad import normgrad_claims as nc
from gsutils.experiments.normgrad.fig7_results import Fig7Maps, Fig7Selectivity
from gsutils.experiments.normgrad.identity_trick_results import IdentityTrickRun, TrickLayer
from gsutils.experiments.normgrad.layer_combination import positive_gains
from gsutils.experiments.normgrad.normgrad_maps import FIG7_LAYERS
from gsutils.experiments.normgrad.pointing_results import PointingRun
from gsutils.experiments.normgrad.pointing_runs import CENTER
from gsutils.models.classifiers import CANDIDATE_LAYERS
from gsutils.references import IDENTITY_TRICK_TABLE1, TABLE3_GAINS
from gsutils.saliency.extract_aggregate import METHODS

PASSED = Gate(what="test mAP", measured=0.9, threshold=0.5, passed=True, note="gate passed")
FAILED = Gate(what="test mAP", measured=0.1, threshold=0.5, passed=False, note="below the gate")


def _run(patterns: dict | None = None, arch: str = "vgg16", n_images: int = 40) -> PointingRun:
    """A pointing run of ``n_images`` scenes with classes 0 and 1 each; every method hits everywhere
    unless ``patterns`` gives ``{(method, layer): hit rate}`` (hits spread evenly over the images)."""
    patterns = patterns or {}
    layers = list(CANDIDATE_LAYERS[arch])
    n = 2 * n_images
    hits = {(m, layer): [True] * n for m in METHODS if m != "normgrad_conv" for layer in layers}
    for (m, layer), rate in patterns.items():
        hits[m, layer] = [(i % 10) < 10 * rate for i in range(n)]
    hits[CENTER] = [(i % 10) < 5 for i in range(n)]
    return PointingRun(arch=arch, layers=layers, image_index=[i // 2 for i in range(n)],
                       class_id=[i % 2 for i in range(n)], difficult=[(i // 2) % 2 == 0 for i in range(n)],
                       hits=hits, tolerance=15, image_size=None, n_skipped=0, data="made up")


# --------------------------------------------------------------------------------- Table 2


def test_table2_comparison_sets_the_supplement_beside_our_best_layers():
    run = _run({("gradient", layer): 0.5 for layer in CANDIDATE_LAYERS["vgg16"][1:]})
    t = nc.table2_comparison(run)
    assert len(t) == 9 and "normgrad_conv" not in t.index
    g = t.loc["gradient"]
    assert (g["Table 2"], g["paper all"], g["ours all"]) == ("Gd", "features.29", "input")
    assert g["gap all"] == pytest.approx(50.0) and g["steps all"] == -5
    assert g["paper difficult"] == "features.22"
    # ties go to the shallower layer: every other method's best layer is the input, with no gap
    assert (t.drop("gradient")["gap all"] == 0).all()
    line = nc.table2_gap_line(run)
    assert "at most 50.0" in line and "gradient" in line and "shallower for 8, deeper for 0" in line


def test_table2_claim_fails_when_the_supplement_layer_is_clearly_worse():
    bad = nc.table2_claim(_run({("gradient", "features.29"): 0.2}), PASSED)
    assert bad["passed"] is False and "gradient features.29 vs input" in bad["note"]
    ok = nc.table2_claim(_run(), PASSED)
    assert ok["passed"] is True and ok["reported"]["gradient"] == "feat.29"
    assert nc.table2_claim(_run(), FAILED)["passed"] is None


# --------------------------------------------------------------------------------- Table 1


def test_table1_comparison_pairs_each_layer_with_the_supplement():
    layer = TrickLayer(spearman_mean=0.9, spearman_std=0.05, spearman_min=0.5, n_correlated=30, n_constant=0,
                       pointing={"normgrad": {"all": 0.8}, "normgrad_conv": {"all": 0.75}},
                       n_pointing_pairs={"all": 30})
    runs = [IdentityTrickRun(arch="vgg16", n_pairs=30, layers={"features.28": layer})]
    t = nc.table1_comparison(runs)
    row = t.loc[("vgg16", "features.28")]
    assert row["paper %"] == IDENTITY_TRICK_TABLE1["vgg16", "features.28"][0] == 94.33
    assert row["ours - paper (points)"] == pytest.approx(90.0 - 94.33)


# --------------------------------------------------------------------------------- Table 3


def test_the_table3_criteria_accept_the_supplements_own_table():
    paper = nc.paper_table3()
    assert len(paper["vgg16"]) == len(TABLE3_GAINS) == 16
    positive = positive_gains(paper)
    assert positive == {"accuracy": 16, "spread": 8, "linear": 16, "uniform": 9}
    assert nc.accuracy_most_consistent(positive)
    assert nc.spread_vgg16_claim(paper, PASSED)["passed"] is True
    cells = [paper[a].loc[(m, "product", "accuracy"), "gain all"] for a in paper
             for m in ("linear_approx", "selective_normgrad")]
    assert all(v > 0 for v in cells)  # the page's product-with-accuracy criterion
    # compared with itself, Table 3 agrees everywhere
    c = nc.table3_comparison(paper)
    assert c["same sign"].all() and len(c) == 32
    lines = nc.table3_differences(paper)
    assert "range from 0.2 to 2.9" in lines[0] and "16 of 16 positive (the same sign" in lines[0]
    assert "-7.2 to -2.9" in lines[1] and "negative in 8 of 8 (the same sign)" in lines[1]
    assert "in 64." in lines[2]


def test_table3_differences_name_a_sign_flip():
    ours = nc.paper_table3()
    ours["vgg16"].loc[("linear_approx", "sum", "spread"), "gain all"] = 1.5
    lines = nc.table3_differences(ours)
    assert "negative in 7 of 8: the sign differs in 1." in lines[1]
    assert nc.spread_vgg16_claim(ours, PASSED)["passed"] is False
    assert nc.spread_vgg16_claim(ours, FAILED)["passed"] is None
    assert not nc.accuracy_most_consistent({"accuracy": 10, "spread": 12, "linear": 3, "uniform": 0})


# --------------------------------------------------------------------------------- Fig. 7


def test_fig7_gradient_claim():
    layers = CANDIDATE_LAYERS["vgg16"]
    fails_last = _run({("gradient", layers[-1]): 0.5})
    assert nc.fig7_gradient_claim(fails_last, PASSED)["passed"] is True
    assert nc.fig7_gradient_claim(_run(), PASSED)["passed"] is False  # works at the end too
    fails_early = _run({("gradient", layers[-1]): 0.5, ("gradient", "features.8"): 0.5})
    assert nc.fig7_gradient_claim(fails_early, PASSED)["passed"] is False


def test_fig7_across_claim():
    assert nc.fig7_across_claim(_run(), PASSED)["passed"] is True
    row = nc.fig7_across_claim(_run({("normgrad", "input"): 0.4}), PASSED)
    assert row["passed"] is False and "normgrad@input" in row["note"]


def _fig7_data(selective: bool):
    """One 8x8 scene: the target (class 0) on the left half, class 1 on the right."""
    s = 8
    maps = np.full((1, len(METHODS), len(FIG7_LAYERS), s, s), np.nan, dtype=np.float32)
    left = np.zeros((s, s), dtype=np.float32)
    left[:, : s // 2] = 1.0
    left[0, 0] = 0.0
    spread = np.ones((s, s), dtype=np.float32)
    spread[0, 0] = 0.0
    for i, m in enumerate(METHODS):
        for j in range(len(FIG7_LAYERS)):
            if m == "normgrad":
                maps[0, i, j] = spread
            elif m in nc.FIG7_SELECTIVE_METHODS:
                maps[0, i, j] = left if selective else spread
            else:
                maps[0, i, j] = left
    masks = {0: torch.zeros(s, s, dtype=torch.bool), 1: torch.zeros(s, s, dtype=torch.bool)}
    masks[0][:, : s // 2] = True
    masks[1][:, s // 2:] = True
    scenes = SimpleNamespace(gt_mask=lambda i, c: masks[c], labels=torch.tensor([[1.0, 1.0, 0.0]]))
    data = Fig7Maps(maps=maps, rgb=np.zeros((1, 3, s, s), np.float32), image_index=np.array([0]),
                    target=np.array([0]), boxes=np.full((1, 4, 4), -1), class_names=("zero", "one", "two"))
    return data, scenes


def test_fig7_selectivity_compares_the_other_classes_with_the_target():
    data, scenes = _fig7_data(selective=True)
    sel = nc.fig7_selectivity(data, scenes)
    assert isinstance(sel, Fig7Selectivity)
    assert sel.n_scenes == 1 and sel.other_area == pytest.approx(0.5)
    assert sel.mean["linear_approx"] == pytest.approx(0.0)
    assert sel.mean["normgrad"] == pytest.approx(1.0 / (31 / 32))  # flat but for one target pixel
    assert set(sel.ratio["normgrad"]) == set(FIG7_LAYERS)
    assert nc.fig7_selectivity_claim(sel, PASSED)["passed"] is True
    data, scenes = _fig7_data(selective=False)
    assert nc.fig7_selectivity_claim(nc.fig7_selectivity(data, scenes), PASSED)["passed"] is False
    assert nc.fig7_selectivity_claim(sel, FAILED)["passed"] is None
