"""Layer combination: min-max normalisation, weighted sum and product, weights."""

from __future__ import annotations

import pytest
import torch

from gsutils.saliency.combine import combine_maps, linear_weights, minmax, normalized_weights, uniform_weights


def test_minmax_per_map_and_constant_maps():
    m = torch.tensor([[[[1.0, 3.0], [5.0, 9.0]]], [[[2.0, 2.0], [2.0, 2.0]]]])  # (2, 1, 2, 2)
    out = minmax(m)
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.equal(out[1], torch.zeros(1, 2, 2))


def test_weights():
    torch.testing.assert_close(linear_weights(4), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64))
    torch.testing.assert_close(uniform_weights(2), torch.tensor([0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(normalized_weights([2.0, 6.0]), torch.tensor([0.25, 0.75], dtype=torch.float64))
    for bad in ([], [-1.0, 2.0], [0.0, 0.0], [float("nan")]):
        with pytest.raises(ValueError):
            normalized_weights(bad)


def test_sum_and_product_closed_form():
    a = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])  # normalised: 0, .25, .5, 1
    b = torch.tensor([[[[4.0, 0.0], [1.0, 2.0]]]])  # normalised: 1, 0, .25, .5
    s = combine_maps([a, b], [1.0, 3.0], "sum")
    torch.testing.assert_close(s[0, 0], 0.25 * torch.tensor([[0.0, 0.25], [0.5, 1.0]])
                               + 0.75 * torch.tensor([[1.0, 0.0], [0.25, 0.5]]))
    p = combine_maps([a, b], [1.0, 3.0], "product")
    want = torch.tensor([[0.0, 0.25], [0.5, 1.0]]) ** 0.25 * torch.tensor([[1.0, 0.0], [0.25, 0.5]]) ** 0.75
    torch.testing.assert_close(p[0, 0], want)
    # one layer with all the weight gives that layer's normalised map
    torch.testing.assert_close(combine_maps([a, b], [1.0, 0.0], "product")[0, 0],
                               torch.tensor([[0.0, 0.25], [0.5, 1.0]]))


def test_maps_of_different_sizes_are_upsampled_to_the_largest():
    big = torch.rand(3, 1, 8, 8)
    small = torch.ones(3, 1, 2, 2)
    small[:, :, 0, 0] = 2
    out = combine_maps([big, small], [1, 1], "sum")
    assert out.shape == (3, 1, 8, 8)
    assert combine_maps([big, small], [1, 1], "sum", size=(4, 4)).shape == (3, 1, 4, 4)


def test_bad_input():
    with pytest.raises(ValueError, match="one weight per map"):
        combine_maps([torch.rand(1, 1, 2, 2)], [1, 2])
    with pytest.raises(ValueError, match="mode"):
        combine_maps([torch.rand(1, 1, 2, 2)], [1], "max")
    with pytest.raises(ValueError, match="batch size"):
        combine_maps([torch.rand(1, 1, 2, 2), torch.rand(2, 1, 2, 2)], [1, 1])
