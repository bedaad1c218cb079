"""Extract & Aggregate: backpropagation saliency at any layer, many layers per pass.

Rebuffi et al. (2020) describe backpropagation saliency methods as two steps:
*extract* the activations ``x`` and the backward signal ``g`` at a layer, and
*aggregate* them over channels into one value per spatial location; the map
is then upsampled to the image. This module is that engine:

1. hook the modules named by their paths (``features.29``, ``layer4``; the
   string ``"input"`` names the image itself),
2. run the forward pass once and a backward signal once per *kind* of
   backward pass (plain gradient, guided backprop, excitation backprop and its
   contrast), which gives ``x`` and ``g`` at every hooked layer at once,
3. turn each ``(x, g)`` into a map per location with the method's
   aggregation, and upsample it bilinearly to the input size.

The backward signal is the one-hot vector of the target class on the model's
output (the logits), as in TorchRay's ``get_backward_gradient``: for each
image ``n``, ``g = d logits[n, target[n]] / d activation``. Images of a batch
do not interact (the model runs in evaluation mode).

The methods, their backward-pass kinds and their reductions over channels
are registered in :mod:`gsutils.saliency.aggregations` (:data:`REGISTRY`,
each with its formula and source): gradient, gradient sum, guided backprop,
Grad-CAM, linear approximation, NormGrad (virtual identity), NormGrad of a
convolution's own weights, selective NormGrad, excitation backprop and its
contrastive variant.

The reductions of gradient, guided backprop, Grad-CAM, linear approximation
and (contrastive) excitation backprop follow TorchRay's exactly (the
cross-check in ``tests/test_torchray_crosscheck.py`` compares the maps).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from gsutils.saliency._checks import ClassIndex
from gsutils.saliency.aggregations import (
    METHODS,
    REGISTRY,
    conv_patch_sq_norms,
    methods_of_kind,
    normgrad_conv_map,
    normgrad_map,
)
from gsutils.saliency.modified_backprop import ExcitationMode, GuidedReLUMode, RuleState

#: The layer path that names the model's input.
INPUT = "input"



# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------


def layer_names(model: nn.Module) -> list[str]:
    """The valid layer paths of ``model``: ``"input"`` then every named submodule.

    Parameters
    ----------
    model:
        Any :class:`torch.nn.Module`.

    Returns
    -------
    list of str
        ``["input", "features", "features.0", ...]`` in ``named_modules`` order.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [INPUT] + [name for name, _ in model.named_modules() if name]


def _as_name_list(value: str | Sequence[str], what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a string or a sequence of strings, got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{what} must not be empty")
    return list(dict.fromkeys(value))  # unique, in the given order


def _resolve_layers(model: nn.Module, layers: str | Sequence[str]) -> dict[str, nn.Module | None]:
    """``{path: module}`` (``None`` for the input); unknown paths raise ValueError."""
    names = _as_name_list(layers, "layers")
    modules = dict(model.named_modules())
    unknown = [n for n in names if n != INPUT and (n == "" or n not in modules)]
    if unknown:
        raise ValueError(
            f"unknown layer path(s) {unknown} in layers; valid paths are: "
            + ", ".join(repr(n) for n in layer_names(model))
        )
    return {n: (None if n == INPUT else modules[n]) for n in names}


def _resolve_methods(methods: str | Sequence[str]) -> list[str]:
    names = _as_name_list(methods, "methods")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown} in methods; choose from {', '.join(METHODS)}")
    return names


def _classifier(model: nn.Module, classifier_layer: str | None) -> tuple[str, nn.Module]:
    """The classifier layer: the given path, or the last Linear/Conv module with a weight."""
    modules = dict(model.named_modules())
    if classifier_layer is not None:
        if classifier_layer not in modules or classifier_layer == "":
            raise ValueError(
                f"unknown classifier_layer {classifier_layer!r}; valid paths are: "
                + ", ".join(repr(n) for n in layer_names(model)[1:])
            )
        module = modules[classifier_layer]
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            raise ValueError(
                f"classifier_layer {classifier_layer!r} is a {type(module).__name__}; "
                "contrastive excitation backprop needs a Linear or Conv layer"
            )
        return classifier_layer, module
    found = [(n, m) for n, m in modules.items()
             if n and isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    if not found:
        raise ValueError("contrastive excitation backprop needs a Linear or Conv classifier layer; "
                         "the model has none")
    return found[-1]


# --------------------------------------------------------------------------------------
# Input checks and model state
# --------------------------------------------------------------------------------------


def _check_input(model: nn.Module, x: torch.Tensor) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError("x holds no image (batch size 0)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite; it holds NaN or infinite values")
    for name, p in model.named_parameters():
        if p.device != x.device:
            raise ValueError(f"x is on {x.device} but the model's parameter {name!r} is on "
                             f"{p.device}; move the model and x to the same device")
        if p.is_floating_point() and p.dtype != x.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the model's parameter {name!r} has "
                            f"{p.dtype}; cast one of them")
        break


def _target_signal(logits: torch.Tensor, target: ClassIndex) -> torch.Tensor:
    """The one-hot backward signal of ``target`` on ``logits`` ``(N, K, *spatial)``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() < 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits of shape (N, K) (or (N, K, ...)), got {shape}")
    n, k = logits.shape[:2]
    if isinstance(target, bool):
        raise TypeError(f"target must be an int or a (N,) tensor of class indices, got {target!r}")
    if isinstance(target, int):
        idx = torch.full((n,), target, dtype=torch.long, device=logits.device)
    else:
        try:
            idx = torch.as_tensor(target, device=logits.device)
        except (TypeError, ValueError) as err:
            raise TypeError(f"target must be an int or a (N,) tensor of class indices, got {target!r}") from err
        if idx.is_floating_point() or idx.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got dtype {idx.dtype}")
        if idx.dim() == 0:
            idx = idx.expand(n)
        if idx.shape != (n,):
            raise ValueError(f"target must be an int or have shape ({n},) for {n} images, "
                             f"got shape {tuple(idx.shape)}")
        idx = idx.long()
    bad = (idx < 0) | (idx >= k)
    if bool(bad.any()):
        raise ValueError(f"target out of range: got {idx[bad].tolist()}, the model has {k} classes "
                         f"(valid indices 0..{k - 1})")
    signal = torch.zeros_like(logits)  # (N, K, *spatial)
    index = idx.view(n, 1, *([1] * (logits.dim() - 2))).expand(n, 1, *logits.shape[2:])
    return signal.scatter_(1, index, 1.0)


@contextlib.contextmanager
def _evaluation(model: nn.Module) -> Iterator[None]:
    """Evaluation mode and gradients on; every module's training flag restored after."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.enable_grad():
            yield
    finally:
        for m, flag in flags:
            m.training = flag


# --------------------------------------------------------------------------------------
# Extraction: hooks that record activations (and convolution patch norms)
# --------------------------------------------------------------------------------------


@dataclass
class _Record:
    """What the forward pass left at the hooked layers."""

    acts: dict[str, torch.Tensor] = field(default_factory=dict)
    #: conv layers: squared input-patch norm per group and output location, (N, G, H', W')
    patch_sq: dict[str, torch.Tensor] = field(default_factory=dict)
    #: forward order of each hooked layer's (last) call
    order: dict[str, int] = field(default_factory=dict)
    classifier_order: int | None = None
    calls: int = 0


@contextlib.contextmanager
def _recording(
    layers: dict[str, nn.Module | None],
    conv_layers: set[str],
    classifier: nn.Module | None,
) -> Iterator[_Record]:
    """Forward hooks that record each layer's output; removed on exit.

    Each hook stores the module's output and hands a clone on to the rest of
    the network, so a later in-place operation (``ReLU(inplace=True)`` after a
    convolution) cannot change the recorded activation or its gradient.
    """
    rec = _Record()
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output):
            if not isinstance(output, torch.Tensor) or output.dim() != 4 or not output.is_floating_point():
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise ValueError(
                    f"layer {name!r} ({type(module).__name__}) outputs {shape}; Extract & Aggregate "
                    "needs a floating-point (N, C, H, W) activation at the layer"
                )
            rec.acts[name] = output  # (N, C, H, W)
            rec.order[name] = rec.calls
            rec.calls += 1
            if name in conv_layers:
                with torch.no_grad():
                    rec.patch_sq[name] = conv_patch_sq_norms(module, inputs[0])
            return output.clone()

        return hook

    def classifier_hook(module: nn.Module, inputs: tuple) -> None:
        rec.classifier_order = rec.calls
        rec.calls += 1

    try:
        for name, module in layers.items():
            if module is not None:
                handles.append(module.register_forward_hook(make_hook(name)))
        if classifier is not None:
            handles.append(classifier.register_forward_pre_hook(classifier_hook))
        yield rec
    finally:
        for h in handles:
            h.remove()


def _forward(
    model: nn.Module,
    x: torch.Tensor,
    layers: dict[str, nn.Module | None],
    conv_layers: set[str],
    mode: contextlib.AbstractContextManager,
    classifier: nn.Module | None = None,
) -> tuple[torch.Tensor, _Record]:
    """One forward pass with recording hooks (and ``mode`` active); returns logits and records."""
    x_in = x.detach().clone().requires_grad_(True)  # (N, C, H, W): the "input" layer's activation
    with _recording(layers, conv_layers, classifier) as rec:
        with mode:
            logits = model(x_in.clone())  # the clone keeps x_in intact under in-place first layers
    if INPUT in layers:
        rec.acts[INPUT] = x_in
        rec.order[INPUT] = -1
    missing = [n for n in layers if n not in rec.acts]
    if missing:
        raise ValueError(f"layer(s) {missing} were not called in the model's forward pass; "
                         "choose layers the forward pass runs through")
    return logits, rec


def _backward(logits: torch.Tensor, signal: torch.Tensor, acts: dict[str, torch.Tensor],
              retain: bool) -> dict[str, torch.Tensor]:
    """``d <signal, logits> / d act`` at every recorded layer, in one backward pass."""
    names = list(acts)
    grads = torch.autograd.grad(logits, [acts[n] for n in names], grad_outputs=signal,
                                retain_graph=retain, allow_unused=True)
    # a layer the logits do not depend on has an all-zero gradient
    return {n: (torch.zeros_like(acts[n]) if g is None else g) for n, g in zip(names, grads)}


# --------------------------------------------------------------------------------------
# Aggregation: (x, g) -> one value per location
# --------------------------------------------------------------------------------------



# --------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------


def extract_aggregate(
    model: nn.Module,
    x: torch.Tensor,
    target: ClassIndex,
    layers: str | Sequence[str],
    methods: str | Sequence[str],
    *,
    resize: bool = True,
    classifier_layer: str | None = None,
) -> dict[tuple[str, str], torch.Tensor]:
    """Saliency maps of several methods at several layers, with few backward passes.

    One forward pass and one backward pass give the activations and gradients
    at every requested layer for all the plain-gradient methods; guided
    backprop adds one backward pass (sharing that forward pass); excitation
    backprop needs its own forward pass and one backward pass, and its
    contrastive variant one more backward pass (the signal from the negated
    classifier; the contrastive map is the difference, by linearity of the
    excitation rules in the signal). The model's parameters, ``requires_grad``
    flags, gradients and training flags are left as they were; no hook or
    modified rule stays installed after the call.

    Parameters
    ----------
    model:
        A classifier returning logits ``(N, K)`` (or ``(N, K, ...)``). It is
        run in evaluation mode for the call.
    x:
        Input images ``(N, C, H, W)`` on the model's device and dtype.
    target:
        The class to explain: an int for every image, or ``(N,)`` indices.
        The backward signal is the one-hot vector of that class on the logits.
    layers:
        Layer paths (see :func:`layer_names`): module names such as
        ``"features.29"`` or ``"layer4"``, or ``"input"``. A module's output is
        used (the last call's, if it runs several times). It must be a
        ``(N, C, H, W)`` tensor.
    methods:
        Names from :data:`METHODS`. ``"normgrad_conv"`` needs every layer to be
        a :class:`torch.nn.Conv2d`; ``"contrastive_excitation_backprop"`` needs
        layers computed before the classifier layer.
    resize:
        Upsample every map bilinearly to ``(H, W)`` of ``x`` (default); else
        return it at the layer's resolution.
    classifier_layer:
        Contrastive excitation backprop only: the path of the last linear
        layer, whose weights are negated for the contrast signal (default: the
        last Linear or Conv module, as in TorchRay). The contrast is taken at
        that layer's input.

    Returns
    -------
    dict
        ``{(method, layer): map}``, each map ``(N, 1, H, W)`` (or the layer's
        ``(N, 1, h, w)`` when ``resize=False``), on ``x``'s device, in ``x``'s dtype.

    Raises
    ------
    ValueError
        Unknown layer path or method (the message lists the valid ones); a
        method that needs a convolution at another layer; ``x`` not
        ``(N, C, H, W)``; ``target`` out of range; a layer whose output is not
        ``(N, C, H, W)`` or that the forward pass does not reach.
    TypeError
        ``x`` or ``target`` of the wrong type, or ``x`` of another dtype than the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    method_list = _resolve_methods(methods)
    layer_map = _resolve_layers(model, layers)
    _check_input(model, x)
    if not isinstance(resize, bool):
        raise TypeError(f"resize must be a bool, got {resize!r}")
    conv_layers: set[str] = set()
    if any(REGISTRY[m].needs_conv for m in method_list):
        bad = {n: ("the input" if m is None else type(m).__name__)
               for n, m in layer_map.items() if not isinstance(m, nn.Conv2d)}
        if bad:
            raise ValueError(
                f"method 'normgrad_conv' needs Conv2d layers, but {bad} are not convolutions; "
                "use 'normgrad' (the identity trick) there, or pick Conv2d layers such as "
                + ", ".join(repr(n) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
            )
        conv_layers = set(layer_map)

    want_plain = [m for m in method_list if m in methods_of_kind("gradient")]
    want_guided = "guided_backprop" in method_list
    want_eb = "excitation_backprop" in method_list
    want_ceb = "contrastive_excitation_backprop" in method_list
    maps: dict[tuple[str, str], torch.Tensor] = {}

    with _evaluation(model):
        if want_plain or want_guided:
            state = RuleState()
            mode = GuidedReLUMode(state) if want_guided else contextlib.nullcontext()
            logits, rec = _forward(model, x, layer_map, conv_layers, mode)
            signal = _target_signal(logits, target)
            if want_plain:
                grads = _backward(logits, signal, rec.acts, retain=want_guided)
                for method in want_plain:
                    spec = REGISTRY[method]
                    for name in layer_map:
                        xin = rec.patch_sq[name] if spec.needs_conv else rec.acts[name]
                        maps[method, name] = spec.reduce(xin, grads[name])
            if want_guided:
                state.guided = True
                grads = _backward(logits, signal, rec.acts, retain=False)
                for name in layer_map:
                    maps["guided_backprop", name] = REGISTRY["guided_backprop"].reduce(rec.acts[name], grads[name])
            del logits, rec

        if want_eb or want_ceb:
            state = RuleState()
            cls_module = None
            if want_ceb:
                cls_name, cls_module = _classifier(model, classifier_layer)
            mode = ExcitationMode(state, None if cls_module is None else cls_module.weight)
            logits, rec = _forward(model, x, layer_map, set(), mode, classifier=cls_module)
            signal = _target_signal(logits, target)
            if want_ceb:
                if rec.classifier_order is None:
                    raise ValueError(f"the classifier layer {cls_name!r} was not called in the forward pass")
                late = [n for n in layer_map if rec.order[n] >= rec.classifier_order]
                if late:
                    raise ValueError(
                        f"contrastive excitation backprop contrasts at the input of the classifier "
                        f"layer {cls_name!r}; layer(s) {late} come after it"
                    )
            grads = _backward(logits, signal, rec.acts, retain=want_ceb)
            if want_eb:
                for name in layer_map:
                    maps["excitation_backprop", name] = REGISTRY["excitation_backprop"].reduce(
                        rec.acts[name], grads[name])
            if want_ceb:
                state.negate_classifier = True
                contrast = _backward(logits, signal, rec.acts, retain=False)
                for name in layer_map:
                    diff = grads[name] - contrast[name]  # (N, C, h, w): EB signal minus contrast
                    maps["contrastive_excitation_backprop", name] = REGISTRY[
                        "contrastive_excitation_backprop"].reduce(rec.acts[name], diff)
            del logits, rec

    out: dict[tuple[str, str], torch.Tensor] = {}
    size = tuple(x.shape[-2:])
    for method in method_list:
        for name in layer_map:
            m = maps[method, name].detach()  # (N, 1, h, w)
            if resize and tuple(m.shape[-2:]) != size:
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)  # (N, 1, H, W)
            out[method, name] = m
    return out


def saliency(
    model: nn.Module,
    x: torch.Tensor,
    target: ClassIndex,
    layer: str,
    method: str,
    resize: bool = True,
    *,
    classifier_layer: str | None = None,
) -> torch.Tensor:
    """One saliency map: :func:`extract_aggregate` for a single layer and method.

    Returns
    -------
    torch.Tensor
        ``(N, 1, H, W)`` (or the layer's size when ``resize=False``).
    """
    if not isinstance(layer, str) or not isinstance(method, str):
        raise TypeError(f"layer and method must be strings, got {layer!r} and {method!r}")
    return extract_aggregate(model, x, target, [layer], [method], resize=resize,
                             classifier_layer=classifier_layer)[method, layer]


__all__ = ["METHODS", "REGISTRY", "INPUT", "layer_names", "extract_aggregate", "saliency",
           "normgrad_map", "normgrad_conv_map", "conv_patch_sq_norms"]
