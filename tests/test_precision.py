"""The reduced-precision wrapper the quick profile's saliency runs use (gsutils.models.precision)."""

from __future__ import annotations

import pytest
import torch

from gsutils.models.precision import AutocastModel, autocast_model
from gsutils.models.unet import build_unet


def test_none_is_the_model_itself_and_a_bad_name_is_refused():
    net = build_unet("tiny", seed=0).eval()
    assert autocast_model(net, None) is net
    with pytest.raises(ValueError, match="autocast must be one of"):
        autocast_model(net, "float8")


def test_bfloat16_forward_gives_float32_outputs_close_to_float32_and_input_gradients():
    net = build_unet("tiny", seed=0).eval()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = net(x).softmax(1)
    wrapped = autocast_model(net, "bfloat16")
    assert isinstance(wrapped, AutocastModel) and not wrapped.training
    xg = x.clone().requires_grad_(True)
    out = wrapped(xg)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert (out.softmax(1) - ref).abs().max() < 0.05  # bfloat16 layers: close, not equal
    out[:, 3].sum().backward()
    assert xg.grad is not None and xg.grad.dtype == torch.float32 and xg.grad.abs().sum() > 0


def test_effective_autocast_follows_the_hardware(monkeypatch):
    """bfloat16 is used only where the device computes it natively; float32 elsewhere (an AVX2-only
    CPU emulates it 15-20x slower); a bad name is refused either way."""
    from gsutils.models import precision

    assert precision.effective_autocast(None, "cpu") is None
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": True)
    assert precision.effective_autocast("bfloat16", "cpu") == "bfloat16"
    assert "native" in precision.precision_label("bfloat16", "cpu")
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": False)
    assert precision.effective_autocast("bfloat16", "cpu") is None
    assert precision.precision_label("bfloat16", "cpu").startswith("float32")
    with pytest.raises(ValueError, match="autocast must be one of"):
        precision.effective_autocast("float8", "cpu")


def test_saliency_results_are_keyed_by_the_precision_actually_used(monkeypatch):
    from gsutils.experiments.grid import context_saliency as cs
    from gsutils.experiments.grid.seg_runs import grid_runs
    from gsutils.models import precision
    from gsutils.profiles import get_profile

    profile = get_profile("quick")
    run = [r for r in grid_runs(profile) if r.bias.strength != "none"][0]
    keys = {}
    for native in (True, False):
        monkeypatch.setattr(precision, "native_bf16", lambda device="cpu", n=native: n)
        keys[native] = cs.saliency_key_config(profile, run)["saliency"]["autocast"]
    assert keys == {True: "bfloat16", False: None}
