"""Run a network's forward pass at reduced precision: :func:`autocast_model`.

The quick profile's Grid Saliency networks are trained with a bfloat16
forward pass (``TrainSettings.autocast``); ``SaliencySettings.autocast``
explains them the same way. The wrapper runs the wrapped network under
``torch.autocast`` and returns float32 outputs, so every saliency method (they
all take a callable ``model``) runs unchanged: masks, images, the optimiser and
the metrics stay float32; only the network's layers compute in bfloat16, in
the channels-last memory layout their training used (faster on a CPU).
``benchmarks/saliency_precision.py`` measures what this changes in the maps
and the CBD/CBL metrics, and how much faster it is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["AUTOCAST_DTYPES", "AutocastModel", "autocast_model"]

#: the precisions an autocast setting may name
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16}


def _check(name: Any) -> None:
    if name is not None and name not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be one of {sorted(AUTOCAST_DTYPES)} or None, got {name!r}")


class AutocastModel(nn.Module):
    """``model`` whose forward pass runs under ``torch.autocast`` at ``dtype``; outputs float32.

    Attributes of the wrapped network (``backbone``, ``arch``, ...) are reached
    through :attr:`model`; parameters are the wrapped network's own.
    """

    def __init__(self, model: nn.Module, dtype: str = "bfloat16") -> None:
        super().__init__()
        _check(dtype)
        self.model = model
        self.dtype_name = dtype

    def forward(self, x: torch.Tensor) -> Any:
        if x.ndim == 4:  # the layout training used; gradients flow back to x as they are
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=AUTOCAST_DTYPES[self.dtype_name]):
            out = self.model(x)
        if isinstance(out, dict):
            return {k: v.float() for k, v in out.items()}
        return out.float()


def autocast_model(model: nn.Module, dtype: str | None) -> nn.Module:
    """``model`` itself when ``dtype`` is ``None``, else an :class:`AutocastModel` around it (eval mode
    kept; the model's weights are put in the channels-last layout, in place).

    Raises
    ------
    ValueError
        ``dtype`` is not ``None`` or a name of :data:`AUTOCAST_DTYPES`.
    """
    _check(dtype)
    if dtype is None:
        return model
    return AutocastModel(model.to(memory_format=torch.channels_last), dtype).train(model.training)
