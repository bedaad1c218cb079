"""Tests of the Extract & Aggregate engine (gsutils.saliency.extract_aggregate).

Closed forms (linear models, explicit identity convolutions, a convolution's
own weight gradient, hand-written guided and excitation backprop), agreement
of the many-layers-per-pass engine with one call per (method, layer), and the
bad-input errors. The comparison with TorchRay lives in
``test_torchray_crosscheck.py``.
"""

from __future__ import annotations

import itertools

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv_resnet

from small_models import SmallVGG

from gsutils.saliency.extract_aggregate import (
    METHODS,
    extract_aggregate,
    layer_names,
    saliency,
)

DT = torch.float64


def small_vgg(seed: int = 0, num_classes: int = 5) -> nn.Module:
    """A small VGG (inplace ReLUs, as torchvision's), float64, evaluation mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallVGG(num_classes)
        for p in model.classifier.parameters():
            nn.init.normal_(p, 0.0, 0.3)
    return model.to(DT).eval()


def small_resnet(seed: int = 0, num_classes: int = 5) -> nn.Module:
    """torchvision's ResNet with Bottleneck blocks, one per stage, random BN statistics."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = tv_resnet.ResNet(tv_resnet.Bottleneck, [1, 1, 1, 1], num_classes=num_classes,
                                 width_per_group=8)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(-0.5, 1.5)
                m.bias.data.uniform_(-0.3, 0.3)
    return model.to(DT).eval()


def _x(n: int = 2, c: int = 3, h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=DT)


# --------------------------------------------------------------------------------------
# Layers and API
# --------------------------------------------------------------------------------------


def test_layer_names_are_torchvision_paths():
    names = layer_names(small_vgg())
    assert names[0] == "input"
    assert {"features.0", "features.1", "classifier.6", "avgpool"} <= set(names)
    assert "" not in names
    rnames = layer_names(small_resnet())
    assert {"layer1", "layer4", "layer1.0.conv1", "fc"} <= set(rnames)


def test_output_keys_shapes_dtype_and_resize():
    model, x = small_vgg(), _x()
    layers = ["input", "features.1", "features.3", "features.7"]
    methods = [m for m in METHODS if m != "normgrad_conv"]
    out = extract_aggregate(model, x, 2, layers, methods)
    assert set(out) == set(itertools.product(methods, layers))
    for m in out.values():
        assert m.shape == (2, 1, 32, 32) and m.dtype == DT and m.device == x.device
        assert not m.requires_grad
    small = extract_aggregate(model, x, 2, layers, methods, resize=False)
    assert small["gradient", "features.7"].shape == (2, 1, 8, 8)
    assert small["gradient", "features.3"].shape == (2, 1, 16, 16)
    up = F.interpolate(small["normgrad", "features.7"], size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["normgrad", "features.7"], up)


def test_saliency_is_one_entry_of_extract_aggregate():
    model, x = small_vgg(), _x()
    a = saliency(model, x, 1, "features.3", "grad_cam")
    b = extract_aggregate(model, x, 1, ["features.3"], ["grad_cam"])["grad_cam", "features.3"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# --------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------


def test_linear_model_closed_forms():
    """For logits = W vec(x) + b every input-layer map is a formula in W[t] and x."""
    c, h, w, k = 3, 5, 4, 4
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k)).to(DT)
    x = _x(2, c, h, w)
    target = torch.tensor([1, 3])
    out = extract_aggregate(model, x, target, ["input"], METHODS[:6] + METHODS[7:])
    for n in range(2):
        wt = model[1].weight[target[n]].detach().view(c, h, w)  # (C, H, W) = d logit / d x
        xn = x[n]
        expect = {
            "gradient": wt.abs().amax(0),
            "guided_backprop": wt.abs().amax(0),  # no ReLU: guided = plain gradient
            "gradient_sum": wt.sum(0),
            "linear_approx": (xn * wt).sum(0),
            "grad_cam": (xn * wt.mean(dim=(1, 2), keepdim=True)).sum(0).clamp(min=0),
            "normgrad": xn.norm(dim=0) * wt.norm(dim=0),
            "selective_normgrad": (xn * wt).clamp(min=0).norm(dim=0),
        }
        wp = wt.clamp(min=0)
        z = (wp * xn).sum()
        expect["excitation_backprop"] = (xn * wp / (z + 1e-20)).sum(0)
        wn = (-wt).clamp(min=0)
        zn = (wn * xn).sum()
        expect["contrastive_excitation_backprop"] = (
            (xn * wp / (z + 1e-20) - xn * wn / (zn + 1e-20)).sum(0).clamp(min=0))
        for method, ref in expect.items():
            torch.testing.assert_close(out[method, "input"][n, 0], ref, msg=method)
    # the bias changes nothing in the gradient maps
    with torch.no_grad():
        model[1].bias.add_(5.0)
    again = extract_aggregate(model, x, target, ["input"], ["gradient", "linear_approx"])
    torch.testing.assert_close(again["gradient", "input"], out["gradient", "input"])


def _per_location_weight_grad_norms(conv: nn.Conv2d, x_in: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Norm of d<g, conv(x)>/dW restricted to each output location, by autograd (N=1)."""
    out = conv(x_in)  # (1, C_out, H', W')
    h, w = out.shape[-2:]
    norms = torch.zeros(h, w, dtype=x_in.dtype)
    for i in range(h):
        for j in range(w):
            mask = torch.zeros_like(out)
            mask[..., i, j] = 1
            (gw,) = torch.autograd.grad(out, conv.weight, grad_outputs=g * mask, retain_graph=True)
            norms[i, j] = gw.norm()
    return norms


def test_normgrad_conv_single_location_is_the_weight_gradient_norm():
    with torch.random.fork_rng():
        torch.manual_seed(4)
        model = nn.Sequential(nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6, 3)).to(DT)
    x = _x(1, 4, 3, 3)  # a 3x3 input and a 3x3 kernel: one output location
    ng = saliency(model, x, 2, "0", "normgrad_conv", resize=False)
    assert ng.shape == (1, 1, 1, 1)
    model.zero_grad()
    model(x)[0, 2].backward()
    torch.testing.assert_close(ng.view(()), model[0].weight.grad.norm())
    model.zero_grad()


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=3, stride=2, padding=1, groups=2),
    dict(kernel_size=(3, 2), dilation=2, padding=2, padding_mode="reflect"),
])
def test_normgrad_conv_every_location_matches_autograd(kwargs):
    with torch.random.fork_rng():
        torch.manual_seed(5)
        conv = nn.Conv2d(4, 6, **kwargs)
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), conv, nn.ReLU(inplace=True),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).to(DT)
    x = _x(1, 2, 7, 6)
    ng = saliency(model, x, 1, "2", "normgrad_conv", resize=False)[0, 0]
    # the gradient at the conv's output, then per-location weight gradients
    act = model[:2](x)
    out = conv(act)
    logit = model[3:](out.clone())[0, 1]
    (g,) = torch.autograd.grad(logit, out)
    ref = _per_location_weight_grad_norms(conv, act.detach(), g)
    torch.testing.assert_close(ng, ref)


def test_normgrad_is_the_weight_gradient_of_an_inserted_identity_conv():
    model = small_vgg(seed=6)
    x = _x(1, 3, 16, 16)
    layer = 3  # features.3: a conv (followed by an inplace ReLU)
    ng = saliency(model, x, 3, f"features.{layer}", "normgrad", resize=False)[0, 0]
    c = model.features[layer].out_channels
    identity = nn.Conv2d(c, c, 1, bias=False).to(DT)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(c, dtype=DT).view(c, c, 1, 1))
    feats = list(model.features)
    explicit = nn.Sequential(*feats[: layer + 1], identity, *feats[layer + 1:])
    act = explicit[: layer + 1](x)
    out = identity(act)
    rest = explicit[layer + 2:](out.clone())
    logits = model.classifier(torch.flatten(model.avgpool(rest), 1))
    (g,) = torch.autograd.grad(logits[0, 3], out)
    ref = _per_location_weight_grad_norms(identity, act.detach(), g)
    torch.testing.assert_close(ng, ref)


def test_guided_backprop_by_hand():
    """max(p, 0) at every ReLU before its own mask, written out layer by layer."""
    with torch.random.fork_rng():
        torch.manual_seed(7)
        c1, c2, fc = nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(5, 4, 3, padding=1), nn.Linear(4 * 36, 3)
    model = nn.Sequential(c1, nn.ReLU(inplace=True), c2, nn.ReLU(), nn.Flatten(), fc).to(DT)
    x = _x(1, 3, 6, 6)
    gb = saliency(model, x, 0, "input", "guided_backprop", resize=False)
    a1 = c1(x)
    r1 = a1.clamp(min=0)
    a2 = c2(r1)
    r2 = a2.clamp(min=0)
    p = fc.weight[0].detach().view(1, 4, 6, 6)  # d logit / d r2
    p = p.clamp(min=0) * (a2 > 0)  # guided ReLU 2
    (p,) = torch.autograd.grad(a2, r1, p)
    p = p.clamp(min=0) * (a1 > 0)  # guided ReLU 1
    xin = x.clone().requires_grad_(True)
    (p,) = torch.autograd.grad(c1(xin), xin, p)
    torch.testing.assert_close(gb, p.abs().amax(1, keepdim=True))
    plain = saliency(model, x, 0, "input", "gradient", resize=False)
    assert not torch.allclose(gb, plain)


def test_excitation_backprop_by_hand():
    """EB on Linear-ReLU-Linear: p_in = x * W+^T (p / (W+ x)); CEB subtracts the -W pass."""
    with torch.random.fork_rng():
        torch.manual_seed(8)
        conv, fc = nn.Conv2d(2, 3, 2), nn.Linear(3 * 9, 4)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc).to(DT)
    x = _x(1, 2, 4, 4).abs()
    t = 2
    out = extract_aggregate(model, x, t, ["input", "1"],
                            ["excitation_backprop", "contrastive_excitation_backprop"], resize=False)
    r = model[:2](x).detach()  # (1, 3, 3, 3) ReLU output = classifier input (flattened)
    v = r.flatten(1)

    def eb_linear(w):
        wp = w.clamp(min=0)
        p = torch.zeros(1, 4, dtype=DT)
        p[0, t] = 1
        return (v * ((p / (v @ wp.T + 1e-20)) @ wp)).view_as(r)  # (1, 3, 3, 3)

    p_pos = eb_linear(fc.weight.detach())
    p_neg = eb_linear(-fc.weight.detach())

    def eb_conv(p):  # p at the conv output (the ReLU passes it where the input was > 0)
        a = conv(x)
        p = p * (a > 0)
        wp = conv.weight.detach().clamp(min=0)
        xin = x.clone().requires_grad_(True)
        z = F.conv2d(xin, wp)
        (back,) = torch.autograd.grad(z, xin, p / (z + 1e-20))
        return x * back

    torch.testing.assert_close(out["excitation_backprop", "1"], p_pos.sum(1, keepdim=True))
    torch.testing.assert_close(out["excitation_backprop", "input"], eb_conv(p_pos).sum(1, keepdim=True))
    torch.testing.assert_close(out["contrastive_excitation_backprop", "input"],
                               (eb_conv(p_pos) - eb_conv(p_neg)).sum(1, keepdim=True).clamp(min=0))
    torch.testing.assert_close(out["contrastive_excitation_backprop", "1"],
                               (p_pos - p_neg).sum(1, keepdim=True).clamp(min=0))


# --------------------------------------------------------------------------------------
# The engine equals the naive loop; batches; state left untouched
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("builder,layers", [
    (small_vgg, ["input", "features.0", "features.1", "features.4", "features.6", "features.9"]),
    (small_resnet, ["input", "conv1", "layer1", "layer2.0.conv1", "layer3", "layer4"]),
])
def test_engine_equals_one_call_per_method_and_layer(builder, layers):
    model, x = builder(), _x(2, 3, 32, 32)
    target = torch.tensor([0, 4])
    methods = [m for m in METHODS if m != "normgrad_conv"]
    calls = []
    handle = model.register_forward_pre_hook(lambda m, i: calls.append(1))
    try:
        together = extract_aggregate(model, x, target, layers, methods, resize=False)
        assert len(calls) == 2  # one forward pass for the gradient family, one for EB
        for method, layer in itertools.product(methods, layers):
            alone = saliency(model, x, target, layer, method, resize=False)
            torch.testing.assert_close(together[method, layer], alone, rtol=1e-10, atol=1e-14)
        convs = [n for n in layers if isinstance(dict(model.named_modules()).get(n), nn.Conv2d)]
        calls.clear()
        nc = extract_aggregate(model, x, target, convs, ["normgrad_conv", "normgrad", "gradient"])
        assert len(calls) == 1
        for layer in convs:
            torch.testing.assert_close(nc["normgrad_conv", layer],
                                       saliency(model, x, target, layer, "normgrad_conv"))
    finally:
        handle.remove()


def test_images_of_a_batch_do_not_interact():
    model, x = small_resnet(), _x(3, 3, 32, 32)
    target = torch.tensor([1, 0, 2])
    methods = list(METHODS[:6]) + list(METHODS[7:])
    batch = extract_aggregate(model, x, target, ["layer1", "layer3"], methods)
    for n in range(3):
        one = extract_aggregate(model, x[n:n + 1], int(target[n]), ["layer1", "layer3"], methods)
        for key in one:
            torch.testing.assert_close(batch[key][n:n + 1], one[key], rtol=1e-9, atol=1e-13)


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


def test_model_state_is_left_as_it_was():
    model, x = small_vgg(), _x()
    model.train()
    model.features[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    extract_aggregate(model, x, 1, ["input", "features.3", "features.9"], METHODS[:6] + METHODS[7:])
    assert model.training and all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert _hooks(model) == 0
    assert torch._C._len_torch_function_stack() == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # ReLUs are ordinary again: the plain gradient matches autograd
    model.eval()
    xin = x[:1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xin)[0, 1], xin)
    torch.testing.assert_close(saliency(model, x[:1], 1, "input", "gradient", resize=False),
                               g.abs().amax(1, keepdim=True))


def test_hooks_are_removed_when_a_call_fails():
    model, x = small_vgg(), _x()
    with pytest.raises(ValueError, match="target out of range"):
        extract_aggregate(model, x, 99, ["features.3"], ["guided_backprop", "excitation_backprop"])
    with pytest.raises(ValueError, match="outputs"):
        extract_aggregate(model, x, 0, ["classifier.1"], ["excitation_backprop"])
    assert _hooks(model) == 0
    assert torch._C._len_torch_function_stack() == 0


def test_no_grad_context_and_requires_grad_input_are_handled():
    model, x = small_vgg(), _x()
    ref = saliency(model, x, 1, "features.3", "normgrad")
    with torch.no_grad():
        inside = saliency(model, x, 1, "features.3", "normgrad")
    torch.testing.assert_close(inside, ref)
    xr = x.clone().requires_grad_(True)
    torch.testing.assert_close(saliency(model, xr, 1, "features.3", "normgrad"), ref)
    assert xr.grad is None


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_unknown_layer_lists_the_valid_paths():
    with pytest.raises(ValueError, match=r"features\.99.*valid paths are: 'input', 'features'.*'classifier\.6'"):
        extract_aggregate(small_vgg(), _x(), 0, ["features.99"], ["gradient"])


def test_unknown_method_lists_the_methods():
    with pytest.raises(ValueError, match="normgrads.*choose from gradient, gradient_sum"):
        extract_aggregate(small_vgg(), _x(), 0, ["features.3"], ["normgrads"])


def test_normgrad_conv_needs_a_convolution():
    with pytest.raises(ValueError, match=r"normgrad_conv.*features\.1.*ReLU.*'features\.0'"):
        extract_aggregate(small_vgg(), _x(), 0, ["features.0", "features.1"], ["normgrad_conv"])
    with pytest.raises(ValueError, match="normgrad_conv.*input"):
        extract_aggregate(small_vgg(), _x(), 0, ["input"], ["normgrad_conv"])


@pytest.mark.parametrize("x,err,match", [
    (torch.zeros(3, 32, 32, dtype=DT), ValueError, r"x must have shape \(N, C, H, W\), got \(3, 32, 32\)"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.long), TypeError, "floating-point"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.float32), TypeError, "dtype"),
    ("an image", TypeError, "x must be a torch.Tensor"),
])
def test_bad_x(x, err, match):
    with pytest.raises(err, match=match):
        extract_aggregate(small_vgg(), x, 0, ["features.3"], ["gradient"])


@pytest.mark.parametrize("target,err,match", [
    (5, ValueError, r"target out of range: got \[5, 5\].*5 classes"),
    (-1, ValueError, "target out of range"),
    (torch.tensor([0, 1, 2]), ValueError, r"shape \(2,\)"),
    (torch.tensor([0.5, 1.0]), TypeError, "integer class indices"),
    (True, TypeError, "target must be an int"),
])
def test_bad_target(target, err, match):
    with pytest.raises(err, match=match):
        extract_aggregate(small_vgg(), _x(), target, ["features.3"], ["gradient"])


def test_layer_without_spatial_output_and_contrast_after_classifier():
    with pytest.raises(ValueError, match=r"classifier\.4.*outputs \(2, 16\)"):
        extract_aggregate(small_vgg(), _x(), 0, ["classifier.4"], ["gradient"])
    fully_conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 1),
                               nn.AdaptiveAvgPool2d(1), nn.Flatten()).to(DT)
    with pytest.raises(ValueError, match="come after it"):
        extract_aggregate(fully_conv, _x(), 0, ["3"], ["contrastive_excitation_backprop"])
    with pytest.raises(ValueError, match="classifier_layer"):
        extract_aggregate(fully_conv, _x(), 0, ["1"], ["contrastive_excitation_backprop"],
                          classifier_layer="1")


def test_layers_and_methods_types():
    model, x = small_vgg(), _x()
    one = extract_aggregate(model, x, 0, "features.3", "gradient")  # single strings are accepted
    assert list(one) == [("gradient", "features.3")]
    with pytest.raises(ValueError, match="layers must not be empty"):
        extract_aggregate(model, x, 0, [], ["gradient"])
    with pytest.raises(TypeError, match="methods must be"):
        extract_aggregate(model, x, 0, ["features.3"], [3])
    with pytest.raises(TypeError, match="model must be"):
        extract_aggregate(lambda t: t, x, 0, ["features.3"], ["gradient"])


# --------------------------------------------------------------------------------------
# Helpers of the E&A chapters
# --------------------------------------------------------------------------------------


def test_spearman_rows_matches_scipy_with_ties_and_constant_rows():
    from scipy.stats import spearmanr

    from gsutils.experiments.normgrad.normgrad_maps import spearman_rows

    g = torch.Generator().manual_seed(9)
    a = torch.randn(4, 50, generator=g, dtype=DT).numpy()
    b = (torch.from_numpy(a) * 0.3 + torch.randn(4, 50, generator=g, dtype=DT)).numpy()
    a[1, :20] = 0.0  # ties
    b[1, 10:30] = 0.0
    b[3] = 1.0  # a constant map
    got = spearman_rows(a, b)
    for i in range(3):
        assert got[i] == pytest.approx(spearmanr(a[i], b[i]).statistic, abs=1e-12)
    assert np.isnan(got[3])
    with pytest.raises(ValueError, match=r"shape \(P, D\)"):
        spearman_rows(a, b[:, :10])
