"""gsutils.explain: closed-form context, any segmentation model, batching, devices, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gsutils
from gsutils.saliency.grid import GridSaliencyConfig, context_saliency

S = 16


class PatchContext(nn.Module):
    """Class 1's logit everywhere = 20 * (mean of the top-left 4x4 patch - 0.5); class 0's = 0.

    The only context that matters is the patch: with grey 0 the patch must be kept.
    """

    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        self.as_dict = as_dict
        self.w = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        patch = x[:, :, :4, :4].mean(dim=(1, 2, 3))  # (N,)
        one = (self.w * (patch - 0.5))[:, None, None, None].expand(-1, 1, *x.shape[2:])
        out = torch.cat([torch.zeros_like(one), one], 1)
        return {"out": out} if self.as_dict else out


def scene(n=1):
    x = torch.full((n, 3, S, S), 0.5)
    x[:, :, :4, :4] = 1.0  # the bright patch drives class 1
    r = torch.zeros(n, S, S, dtype=torch.bool)
    r[:, 10:14, 10:14] = True
    return x, r


CFG = GridSaliencyConfig(greys=(0.0,), steps=60)


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
def test_the_driving_patch_is_the_context(upsample):
    torch.manual_seed(0)
    x, r = scene()
    res = gsutils.explain(PatchContext().eval(), x[0], r[0], 1, upsample=upsample, config=CFG)
    m = res.maps[0]
    assert res.maps.shape == (1, S, S) and not bool(res.empty[0])
    assert m[:4, :4].mean() > 0.7  # the patch is salient
    assert m[8:, :].max() < 0.05  # the far half of the image is not
    assert torch.all(m[r[0]] == 0)  # context map: zero inside the request
    assert float(res.loss[0]) < float(res.empty_loss[0])


def test_torchvision_style_output_and_batching_agree():
    x, r = scene(3)
    x[1, :, :4, :4] = 0.9
    one = [gsutils.explain(PatchContext(as_dict=True).eval(), x[i], r[i], 1, config=CFG).maps[0] for i in range(3)]
    both = gsutils.explain(PatchContext(as_dict=True).eval(), x, r, [1, 1, 1], config=CFG, batch_size=2).maps
    for i in range(3):
        assert torch.allclose(both[i], one[i], atol=1e-6)


def test_nearest_is_the_library_grid_saliency():
    x, r = scene(2)
    a = gsutils.explain(PatchContext().eval(), x, r, 1, upsample="nearest", config=CFG)
    b = context_saliency(PatchContext().eval(), x, r, 1, config=CFG)
    assert torch.equal(a.maps, b.maps)


def test_a_real_torchvision_deeplab_runs_on_the_inputs_device():
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(0)
    model = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3).eval()
    x, r = scene(2)
    res = gsutils.explain(model, x, r, 2, config=GridSaliencyConfig(steps=2))
    assert res.maps.shape == (2, S, S) and res.maps.device == x.device
    assert torch.all((res.maps >= 0) & (res.maps <= 1))


def test_bad_input_is_named():
    x, r = scene()
    model = PatchContext().eval()
    with pytest.raises(ValueError, match="method"):
        gsutils.explain(model, x, r, 1, method="gradcam")
    with pytest.raises(ValueError, match="upsample"):
        gsutils.explain(model, x, r, 1, upsample="cubic")
    with pytest.raises(ValueError, match="empty"):
        gsutils.explain(model, x, torch.zeros_like(r), 1)
    with pytest.raises(ValueError, match="classes must lie"):
        gsutils.explain(model, x, r, 5, config=CFG)
    bn = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1)).train()
    with pytest.raises(ValueError, match="eval"):
        gsutils.explain(bn, x, r, 1)
    with pytest.raises(TypeError, match="request_mask"):
        gsutils.explain(model, x, r.numpy(), 1)
