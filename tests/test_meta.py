"""Meta-saliency: the step's direction, per-image updates, and exact restoration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gsutils.saliency.extract_aggregate import extract_aggregate
from gsutils.saliency.meta import meta_saliency, meta_step
from tests.small_models import SmallVGG


def _model() -> nn.Module:
    torch.manual_seed(0)
    return SmallVGG(4).double()


def test_weights_restored_bit_for_bit_and_grads_untouched():
    model = _model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    maps = meta_saliency(model, x, [0, 1, 2], ["input", "features.4"], ["normgrad", "linear_approx"],
                         lr=0.5, positive=[True, False, True])
    assert maps["normgrad", "input"].shape == (3, 1, 16, 16)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # flags restored
    # restored even when the block raises
    with pytest.raises(RuntimeError):
        with meta_step(model, x[:1], 0, 0.5):
            raise RuntimeError("boom")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_descent_lowers_and_ascent_raises_the_loss():
    model = _model().eval()
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    one = torch.ones((), dtype=torch.float64)

    def loss(m):
        with torch.no_grad():
            return float(F.binary_cross_entropy_with_logits(m(x)[0, 2], one))

    base = loss(model)
    with meta_step(model, x, 2, 1e-2, positive=True) as m:
        down = loss(m)
    with meta_step(model, x, 2, 1e-2, positive=False) as m:
        up = loss(m)
    assert down < base < up


def test_one_step_per_image_and_equal_to_a_manual_sgd_step():
    model = _model().eval()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    batch = meta_saliency(model, x, [1, 3], ["features.4"], ["selective_normgrad"], lr=0.3)
    alone = meta_saliency(model, x[1:], 3, ["features.4"], ["selective_normgrad"], lr=0.3)
    assert torch.equal(batch["selective_normgrad", "features.4"][1:], alone["selective_normgrad", "features.4"])
    # the same by hand: one SGD step on a copy
    import copy

    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=0.3)
    F.binary_cross_entropy_with_logits(ref(x[1:])[0, 3], torch.ones((), dtype=torch.float64)).backward()
    opt.step()
    want = extract_aggregate(ref, x[1:], 3, ["features.4"], ["selective_normgrad"])
    torch.testing.assert_close(alone["selective_normgrad", "features.4"], want["selective_normgrad", "features.4"],
                               rtol=1e-10, atol=1e-12)
    # and it differs from the plain map
    plain = extract_aggregate(model, x[1:], 3, ["features.4"], ["selective_normgrad"])
    assert not torch.allclose(plain["selective_normgrad", "features.4"], want["selective_normgrad", "features.4"])


def test_bad_inputs():
    model = _model()
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="lr must be a positive"):
        meta_saliency(model, x, 0, "input", "normgrad", lr=0.0)
    with pytest.raises(ValueError, match="positive must be"):
        meta_saliency(model, x, 0, "input", "normgrad", lr=0.1, positive=[True, False])
    with pytest.raises(ValueError, match="out of range"):
        meta_saliency(model, x, 9, "input", "normgrad", lr=0.1)
