"""Cascading weight randomisation: stages, seeds, the Spearman statistic, and Quantus's MPRT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from gsutils.saliency.extract_aggregate import extract_aggregate
from gsutils.saliency.randomize import (
    RANDOMIZATION_BLOCKS,
    cascading_randomization,
    layer_blocks,
    spearman_rows,
)
from tests.small_models import SmallVGG


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def test_spearman_rows_matches_scipy_and_handles_ties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 30))
    b = a + rng.normal(size=(4, 30))
    b[1] = np.round(b[1])  # ties
    got = spearman_rows(a, b)
    want = [spearmanr(a[i], b[i]).statistic for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(spearman_rows(np.ones((1, 5)), a[:1, :5]))[0]
    assert spearman_rows(a, -a) == pytest.approx(np.full(4, -1.0))


def test_stages_are_cumulative_top_down_and_leave_the_model_alone():
    model = SmallVGG(5).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    blocks = [("classifier", ("classifier",)), ("top", ("features.8",)), ("rest", ("features.0", "features.3", "features.5"))]
    changed = []
    for name, m in cascading_randomization(model, blocks, seed=1):
        sd = m.state_dict()
        changed.append({k for k in sd if not torch.equal(sd[k], before[k])})
    assert all(k.startswith("classifier") for k in changed[0])
    assert changed[0] < changed[1] < changed[2]  # cumulative
    assert {k for k in changed[2]} == set(before)  # everything randomised at the end
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    # same seed, same weights; another seed, other weights
    a = [m.state_dict()["classifier.0.weight"].clone() for _, m in cascading_randomization(model, blocks[:1], seed=1)]
    b = [m.state_dict()["classifier.0.weight"].clone() for _, m in cascading_randomization(model, blocks[:1], seed=1)]
    c = [m.state_dict()["classifier.0.weight"].clone() for _, m in cascading_randomization(model, blocks[:1], seed=2)]
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_classifier_blocks_cover_every_parameter():
    from gsutils.models.classifiers import build_classifier

    for arch, blocks in RANDOMIZATION_BLOCKS.items():
        model = build_classifier(arch, 4, 0.0625, vgg_pool=1).eval()
        before = {k: v.clone() for k, v in model.named_parameters()}
        *_, (_, last) = list(cascading_randomization(model, blocks, seed=0))
        after = dict(last.named_parameters())
        same = [k for k in before if torch.equal(before[k], after[k]) and before[k].abs().sum() > 0
                and not torch.all(before[k] == 1)]
        assert same == [], f"{arch}: parameters never randomised: {same}"


def test_bad_blocks_are_reported():
    with pytest.raises(ValueError, match="no module with parameters"):
        list(cascading_randomization(_tiny(), [("x", ("nope",))]))
    with pytest.raises(TypeError, match="sequence of strings"):
        list(cascading_randomization(_tiny(), [("x", "0")]))


def test_quantus_mprt_top_down_gives_the_same_curve():
    quantus = pytest.importorskip("quantus")
    model = _tiny()
    torch.manual_seed(1)
    x = torch.rand(6, 3, 10, 10)
    y = torch.tensor([0, 1, 2, 0, 1, 2])

    def explain(model, inputs, targets, **kwargs):
        xs = torch.as_tensor(inputs, dtype=torch.float32)
        m = extract_aggregate(model, xs, torch.as_tensor(targets), ["input"], ["linear_approx"])
        return m["linear_approx", "input"].detach().numpy()  # (N, 1, H, W)

    a = explain(model, x.numpy(), y.numpy())
    metric = quantus.MPRT(layer_order="top_down", seed=42, abs=False, normalise=False,
                          similarity_func=quantus.similarity_func.correlation_spearman,
                          disable_warnings=True, display_progressbar=False)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a, explain_func=explain,
                    channel_first=True, device="cpu")
    theirs = {k: float(np.mean(v)) for k, v in scores.items() if k != "original"}
    ours = {}
    for name, m in cascading_randomization(model, layer_blocks(model), module_seed=lambda _: 43):
        ours[name] = float(np.mean(spearman_rows(a, explain(m, x.numpy(), y.numpy()))))
    assert list(ours) == list(theirs)
    np.testing.assert_allclose(list(ours.values()), list(theirs.values()), atol=1e-9)
    assert ours[list(ours)[-1]] < 0.9  # the curve does fall
