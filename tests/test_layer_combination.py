"""Sec. C experiment helpers: probes, feature spread, combination scoring, Table 3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsutils.experiments.normgrad.layer_combination import (
    COMBO_METHODS,
    WEIGHTINGS,
    combo_key,
    feature_spread,
    pooled_features,
    probe_map,
    score_combinations,
    table3,
)
from gsutils.experiments.normgrad.pointing_results import PointingHits
from gsutils.models.classifiers import build_classifier


def test_feature_spread_closed_form():
    # one class present in half the scenes; features: the label plus noise-free offset in one dim
    y = np.array([[1], [1], [0], [0]])
    f = np.array([[2.0, 5.0], [2.0, -5.0], [0.0, 5.0], [0.0, -5.0]])
    # between: p(1-p) * ||(2, 0)||^2 = 0.25 * 4 = 1; total variance: 1 + 25
    assert feature_spread(f, y) == pytest.approx(1 / 26)
    assert feature_spread(3 * f, y) == pytest.approx(1 / 26)  # scale-free
    assert feature_spread(f[:, 1:], y) == pytest.approx(0.0)  # features independent of the label
    with pytest.raises(ValueError, match="same N"):
        feature_spread(f, y[:3])


def test_probe_map_separable_vs_noise():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 3)) < 0.4).astype(float)
    good = y + 0.1 * rng.normal(size=y.shape)
    noise = rng.normal(size=(200, 3))
    assert probe_map(good[:100], y[:100], good[100:], y[100:]) > 0.99
    assert probe_map(noise[:100], y[:100], noise[100:], y[100:]) < 0.8


def test_pooled_features_shapes_and_means():
    torch.manual_seed(0)
    model = build_classifier("vgg16", 4, 0.0625, vgg_pool=1).eval()
    x = torch.rand(3, 3, 32, 32)
    f = pooled_features(model, x, ("features.3", "features.29"), batch_size=2)
    assert f["features.3"].shape == (3, 4) and f["features.29"].shape == (3, 32)
    with torch.no_grad():
        want = model.features[:4](x).mean(dim=(2, 3)).double().numpy()
    np.testing.assert_allclose(f["features.3"], want, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown layer"):
        pooled_features(model, x, ("nope",))


def test_score_combinations_and_table3():
    torch.manual_seed(0)
    model = build_classifier("resnet50", 3, 0.0625).eval()
    x = torch.rand(4, 3, 64, 64)
    gts = [torch.zeros(64, 64, dtype=torch.bool) for _ in range(4)]
    for g in gts:
        g[10:30, 10:30] = True
    weights = {w: [1.0, 2.0, 3.0, 4.0] for w in WEIGHTINGS}
    hits = score_combinations(model, "resnet50", x, torch.tensor([0, 1, 2, 0]), gts, 3, weights)
    n_keys = len(COMBO_METHODS) * (4 + 2 * len(WEIGHTINGS))
    assert len(hits) == n_keys and all(len(v) == 4 for v in hits.values())
    # a combination with all the weight on one layer points where that layer points
    one = {w: [0.0, 0.0, 0.0, 1.0] for w in WEIGHTINGS}
    hits1 = score_combinations(model, "resnet50", x, torch.tensor([0, 1, 2, 0]), gts, 3, one)
    assert hits1[combo_key("linear_approx", "sum", "uniform")] == hits1["linear_approx", "layer4"]
    # Table 3 on a made-up run: a combination that hits everything gains 100 - best single layer
    made_up = {k: [False, False, False, False] for k in hits}
    made_up["linear_approx", "layer2"] = [True, True, False, False]
    made_up[combo_key("linear_approx", "product", "accuracy")] = [True] * 4
    run = PointingHits(arch="resnet50", layers=["layer1", "layer2", "layer3", "layer4"], image_index=[0, 1, 2, 3],
                       class_id=[0, 1, 2, 0], difficult=[True, False, True, False], hits=made_up)
    t = table3(run)
    row = t.loc[("linear_approx", "product", "accuracy")]
    # per-class accuracies: class 0 pairs (0, 3): layer2 1/2; class 1: 1; class 2: 0 -> mean 50 %
    assert row["gain all"] == pytest.approx(100 - 50)
    assert row["best layer all"] == "layer2"
    assert t.loc[("selective_normgrad", "sum", "linear"), "gain all"] == pytest.approx(0.0)
