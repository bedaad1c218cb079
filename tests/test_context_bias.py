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


maps_01 = arrays(np.float64, (3, H, W), elements=st.floats(0, 1, allow_nan=False))


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
