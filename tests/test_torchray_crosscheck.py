"""Our Extract & Aggregate maps against TorchRay's (a test-only dependency).

TorchRay (Fong, Patrick and Vedaldi) implements gradient, guided backprop,
Grad-CAM, linear approximation, excitation backprop and contrastive excitation
backprop with one hooked layer per call. On the same randomly initialised
models (float64) and inputs, with resizing off, every map must agree.

TorchRay's conventions matched here:
- a layer's *output* is probed (the model's input for ``saliency_layer=''``);
- its probe cannot sit on a layer followed by an in-place ReLU, so its copy
  of each model has out-of-place ReLUs (our engine handles in-place ones);
- its excitation backprop treats a ResNet's skip connection as a sum only
  after ``update_resnet`` rewrites the blocks, which its copy gets;
- contrastive EB contrasts at ``classifier.4`` (VGG's relu7) / ``avgpool``
  (ResNet), the input of the last linear layer, where ours contrasts.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from small_models import SmallVGG

from gsutils.saliency.extract_aggregate import extract_aggregate

torchray = pytest.importorskip("torchray")
from torchray.attribution.excitation_backprop import (  # noqa: E402
    contrastive_excitation_backprop,
    excitation_backprop,
    update_resnet,
)
from torchray.attribution.grad_cam import grad_cam  # noqa: E402
from torchray.attribution.gradient import gradient  # noqa: E402
from torchray.attribution.guided_backprop import guided_backprop  # noqa: E402
from torchray.attribution.linear_approx import linear_approx  # noqa: E402

DT = torch.float64
TORCHRAY = {
    "gradient": gradient,
    "guided_backprop": guided_backprop,
    "grad_cam": grad_cam,
    "linear_approx": linear_approx,
    "excitation_backprop": excitation_backprop,
    "contrastive_excitation_backprop": contrastive_excitation_backprop,
}


def _vgg() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = SmallVGG()
        for p in model.classifier.parameters():
            nn.init.normal_(p, 0.0, 0.3)
    return model.to(DT).eval()


def _resnet() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = tv_resnet.ResNet(tv_resnet.Bottleneck, [1, 2, 1, 1], num_classes=5, width_per_group=8)
        for m in model.modules():  # batch norm that is not the identity, some negative scales
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(-0.5, 1.5)
                m.bias.data.uniform_(-0.3, 0.3)
    return model.to(DT).eval()


CASES = {
    "vgg": dict(
        build=_vgg,
        layers=["input", "features.0", "features.1", "features.2", "features.3", "features.5",
                "features.7", "features.9", "avgpool"],
        contrast="classifier.4",
    ),
    "resnet": dict(
        build=_resnet,
        layers=["input", "conv1", "maxpool", "layer1.0.conv1", "layer1", "layer2.0", "layer2",
                "layer3.0.conv2", "layer3", "layer4", "avgpool"],
        contrast="avgpool",
    ),
}


def _torchray_copy(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    if isinstance(ref, tv_resnet.ResNet):
        update_resnet(ref)
    return ref


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    spec = CASES[request.param]
    model = spec["build"]()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 32, 32, generator=g, dtype=DT)
    target = torch.tensor([1, 3])
    ours = extract_aggregate(model, x, target, spec["layers"], list(TORCHRAY), resize=False)
    return dict(spec, name=request.param, model=model, x=x, target=target, ours=ours,
                ref=_torchray_copy(model))


def _torchray_map(case, method: str, layer: str) -> torch.Tensor:
    model = copy.deepcopy(case["ref"])  # TorchRay's contrastive EB leaves requires_grad off
    saliency_layer = "" if layer == "input" else layer
    if method == "contrastive_excitation_backprop":
        return contrastive_excitation_backprop(model, case["x"].clone(), case["target"],
                                               saliency_layer=saliency_layer,
                                               contrast_layer=case["contrast"])
    return TORCHRAY[method](model, case["x"].clone(), case["target"], saliency_layer=saliency_layer)


@pytest.mark.parametrize("method", list(TORCHRAY))
def test_maps_match_torchray(case, method):
    checked = 0
    for layer in case["layers"]:
        if method == "contrastive_excitation_backprop" and layer == "input":
            continue  # TorchRay's contrastive EB probes module outputs only
        ref = _torchray_map(case, method, layer)
        ours = case["ours"][method, layer]
        assert ours.shape == ref.shape, (layer, ours.shape, ref.shape)
        scale = float(ref.detach().abs().max())
        assert scale > 0, f"TorchRay's {method} map at {layer} is all zero; the test would be void"
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12 * scale,
                                   msg=lambda m, layer=layer: f"{case['name']} {method} at {layer}: {m}")
        checked += 1
    assert checked >= len(case["layers"]) - 1


def test_methods_differ_so_the_crosscheck_can_fail(case):
    """Guided backprop and EB change the backward pass: their maps are not the gradient's."""
    ours = case["ours"]
    for layer in ("input", case["layers"][3]):
        assert not torch.allclose(ours["guided_backprop", layer], ours["gradient", layer])
        assert not torch.allclose(ours["excitation_backprop", layer].abs(), ours["gradient", layer])


def test_fully_convolutional_contrastive_eb_matches_torchray():
    """A conv classifier followed by global average pooling (contrast at the conv's input)."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ).to(DT).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4), dtype=DT)
    target = torch.tensor([0, 2])
    layers = ["1", "2", "4", "5"]
    ours = extract_aggregate(model, x, target, layers,
                             ["excitation_backprop", "contrastive_excitation_backprop"], resize=False)
    for layer in layers:
        ref = excitation_backprop(copy.deepcopy(model), x.clone(), target, saliency_layer=layer)
        torch.testing.assert_close(ours["excitation_backprop", layer], ref, rtol=1e-9, atol=1e-15)
        ref = contrastive_excitation_backprop(copy.deepcopy(model), x.clone(), target,
                                              saliency_layer=layer, contrast_layer="5")
        torch.testing.assert_close(ours["contrastive_excitation_backprop", layer], ref, rtol=1e-9, atol=1e-15)
