"""Meta-saliency (Rebuffi et al., 2020, Sec. 5 and supplement D).

A saliency map says where the model looks for a class *now*. Meta-saliency
asks where it would look after learning from this very image: take one
gradient step on the model's weights for the target class's loss, compute the
saliency map on the updated model, and put the weights back.

* a **positive** example (the class is present): a descent step on the
  binary cross-entropy of the target logit with label 1, the step training
  would take;
* a **negative** example (the class is absent): an *ascent* step on the same
  loss, which pushes the model towards predicting the class, so the map shows
  what the image offers that could be mistaken for it.

Each image gets its own step (images of a batch never share an update). The
step is plain SGD, ``theta' = theta - sign * lr * d loss / d theta`` with
``sign = +1`` (descent) or ``-1`` (ascent), taken on every parameter that
requires a gradient, in evaluation mode (BatchNorm statistics do not move).
The weights are restored bit for bit afterwards, and the parameters'
``.grad`` fields are never touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gsutils.saliency._checks import ClassIndex
from gsutils.saliency.extract_aggregate import extract_aggregate


@contextlib.contextmanager
def meta_step(model: nn.Module, x: torch.Tensor, target: int, lr: float, positive: bool = True) -> Iterator[nn.Module]:
    """Within the block, ``model`` has taken one SGD step on image ``x`` for class ``target``.

    Parameters
    ----------
    model:
        A classifier returning logits ``(1, K)``.
    x:
        One image, ``(1, C, H, W)``.
    target:
        The class whose loss is stepped on.
    lr:
        The step size (``> 0``).
    positive:
        ``True``: descent on ``BCE(logit_target, 1)``; ``False``: ascent.

    The weights (and training flags) are restored exactly on exit, even when
    the block raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image of shape (1, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no parameter that requires a gradient: nothing to step on")
    saved = [p.detach().clone() for p in params]
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(x)  # (1, K)
            if not (0 <= int(target) < logits.shape[1]):
                raise ValueError(f"target {target} out of range for {logits.shape[1]} classes")
            loss = F.binary_cross_entropy_with_logits(logits[0, int(target)], torch.ones((), dtype=logits.dtype,
                                                                                          device=logits.device))
            grads = torch.autograd.grad(loss, params)
        sign = 1.0 if positive else -1.0
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(sign * lr * g)
        yield model
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
        for m, flag in flags:
            m.training = flag


def meta_saliency(model: nn.Module, x: torch.Tensor, target: ClassIndex, layers: str | Sequence[str],
                  methods: str | Sequence[str], *, lr: float, positive: bool | Sequence[bool] = True,
                  **options) -> dict[tuple[str, str], torch.Tensor]:
    """Meta-saliency maps: :func:`extract_aggregate` on the model after one step per image.

    Parameters
    ----------
    model, x, target, layers, methods:
        As :func:`gsutils.saliency.extract_aggregate.extract_aggregate`
        (``x`` ``(N, C, H, W)``; ``target`` an int or ``(N,)``).
    options:
        Passed on to ``extract_aggregate`` (``resize``, ``classifier_layer``).
    lr:
        The step size of :func:`meta_step`.
    positive:
        One flag for all images or one per image: descent (``True``, the class is
        present) or ascent (``False``).

    Returns
    -------
    dict
        ``{(method, layer): (N, 1, H, W)}``. The model is unchanged afterwards.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    n = x.shape[0]
    t = torch.as_tensor(target).flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"target must be an int or have {n} entries, got {t.numel()}")
    pos = [bool(positive)] * n if isinstance(positive, bool) else [bool(p) for p in positive]
    if len(pos) != n:
        raise ValueError(f"positive must be a bool or have {n} entries, got {len(pos)}")
    parts: list[dict[tuple[str, str], torch.Tensor]] = []
    for i in range(n):
        with meta_step(model, x[i:i + 1], int(t[i]), lr, pos[i]) as stepped:
            parts.append(extract_aggregate(stepped, x[i:i + 1], int(t[i]), layers, methods, **options))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


__all__ = ["meta_step", "meta_saliency"]
