"""Tests of the context-bias metrics CBD and CBL (gsutils.metrics.context_bias)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gsutils.metrics.context_bias import cbd, cbl, chance_cbl

H = W = 12


def _request(n: int) -> np.ndarray:
    r = np.zeros((n, H, W), dtype=bool)
    r[:, 4:8, 5:9] = True  # the "digit"
    return r


def _left_half(n: int) -> np.ndarray:
    b = np.zeros((n, H, W), dtype=bool)
    b[:, :, : W // 2] = True
    return b & ~_request(n)


# values near the float64 underflow limit are excluded: scaling them by 1e-3 loses
# precision or underflows to 0, which changes a mass ratio for a reason that has
# nothing to do with the metric
maps_01 = arrays(np.float64, (3, H, W),
                 elements=st.one_of(st.just(0.0), st.floats(1e-200, 1)))


def test_cbd_known_values():
    r = _request(2)
    full = np.ones((2, H, W))
    assert np.allclose(cbd(full, r), 1.0)
    half = np.zeros((2, H, W))
    half[:, :, : W // 2] = 1.0  # left half of the image, part of it under the request
    ctx = ~r[0]
    expected = (half[0] * ctx).sum() / ctx.sum()
    assert np.allclose(cbd(half, r), expected)
    # saliency inside the request does not count
    inside = r.astype(float)
    assert np.allclose(cbd(inside, r), 0.0)


def test_cbd_accepts_torch_and_numpy_alike():
    rng = np.random.default_rng(0)
    m = rng.random((2, H, W))
    r = _request(2)
    assert np.allclose(cbd(torch.from_numpy(m), torch.from_numpy(r)), cbd(m, r))


@given(maps_01)
def test_cbd_in_unit_interval_and_monotone(m):
    r = _request(3)
    v = cbd(m, r)
    assert np.all((v >= 0) & (v <= 1))
    assert np.all(cbd(np.minimum(m * 1.5, 1.0), r) >= v - 1e-12)


def test_empty_map_gives_cbd_zero():
    r = _request(4)
    assert np.all(cbd(np.zeros((4, H, W)), r) == 0)


@given(arrays(np.float64, (3, H, W), elements=st.floats(0, 1e6, allow_nan=False)))
@settings(max_examples=60)
def test_cbl_stays_in_unit_interval(m):
    r, b = _request(3), _left_half(3)
    v = cbl(m, r, b)
    assert np.all((v >= 0) & (v <= 1))


@given(maps_01, st.floats(1e-3, 1e3))
def test_cbl_is_scale_free(m, scale):
    r, b = _request(3), _left_half(3)
    np.testing.assert_allclose(cbl(m * scale, r, b), cbl(m, r, b), rtol=1e-9, atol=1e-12)


@given(arrays(np.float64, (3, H, W), elements=st.floats(0, 1, allow_nan=False)))
def test_map_confined_to_biased_half_gives_cbl_one(m):
    r, b = _request(3), _left_half(3)
    confined = m * b
    v = cbl(confined, r, b)
    has_mass = confined.reshape(3, -1).sum(1) > 0
    assert np.allclose(v[has_mass], 1.0)
    # and a map confined to the other half of the context gives 0
    other = m * (~b & ~r)
    w = cbl(other, r, b)
    has_mass = other.reshape(3, -1).sum(1) > 0
    assert np.allclose(w[has_mass], 0.0)


def test_uniform_and_empty_maps_score_chance():
    r, b = _request(2), _left_half(2)
    chance = chance_cbl(r, b)
    assert np.allclose(chance, b[0].sum() / (~r[0]).sum())
    assert np.allclose(cbl(np.ones((2, H, W)), r, b), chance)
    assert np.allclose(cbl(np.zeros((2, H, W)), r, b), chance)
    assert np.isnan(cbl(np.zeros((2, H, W)), r, b, empty="nan")).all()
    # saliency inside the request is ignored
    assert np.allclose(cbl(r.astype(float), r, b), chance)


def test_bad_input():
    r, b = _request(2), _left_half(2)
    with pytest.raises(ValueError, match="maps must be an array"):
        cbd(np.zeros((H, W)), r)
    with pytest.raises(ValueError, match="requests must have"):
        cbd(np.zeros((2, H, W)), r[:, :5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cbd(np.full((2, H, W), 2.0), r)
    with pytest.raises(ValueError, match="non-negative"):
        cbl(np.full((2, H, W), -1.0), r, b)
    with pytest.raises(ValueError, match="empty"):
        cbl(np.ones((2, H, W)), r, b, empty="zero")
    with pytest.raises(ValueError, match="whole image"):
        cbd(np.ones((2, H, W)), np.ones((2, H, W), dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        cbd(np.ones((2, H, W)), np.full((2, H, W), 0.5))


# --------------------------------------------------------------------------- the experiment runner


def _toy_data(n_per_digit: int = 2, size: int = 16, seed: int = 0):
    from gsutils.data.toy import ToyData

    rng = np.random.default_rng(seed)
    n = 10 * n_per_digit
    digits = np.repeat(np.arange(10), n_per_digit)
    req = np.zeros((n, size, size), dtype=bool)
    req[:, 5:11, 6:10] = True
    biased = np.zeros_like(req)
    biased[:, :, : size // 2] = True
    biased &= ~req
    is_biased = digits == 3
    biased[~is_biased] = False
    images = rng.random((n, 1, size, size)).astype(np.float32)
    labels = np.where(req, digits[:, None, None], 10).astype(np.uint8)
    return ToyData(images=images, labels=labels, digits=digits, digit_mask=req,
                   background_mask=~req, biased_mask=biased, is_biased=is_biased)


def test_select_per_digit():
    from gsutils.experiments.context_saliency import select_per_digit

    digits = np.array([3, 1, 0, 3, 2, 1, 0, 4, 5, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4, 2])
    idx = select_per_digit(digits, 2)
    assert len(idx) == 20 and np.all(digits[idx] == np.repeat(np.arange(10), 2))
    assert list(idx[:2]) == [2, 6]  # the first two zeros, in test-set order
    with pytest.raises(ValueError, match="only 2 images of digit"):
        select_per_digit(digits, 3)
    with pytest.raises(ValueError, match="per_digit"):
        select_per_digit(digits, 0)


def test_compute_context_saliency_end_to_end():
    from torch import nn

    from gsutils.experiments.context_saliency import METHODS, compute_context_saliency
    from gsutils.saliency.grid import GridSaliencyConfig

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 11, 3, padding=1)).eval()
    data = _toy_data()
    idx = np.arange(len(data))
    out = compute_context_saliency(model, data, idx, grid=GridSaliencyConfig(steps=3), ig_steps=3,
                                   sg_samples=3, batch_size=7, seed=0, example_digit=3, examples=2)
    n = len(idx)
    assert out["cbd"].shape == (len(METHODS), n) and out["cbl"].shape == (len(METHODS), n)
    assert np.all((out["cbd"] >= 0) & (out["cbd"] <= 1))
    assert np.all((out["cbl"] >= 0) & (out["cbl"] <= 1))
    assert out["example_maps"].shape == (len(METHODS), 2, 16, 16)
    assert out["score"].shape == (n,) and np.all((out["score"] > 0) & (out["score"] < 1))
    assert np.all(out["digits"][out["example_index"]] == 3)
    # CBD is recomputable from the stored example maps
    ex = out["example_index"]
    for m in range(len(METHODS)):
        np.testing.assert_allclose(cbd(out["example_maps"][m], data.digit_mask[ex]), out["cbd"][m, ex],
                                   rtol=1e-6)
    # gradient maps are non-trivial in the context
    assert out["cbd"][0].max() > 0


def test_results_aggregation():
    from gsutils.data.toy import BiasConfig
    from gsutils.experiments.context_saliency import ContextSaliencyResults, diagonal_split
    from gsutils.experiments.segmentation import SegRun

    runs, results = [], []
    for d in (2, 7):
        runs.append(SegRun(BiasConfig(strength="strong", digit=d, texture=0), "tiny", 0))
        digits = np.repeat(np.arange(10), 2)
        cbd_v = np.where(digits == d, 0.5, 0.01)[None].repeat(4, 0)  # (4, 20)
        cbd_v[:, digits == d] += np.array([0.0, 0.2])[None]  # two images of the bias digit: .5, .7
        cbl_v = np.full((4, 20), 0.3)
        cbl_v[3] = 0.9
        results.append({"digits": digits, "is_biased": digits == d, "cbd": cbd_v, "cbl": cbl_v,
                        "score": np.full(20, 0.8),
                        "chance": np.full(20, 0.5), "empty": np.zeros(20, bool),
                        "grid_masks": np.ones((20, 4, 4))})
    res = ContextSaliencyResults(runs, results, bias_digits=(2, 7), textures=(0,), strengths=("strong",))
    mat = res.cbd_matrix("strong", "grid")
    assert mat.shape == (1, 2, 10)
    assert np.isclose(mat[0, 0, 2], 0.6) and np.isclose(mat[0, 1, 7], 0.6)
    assert np.isclose(mat[0, 0, 5], 0.01)
    on, off = diagonal_split(mat, (2, 7))
    assert np.isclose(on, 0.6) and np.isclose(off, 0.01)
    assert np.allclose(res.cbl_matrix("strong", "grid"), 0.9)
    assert np.allclose(res.cbl_matrix("strong", "vg"), 0.3)
    assert np.allclose(res.chance_matrix("strong"), 0.5)
    assert res.n_images("strong") == 40 and res.empty_fraction("strong") == 0.0
    assert np.isclose(res.mean_score("strong"), 0.8)
    # a strength with no networks gives NaN, not an error
    assert np.isnan(res.cbd_matrix("weak", "grid")).all()


def test_context_scores_with_a_model_that_ignores_context(monkeypatch):
    from torch import nn

    from gsutils.experiments import context_saliency as cs
    from gsutils.profiles import get_profile

    class PixelModel(nn.Module):
        """Logits from each pixel alone: the context cannot change the digit's score."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 11, 1)

        def forward(self, x):
            return self.conv(x)

    torch.manual_seed(0)
    model = PixelModel().eval()
    monkeypatch.setattr(cs, "train_or_load", lambda profile, run, progress=False: model)
    prof = get_profile("quick", device="cpu")
    run = cs.biased_runs(prof)[0]
    out = cs.context_scores(prof, run, n_images=3)
    assert set(out) == {"biased context", "unbiased context", "grey 0", "grey 0.25", "grey 0.5",
                        "grey 0.75", "grey 1"}
    values = np.array(list(out.values()))
    assert np.all((values > 0) & (values < 1))
    np.testing.assert_allclose(values, values[0], rtol=1e-6)  # context never matters
