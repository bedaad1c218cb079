"""The input check every U-Net of :mod:`gsutils.models` runs first: :func:`check_unet_input`."""

from __future__ import annotations

import torch

__all__ = ["check_unet_input"]


def check_unet_input(x: torch.Tensor, in_channels: int, multiple: int, backbone: str) -> None:
    """Raise unless ``x`` is ``(N, in_channels, H, W)`` with ``H`` and ``W`` positive multiples of ``multiple``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    m = multiple
    if x.ndim != 4 or x.shape[1] != in_channels or x.shape[2] % m or x.shape[3] % m or x.shape[2] == 0:
        raise ValueError(
            f"x must have shape (N, {in_channels}, H, W) with H and W positive multiples of "
            f"{m} for the {backbone!r} U-Net; got {tuple(x.shape)}"
        )
