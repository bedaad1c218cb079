"""Tests of grid and context saliency (gsutils.saliency.grid) on small hand-made models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gsutils.saliency.grid import (
    GridSaliencyConfig,
    context_saliency,
    erode,
    grid_saliency,
    saliency_views,
    segmentation_probs,
)

H = W = 64


class QuadrantTextureModel(nn.Module):
    """Class 1 wins everywhere when the top-left quadrant is *textured*.

    logit_1 = alpha * (mean horizontal variation in the top-left 32x32) - beta,
    logit_0 = 0, at every pixel. A constant grey value has no variation, so
    only the true content of the top-left quadrant keeps the class-1 score.
    """

    def __init__(self, alpha: float = 60.0, beta: float = 3.0) -> None:
        super().__init__()
        self.alpha, self.beta = alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x[:, :, :32, :32]  # (N, C, 32, 32)
        energy = (q[..., 1:] - q[..., :-1]).abs().mean((1, 2, 3))  # (N,)
        logit1 = self.alpha * energy - self.beta  # (N,)
        n, _, h, w = x.shape
        logits = torch.zeros(n, 2, h, w, dtype=x.dtype, device=x.device)
        return logits + torch.stack([torch.zeros_like(logit1), logit1], 1)[:, :, None, None]


class ConstantModel(nn.Module):
    """Ignores its input: the empty mask always has zero preservation loss."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        out = torch.zeros(n, 3, h, w, dtype=x.dtype, device=x.device)
        out[:, 1] = 2.0
        return out + 0.0 * x.sum()  # keep the graph connected to x


class DictModel(nn.Module):
    """torchvision-style wrapper: returns {"out": logits}."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return {"out": self.inner(x), "aux": None}


class EnergyNet(nn.Module):
    """A random model whose scores depend on the texture of 8x8 context regions.

    logits_k(u) = conv(x)_k(u) + sum_j w_kj * E_j(x), with E_j the mean
    horizontal variation in region j of an 8x8 partition. Replacing context by
    a constant grey value removes its variation, so the masks are non-trivial
    and differ between images (used to check the optimisation itself).
    """

    def __init__(self, seed: int = 0, k: int = 5) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(k, 64, generator=g))
        self.conv = nn.Conv2d(1, k, 5, padding=2)
        with torch.no_grad():
            for p in self.conv.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = F.pad((x[..., 1:] - x[..., :-1]).abs(), (0, 1)).sum(1, keepdim=True)  # (N, 1, H, W)
        e = F.adaptive_avg_pool2d(d, 8).flatten(1)  # (N, 64) region energies
        return self.conv(x) + (e @ self.w.T)[:, :, None, None]  # (N, K, H, W)


def small_cnn(dtype=torch.float64, seed: int = 0) -> nn.Module:
    return EnergyNet(seed).to(dtype).eval()


def textured_batch(n: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, H, W, generator=g, dtype=dtype)  # (N, 1, H, W) noise texture
    req = torch.zeros(n, H, W, dtype=torch.bool)
    for i in range(n):  # a blob in the lower right, different per image
        r0, c0 = 36 + 2 * i % 8, 38 + 3 * i % 6
        req[i, r0:r0 + 14, c0:c0 + 10] = True
    return x, req


def reference_context_saliency(model, x, req, c, cfg: GridSaliencyConfig):
    """A literal one-image implementation with torch.optim.SGD (independent of the library)."""
    r = req.to(x.dtype)[None, None]  # (1, 1, H, W)
    k = cfg.erosion
    region = (-F.max_pool2d(-r, k, stride=1, padding=k // 2))[0, 0]  # eroded, (H, W)
    if region.sum() == 0:
        region = r[0, 0]

    def score(img):
        return segmentation_probs(model, img)[0, c]  # (H, W)

    f0 = score(x).detach()

    def pres(img):
        return ((f0 - score(img)).clamp(min=0) * region).sum() / region.sum()

    losses = [float(pres(x * r + a * (1 - r)).detach()) for a in cfg.greys]
    a = cfg.greys[min(range(len(losses)), key=lambda i: (losses[i], i))]
    p = x * r + a * (1 - r)
    m = torch.full((1, 1, *cfg.grid), cfg.init, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.SGD([m], lr=cfg.lr, momentum=cfg.momentum)

    def loss_of(m):
        up = F.interpolate(m, size=x.shape[2:], mode="nearest")
        return cfg.lam * m.sum() + pres(x * up + p * (1 - up))

    for _ in range(cfg.steps):
        opt.zero_grad()
        loss_of(m).backward()
        opt.step()
        with torch.no_grad():
            m.clamp_(0, 1)
            m[m < cfg.clip_below] = 0
    with torch.no_grad():
        if min(losses) < float(loss_of(m)):
            m.zero_()
    return m.detach()[0, 0], a


def test_context_saliency_finds_the_cells_the_model_uses():
    x, req = textured_batch(3, dtype=torch.float32)
    res = context_saliency(QuadrantTextureModel(), x, req, 1)
    # the top-left quadrant is 2x2 cells of the 4x4 grid; nothing else matters
    assert res.grid_masks.shape == (3, 4, 4)
    # (the four quadrant cells are interchangeable for this model: only their total matters)
    assert torch.all(res.grid_masks[:, :2, :2].sum((1, 2)) >= 0.8)
    outside = res.grid_masks.clone()
    outside[:, :2, :2] = 0
    assert torch.all(outside == 0)
    assert not res.empty.any()
    assert torch.all(res.maps[req] == 0)  # context maps are zero inside R
    assert res.maps.shape == (3, H, W) and res.maps.min() >= 0 and res.maps.max() <= 1


def test_empty_mask_wins_for_a_model_that_ignores_the_input():
    x, req = textured_batch(2)
    # 5 steps leave every cell near 0.45: the optimised mask pays the penalty, the empty one not
    res = context_saliency(ConstantModel(), x, req, 1, config=GridSaliencyConfig(steps=5))
    assert res.empty.all()
    assert torch.all(res.maps == 0)
    assert torch.all(res.grid_masks == 0)
    # the empty mask's loss is 0 and the optimised one would pay the L1 penalty
    assert torch.all(res.loss == 0)


def test_without_empty_rule_the_penalty_alone_drives_mask_to_zero():
    x, req = textured_batch(1)
    cfg = GridSaliencyConfig(keep_empty_if_better=False)
    res = context_saliency(ConstantModel(), x, req, 1, config=cfg)
    # gradient is lam per cell: after enough steps every cell falls below 0.2 and is clipped
    assert torch.all(res.grid_masks == 0)
    cfg_short = GridSaliencyConfig(keep_empty_if_better=False, steps=1)
    res1 = context_saliency(ConstantModel(), x, req, 1, config=cfg_short)
    # one step: 0.5 - lr * lam = 0.49 in every cell
    assert torch.allclose(res1.grid_masks, torch.full((1, 4, 4), 0.49, dtype=x.dtype))


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_a_literal_single_image_implementation(seed):
    model = small_cnn(seed=seed)
    x, req = textured_batch(3, seed=seed)
    classes = torch.tensor([0, 3, 4])
    cfg = GridSaliencyConfig(steps=30)
    res = context_saliency(model, x, req, classes, config=cfg)
    for i in range(3):
        m_ref, a_ref = reference_context_saliency(model, x[i:i + 1], req[i], int(classes[i]), cfg)
        assert float(res.grey[i]) == a_ref
        torch.testing.assert_close(res.grid_masks[i], m_ref, atol=1e-9, rtol=0)
    assert (res.grid_masks.flatten(1).sum(1) > 0).sum() >= 1  # not vacuous


def test_batched_equals_one_image_at_a_time():
    model = small_cnn(seed=2)
    x, req = textured_batch(5, seed=3)
    classes = torch.tensor([0, 1, 2, 3, 4])
    batched = context_saliency(model, x, req, classes)
    chunked = context_saliency(model, x, req, classes, batch_size=2)
    for i in range(5):
        alone = context_saliency(model, x[i:i + 1], req[i:i + 1], classes[i:i + 1])
        torch.testing.assert_close(batched.maps[i], alone.maps[0], atol=1e-9, rtol=0)
        torch.testing.assert_close(batched.loss[i], alone.loss[0], atol=1e-9, rtol=0)
        assert batched.grey[i] == alone.grey[0]
    torch.testing.assert_close(batched.maps, chunked.maps, atol=1e-9, rtol=0)
    # the optimisation kept context in some images and not in others (not vacuous)
    kept = batched.maps.flatten(1).sum(1) > 0
    assert kept.any() and not kept.all()


def test_dict_output_model_gives_the_same_result():
    model = small_cnn(seed=4)
    x, req = textured_batch(2, seed=5)
    a = context_saliency(model, x, req, 2, config=GridSaliencyConfig(steps=10))
    b = context_saliency(DictModel(model), x, req, 2, config=GridSaliencyConfig(steps=10))
    torch.testing.assert_close(a.maps, b.maps)


def test_plain_grid_saliency_may_select_the_request_region():
    # class 1 depends on the top-left quadrant; ask about a request inside that quadrant
    x, _ = textured_batch(2, dtype=torch.float32)
    req = torch.zeros(2, H, W, dtype=torch.bool)
    req[:, 4:20, 4:20] = True
    res = grid_saliency(QuadrantTextureModel(), x, req, 1)
    assert not res.context
    assert torch.all((res.maps * req).flatten(1).sum(1) > 0)  # not zeroed inside R
    ctx = context_saliency(QuadrantTextureModel(), x, req, 1)
    assert torch.all(ctx.maps[req] == 0)


def test_saliency_views_shapes_and_consistency():
    x, req = textured_batch(2, dtype=torch.float32)
    model = QuadrantTextureModel()
    res = context_saliency(model, x, req, 1)
    v = saliency_views(model, x, req, res)
    assert v["input_probs"].shape == (2, 2, H, W)
    # the perturbed image keeps R and is the chosen grey value elsewhere
    assert torch.equal(v["perturbed"][:, 0][req], x[:, 0][req])
    for i in range(2):
        assert torch.all(v["perturbed"][i, 0][~req[i]] == res.grey[i])
    # the optimised image is x o M + p o (1 - M)
    up = F.interpolate(res.grid_masks[:, None], size=(H, W), mode="nearest")
    torch.testing.assert_close(v["optimised"], x * up + v["perturbed"] * (1 - up))
    # and restores the class-1 score that the grey context destroyed
    assert v["optimised_probs"][:, 1].mean() > v["perturbed_probs"][:, 1].mean() + 0.3


def test_erode():
    m = torch.zeros(1, 8, 8, dtype=torch.bool)
    m[0, 2:6, 2:6] = True
    e = erode(m, 3)
    assert e.sum() == 4 and e[0, 3:5, 3:5].all()
    assert torch.equal(erode(m, 1), m)
    full = torch.ones(1, 4, 4, dtype=torch.bool)
    assert erode(full, 3).all()  # the image border does not erode


def test_tiny_request_falls_back_to_uneroded_region():
    x, _ = textured_batch(1, dtype=torch.float32)
    req = torch.zeros(1, H, W, dtype=torch.bool)
    req[0, 50, 50] = True  # a single pixel: erosion would empty it
    res = context_saliency(QuadrantTextureModel(), x, req, 1, config=GridSaliencyConfig(steps=5))
    assert torch.isfinite(res.loss).all()


def test_bad_input():
    model = small_cnn()
    x, req = textured_batch(2)
    empty = req.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="requests.*empty"):
        context_saliency(model, x, empty, 0)
    with pytest.raises(ValueError, match="requests must have shape"):
        context_saliency(model, x, req[:, :32], 0)
    with pytest.raises(ValueError, match="classes must lie in"):
        context_saliency(model, x, req, 5)
    with pytest.raises(ValueError, match="classes must"):
        context_saliency(model, x, req, [0, 1, 2])
    with pytest.raises(ValueError, match="lam"):
        GridSaliencyConfig(lam=-0.1)
    with pytest.raises(ValueError, match="steps"):
        GridSaliencyConfig(steps=0)
    with pytest.raises(ValueError, match="greys"):
        GridSaliencyConfig(greys=(0.0, 1.5))
    with pytest.raises(TypeError, match="images"):
        context_saliency(model, x[0], req, 0)
    with pytest.raises(TypeError, match="model output"):
        context_saliency(lambda t: t.sum(), x, req, 0)  # type: ignore[arg-type]
