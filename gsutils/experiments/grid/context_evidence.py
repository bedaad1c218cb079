"""Evidence behind the S1.3/S1.4 results: what the network does with the context.

* :func:`context_scores`: the bias digit's score with its biased context, with
  an ordinary context (no bias texture anywhere) and with the context replaced
  by each grey value grid saliency may choose. Grid saliency can only mark
  context as salient when removing it (with the chosen grey) lowers the score;
  these numbers say whether it does.
* :func:`gallery_views`: the panels of Fig. S13 for a few test images
  (a :class:`GalleryViews`).
* :func:`example_maps`: one stored example map per method and network of a
  bias strength (a :class:`ExampleMaps`).

The first two are cached in the result store next to the saliency runs;
:class:`GalleryViews` converts to and from its stored form, the arrays of an
``.npz`` (:meth:`GalleryViews.to_arrays` / :meth:`GalleryViews.from_arrays`),
which is the form the string-keyed dict it replaces had, so cached entries
stay valid. The context scores stay a mapping: one score per context, keyed
by the context's name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from gsutils.data.toy import BiasConfig, ToyData, make_toy_dataset
from gsutils.experiments.common.store import Store
from gsutils.experiments.grid.context_saliency import (
    check_biased,
    as_tensors,
    explained_model,
    biased_test_set,
    grid_config,
    saliency_key_config,
)
from gsutils.experiments.grid.segmentation import SegRun, run_toy_config
from gsutils.profiles import Profile, check_profile
from gsutils.saliency.gradient import request_objective
from gsutils.saliency.grid import context_saliency, saliency_views, segmentation_probs

__all__ = ["ExampleMaps", "GalleryViews", "compute_context_scores", "context_scores", "example_maps",
           "gallery_views", "ordinary_test_set"]


@dataclass(frozen=True, eq=False)
class GalleryViews:
    """The panels of Fig. S13 for ``g`` test images (``K`` classes, side ``H`` x ``W``).

    The first seven fields are :func:`gsutils.saliency.grid.saliency_views`'s
    arrays (as numpy). Compared by identity (it holds arrays).
    """

    #: ``(g, 1, H, W)`` the images
    input: np.ndarray
    #: ``(g, K, H, W)`` the network's softmax on them
    input_probs: np.ndarray
    #: ``(g, 1, H, W)`` the context replaced by the chosen grey (``M = 0``)
    perturbed: np.ndarray
    #: ``(g, K, H, W)`` the softmax on it
    perturbed_probs: np.ndarray
    #: ``(g, 1, H, W)`` the optimised image ``x'(M*)``
    optimised: np.ndarray
    #: ``(g, K, H, W)`` the softmax on it
    optimised_probs: np.ndarray
    #: ``(g, H, W)`` the saliency maps
    map: np.ndarray
    #: ``(g,)`` each image's digit (the request's class)
    digits: np.ndarray
    #: ``(g, H, W)`` bool the request masks (the digits' pixels)
    request: np.ndarray
    #: ``(g, H, W)`` bool the parts of the context holding the bias texture
    biased: np.ndarray
    #: ``(g,)`` the grey value grid saliency chose per image
    grey: np.ndarray
    #: ``(g,)`` bool whether the map is empty
    empty: np.ndarray

    def __post_init__(self) -> None:
        g = len(self.digits)
        wrong = [f.name for f in fields(self) if len(getattr(self, f.name)) != g]
        if wrong:
            raise ValueError(f"{wrong} do not hold one row per image ({g})")

    @property
    def n_images(self) -> int:
        """The number of images ``g``."""
        return len(self.digits)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> GalleryViews:
        """From the stored form: one array per field, under the field's name."""
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls)})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The stored form (see :meth:`from_arrays`), in the fields' order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class ExampleMaps:
    """One explained image of the bias digit per network, with every method's stored map of it.

    For :func:`gsutils.plots.context.plot_method_maps`. Compared by identity (it holds arrays).
    """

    #: ``(n, 1, H, W)`` the images, one per network
    images: np.ndarray
    #: per method: ``(n, H, W)`` its maps
    maps: dict[str, np.ndarray]
    #: ``(n, H, W)`` bool the parts of the context holding the bias texture
    biased: np.ndarray
    #: per image: its network (``"t<texture> d<digit> s<seed>"``)
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        n = len(self.images)
        if len(self.biased) != n or len(self.labels) != n or any(len(v) != n for v in self.maps.values()):
            raise ValueError(f"biased, labels and maps need one entry per image ({n})")


def ordinary_test_set(profile: Profile, run: SegRun) -> ToyData:
    """``run``'s test split with the bias texture nowhere: the same digits and crops, ordinary textures.

    Generated with the exclusive (strong) bias config of ``run``'s digit and
    texture at probability 0: the bias texture is out of the texture pool and
    no image gets it. :func:`compute_context_scores` takes from it only the
    pixels that replace the bias texture.
    """
    b = run.bias
    none = BiasConfig(strength="strong", digit=b.digit, texture=b.texture, probability=0.0)
    return make_toy_dataset(run_toy_config(profile, none, run.seed), split="test", n=profile.toy.n_test)


def compute_context_scores(
    model: torch.nn.Module, biased: ToyData, ordinary: ToyData, index: np.ndarray, greys: Sequence[float],
) -> dict[str, float]:
    """Mean score of each image's digit on its mask, for ``biased[index]`` in several contexts.

    ``biased`` and ``ordinary`` must hold the same digits and crops at
    ``index`` (:func:`ordinary_test_set`; the request masks are ``biased``'s).
    Keys: ``"biased context"`` (the image as it is), ``"ordinary context"``
    (the same image with the pixels of its bias-texture parts, ``biased_mask``,
    taken from ``ordinary``: digit and other parts unchanged, the bias texture
    replaced by an ordinary one), ``"grey <a>"`` for each grey value ``a``
    (the whole context replaced by ``a``, the ``M = 0`` perturbation of grid
    saliency) and ``"bias part kept"`` (only the digit and the bias-texture
    part kept, the rest set to the grey that scores best: what a mask exactly
    on the biased part would preserve).
    """
    if not np.array_equal(biased.digits[index], ordinary.digits[index]):
        raise ValueError("biased and ordinary must hold the same digits at index")
    sub = biased.subset(index)
    x, r, c = as_tensors(model, sub)
    x_other = torch.from_numpy(np.ascontiguousarray(ordinary.images[index])).to(x.device)  # (n, 1, H, W)
    b = torch.from_numpy(sub.biased_mask).to(x.device)[:, None]  # (n, 1, H, W) bias-texture pixels
    x_ord = torch.where(b, x_other, x)  # only the bias texture re-filled

    def score(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float(request_objective(segmentation_probs(model, images), r, c).mean())

    out = {"biased context": score(x), "ordinary context": score(x_ord)}
    for a in greys:
        out[f"grey {a:g}"] = score(torch.where(r[:, None], x, torch.full_like(x, a)))  # context -> grey
    best = max(greys, key=lambda a: out[f"grey {a:g}"])  # the grey that keeps the score best
    keep = r[:, None] | b  # (n, 1, H, W) digit and bias-texture part
    out["bias part kept"] = score(torch.where(keep, x, torch.full_like(x, best)))
    return out


def context_scores(profile: Profile, run: SegRun, *, n_images: int | None = None) -> dict[str, float]:
    """How the bias digit's score depends on its context (cached): a diagnostic for grid saliency.

    For the first ``n_images`` (default ``profile.saliency.images_per_digit``,
    the images the chapters explain) test images of ``run``'s bias digit:
    :func:`compute_context_scores` with the biased test set, the
    :func:`ordinary_test_set` and the candidate greys of grid saliency. A
    network that relies on the bias scores the digit lower in an ordinary
    context; if some grey value keeps the score as high as the biased context,
    grid saliency chooses it and finds no context to preserve.
    """
    check_profile(profile)
    check_biased(run)
    n = profile.saliency.images_per_digit if n_images is None else n_images
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n_images must be a positive int, got {n!r}")
    greys = grid_config(profile).greys
    conf = dict(saliency_key_config(profile, run), what="context_scores", scores_version=2, n_images=n,
                ordinary=dataclasses.asdict(run_toy_config(profile, BiasConfig(
                    strength="strong", digit=run.bias.digit, texture=run.bias.texture, probability=0.0),
                    run.seed)))

    def compute() -> dict[str, float]:
        model = explained_model(profile, run)
        biased = biased_test_set(profile, run)
        sel = np.flatnonzero(biased.digits == run.bias.digit)[:n]
        return compute_context_scores(model, biased, ordinary_test_set(profile, run), sel, greys)

    return Store(profile.results_dir).get_or_compute("context_scores", conf, compute)


def gallery_views(profile: Profile, run: SegRun, *, n_bias: int | None = None, n_other: int = 1) -> GalleryViews:
    """The panels of Fig. S13 for test images of ``run``'s biased test set (cached).

    Takes the first ``n_bias`` images of the bias digit (default
    ``profile.saliency.gallery_images``) and the first image of each of the
    next ``n_other`` digits, and returns :func:`gsutils.saliency.grid.saliency_views`'s
    arrays (as numpy) with the digits, request masks, bias-texture parts, greys
    and empty flags. Cached as :meth:`GalleryViews.to_arrays`.
    """
    check_profile(profile)
    check_biased(run)
    n_bias = profile.saliency.gallery_images if n_bias is None else n_bias
    if n_bias < 1 or n_other < 0:
        raise ValueError(f"n_bias must be >= 1 and n_other >= 0, got {n_bias}, {n_other}")
    conf = dict(saliency_key_config(profile, run), what="context_saliency_gallery",
                n_bias=n_bias, n_other=n_other)

    def compute() -> dict[str, np.ndarray]:
        model = explained_model(profile, run)
        data = biased_test_set(profile, run)
        d = run.bias.digit
        idx = list(np.flatnonzero(data.digits == d)[:n_bias])
        for k in range(1, n_other + 1):
            idx.append(int(np.flatnonzero(data.digits == (d + k) % 10)[0]))
        sub = data.subset(np.asarray(idx))
        x, r, c = as_tensors(model, sub)  # (g, 1, H, W), (g, H, W), (g,)
        res = context_saliency(model, x, r, c, config=grid_config(profile))
        views = {k: v.numpy() for k, v in saliency_views(model, x, r, res).items()}
        return GalleryViews(**views, digits=sub.digits, request=sub.digit_mask, biased=sub.biased_mask,
                            grey=res.grey.cpu().numpy(), empty=res.empty.cpu().numpy())

    return GalleryViews.from_arrays(Store(profile.results_dir).get_or_compute(
        "context_saliency_gallery", conf, lambda: compute().to_arrays(), fmt="npz"))


def example_maps(profile: Profile, results: Any, strength: str, *, example: int = 0) -> ExampleMaps:
    """One explained image of the bias digit per network of ``strength`` (one row per bias texture).

    The maps are the example maps the saliency runs stored; for
    :func:`gsutils.plots.context.plot_method_maps`.
    """
    images, biased, labels = [], [], []
    maps: dict[str, list[np.ndarray]] = {m: [] for m in results.methods}
    for run, res in zip(results.runs, results.results):
        if run.bias.strength != strength or len(res["example_index"]) <= example:
            continue
        data = biased_test_set(profile, run)
        i = int(res["index"][res["example_index"][example]])
        images.append(data.images[i])
        biased.append(data.biased_mask[i])
        labels.append(f"t{run.bias.texture} d{run.bias.digit} s{run.seed}")
        for k, m in enumerate(results.methods):
            maps[m].append(res["example_maps"][k, example])
    if not images:
        raise ValueError(f"no stored example maps for {strength!r} bias")
    return ExampleMaps(images=np.stack(images), maps={m: np.stack(v) for m, v in maps.items()},
                       biased=np.stack(biased), labels=labels)
