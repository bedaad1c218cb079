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
Both run the one optimisation of :mod:`gsutils.saliency.grid` (same loss,
grey choice, clipping, momentum SGD and keep-empty rule).
``upsample="nearest"`` is the toy chapters' setting (as
:func:`~gsutils.saliency.grid.context_saliency`); ``upsample="bilinear"``
(the default here, the supplement's setting for real scenes, S2) upsamples the
low-resolution mask bilinearly, so the map has no block edges. Unlike the
toy chapters' functions, ``explain`` refuses a model in training mode.
"""

from __future__ import annotations

from torch import Tensor, nn

from gsutils.saliency._checks import ClassIndex
from gsutils.saliency.grid import UPSAMPLING, GridSaliencyResult, optimise_masks

__all__ = ["METHODS", "UPSAMPLING", "explain"]

METHODS = ("context", "grid")


def explain(
    model: nn.Module,
    image: Tensor,
    request_mask: Tensor,
    cls: ClassIndex,
    method: str = "context",
    *,
    upsample: str = "bilinear",
    progress: bool = False,
    **options,
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
    progress:
        Show a progress bar (tqdm, on stderr) over the optimisation steps,
        ``images x config.steps`` of them.
    options:
        ``config`` (a :class:`~gsutils.saliency.grid.GridSaliencyConfig`,
        default S1.2's) and ``batch_size`` (images optimised together; results
        do not depend on it), as for :func:`~gsutils.saliency.grid.context_saliency`.

    Notes
    -----
    Cost: one forward and one backward pass of ``model`` per step (100 by
    default, ``config.steps``) and image, plus a forward pass per grey
    candidate, about as much as 100 training steps of the model. Measured
    once: one 128x128 random image, torchvision's
    ``deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
    num_classes=21)``, one torch thread, torch 2.14.1 on a 2-core AMD EPYC
    virtual machine shared with other jobs: 12.0 s of wall time (7.9 s of
    CPU time). It grows with the image's pixels and the number of images;
    pass ``progress=True`` to watch it, or fewer ``config.steps`` to shorten it.

    Returns
    -------
    GridSaliencyResult
        With a leading batch dimension even for a single image. ``maps`` are
        the optimised masks upsampled by ``upsample`` (recorded as
        ``result.upsample``), in ``[0, 1]`` and, for ``"context"``, zero in
        the request region; ``empty[i]`` is True exactly where ``maps[i]`` is
        zero everywhere (no context is needed to keep the prediction).
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
    return optimise_masks(model, image, request_mask.to(image.device), cls, context=method == "context",
                          upsample=upsample, progress=progress, training_mode="error", **options)
