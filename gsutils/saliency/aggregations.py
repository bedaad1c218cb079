"""The Extract & Aggregate method registry: how each method reduces ``(x, g)`` over channels.

Every method of :mod:`gsutils.saliency.extract_aggregate` is one
:class:`Method`: the *kind* of backward pass that produces its backward signal
``g`` at a layer, and the *reduction* that turns the layer's activation ``x``
and ``g`` (both ``(N, C, H, W)``) into one value per location ``(N, 1, H, W)``.
The engine runs each kind of backward pass once for all methods and layers
that need it, then applies the reductions. Sums, maxima and norms run over
the channel axis ``c``; ``u`` is a spatial location.

Backward-pass kinds:

* ``"gradient"``: the plain gradient of the target logit;
* ``"guided"``: guided-backprop ReLUs (Springenberg et al., 2015);
* ``"excitation"``: excitation-backprop rules (Zhang et al., 2016);
* ``"contrastive"``: excitation backprop, minus the signal of the negated classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

PassKind = Literal["gradient", "guided", "excitation", "contrastive"]
PASS_KINDS: tuple[str, ...] = ("gradient", "guided", "excitation", "contrastive")


@dataclass(frozen=True)
class Method:
    """One saliency method of the Extract & Aggregate family."""

    name: str
    #: the backward pass that gives ``g``
    pass_kind: PassKind
    #: ``(x, g) -> (N, 1, H, W)``; for ``needs_conv`` methods ``x`` is the squared patch norms
    reduce: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    #: the reduction as a formula (documentation; shown in the book)
    formula: str
    #: where the method comes from
    source: str
    #: ``x`` is the layer's input patches, not its output: the layer must be a ``Conv2d``
    needs_conv: bool = False


# normgrad-core-start
def normgrad_map(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """NormGrad with the virtual identity: ``||x_u|| * ||g_u||`` at every location ``u``.

    Insert a 1x1 convolution with identity weights ``I`` after the layer: it
    changes nothing in the forward pass, and the gradient of its weights
    summed over locations is ``sum_u g_u x_u^T``. The contribution of one
    location is the outer product ``g_u x_u^T``, whose Frobenius norm is
    ``||g_u|| * ||x_u||``.

    Parameters
    ----------
    x, g:
        Activation and gradient at the layer, ``(N, C, H, W)``.

    Returns
    -------
    torch.Tensor
        ``(N, 1, H, W)``.
    """
    return x.norm(dim=1, keepdim=True) * g.norm(dim=1, keepdim=True)


def normgrad_conv_map(patch_sq: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """NormGrad of a convolution's own weights (no identity trick).

    The weight gradient of a convolution is a sum over output locations ``u``
    of ``g_u p_u^T`` (per group), where ``p_u`` is the unfolded input patch
    (``C_in/groups x kh x kw`` values) the kernels see at ``u``. Its norm at
    ``u`` is ``sqrt(sum_k ||g_u,k||^2 ||p_u,k||^2)`` over the groups ``k``,
    i.e. ``||p_u|| * ||g_u||`` for an ordinary convolution.

    Parameters
    ----------
    patch_sq:
        ``(N, G, H', W')`` squared patch norms (:func:`conv_patch_sq_norms`).
    g:
        ``(N, C_out, H', W')`` gradient at the convolution's output.

    Returns
    -------
    torch.Tensor
        ``(N, 1, H', W')``.
    """
    n, c, h, w = g.shape
    groups = patch_sq.shape[1]
    g_sq = (g**2).reshape(n, groups, c // groups, h, w).sum(dim=2)  # (N, G, H', W')
    return (patch_sq * g_sq).sum(dim=1, keepdim=True).sqrt()  # (N, 1, H', W')
# normgrad-core-end


def conv_patch_sq_norms(conv: nn.Conv2d, x_in: torch.Tensor) -> torch.Tensor:
    """Squared norm of every input patch a convolution sees, per group.

    Parameters
    ----------
    conv:
        A :class:`torch.nn.Conv2d`.
    x_in:
        Its input, ``(N, C_in, H, W)``.

    Returns
    -------
    torch.Tensor
        ``(N, groups, H', W')``: for output location ``u`` and group ``k``, the
        sum of squares of the ``C_in/groups x kh x kw`` input values that the
        kernels of group ``k`` multiply at ``u`` (zero padding included).
    """
    groups = conv.groups
    kh, kw = conv.kernel_size
    ones = torch.ones(groups, conv.in_channels // groups, kh, kw, dtype=x_in.dtype, device=x_in.device)
    sq = x_in.detach() ** 2  # (N, C_in, H, W)
    padding = conv.padding
    if conv.padding_mode != "zeros":
        sq = F.pad(x_in.detach(), conv._reversed_padding_repeated_twice, mode=conv.padding_mode) ** 2
        padding = 0
    # a conv with all-ones kernels sums the squares over each patch: (N, G, H', W')
    out = F.conv2d(sq, ones, None, conv.stride, padding, conv.dilation, groups)
    return out.clamp(min=0)


def _grad_max(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return g.abs().amax(dim=1, keepdim=True)


def _signal_sum(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return g.sum(dim=1, keepdim=True)


def _grad_cam(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    weights = g.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1): spatially pooled gradient
    return (x * weights).sum(dim=1, keepdim=True).clamp(min=0)


def _linear_approx(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return (x * g).sum(dim=1, keepdim=True)


def _selective_normgrad(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return (x * g).clamp(min=0).norm(dim=1, keepdim=True)


def _positive_sum(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return g.sum(dim=1, keepdim=True).clamp(min=0)


_ALL = (
    Method("gradient", "gradient", _grad_max, "max_c |g_c(u)|", "Simonyan et al., 2014"),
    Method("gradient_sum", "gradient", _signal_sum, "sum_c g_c(u)", "Rebuffi et al., 2020"),
    Method("guided_backprop", "guided", _grad_max, "max_c |g_GB,c(u)|", "Springenberg et al., 2015"),
    Method("grad_cam", "gradient", _grad_cam, "max(0, sum_c x_c(u) * mean_v g_c(v))", "Selvaraju et al., 2017"),
    Method("linear_approx", "gradient", _linear_approx, "sum_c x_c(u) g_c(u)", "Kindermans et al., 2016"),
    Method("normgrad", "gradient", normgrad_map,
           "||x(u)|| * ||g(u)||: weight-gradient norm of a virtual 1x1 identity convolution",
           "Rebuffi et al., 2020"),
    Method("normgrad_conv", "gradient", normgrad_conv_map,
           "sqrt(sum_k ||p_k(u)||^2 ||g_k(u)||^2): weight-gradient norm of the convolution itself",
           "Rebuffi et al., 2020", needs_conv=True),
    Method("selective_normgrad", "gradient", _selective_normgrad, "||max(0, x(u) * g(u))||",
           "Rebuffi et al., 2020"),
    Method("excitation_backprop", "excitation", _signal_sum, "sum_c g_EB,c(u)", "Zhang et al., 2016"),
    Method("contrastive_excitation_backprop", "contrastive", _positive_sum,
           "max(0, sum_c (g_EB,c(u) - g_EB,c(u) of the negated classifier))", "Zhang et al., 2016"),
)

#: every method, by name, in the order the book lists them
REGISTRY: dict[str, Method] = {m.name: m for m in _ALL}
#: the method names
METHODS: tuple[str, ...] = tuple(REGISTRY)


def method(name: str) -> Method:
    """The registered method ``name``; a ``ValueError`` lists the valid names otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def methods_of_kind(kind: str) -> tuple[str, ...]:
    """The names of the methods computed from backward pass ``kind``."""
    if kind not in PASS_KINDS:
        raise ValueError(f"unknown pass kind {kind!r}; choose from {PASS_KINDS}")
    return tuple(m.name for m in _ALL if m.pass_kind == kind)
