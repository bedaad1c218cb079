"""Gradient baselines (VG, IG, SG) of the request objective, checked against Captum."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gsutils.saliency.gradient import (
    context_maps,
    gradient_context_saliency,
    integrated_gradients,
    request_objective,
    smoothgrad,
    vanilla_gradient,
)
from gsutils.saliency.grid import segmentation_probs

captum_attr = pytest.importorskip("captum.attr")

H = W = 20


def small_segmenter(dtype=torch.float32, seed: int = 0, smooth: bool = False) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.Softplus() if smooth else nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2), nn.Tanh(),
        nn.Conv2d(6, 4, 3, padding=1),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.6)
    return net.to(dtype).eval()


def batch(n: int = 3, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, H, W, generator=g, dtype=dtype)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = 0.0, 1.0  # every image spans [0, 1]: one sigma for all
    req = torch.zeros(n, H, W, dtype=torch.bool)
    req[:, 6:13, 5:14] = True
    req[1, 6:13, 5:9] = False  # different requests
    classes = torch.tensor([0, 2, 3][:n])
    return x, req, classes


def objective(model):
    def f(x, req, classes):
        return request_objective(segmentation_probs(model, x), req, classes)  # (N,)
    return f


def test_objective_is_the_mean_class_score_over_the_request():
    model = small_segmenter()
    x, req, c = batch()
    probs = model(x).softmax(1)
    expected = torch.stack([probs[i, c[i]][req[i]].mean() for i in range(3)])
    torch.testing.assert_close(request_objective(probs, req, c), expected)


def test_vanilla_gradient_matches_captum():
    model = small_segmenter()
    x, req, c = batch()
    ours = vanilla_gradient(model, x, req, c)
    ref = captum_attr.Saliency(objective(model)).attribute(
        x.clone().requires_grad_(True), abs=False, additional_forward_args=(req, c))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert ours.abs().max() > 1e-4  # non-trivial


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
def test_integrated_gradients_matches_captum(method):
    model = small_segmenter(seed=1)
    x, req, c = batch(seed=1)
    ours = integrated_gradients(model, x, req, c, steps=25, method=method)
    ref = captum_attr.IntegratedGradients(objective(model)).attribute(
        x, baselines=0.0, n_steps=25, method=method, additional_forward_args=(req, c))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert ours.abs().max() > 1e-4


def test_integrated_gradients_completeness():
    # a smooth network in float64: the Gauss-Legendre rule converges fast and the
    # attributions sum to S(x) - S(baseline)
    model = small_segmenter(torch.float64, seed=2, smooth=True)
    x, req, c = batch(dtype=torch.float64, seed=2)
    attr = integrated_gradients(model, x, req, c, steps=25)
    f = objective(model)
    delta = f(x, req, c) - f(torch.zeros_like(x), req, c)
    torch.testing.assert_close(attr.flatten(1).sum(1), delta, atol=1e-6, rtol=1e-6)


def test_smoothgrad_matches_captum_with_the_same_noise():
    model = small_segmenter(seed=3)
    x, req, c = batch(seed=3)
    ours = smoothgrad(model, x, req, c, samples=25, noise_level=0.15, seed=7)
    # Captum draws its noise from the global generator: seed it the same way
    torch.manual_seed(7)
    ref = captum_attr.NoiseTunnel(captum_attr.Saliency(objective(model))).attribute(
        x, nt_type="smoothgrad", nt_samples=25, stdevs=0.15, abs=False,
        additional_forward_args=(req, c))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert ours.abs().max() > 1e-4


def test_smoothgrad_is_deterministic_and_uses_no_global_rng():
    model = small_segmenter()
    x, req, c = batch()
    torch.manual_seed(0)
    a = smoothgrad(model, x, req, c, seed=3)
    torch.manual_seed(1)
    b = smoothgrad(model, x, req, c, seed=3)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.equal(a, smoothgrad(model, x, req, c, seed=4))


def test_chunking_does_not_change_results():
    model = small_segmenter()
    x, req, c = batch()
    torch.testing.assert_close(integrated_gradients(model, x, req, c, batch_size=7),
                               integrated_gradients(model, x, req, c), atol=1e-6, rtol=0)
    torch.testing.assert_close(smoothgrad(model, x, req, c, batch_size=5),
                               smoothgrad(model, x, req, c), atol=1e-6, rtol=0)


def test_context_maps():
    attr = torch.zeros(2, 1, 4, 4)
    attr[0, 0, 0, 0] = -2.0  # context
    attr[0, 0, 2, 2] = 4.0  # request: the maximum, but zeroed afterwards
    req = torch.zeros(2, 4, 4, dtype=torch.bool)
    req[:, 2:, 2:] = True
    m = context_maps(attr, req)
    assert m[0, 0, 0] == 0.5  # |−2| / max |attr| over the whole image
    assert torch.all(m[req] == 0)
    assert torch.all(m[1] == 0)  # an all-zero attribution stays zero
    assert m.min() >= 0 and m.max() <= 1


def test_gradient_context_saliency_is_normalised_and_zero_in_request():
    model = small_segmenter()
    x, req, c = batch()
    for method in ("vg", "ig", "sg"):
        m = gradient_context_saliency(model, x, req, c, method, ig_steps=5, sg_samples=5)
        assert m.shape == (3, H, W)
        assert torch.all(m[req] == 0) and m.min() >= 0 and m.max() <= 1
        assert m.max() > 0


def test_dict_output_models_are_accepted():
    model = small_segmenter()

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            return {"out": self.m(x)}

    x, req, c = batch()
    torch.testing.assert_close(vanilla_gradient(Wrap(), x, req, c), vanilla_gradient(model, x, req, c))


def test_bad_input():
    model = small_segmenter()
    x, req, c = batch()
    empty = req.clone()
    empty[0] = False
    with pytest.raises(ValueError, match="empty"):
        vanilla_gradient(model, x, empty, c)
    with pytest.raises(ValueError, match="classes must lie in"):
        integrated_gradients(model, x, req, 9)
    with pytest.raises(ValueError, match="requests must have shape"):
        smoothgrad(model, x, req[:, :5], c)
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(model, x, req, c, steps=0)
    with pytest.raises(ValueError, match="samples"):
        smoothgrad(model, x, req, c, samples=0)
    with pytest.raises(ValueError, match="method"):
        gradient_context_saliency(model, x, req, c, "gradcam")
