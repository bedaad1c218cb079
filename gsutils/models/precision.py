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

bfloat16 is only faster where the processor computes it natively (Intel's AMX
or AVX-512 units, AMD's AVX-512 BF16). On a processor with AVX2 only (an AMD
EPYC of the Zen 3 generation, measured) oneDNN emulates it and a U-Net's
training step ran 15-20x *slower* than at float32. :func:`effective_autocast`
therefore turns a requested bfloat16 into float32 on such a machine; the runs
key their results by the precision actually used, and the pages say which.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["AUTOCAST_DTYPES", "AutocastModel", "autocast_model", "native_bf16", "effective_autocast",
           "precision_label"]

#: the precisions an autocast setting may name
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16}


def _check(name: Any) -> None:
    if name is not None and name not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be one of {sorted(AUTOCAST_DTYPES)} or None, got {name!r}")


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 convolutions and matrix products natively (fast)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def effective_autocast(name: str | None, device: str | torch.device = "cpu") -> str | None:
    """The precision a run requesting ``name`` uses on ``device``: ``name`` where the device computes
    it natively, ``None`` (float32) otherwise (see the module's note).

    Raises
    ------
    ValueError
        ``name`` is not ``None`` or a name of :data:`AUTOCAST_DTYPES`.
    """
    _check(name)
    return name if name is not None and native_bf16(device) else None


def precision_label(requested: str | None, device: str | torch.device = "cpu") -> str:
    """One line saying at which precision the networks' layers run here, and why."""
    used = effective_autocast(requested, device)
    if requested is None:
        return "float32"
    if used == requested:
        return f"{requested} (native on this {torch.device(device).type.upper()})"
    return f"float32: this {torch.device(device).type.upper()} has no native {requested}, which would run slower"


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
