"""Tests of the context-bias metrics CBD and CBL (gsutils.metrics.context_bias)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gsutils.data.toy import BiasConfig
from gsutils.metrics.context_bias import EMPTY_TOL, cbd, cbl, chance_cbl, empty_maps

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


def test_empty_maps_and_cbl_tolerance():
    r, b = _request(3), _left_half(3)
    maps = np.zeros((3, H, W))
    maps[1] = 1e-9 * ~r[1]  # a trace of context saliency: empty at EMPTY_TOL, not at tol 0
    maps[2] = b[2] * 0.5  # real saliency, all on the biased half
    np.testing.assert_array_equal(empty_maps(maps, r), [True, True, False])
    np.testing.assert_array_equal(empty_maps(maps, r, tol=0.0), [True, False, False])
    # mass inside the request does not make a map non-empty
    assert empty_maps(r.astype(float), r).all()
    chance = chance_cbl(r, b)
    # tol 0 (default): the trace is a map with uniform context saliency, so it scores chance by value
    np.testing.assert_allclose(cbl(maps, r, b), [chance[0], chance[1], 1.0])
    # with the tolerance the trace is empty: chance, or NaN when excluded
    np.testing.assert_allclose(cbl(maps, r, b, tol=EMPTY_TOL), [chance[0], chance[1], 1.0])
    out = cbl(maps, r, b, empty="nan", tol=EMPTY_TOL)
    assert np.isnan(out[:2]).all() and out[2] == 1.0
    # a trace confined to the biased half: a ratio of 1 at tol 0, empty (chance) at EMPTY_TOL
    trace = np.zeros((1, H, W))
    trace[0] = 1e-9 * b[0]
    assert cbl(trace, r[:1], b[:1])[0] == 1.0
    np.testing.assert_allclose(cbl(trace, r[:1], b[:1], tol=EMPTY_TOL), chance[:1])
    with pytest.raises(ValueError, match="tol"):
        empty_maps(maps, r, tol=-1.0)
    with pytest.raises(ValueError, match="tol"):
        cbl(maps, r, b, tol=-1.0)


@given(maps_01)
def test_empty_maps_are_those_with_cbd_at_most_tol(m):
    r = _request(3)
    np.testing.assert_array_equal(empty_maps(m, r), cbd(m, r) <= EMPTY_TOL)


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


def _pixel_model():
    from torch import nn

    class PixelModel(nn.Module):
        """Logits from each pixel alone: the context cannot change the digit's score."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 11, 1)

        def forward(self, x):
            return self.conv(x)

    torch.manual_seed(0)
    return PixelModel().eval()


def _conv_model():
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 11, 3, padding=1)).eval()


def test_select_images():
    from gsutils.experiments.grid.context_saliency import select_images, select_per_digit

    digits = np.array([3, 1, 0, 3, 2, 1, 0, 4, 5, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4, 2])
    idx = select_per_digit(digits, 2)
    assert len(idx) == 20 and np.all(digits[idx] == np.repeat(np.arange(10), 2))
    assert list(idx[:2]) == [2, 6]  # the first two zeros, in test-set order
    with pytest.raises(ValueError, match="only 2 images of digit"):
        select_per_digit(digits, 3)
    with pytest.raises(ValueError, match="per_digit"):
        select_per_digit(digits, 0)
    # more images of one digit, fewer (or none) of the others
    counts = [1] * 10
    counts[3], counts[9] = 2, 0
    idx = select_images(digits, counts)
    assert list(digits[idx]) == [0, 1, 2, 3, 3, 4, 5, 6, 7, 8]
    assert list(idx[3:5]) == [0, 3]
    with pytest.raises(ValueError, match="ten non-negative"):
        select_images(digits, [1] * 9)


def test_images_per_other_digit():
    from gsutils.experiments.grid.context_saliency import OTHER_DIGIT_DIVISOR, explained_counts, images_per_other_digit
    from gsutils.experiments.grid.segmentation import SegRun
    from gsutils.profiles import get_profile

    prof = get_profile("quick", device="cpu")
    n = prof.saliency.images_per_digit
    assert images_per_other_digit(prof) == max(1, n // OTHER_DIGIT_DIVISOR)
    run = SegRun(BiasConfig(strength="strong", digit=4, texture=1), "tiny", 0)
    counts = explained_counts(prof, run)
    assert counts[4] == n and all(c == images_per_other_digit(prof) for d, c in enumerate(counts) if d != 4)


def test_compute_context_saliency_end_to_end():
    from gsutils.experiments.grid.context_saliency import METHODS, compute_context_saliency
    from gsutils.saliency.grid import GridSaliencyConfig

    model = _conv_model()
    data = _toy_data()
    idx = np.arange(len(data))
    out = compute_context_saliency(model, data, idx, grid=GridSaliencyConfig(steps=3), ig_steps=3,
                                   sg_samples=3, batch_size=7, seed=0, example_digit=3, examples=2)
    n = len(idx)
    assert out["cbd"].shape == (len(METHODS), n) and out["cbl"].shape == (len(METHODS), n)
    assert out["empty"].shape == (len(METHODS), n) and out["empty"].dtype == bool
    assert np.all((out["cbd"] >= 0) & (out["cbd"] <= 1))
    assert np.all((out["cbl"] >= 0) & (out["cbl"] <= 1))
    assert out["example_maps"].shape == (len(METHODS), 2, 16, 16)
    assert out["score"].shape == (n,) and np.all((out["score"] > 0) & (out["score"] < 1))
    assert np.all(out["digits"][out["example_index"]] == 3)
    assert float(out["seconds"]) > 0
    # CBD, emptiness and CBL are recomputable from the stored example maps
    ex = out["example_index"]
    for m in range(len(METHODS)):
        maps = out["example_maps"][m]
        np.testing.assert_allclose(cbd(maps, data.digit_mask[ex]), out["cbd"][m, ex], rtol=1e-6)
        np.testing.assert_array_equal(empty_maps(maps, data.digit_mask[ex]), out["empty"][m, ex])
        np.testing.assert_allclose(cbl(maps, data.digit_mask[ex], data.biased_mask[ex], tol=EMPTY_TOL),
                                   out["cbl"][m, ex], rtol=1e-6)
    # the empty flag is CBD ~ 0, and grid saliency's own empty masks are empty maps
    np.testing.assert_array_equal(out["empty"], out["cbd"] <= EMPTY_TOL)
    assert np.all(out["empty"][3][out["grid_empty"]])
    # gradient maps are non-trivial in the context
    assert out["cbd"][0].max() > 0


def test_compute_fixed_grey_uses_the_one_grey():
    from gsutils.experiments.grid.context_saliency import compute_fixed_grey
    from gsutils.saliency.grid import GridSaliencyConfig

    data = _toy_data()
    idx = np.flatnonzero(data.digits == 3)
    out = compute_fixed_grey(_conv_model(), data, idx, grid=GridSaliencyConfig(steps=3, greys=(0.5,)),
                             batch_size=4)
    assert np.all(out["grey"] == 0.5) and np.all(out["digits"] == 3)
    for k in ("cbd", "cbl", "empty", "chance"):
        assert out[k].shape == (len(idx),)
    np.testing.assert_array_equal(out["empty"], out["cbd"] <= EMPTY_TOL)


def _fake_results(cbd_on=0.6, cbd_off=0.01, empty_grid_on=(False, True), textures=(0,), digits_=(2, 7)):
    """Two images per test digit per network; grid (method 3) CBL 0.9 where non-empty."""
    from gsutils.experiments.grid.context_results import ContextSaliencyResults
    from gsutils.experiments.grid.segmentation import SegRun

    runs, results = [], []
    for t in textures:
        for d in digits_:
            runs.append(SegRun(BiasConfig(strength="strong", digit=d, texture=t), "tiny", 0))
            digits = np.repeat(np.arange(10), 2)
            on = digits == d
            cbd_v = np.where(on, cbd_on, cbd_off)[None].repeat(4, 0)  # (4, 20)
            cbd_v[:, on] += np.array([-0.1, 0.1])[None]
            cbl_v = np.full((4, 20), 0.3)
            cbl_v[3] = 0.9
            empty = np.zeros((4, 20), bool)
            empty[3, on] = empty_grid_on
            cbl_v[3, on & empty[3]] = 0.5  # an empty map scores chance
            results.append({"digits": digits, "is_biased": on, "cbd": cbd_v, "cbl": cbl_v,
                            "score": np.where(on, 0.6, 0.9), "chance": np.full(20, 0.5), "empty": empty,
                            "grey": np.zeros(20), "seconds": np.float64(2.0)})
    return ContextSaliencyResults(runs, results, bias_digits=tuple(digits_), textures=tuple(textures),
                                  strengths=("strong",))


def test_results_aggregation():
    from gsutils.experiments.grid.context_results import diagonal_split

    res = _fake_results()
    mat = res.cbd_matrix("strong", "grid")
    assert mat.shape == (1, 2, 10)
    assert np.isclose(mat[0, 0, 2], 0.6) and np.isclose(mat[0, 1, 7], 0.6)
    assert np.isclose(mat[0, 0, 5], 0.01)
    on, off = diagonal_split(mat, (2, 7))
    assert np.isclose(on, 0.6) and np.isclose(off, 0.01)
    # CBL of the bias digit: one empty map (chance 0.5) and one at 0.9 per network
    assert np.allclose(res.cbl_matrix("strong", "grid"), 0.7)
    assert np.allclose(res.cbl_matrix("strong", "grid", "exclude"), 0.9)
    assert np.isclose(res.mean_cbl("strong", "grid"), 0.7)
    assert np.isclose(res.mean_cbl("strong", "grid", "exclude"), 0.9)
    assert res.n_cbl_images("strong", "grid") == 4 and res.n_cbl_images("strong", "grid", "exclude") == 2
    assert np.allclose(res.cbl_matrix("strong", "vg"), 0.3)
    assert np.allclose(res.chance_matrix("strong"), 0.5) and res.mean_chance("strong") == 0.5
    # empty-map rates, bias digit apart from the other digits
    assert res.empty_rate("strong", "grid", bias_digit=True) == 0.5
    assert res.empty_rate("strong", "grid", bias_digit=False) == 0.0
    assert res.empty_rate("strong", "vg", bias_digit=True) == 0.0
    assert np.isclose(res.bias_digit_cbd("strong", "grid"), 0.6)
    assert np.isclose(res.bias_digit_cbd("strong", "grid", bias_digit=False), 0.01)
    assert res.n_images("strong") == 40 and res.seconds() == 4.0
    assert np.isclose(res.mean_score("strong"), (4 * 0.6 + 36 * 0.9) / 40)
    assert np.isclose(res.mean_score("strong", bias_digit=True), 0.6)
    # a strength with no networks gives NaN, not an error
    assert np.isnan(res.cbd_matrix("weak", "grid")).all()
    assert np.isnan(res.empty_rate("weak", "grid", bias_digit=True))
    with pytest.raises(ValueError, match="exclude"):
        res.cbl_matrix("strong", "grid", "nan")
    # every map of a cell empty: excluded CBL is NaN there
    all_empty = _fake_results(empty_grid_on=(True, True))
    assert np.isnan(all_empty.cbl_matrix("strong", "grid", "exclude")).all()
    assert np.isnan(all_empty.mean_cbl("strong", "grid", "exclude"))


def test_results_of_one_method():
    """The fixed-grey results (grid only, (n,) arrays) aggregate like the main ones."""
    from gsutils.experiments.grid.context_results import ContextSaliencyResults

    full = _fake_results()
    one = ContextSaliencyResults(full.runs, [{k: (v[3] if k in ("cbd", "cbl", "empty") else v)
                                              for k, v in r.items()} for r in full.results],
                                 full.bias_digits, full.textures, full.strengths, methods=("grid",))
    for empty in ("chance", "exclude"):
        assert one.mean_cbl("strong", "grid", empty) == full.mean_cbl("strong", "grid", empty)
    assert one.empty_rate("strong", "grid", bias_digit=True) == 0.5


def test_context_scores_with_a_model_that_ignores_context(tmp_path, monkeypatch):
    from gsutils.experiments.grid import context_evidence as ev
    from gsutils.experiments.grid import context_saliency as cs
    from gsutils.experiments.grid.segmentation import SegRun
    from gsutils.profiles import get_profile

    model = _pixel_model()
    prof = get_profile("quick", device="cpu", results_dir=tmp_path)
    # float32 layers, as the direct call below computes (the quick profile's bf16 is tested elsewhere)
    prof = dataclasses.replace(prof, saliency=dataclasses.replace(prof.saliency, autocast=None))
    run = SegRun(BiasConfig(strength="strong", digit=2, texture=0), "tiny", 0)
    biased, ordinary = ev.biased_test_set(prof, run), ev.ordinary_test_set(prof, run)
    assert np.array_equal(biased.digits, ordinary.digits)
    assert not ordinary.biased_mask.any() and biased.is_biased[biased.digits == 2].all()
    sel = np.flatnonzero(biased.digits == 2)[:3]
    out = ev.compute_context_scores(model, biased, ordinary, sel, (0.0, 0.25, 0.5, 0.75, 1.0))
    assert set(out) == {"biased context", "ordinary context", "grey 0", "grey 0.25", "grey 0.5",
                        "grey 0.75", "grey 1", "bias part kept"}
    values = np.array(list(out.values()))
    assert np.all((values > 0) & (values < 1))
    np.testing.assert_allclose(values, values[0], rtol=1e-6)  # context never matters
    shifted = ordinary.subset(np.roll(np.arange(len(ordinary)), 1))  # other digits at sel
    with pytest.raises(ValueError, match="same digits"):
        ev.compute_context_scores(model, biased, shifted, sel, (0.5,))
    # cached through the store (in tmp_path), keyed by the network's config
    calls = []

    def fake_load(profile, r, progress=False):
        calls.append(r)
        return model

    monkeypatch.setattr(cs, "train_or_load", fake_load)  # the evidence loads through context_saliency
    first = ev.context_scores(prof, run, n_images=3)
    second = ev.context_scores(prof, run, n_images=3)
    assert first == second and len(calls) == 1
    np.testing.assert_allclose(list(first.values()), list(out.values()), rtol=1e-6)
