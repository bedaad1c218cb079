"""Grid saliency and context saliency for segmentation networks (Hoyer et al., 2019).

Grid saliency explains the prediction of a segmentation network for a class
``c`` inside a request region ``R`` by the smallest *preservation mask* ``M``
that keeps the request's score when everything outside the mask is replaced by
a constant grey value ``a``:

.. math::

    x'(M) = x \\circ M + p \\circ (1 - M), \\qquad
    M^* = \\arg\\min_M \\; \\lambda \\lVert M \\rVert_1
        + \\frac{\\lVert R \\circ \\max(f_c(x) - f_c(x'(M)), 0) \\rVert_1}{\\lVert R \\rVert_1}

with ``f_c`` the softmax score of class ``c`` at every pixel.

* **Plain grid saliency** perturbs with ``p = a`` everywhere (the request region may be salient).
* **Context saliency** keeps the request region, ``p = x \\circ R + a \\circ (1 - R)``, so the
  mask explains the prediction by the *context* ``1 - R`` only; the map is zero inside ``R``.

The S1.2 settings of the supplement are the defaults of :class:`GridSaliencyConfig`.

Notes on choices the papers leave open
--------------------------------------
* ``||M||_1`` is the plain sum over the cells of the low-resolution mask (the literal
  formula): with ``lam = 0.05`` a cell that does not help the request loses ``lr * lam =
  0.01`` per step and reaches the 0.2 clipping threshold within the 100 steps.
* The request region is eroded (3x3) *only* in the preservation loss; if the
  erosion empties it, the uneroded region is used for that image.
* The grey value is chosen per image as the candidate with the lowest loss at
  ``M = 0`` (first candidate on ties). Where the empty mask's loss is strictly
  lower than the final mask's, or the map is zero everywhere, the empty mask is returned.
* The optimisation is batched: the total loss is the *sum* of the per-image losses, so each
  mask's update is exactly that of optimising its image alone (the model must be in eval
  mode: batch-norm in train mode couples the images of a batch).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gsutils.saliency._checks import ClassIndex, check_has_context, check_model

__all__ = [
    "GridSaliencyConfig",
    "GridSaliencyResult",
    "context_saliency",
    "grid_saliency",
    "segmentation_probs",
    "erode",
    "saliency_views",
    "upsample_mask",
    "optimise_masks",
    "UPSAMPLING",
]


@dataclass(frozen=True)
class GridSaliencyConfig:
    """Optimisation settings of grid saliency (defaults: Hoyer et al., 2019, S1.2).

    Attributes
    ----------
    grid:
        Resolution ``(rows, cols)`` of the optimised mask; its upsampling (nearest for the toy
        chapters, bilinear for ``explain``) is an argument of the call, recorded in the result.
    greys:
        Candidate constant grey values ``a`` (each in ``[0, 1]``).
    erosion:
        Side of the square kernel that erodes the request region in the
        preservation loss (odd; 1 means no erosion).
    steps:
        SGD steps.
    lr, momentum:
        SGD learning rate and momentum (no dampening, no Nesterov).
    init:
        Initial value of every mask cell.
    clip_below:
        After each step, cells below this value are set to 0 (and all cells
        are clamped to ``[0, 1]``).
    lam:
        Weight ``lambda`` of the L1 penalty (sum over the grid's cells).
    keep_empty_if_better:
        Return the empty mask where its loss is lower than the optimised one's.
    """

    grid: tuple[int, int] = (4, 4)
    greys: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    erosion: int = 3
    steps: int = 100
    lr: float = 0.2
    momentum: float = 0.5
    init: float = 0.5
    clip_below: float = 0.2
    lam: float = 0.05
    keep_empty_if_better: bool = True

    def __post_init__(self) -> None:
        grid = tuple(self.grid)
        if len(grid) != 2 or not all(isinstance(g, int) and g >= 1 for g in grid):
            raise ValueError(f"grid must be two positive ints (rows, cols), got {self.grid!r}")
        if len(self.greys) == 0:
            raise ValueError("greys must hold at least one grey value, got an empty tuple")
        bad = [g for g in self.greys if not (0.0 <= float(g) <= 1.0)]
        if bad:
            raise ValueError(f"greys must lie in [0, 1], got {tuple(self.greys)!r} (bad: {bad})")
        if not isinstance(self.erosion, int) or self.erosion < 1 or self.erosion % 2 == 0:
            raise ValueError(f"erosion must be an odd int >= 1, got {self.erosion!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not 0.0 <= self.init <= 1.0:
            raise ValueError(f"init must lie in [0, 1], got {self.init!r}")
        if not 0.0 <= self.clip_below < 1.0:
            raise ValueError(f"clip_below must lie in [0, 1), got {self.clip_below!r}")
        if not self.lam >= 0:
            raise ValueError(f"lam must be >= 0, got {self.lam!r}")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "greys", tuple(float(g) for g in self.greys))


@dataclass
class GridSaliencyResult:
    """What :func:`context_saliency` / :func:`grid_saliency` return (all on the images' device).

    Attributes
    ----------
    maps:
        ``(N, H, W)`` saliency maps in ``[0, 1]``: the returned mask upsampled
        by :attr:`upsample` (and, for context saliency, zeroed inside the
        request region).
    grid_masks:
        ``(N, rows, cols)`` the returned low-resolution masks.
    grey:
        ``(N,)`` the chosen grey value per image.
    loss:
        ``(N,)`` the loss of the returned mask.
    empty_loss:
        ``(N,)`` the loss of the empty mask (at the chosen grey value).
    empty:
        ``(N,)`` bool, True exactly where ``maps`` is zero everywhere (the empty mask beat the
        optimised one, or every cell outside the request was clipped to zero); an empty
        result's ``grid_masks`` are zero and its ``loss`` is ``empty_loss``.
    context:
        True for context saliency, False for plain grid saliency.
    upsample:
        ``"nearest"`` or ``"bilinear"``: how the mask was upsampled to ``maps``.
    """

    maps: Tensor
    grid_masks: Tensor
    grey: Tensor
    loss: Tensor
    empty_loss: Tensor
    empty: Tensor
    context: bool
    config: GridSaliencyConfig = field(default_factory=GridSaliencyConfig)
    upsample: str = "nearest"


# --------------------------------------------------------------------------- helpers


def segmentation_probs(model: nn.Module, images: Tensor) -> Tensor:
    """Softmax class scores of a segmentation model, ``(N, K, H, W)``.

    ``model(images)`` may return a tensor ``(N, K, H, W)`` of logits or a
    mapping with key ``"out"`` (torchvision's segmentation models).
    """
    out = model(images)
    if isinstance(out, Mapping):
        if "out" not in out:
            raise TypeError(
                f"model returned a mapping with keys {sorted(out)!r}; expected a tensor "
                "(N, K, H, W) or a mapping with key 'out'"
            )
        out = out["out"]
    if not isinstance(out, Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise TypeError(f"model output must be a tensor (N, K, H, W), got {shape}")
    if out.shape[0] != images.shape[0] or out.shape[2:] != images.shape[2:]:
        raise ValueError(
            f"model output has shape {tuple(out.shape)} for images {tuple(images.shape)}; "
            "a segmentation model must return (N, K, H, W) at the input's resolution"
        )
    return out.softmax(dim=1)  # (N, K, H, W)


#: how the optimised low-resolution mask is brought to the image's size
UPSAMPLING = ("nearest", "bilinear")


def upsample_mask(m: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """``(B, 1, gh, gw)`` mask -> ``(B, 1, H, W)``, by ``"nearest"`` or ``"bilinear"`` interpolation."""
    if mode == "nearest":
        return F.interpolate(m, size=size, mode="nearest")
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)


def erode(masks: Tensor, size: int) -> Tensor:
    """Binary erosion of ``(N, H, W)`` masks with a ``size x size`` square.

    Pixels outside the image count as inside the mask (the border does not erode).
    """
    if size == 1:
        return masks.clone()
    m = masks.to(torch.float32)[:, None]  # (N, 1, H, W)
    outside = F.max_pool2d(1.0 - m, size, stride=1, padding=size // 2)  # (N, 1, H, W)
    return (outside[:, 0] < 0.5) & masks.bool()  # (N, H, W)


def validate_request(
    images: Tensor, requests: Tensor, classes: ClassIndex
) -> tuple[Tensor, Tensor]:
    """Checked ``requests`` (bool, images' device) and ``classes`` (int64 ``(N,)``)."""
    if not isinstance(images, Tensor) or not images.is_floating_point() or images.ndim != 4:
        desc = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"images must be a floating tensor (N, C, H, W), got {desc}")
    n, _, h, w = images.shape
    if n == 0:
        raise ValueError("images must hold at least one image, got N = 0")
    bad = (~torch.isfinite(images)).flatten(1).any(1).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"images must be finite; images {bad} hold NaN or infinite pixels")
    if not isinstance(requests, Tensor):
        raise TypeError(f"requests must be a tensor (N, H, W), got {type(requests).__name__}")
    if requests.shape != (n, h, w):
        raise ValueError(
            f"requests must have shape (N, H, W) = {(n, h, w)} to match images "
            f"{tuple(images.shape)}, got {tuple(requests.shape)}"
        )
    if requests.dtype != torch.bool:
        if not torch.all((requests == 0) | (requests == 1)):
            raise ValueError("requests must be a boolean mask (or hold only 0 and 1)")
        requests = requests != 0
    requests = requests.to(images.device)
    empty = (requests.flatten(1).sum(1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"requests must be non-empty; the request masks of images {empty} are empty")
    if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
        cls = torch.full((n,), int(classes), dtype=torch.int64)
    else:
        cls = torch.as_tensor(classes)
        if cls.dtype.is_floating_point or cls.dtype == torch.bool or cls.ndim != 1 or len(cls) != n:
            raise ValueError(
                f"classes must be an int or N = {n} ints, got {classes!r}"
            )
        cls = cls.to(torch.int64)
    return requests, cls.to(images.device)


def check_classes(classes: Tensor, k: int) -> None:
    if k < 2:
        raise ValueError(
            f"model must output at least 2 classes (N, K, H, W) with K >= 2, got K = {k}: the "
            "softmax of a single class is 1 everywhere, so every saliency map would be zero"
        )
    bad = classes[(classes < 0) | (classes >= k)]
    if len(bad):
        raise ValueError(
            f"classes must lie in [0, {k - 1}] (the model has {k} classes), got {bad.tolist()}"
        )


def class_scores(model: nn.Module, x: Tensor, classes: Tensor, check: bool = False) -> Tensor:
    """``f_c(x)``: the softmax score of each image's class, ``(B, H, W)``."""
    probs = segmentation_probs(model, x)  # (B, K, H, W)
    if check:
        check_classes(classes, probs.shape[1])
        if not bool(torch.isfinite(probs).all()):
            raise ValueError("model returned NaN or infinite scores for finite images; "
                             "check its weights")
    idx = classes[:, None, None, None].expand(-1, 1, *probs.shape[2:])  # (B, 1, H, W)
    return probs.gather(1, idx)[:, 0]  # (B, H, W)


def preservation_loss(f_ref: Tensor, f_new: Tensor, region: Tensor) -> Tensor:
    """``|| R o max(f_ref - f_new, 0) ||_1 / ||R||_1`` per image, ``(B,)``."""
    drop = (f_ref - f_new).clamp(min=0) * region  # (B, H, W)
    return drop.flatten(1).sum(1) / region.flatten(1).sum(1)  # (B,)


# --------------------------------------------------------------------------- core
# [grid-core-start]
def _optimise_chunk(
    model: nn.Module,
    x: Tensor,  # (B, C, H, W) images
    request: Tensor,  # (B, H, W) bool request regions R
    classes: Tensor,  # (B,) int64 request classes c
    cfg: GridSaliencyConfig,
    context: bool,
    progress_bar=None,
    upsample: str = "nearest",
) -> dict[str, Tensor]:
    """Optimise the masks of one batch; each image's result is independent of the others.

    ``upsample`` is how the ``(gh, gw)`` mask is brought to ``(H, W)``:
    ``"nearest"`` (the toy chapters, S1) or ``"bilinear"`` (real scenes, S2).
    """
    b, _, h, w = x.shape
    r = request.to(x.dtype)[:, None]  # (B, 1, H, W)  R
    loss_region = erode(request, cfg.erosion)  # (B, H, W) R eroded for the loss
    too_small = loss_region.flatten(1).sum(1) == 0  # (B,) erosion emptied R
    loss_region = torch.where(too_small[:, None, None], request, loss_region).to(x.dtype)

    with torch.no_grad():
        f_x = class_scores(model, x, classes, check=True)  # (B, H, W) f_c(x)

        # grey probes: loss at M = 0 (the penalty is 0 there) for each candidate a
        def perturbation(a: Tensor) -> Tensor:  # a: (B,) -> p(x, R) or the grey image
            grey = a[:, None, None, None].expand_as(x)  # (B, C, H, W)
            return x * r + grey * (1 - r) if context else grey.clone()

        probe = torch.stack([
            preservation_loss(f_x, class_scores(model, perturbation(x.new_full((b,), a)), classes),
                          loss_region)
            for a in cfg.greys
        ])  # (G, B)
        best = probe.argmin(dim=0)  # (B,) first lowest on ties
        grey = torch.tensor(cfg.greys, dtype=x.dtype, device=x.device)[best]  # (B,)
        empty_loss = probe.gather(0, best[None])[0]  # (B,) loss of M = 0
        p = perturbation(grey)  # (B, C, H, W)
        delta = x - p  # (B, C, H, W); x' = p + M o (x - p)

    m = torch.full((b, 1, *cfg.grid), cfg.init, dtype=x.dtype, device=x.device)  # (B, 1, gh, gw)
    velocity = torch.zeros_like(m)  # SGD momentum buffer

    def loss_of(m: Tensor) -> Tensor:  # (B, 1, gh, gw) -> (B,)
        up = upsample_mask(m, (h, w), upsample)  # (B, 1, H, W)
        x_new = p + up * delta  # (B, C, H, W) = x o M + p o (1 - M)
        f_new = class_scores(model, x_new, classes)  # (B, H, W)
        return cfg.lam * m.flatten(1).sum(1) + preservation_loss(f_x, f_new, loss_region)

    for _ in range(cfg.steps):
        m.requires_grad_(True)
        loss = loss_of(m)  # (B,)
        (grad,) = torch.autograd.grad(loss.sum(), m)  # sum: each mask gets its own gradient
        with torch.no_grad():
            velocity = cfg.momentum * velocity + grad
            m = (m.detach() - cfg.lr * velocity).clamp_(0.0, 1.0)
            m = torch.where(m < cfg.clip_below, torch.zeros_like(m), m)
        if progress_bar is not None:
            progress_bar.update(b)

    with torch.no_grad():
        final_loss = loss_of(m)  # (B,)
        empty = (empty_loss < final_loss) if cfg.keep_empty_if_better else torch.zeros_like(
            final_loss, dtype=torch.bool)
        m = torch.where(empty[:, None, None, None], torch.zeros_like(m), m)
        maps = upsample_mask(m, (h, w), upsample)[:, 0]  # (B, H, W)
        if context:
            maps = maps * (1 - r[:, 0])  # context map: zero inside R
        # empty == the map is zero everywhere; then the returned mask is the empty one
        empty = empty | (maps.flatten(1).amax(1) == 0)
        m = torch.where(empty[:, None, None, None], torch.zeros_like(m), m)
        final_loss = torch.where(empty, empty_loss, final_loss)
    return dict(maps=maps, grid_masks=m[:, 0], grey=grey, loss=final_loss,
                empty_loss=empty_loss, empty=empty)
# [grid-core-end]


def optimise_masks(model: nn.Module, images: Tensor, requests: Tensor, classes: ClassIndex, *, context: bool,
                   config: GridSaliencyConfig | None = None, batch_size: int | None = None,
                   progress: bool = False, upsample: str = "nearest",
                   training_mode: str = "warn") -> GridSaliencyResult:
    """Validate, batch and optimise (:func:`context_saliency` / :func:`grid_saliency` / ``explain``).

    ``training_mode``: what a model with batch-norm or dropout in training
    mode gets, ``"warn"`` or ``"error"``.
    """
    if upsample not in UPSAMPLING:
        raise ValueError(f"upsample must be one of {UPSAMPLING}, got {upsample!r}")
    cfg = GridSaliencyConfig() if config is None else config
    if not isinstance(cfg, GridSaliencyConfig):
        raise TypeError(f"config must be a GridSaliencyConfig, got {type(cfg).__name__}")
    req, cls = validate_request(images, requests, classes)
    check_model(model, images)
    if context:
        check_has_context(req)
    n = images.shape[0]
    if batch_size is None:
        batch_size = n
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if any(isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) and mod.training
           for mod in (model.modules() if isinstance(model, nn.Module) else ())):
        message = ("the model is in training mode; batch-norm or dropout then make each image's "
                   "saliency depend on the batch. Call model.eval() first")
        if training_mode == "error":
            raise ValueError(message)
        warnings.warn(message + ".", stacklevel=3)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * cfg.steps, desc="grid saliency", unit="img-step", leave=False)
    parts: list[dict[str, Tensor]] = []
    try:
        for s in range(0, n, batch_size):
            sl = slice(s, s + batch_size)
            parts.append(_optimise_chunk(model, images[sl], req[sl], cls[sl], cfg, context, bar, upsample))
    finally:
        if bar is not None:
            bar.close()
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return GridSaliencyResult(context=context, config=cfg, upsample=upsample, **cat)


def context_saliency(
    model: nn.Module,
    images: Tensor,
    requests: Tensor,
    classes: ClassIndex,
    *,
    config: GridSaliencyConfig | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> GridSaliencyResult:
    """Context saliency maps of a segmentation model (the request region is always kept).

    Parameters
    ----------
    model:
        A segmentation network (eval mode) returning logits ``(N, K, H, W)``
        or a mapping with key ``"out"``.
    images:
        ``(N, C, H, W)`` float images in ``[0, 1]``.
    requests:
        ``(N, H, W)`` boolean request masks ``R`` (non-empty).
    classes:
        The request class ``c``: one int for all images or ``N`` ints.
    config:
        Optimisation settings; default :class:`GridSaliencyConfig` (S1.2).
    batch_size:
        Images optimised together (default: all); results do not depend on it.
    progress:
        Show a progress bar.

    Returns
    -------
    GridSaliencyResult
        ``maps`` are ``(N, H, W)`` in ``[0, 1]`` and zero inside ``R``.
    """
    return optimise_masks(model, images, requests, classes, context=True, config=config, batch_size=batch_size,
                progress=progress)


def grid_saliency(model: nn.Module, images: Tensor, requests: Tensor, classes: ClassIndex,
                  **options) -> GridSaliencyResult:
    """Plain grid saliency: the whole image (request region included) may be perturbed.

    Same parameters as :func:`context_saliency` (``options``: ``config``,
    ``batch_size``, ``progress``); the perturbation is the constant grey image
    and the returned maps cover the whole image.
    """
    return optimise_masks(model, images, requests, classes, context=False, **options)


def saliency_views(
    model: nn.Module,
    images: Tensor,
    requests: Tensor,
    result: GridSaliencyResult,
) -> dict[str, Tensor]:
    """The panels of the supplement's Fig. S13 for a computed result.

    Returns a dict of tensors on CPU: ``input`` ``(N, C, H, W)``,
    ``input_probs`` ``(N, K, H, W)``, ``perturbed`` (the context replaced by the
    grey value, i.e. ``M = 0``), ``perturbed_probs``, ``optimised`` (``x'(M*)``,
    with the mask upsampled as the result records, ``result.upsample``),
    ``optimised_probs`` and ``map`` ``(N, H, W)``.
    """
    req, _ = validate_request(images, requests, 0)
    check_model(model, images)
    with torch.no_grad():
        r = req.to(images.dtype)[:, None]  # (N, 1, H, W)
        grey = result.grey.to(images)[:, None, None, None].expand_as(images)  # (N, C, H, W)
        p = images * r + grey * (1 - r) if result.context else grey.clone()
        m = upsample_mask(result.grid_masks.to(images)[:, None], tuple(images.shape[2:]),
                          result.upsample)  # (N, 1, H, W), as the optimisation did
        x_opt = p + m * (images - p)  # (N, C, H, W)
        views = {
            "input": images,
            "input_probs": segmentation_probs(model, images),
            "perturbed": p,
            "perturbed_probs": segmentation_probs(model, p),
            "optimised": x_opt,
            "optimised_probs": segmentation_probs(model, x_opt),
            "map": result.maps.to(images),
        }
    return {k: v.detach().cpu() for k, v in views.items()}
