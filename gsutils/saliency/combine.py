"""Combining saliency maps of several layers (Rebuffi et al., 2020, section C).

Each layer's map :math:`S_l` is upsampled to a common size and min-max
normalised to :math:`[0, 1]`; with weights :math:`w_l \\ge 0` normalised to
:math:`\\tilde w_l = w_l / \\sum_k w_k` the combinations are

* the weighted sum      :math:`S = \\sum_l \\tilde w_l\\, S_l`,
* the weighted product  :math:`S = \\prod_l S_l^{\\tilde w_l}` (a weighted geometric mean).

The product keeps only what every layer finds salient; the sum keeps what any
layer does. Which weights to use is an experiment's choice
(:func:`linear_weights`, :func:`uniform_weights`, or weights measured from data).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F

Mode = Literal["sum", "product"]
MODES: tuple[str, ...] = ("sum", "product")


def minmax(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Min-max normalise each map of ``maps`` ``(..., H, W)`` to ``[0, 1]`` (a constant map becomes 0)."""
    if maps.dim() < 2:
        raise ValueError(f"maps must have shape (..., H, W), got {tuple(maps.shape)}")
    flat = maps.flatten(-2)
    lo = flat.min(-1, keepdim=True).values
    hi = flat.max(-1, keepdim=True).values
    out = (flat - lo) / (hi - lo).clamp_min(eps)
    return out.view_as(maps)


def normalized_weights(weights: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """``w / sum(w)`` as float64; the weights must be finite, non-negative and not all zero."""
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if w.numel() == 0:
        raise ValueError("no weights given: pass one weight per layer")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be finite and >= 0, got {w.tolist()}")
    if w.sum() <= 0:
        raise ValueError("the weights sum to 0: give at least one layer a positive weight")
    return w / w.sum()


def linear_weights(n: int) -> torch.Tensor:
    """Weights ``1, 2, ..., n`` (increasing with depth), normalised."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return normalized_weights(torch.arange(1, n + 1, dtype=torch.float64))


def uniform_weights(n: int) -> torch.Tensor:
    """Equal weights ``1/n``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return normalized_weights(torch.ones(n, dtype=torch.float64))


def combine_maps(
    maps: Sequence[torch.Tensor],
    weights: Sequence[float] | torch.Tensor,
    mode: Mode = "product",
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Combine per-layer maps into one.

    Parameters
    ----------
    maps:
        One map per layer, each ``(N, 1, h_l, w_l)`` (or ``(N, h_l, w_l)``); sizes may differ.
    weights:
        One non-negative weight per layer (normalised here).
    mode:
        ``"sum"`` (weighted arithmetic mean) or ``"product"`` (weighted geometric mean).
    size:
        Output ``(H, W)``; default: the largest map's size. Maps are bilinearly
        upsampled to it before normalisation.

    Returns
    -------
    torch.Tensor
        ``(N, 1, H, W)``, in ``[0, 1]`` for the sum; the product's maximum is at most 1.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(maps) == 0:
        raise ValueError("no maps to combine")
    w = normalized_weights(weights)
    if w.numel() != len(maps):
        raise ValueError(f"{len(maps)} maps but {w.numel()} weights: give one weight per map")
    ms = [m.unsqueeze(1) if m.dim() == 3 else m for m in maps]
    for m in ms:
        if m.dim() != 4 or m.shape[1] != 1:
            raise ValueError(f"each map must be (N, 1, h, w) or (N, h, w), got {tuple(m.shape)}")
        if m.shape[0] != ms[0].shape[0]:
            raise ValueError("all maps must have the same batch size")
    if size is None:
        size = max((tuple(m.shape[-2:]) for m in ms), key=lambda s: s[0] * s[1])
    ups = [minmax(F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False)
                  if tuple(m.shape[-2:]) != tuple(size) else m.float()) for m in ms]
    wf = w.to(ups[0].dtype)
    if mode == "sum":
        return sum(wi * u for wi, u in zip(wf, ups))
    out = torch.ones_like(ups[0])
    for wi, u in zip(wf, ups):
        out = out * u.clamp_min(0).pow(wi)
    return out
