"""Input checks shared by the segmentation saliency methods (grid saliency, VG/IG/SG).

Each raises ``TypeError`` or ``ValueError`` with a message that names the
argument, so that a bad input never turns into a silent NaN or all-zero map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from torch import Tensor, nn

#: which class each image is explained for: one int for all images, or one per image
ClassIndex = Union[int, Sequence[int], Tensor]


def check_model(model: nn.Module, images: Tensor) -> None:
    """``model`` is callable and its parameters share the images' dtype and device."""
    if not callable(model):
        raise TypeError(f"model must be a torch.nn.Module (or callable), got {type(model).__name__}")
    for name, p in (model.named_parameters() if isinstance(model, nn.Module) else ()):
        if p.is_floating_point() and p.dtype != images.dtype:
            raise TypeError(f"images have dtype {images.dtype} but the model's parameter {name!r} "
                            f"has {p.dtype}; cast the model or the images")
        if p.device != images.device:
            raise ValueError(f"images are on {images.device} but the model's parameter {name!r} is "
                             f"on {p.device}; move the model and the images to the same device")
        break  # the first parameter decides, as in extract_aggregate


def check_has_context(requests: Tensor) -> None:
    """Context saliency needs some context: a request must not cover its whole image."""
    full = requests.flatten(1).all(1).nonzero().flatten().tolist()
    if full:
        raise ValueError(f"requests of images {full} cover the whole image: there is no context "
                         "to explain (the context map would be zero everywhere)")
