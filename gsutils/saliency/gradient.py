"""Gradient saliency baselines for a segmentation request (VG, IG, SG).

All three methods explain the *request objective*

.. math::

    S_c(x; R) = \\frac{1}{\\lVert R \\rVert_1} \\sum_{u \\in R} f_c(x)_u ,

the **mean** softmax score of the request class ``c`` over the request region
``R`` (the mean rather than the sum keeps the gradient's scale independent of
the region's size; the two differ by the constant ``|R|`` per image, which the
per-image normalisation of :func:`context_maps` removes anyway).

* :func:`vanilla_gradient` -- ``dS/dx`` (Simonyan et al., 2014).
* :func:`integrated_gradients` -- ``(x - x_0) * integral_0^1 dS/dx(x_0 + t (x - x_0)) dt``
  with a Gauss-Legendre rule of ``steps`` nodes (Sundararajan et al., 2017;
  the same rule and nodes as Captum's default) and a constant baseline ``x_0``
  (black by default).
* :func:`smoothgrad` -- the mean of ``dS/dx`` over ``samples`` noisy copies
  ``x + N(0, sigma^2)``, ``sigma = noise_level * (max(x) - min(x))`` per image
  (Smilkov et al., 2017).

The attributions are signed and have the images' shape. :func:`context_maps`
turns them into context maps: the absolute attribution summed over channels,
divided by its maximum over the *whole* image (request region included), then
set to zero inside ``R``. Dividing by the whole-image maximum makes maps of
different images and methods comparable in ``[0, 1]``, and keeps the context's
share relative to the request's own evidence: a network that ignores the
context gets a context map near 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from gsutils.saliency._checks import ClassIndex, check_has_context, check_model
from gsutils.saliency.grid import check_classes, validate_request, segmentation_probs

__all__ = [
    "request_objective",
    "vanilla_gradient",
    "integrated_gradients",
    "smoothgrad",
    "context_maps",
    "gradient_context_saliency",
    "GRADIENT_METHODS",
]

GRADIENT_METHODS = ("vg", "ig", "sg")
#: default network inputs per forward/backward pass: on a CPU, chunks of this size
#: keep the activations in cache and run faster than one huge batch; raise it on a GPU
DEFAULT_BATCH = 32


def request_objective(probs: Tensor, requests: Tensor, classes: Tensor) -> Tensor:
    """Mean softmax score of class ``classes[i]`` over ``requests[i]``, ``(N,)``.

    Parameters
    ----------
    probs:
        ``(N, K, H, W)`` softmax scores.
    requests:
        ``(N, H, W)`` request masks (bool or float).
    classes:
        ``(N,)`` int64 request classes.
    """
    idx = classes[:, None, None, None].expand(-1, 1, *probs.shape[2:])  # (N, 1, H, W)
    f_c = probs.gather(1, idx)[:, 0]  # (N, H, W)
    r = requests.to(probs.dtype)  # (N, H, W)
    return (f_c * r).flatten(1).sum(1) / r.flatten(1).sum(1)  # (N,)


def _grad_of_objective(
    model: nn.Module, x: Tensor, requests: Tensor, classes: Tensor, batch_size: int
) -> Tensor:
    """``dS/dx`` for a stack of inputs ``x`` ``(B, C, H, W)``, in chunks of ``batch_size``."""
    out = torch.empty_like(x)  # (B, C, H, W)
    for s in range(0, x.shape[0], batch_size):
        xs = x[s:s + batch_size].detach().requires_grad_(True)  # (b, C, H, W)
        obj = request_objective(segmentation_probs(model, xs), requests[s:s + batch_size],
                                classes[s:s + batch_size])  # (b,)
        (g,) = torch.autograd.grad(obj.sum(), xs)  # each input's own gradient
        if not bool(torch.isfinite(g).all()):
            raise ValueError("model gave a NaN or infinite gradient for finite images; "
                             "check its weights")
        out[s:s + batch_size] = g
    return out


def _prepare(model, images, requests, classes, batch_size):
    """Checked requests and classes; ValueError/TypeError naming the bad argument."""
    req, cls = validate_request(images, requests, classes)
    check_model(model, images)
    with torch.no_grad():
        k = segmentation_probs(model, images[:1]).shape[1]
    check_classes(cls, k)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    return req, cls


def vanilla_gradient(
    model: nn.Module,
    images: Tensor,
    requests: Tensor,
    classes: ClassIndex,
    *,
    batch_size: int | None = None,
) -> Tensor:
    """Gradient of the request objective, ``(N, C, H, W)`` (signed).

    Parameters
    ----------
    model:
        Segmentation network returning ``(N, K, H, W)`` logits or ``{"out": ...}``.
    images:
        ``(N, C, H, W)`` float images.
    requests:
        ``(N, H, W)`` non-empty request masks.
    classes:
        One int or ``N`` ints.
    batch_size:
        Network inputs per forward/backward pass (default :data:`DEFAULT_BATCH`);
        results do not depend on it.
    """
    req, cls = _prepare(model, images, requests, classes, batch_size)
    return _grad_of_objective(model, images, req, cls, batch_size or DEFAULT_BATCH)


def _legendre(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``t`` in ``[0, 1]`` and weights of the path integral."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (1 + nodes), 0.5 * weights
    if method == "riemann_middle":
        t = (np.arange(steps) + 0.5) / steps
        return t, np.full(steps, 1.0 / steps)
    raise ValueError(
        f"method must be 'gausslegendre' or 'riemann_middle', got {method!r}"
    )


def integrated_gradients(
    model: nn.Module,
    images: Tensor,
    requests: Tensor,
    classes: ClassIndex,
    *,
    steps: int = 25,
    baseline: float | Tensor = 0.0,
    method: str = "gausslegendre",
    batch_size: int | None = None,
) -> Tensor:
    """Integrated gradients of the request objective, ``(N, C, H, W)`` (signed).

    Parameters
    ----------
    steps:
        Nodes of the quadrature rule (the paper: 25).
    baseline:
        A constant or a tensor broadcastable to ``images`` (default black).
    method:
        ``"gausslegendre"`` (default, as Captum) or ``"riemann_middle"``
        (midpoint rule).
    batch_size:
        Network inputs per pass (default :data:`DEFAULT_BATCH`).

    Other parameters as :func:`vanilla_gradient`.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    req, cls = _prepare(model, images, requests, classes, batch_size)
    t, w = _legendre(steps, method)
    t_ = torch.as_tensor(t, dtype=images.dtype, device=images.device)  # (S,)
    w_ = torch.as_tensor(w, dtype=images.dtype, device=images.device)  # (S,)
    x0 = torch.as_tensor(baseline, dtype=images.dtype, device=images.device)
    if not bool(torch.isfinite(x0).all()):
        raise ValueError(f"baseline must be finite, got {baseline!r}")
    try:
        x0 = x0.expand_as(images)
    except RuntimeError as err:
        raise ValueError(f"baseline of shape {tuple(x0.shape)} does not broadcast to the images "
                         f"{tuple(images.shape)}") from err
    diff = images - x0  # (N, C, H, W)
    path = x0[None] + t_[:, None, None, None, None] * diff[None]  # (S, N, C, H, W), step-major
    grads = _grad_of_objective(
        model, path.flatten(0, 1), req.repeat(steps, 1, 1), cls.repeat(steps),
        batch_size or DEFAULT_BATCH,
    ).view(steps, *images.shape)  # (S, N, C, H, W)
    avg = (grads * w_[:, None, None, None, None]).sum(0)  # (N, C, H, W) integral of dS/dx
    return avg * diff  # (N, C, H, W)


def smoothgrad(
    model: nn.Module,
    images: Tensor,
    requests: Tensor,
    classes: ClassIndex,
    *,
    samples: int = 25,
    noise_level: float = 0.15,
    seed: int = 0,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> Tensor:
    """SmoothGrad of the request objective, ``(N, C, H, W)`` (signed mean gradient).

    Parameters
    ----------
    samples:
        Noisy copies per image (the paper: 25).
    noise_level:
        ``sigma = noise_level * (max(x) - min(x))`` per image (the paper: 0.15).
    seed:
        Seed of the noise when no ``generator`` is given.
    generator:
        A ``torch.Generator`` on the images' device; drawn as
        ``randn((N, samples, C, H, W))``.
    batch_size:
        Network inputs per pass (default :data:`DEFAULT_BATCH`).

    Other parameters as :func:`vanilla_gradient`.
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an int >= 1, got {samples!r}")
    if not 0 <= noise_level < float("inf"):
        raise ValueError(f"noise_level must be a finite number >= 0, got {noise_level!r}")
    req, cls = _prepare(model, images, requests, classes, batch_size)
    n = images.shape[0]
    if generator is None:
        generator = torch.Generator(device=images.device).manual_seed(seed)
    flat = images.flatten(1)  # (N, C*H*W)
    sigma = noise_level * (flat.max(1).values - flat.min(1).values)  # (N,)
    noise = torch.randn((n, samples, *images.shape[1:]), generator=generator,
                        dtype=images.dtype, device=images.device)  # (N, S, C, H, W)
    noisy = images[:, None] + noise * sigma[:, None, None, None, None]  # (N, S, C, H, W)
    grads = _grad_of_objective(
        model, noisy.flatten(0, 1), req.repeat_interleave(samples, 0),
        cls.repeat_interleave(samples), batch_size or DEFAULT_BATCH,
    ).view(n, samples, *images.shape[1:])  # (N, S, C, H, W), image-major
    return grads.mean(1)  # (N, C, H, W)


def context_maps(attributions: Tensor, requests: Tensor, *, normalise: bool = True) -> Tensor:
    """Context maps ``(N, H, W)`` from attributions ``(N, C, H, W)``.

    ``|attribution|`` summed over channels; with ``normalise`` divided by its
    maximum over the whole image (request included; an all-zero map stays
    zero), so values lie in ``[0, 1]``; finally zero inside ``requests``.
    """
    if attributions.ndim != 4:
        raise ValueError(f"attributions must be (N, C, H, W), got {tuple(attributions.shape)}")
    n, _, h, w = attributions.shape
    if tuple(requests.shape) != (n, h, w):
        raise ValueError(
            f"requests must have shape {(n, h, w)} to match attributions, got {tuple(requests.shape)}"
        )
    if not bool(torch.isfinite(attributions).all()):
        raise ValueError("attributions must be finite; they hold NaN or infinite values")
    mag = attributions.abs().sum(1)  # (N, H, W)
    if normalise:
        peak = mag.flatten(1).max(1).values  # (N,)
        mag = mag / torch.where(peak > 0, peak, torch.ones_like(peak))[:, None, None]
    return mag * (~requests.bool().to(mag.device)).to(mag.dtype)  # (N, H, W) zero inside R


def gradient_context_saliency(model: nn.Module, images: Tensor, requests: Tensor, classes: ClassIndex,
                              method: str, *, ig_steps: int = 25, sg_samples: int = 25, seed: int = 0,
                              batch_size: int | None = None) -> Tensor:
    """Normalised context maps ``(N, H, W)`` of ``method`` in ``("vg", "ig", "sg")``.

    Raises ``ValueError`` for a request that covers its whole image (no context).
    """
    if method not in GRADIENT_METHODS:
        raise ValueError(f"method must be one of {GRADIENT_METHODS}, got {method!r}")
    req, _ = validate_request(images, requests, classes)
    check_has_context(req)
    if method == "vg":
        attr = vanilla_gradient(model, images, requests, classes, batch_size=batch_size)
    elif method == "ig":
        attr = integrated_gradients(model, images, requests, classes, steps=ig_steps,
                                    batch_size=batch_size)
    elif method == "sg":
        attr = smoothgrad(model, images, requests, classes, samples=sg_samples, seed=seed,
                          batch_size=batch_size)
    else:
        raise ValueError(f"method must be one of {GRADIENT_METHODS}, got {method!r}")
    return context_maps(attr.detach(), requests).detach()
