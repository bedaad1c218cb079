"""``explain``: context explanations for any torch segmentation model.

One entry point over the grid saliency of :mod:`gsutils.saliency.grid`::

    from gsutils import explain
    result = explain(model, image, request_mask, cls)          # context saliency, bilinear mask
    result.maps                                                # (N, H, W) in [0, 1]

``model`` is any ``nn.Module`` that maps images ``(N, C, H, W)`` to logits
``(N, K, H, W)`` (smp models, :class:`gsutils.models.deeplab.DeepLab`) or to a
mapping with key ``"out"`` (torchvision's segmentation models). Inputs are
validated and normalised up front: one image ``(C, H, W)`` with one mask
``(H, W)``, or a batch; the request mask is moved to the image's device and
the computation stays there.

Methods
-------
``"context"``
    Context saliency: the request region is always kept; the map is zero in it.
``"grid"``
    Plain grid saliency: the whole image may be perturbed.

Upsampling
----------
``upsample="nearest"`` runs :func:`gsutils.saliency.grid.context_saliency` /
:func:`~gsutils.saliency.grid.grid_saliency` unchanged (the toy chapters'
setting). ``upsample="bilinear"`` (the default here, the supplement's setting
for real scenes, S2) runs the same optimisation (same loss, grey choice,
clipping, momentum SGD and keep-empty rule, built from the same helpers) with
the low-resolution mask upsampled bilinearly, so the map has no block edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gsutils.saliency import grid as _grid
from gsutils.saliency._checks import check_has_context, check_model
from gsutils.saliency.grid import GridSaliencyConfig, GridSaliencyResult

__all__ = ["METHODS", "UPSAMPLING", "explain"]

METHODS = ("context", "grid")
UPSAMPLING = ("bilinear", "nearest")


def _upsample(m: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """``(B, 1, gh, gw)`` mask -> ``(B, 1, H, W)``."""
    if mode == "nearest":
        return F.interpolate(m, size=size, mode="nearest")
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)


# [explain-bilinear-start]
def _optimise_bilinear(model: nn.Module, x: Tensor, request: Tensor, classes: Tensor,
                       cfg: GridSaliencyConfig, context: bool) -> dict[str, Tensor]:
    """Grid saliency of one batch with a bilinearly upsampled mask (else as in ``grid._optimise_chunk``)."""
    b, _, h, w = x.shape
    r = request.to(x.dtype)[:, None]  # (B, 1, H, W) request R
    loss_region = _grid.erode(request, cfg.erosion)  # R eroded for the preservation loss
    too_small = loss_region.flatten(1).sum(1) == 0
    loss_region = torch.where(too_small[:, None, None], request, loss_region).to(x.dtype)
    with torch.no_grad():
        f_x = _grid.class_scores(model, x, classes, check=True)  # (B, H, W)

        def perturbation(a: Tensor) -> Tensor:  # (B,) grey -> p(x, R) or the grey image
            grey = a[:, None, None, None].expand_as(x)
            return x * r + grey * (1 - r) if context else grey.clone()

        probe = torch.stack([
            _grid.preservation_loss(f_x, _grid.class_scores(model, perturbation(x.new_full((b,), a)), classes),
                                loss_region) for a in cfg.greys])  # (G, B) loss at M = 0
        best = probe.argmin(dim=0)
        grey = torch.tensor(cfg.greys, dtype=x.dtype, device=x.device)[best]  # (B,)
        empty_loss = probe.gather(0, best[None])[0]
        p = perturbation(grey)
        delta = x - p  # x' = p + M o (x - p)

    m = torch.full((b, 1, *cfg.grid), cfg.init, dtype=x.dtype, device=x.device)
    velocity = torch.zeros_like(m)

    def loss_of(m: Tensor) -> Tensor:  # (B,)
        x_new = p + _upsample(m, (h, w), "bilinear") * delta
        f_new = _grid.class_scores(model, x_new, classes)
        return cfg.lam * m.flatten(1).sum(1) + _grid.preservation_loss(f_x, f_new, loss_region)

    for _ in range(cfg.steps):
        m.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_of(m).sum(), m)  # each mask gets its own gradient
        with torch.no_grad():
            velocity = cfg.momentum * velocity + grad
            m = (m.detach() - cfg.lr * velocity).clamp_(0.0, 1.0)
            m = torch.where(m < cfg.clip_below, torch.zeros_like(m), m)
    with torch.no_grad():
        final_loss = loss_of(m)
        empty = (empty_loss < final_loss) if cfg.keep_empty_if_better else torch.zeros_like(final_loss,
                                                                                             dtype=torch.bool)
        m = torch.where(empty[:, None, None, None], torch.zeros_like(m), m)
        final_loss = torch.where(empty, empty_loss, final_loss)
        maps = _upsample(m, (h, w), "bilinear")[:, 0]
        if context:
            maps = maps * (1 - r[:, 0])
    return dict(maps=maps, grid_masks=m[:, 0], grey=grey, loss=final_loss, empty_loss=empty_loss, empty=empty)
# [explain-bilinear-end]


def explain(
    model: nn.Module,
    image: Tensor,
    request_mask: Tensor,
    cls: int | Sequence[int] | Tensor,
    method: str = "context",
    *,
    upsample: str = "bilinear",
    config: GridSaliencyConfig | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> GridSaliencyResult:
    """Explain a segmentation model's prediction of ``cls`` inside ``request_mask``.

    Parameters
    ----------
    model:
        A segmentation network in eval mode, returning logits ``(N, K, H, W)``
        or ``{"out": logits}``; on the image's device.
    image:
        ``(C, H, W)`` or ``(N, C, H, W)`` float image(s) in the value range the
        grey values refer to (``[0, 1]`` for the book's models).
    request_mask:
        ``(H, W)`` or ``(N, H, W)`` boolean (or 0/1) request region(s); moved to
        the image's device.
    cls:
        The request class: one int, or one per image.
    method:
        ``"context"`` (default) or ``"grid"``.
    upsample:
        ``"bilinear"`` (default) or ``"nearest"`` upsampling of the optimised mask.
    config:
        Optimisation settings (:class:`GridSaliencyConfig`, default S1.2's).
    batch_size:
        Images optimised together (results do not depend on it).

    Returns
    -------
    GridSaliencyResult
        With a leading batch dimension even for a single image.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if upsample not in UPSAMPLING:
        raise ValueError(f"upsample must be one of {UPSAMPLING}, got {upsample!r}")
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a torch tensor (C, H, W) or (N, C, H, W), got {type(image).__name__}")
    if not isinstance(request_mask, Tensor):
        raise TypeError(f"request_mask must be a torch tensor (H, W) or (N, H, W), got "
                        f"{type(request_mask).__name__}")
    if image.ndim == 3:
        image = image[None]
        if request_mask.ndim == 2:
            request_mask = request_mask[None]
    if image.ndim != 4:
        raise ValueError(f"image must be (C, H, W) or (N, C, H, W), got shape {tuple(image.shape)}")
    if request_mask.ndim == 2 and image.shape[0] == 1:
        request_mask = request_mask[None]
    request_mask = request_mask.to(image.device)
    context = method == "context"
    if upsample == "nearest":
        run = _grid.context_saliency if context else _grid.grid_saliency
        return run(model, image, request_mask, cls, config=config, batch_size=batch_size, progress=progress)

    cfg = GridSaliencyConfig() if config is None else config
    if not isinstance(cfg, GridSaliencyConfig):
        raise TypeError(f"config must be a GridSaliencyConfig, got {type(cfg).__name__}")
    req, classes = _grid.validate_request(image, request_mask, cls)
    check_model(model, image)
    if context:
        check_has_context(req)
    n = image.shape[0]
    batch_size = n if batch_size is None else batch_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if isinstance(model, nn.Module) and any(
            isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) and mod.training
            for mod in model.modules()):
        raise ValueError("the model is in training mode; batch-norm or dropout would make each image's "
                         "explanation depend on its batch. Call model.eval() first")
    from tqdm.auto import tqdm

    parts = []
    for s in tqdm(range(0, n, batch_size), desc="explain", disable=not progress, leave=False):
        sl = slice(s, s + batch_size)
        parts.append(_optimise_bilinear(model, image[sl], req[sl], classes[sl], cfg, context))
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return GridSaliencyResult(context=context, config=cfg, **cat)
