"""Modified backward rules: guided backprop and excitation backprop.

Both methods keep the network's forward pass and change how the signal flows
back through some operations. They are installed here with a
:class:`torch.overrides.TorchFunctionMode`, active only while the model's
forward pass runs inside a ``with`` block: the mode sees every call of a torch
operation (module or functional), so nothing is patched globally and nothing
stays modified after the block. The backward signal itself is computed later,
outside the block; the rules read a shared :class:`RuleState` at that time, so
one forward pass can serve several differently modified backward passes.

Guided backprop (Springenberg et al., 2015)
    At every ReLU, the incoming signal is clamped at zero before the ReLU's own
    backward (which zeroes it where the ReLU's input was not positive):
    ``p_in = max(p_out, 0) * [x > 0]``.

Excitation backprop (Zhang et al., 2016)
    Every linear operation ``y = f(x; W) + b`` (convolutions, fully connected
    layers, average pooling, and the element-wise sum of two activations, as
    in a residual connection) passes back
    ``p_in = x * f^T(W+, p_out / (f(x; W+) + 1e-20))`` with ``W+ = max(W, 0)``
    and no bias; batch normalisation passes the signal through unchanged;
    ReLU and max pooling keep their usual backward. These are the conventions
    of TorchRay's implementation (Fong, Patrick and Vedaldi), which follows the
    authors' Caffe code. With ``RuleState.negate_classifier`` set, the
    classifier layer uses ``max(-W, 0)`` instead, which gives the "contrast"
    signal of contrastive excitation backprop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

#: Added to the positive-weight forward output before dividing by it (TorchRay's value).
EB_EPS = 1e-20


@dataclass
class RuleState:
    """Switches read by the modified rules when the backward pass runs.

    Attributes
    ----------
    guided:
        Guided-backprop clamping at ReLUs is on.
    negate_classifier:
        Excitation backprop uses ``max(-W, 0)`` at the classifier layer.
    """

    guided: bool = False
    negate_classifier: bool = False


# --------------------------------------------------------------------------------------
# Guided backprop
# --------------------------------------------------------------------------------------

_RELU_FUNCS = frozenset({F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_})


class GuidedReLUMode(TorchFunctionMode):
    """While active, every ReLU's backward node gets a pre-hook that clamps at zero.

    The hook acts only when ``state.guided`` is true at backward time, so the
    same forward pass gives the plain gradient (``guided=False``) and the
    guided-backprop signal (``guided=True``). The hook sits on the ReLU's
    backward node, not on its output tensor: the signal *at* the ReLU's output
    (what a saliency layer placed there records) is unclamped, as in TorchRay,
    and in-place ReLUs stay in place.

    Parameters
    ----------
    state:
        The shared :class:`RuleState`.
    """

    def __init__(self, state: RuleState) -> None:
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _RELU_FUNCS and isinstance(out, torch.Tensor) and out.grad_fn is not None:
            state = self.state

            def clamp_signal(grad_outputs: tuple) -> tuple | None:
                # grad_outputs[0]: the signal at the ReLU output; max(p, 0) before the ReLU mask
                if not state.guided:
                    return None
                return tuple(None if g is None else g.clamp(min=0) for g in grad_outputs)

            out.grad_fn.register_prehook(clamp_signal)
        return out


# --------------------------------------------------------------------------------------
# Excitation backprop
# --------------------------------------------------------------------------------------


class _ExcitationLinear(torch.autograd.Function):
    """``y = forward_fn(x)``; backward ``x * J^T(p / (positive_fn(x) + eps))``.

    ``positive_fn`` is the same linear map with non-negative weights and no
    bias; ``negative_fn`` (or None) the map with ``max(-W, 0)``, used when
    ``state.negate_classifier`` is set.
    """

    @staticmethod
    def forward(ctx, x, forward_fn, positive_fn, negative_fn, state):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.positive_fn = positive_fn
        ctx.negative_fn = negative_fn
        ctx.state = state
        return forward_fn(x)

    @staticmethod
    def backward(ctx, p):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        fn = ctx.positive_fn
        if ctx.negative_fn is not None and ctx.state.negate_classifier:
            fn = ctx.negative_fn
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            z = fn(xd)  # same shape as p: the layer's response with W+ (or W-), no bias
            (back,) = torch.autograd.grad(z, xd, p / (z + EB_EPS))
        return x * back, None, None, None, None


class _PassThrough(torch.autograd.Function):
    """``y = forward_fn(x)``; the backward passes the signal unchanged (batch norm under EB)."""

    @staticmethod
    def forward(ctx, x, forward_fn):  # type: ignore[override]
        return forward_fn(x)

    @staticmethod
    def backward(ctx, p):  # type: ignore[override]
        return p, None


class _ExcitationSum(torch.autograd.Function):
    """``y = a + b`` (optionally in place in ``a``); backward ``(a/y * p, b/y * p)``."""

    @staticmethod
    def forward(ctx, a, b, inplace):  # type: ignore[override]
        if inplace:
            a_old = a.clone()
            a.add_(b)
            ctx.mark_dirty(a)
            out = a
        else:
            a_old = a
            out = a + b
        ctx.save_for_backward(a_old, b)
        return out

    @staticmethod
    def backward(ctx, p):  # type: ignore[override]
        a, b = ctx.saved_tensors
        s = a + b  # (same shape as p)
        ratio = torch.where(s != 0, p / torch.where(s != 0, s, torch.ones_like(s)), torch.zeros_like(p))
        return a * ratio, b * ratio, None


_CONV_FUNCS = frozenset({torch.conv1d, torch.conv2d, torch.conv3d, F.linear})
_POOL_FUNCS = frozenset({
    F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
})
_SUM_FUNCS = frozenset({
    torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__,
})
_INPLACE_SUM_FUNCS = frozenset({torch.Tensor.add_, torch.Tensor.__iadd__})


def _split_weighted_call(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
    """``(input, weight, rest_args, rest_kwargs)`` of a conv/linear call, bias removed."""
    kwargs = dict(kwargs)
    x = args[0] if args else kwargs.pop("input")
    rest = list(args[1:])
    weight = rest.pop(0) if rest else kwargs.pop("weight")
    if rest:
        rest.pop(0)  # bias
    kwargs.pop("bias", None)
    return x, weight, tuple(rest), kwargs


class ExcitationMode(TorchFunctionMode):
    """While active, linear operations are recorded with excitation-backprop rules.

    Parameters
    ----------
    state:
        The shared :class:`RuleState` (``negate_classifier`` is read at backward time).
    classifier_weight:
        The weight of the classifier layer, whose rule flips to ``max(-W, 0)``
        when ``state.negate_classifier`` is set; None when not needed.
    """

    def __init__(self, state: RuleState, classifier_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.state = state
        self.classifier_weight = classifier_weight

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONV_FUNCS:
            x, weight, rest, rest_kw = _split_weighted_call(args, kwargs)
            if isinstance(x, torch.Tensor) and x.requires_grad:
                w_pos = weight.detach().clamp(min=0)

                def positive_fn(t: torch.Tensor) -> torch.Tensor:
                    return func(t, w_pos, None, *rest, **rest_kw)

                negative_fn = None
                if self.classifier_weight is not None and weight is self.classifier_weight:
                    w_neg = (-weight.detach()).clamp(min=0)

                    def negative_fn(t: torch.Tensor) -> torch.Tensor:
                        return func(t, w_neg, None, *rest, **rest_kw)

                forward_fn = _with_input(func, args, kwargs)
                return _ExcitationLinear.apply(x, forward_fn, positive_fn, negative_fn, self.state)
        elif func in _POOL_FUNCS:
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, torch.Tensor) and x.requires_grad:
                pool_fn = _with_input(func, args, kwargs)
                return _ExcitationLinear.apply(x, pool_fn, pool_fn, None, self.state)
        elif func is F.batch_norm:
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, torch.Tensor) and x.requires_grad:
                return _PassThrough.apply(x, _with_input(func, args, kwargs))
        elif func in _SUM_FUNCS or func in _INPLACE_SUM_FUNCS:
            if _is_activation_sum(args, kwargs):
                a, b = args[0], args[1]
                if func is torch.Tensor.__radd__:
                    a, b = b, a
                return _ExcitationSum.apply(a, b, func in _INPLACE_SUM_FUNCS)
        return func(*args, **kwargs)


def _with_input(func: Callable, args: tuple, kwargs: dict) -> Callable[[torch.Tensor], torch.Tensor]:
    """``t -> func(...)`` with the call's first (input) argument replaced by ``t``."""
    if args:
        return lambda t: func(t, *args[1:], **kwargs)
    return lambda t: func(**{**kwargs, "input": t})


def _is_activation_sum(args: tuple, kwargs: dict) -> bool:
    """A sum of two same-shape activations that both carry gradients (no alpha)."""
    if len(args) != 2 or kwargs.get("alpha", 1) != 1 or set(kwargs) - {"alpha"}:
        return False
    a, b = args
    return (
        isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        and a.requires_grad and b.requires_grad
        and a.shape == b.shape and a.dtype == b.dtype and a.is_floating_point()
    )


__all__ = ["EB_EPS", "RuleState", "GuidedReLUMode", "ExcitationMode"]
