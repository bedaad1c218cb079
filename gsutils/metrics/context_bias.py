"""Context-bias metrics of Grid Saliency (Hoyer et al., 2019, S1.3 and S1.4).

Both metrics take per-image saliency maps ``S`` ``(N, H, W)``, the request
masks ``R`` and, for CBL, the masks ``B`` of the biased part of the context,
and return one value per image; the chapters average them.

**Context bias detection** (CBD, S1.3): the salient share of the context,

.. math::  \\mathrm{CBD} = \\frac{\\lVert S \\circ (1 - R) \\rVert_1}{\\lVert 1 - R \\rVert_1} .

Grid-saliency maps are preservation masks in ``[0, 1]``, so this is the
(soft) fraction of context pixels the mask keeps. Gradient maps are not
masks: they are first normalised per image to ``[0, 1]`` by their maximum
absolute value over the *whole* image, request region included (see
:func:`gsutils.saliency.gradient.context_maps`); CBD is then the mean
normalised context saliency, i.e. how strong the context evidence is relative
to the strongest evidence anywhere in the image. :func:`cbd` checks that its
maps lie in ``[0, 1]``.

**Context bias localisation** (CBL, S1.4): the share of the context's
saliency mass that falls on the biased part,

.. math::  \\mathrm{CBL} = \\frac{\\lVert S \\circ B \\rVert_1}{\\lVert S \\circ (1 - R) \\rVert_1} ,

a mass ratio, so any non-negative scaling of ``S`` gives the same value. A
map with no context saliency at all has no localisation; it scores
``empty="chance"`` (default): the biased part's share of the context,
``|B| / |1 - R|``, i.e. what a uniform map would score (0.5 for the halves
of the toy data up to the digit's overlap), or ``empty="nan"``.

**Empty maps.** A map is *empty* when its context holds (almost) no saliency:
:func:`empty_maps` flags maps in ``[0, 1]`` whose CBD is at most
:data:`EMPTY_TOL`. Grid saliency returns such maps when the empty mask has
the lowest loss (no context needs to be preserved); a gradient map is empty
only when the gradient vanishes on the context. The chapters report the
empty-map rate, and CBL both with empty maps scored as chance and with them
excluded (``cbl(..., tol=EMPTY_TOL)`` uses the same definition).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EMPTY_TOL", "cbd", "cbl", "chance_cbl", "empty_maps"]

#: a map in ``[0, 1]`` whose mean context saliency (its CBD) is at most this is *empty*
EMPTY_TOL = 1e-6


def _as_array(x: Any, name: str, dtype=None) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be an array (N, H, W), got shape {arr.shape}")
    return arr.astype(dtype) if dtype is not None else arr


def _masks(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = _as_array(x, name)
    if arr.shape != shape:
        raise ValueError(f"{name} must have the maps' shape {shape}, got {arr.shape}")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be a boolean mask (or hold only 0 and 1)")
        arr = arr.astype(bool)
    return arr


def _check_context(requests: np.ndarray) -> np.ndarray:
    """The number of context pixels per image, ``(N,)``; a request covering its whole image raises."""
    n_ctx = (~requests).reshape(len(requests), -1).sum(1)  # (N,)
    if (n_ctx == 0).any():
        raise ValueError(f"requests cover the whole image in images {np.flatnonzero(n_ctx == 0).tolist()}: "
                         "there is no context to measure; give request masks smaller than their images")
    return n_ctx


def cbd(maps: Any, requests: Any) -> np.ndarray:
    """Context bias detection per image, float64 ``(N,)`` in ``[0, 1]``.

    Parameters
    ----------
    maps:
        ``(N, H, W)`` saliency maps with values in ``[0, 1]`` (grid-saliency
        masks, or gradient maps normalised by
        :func:`gsutils.saliency.gradient.context_maps`).
    requests:
        ``(N, H, W)`` request masks ``R``; every image needs some context.

    Raises
    ------
    ValueError
        Shapes differ, maps outside ``[0, 1]`` or not finite, or an image without context.
    """
    s = _as_array(maps, "maps", np.float64)
    if len(s) == 0:
        raise ValueError(f"maps must hold at least one image, got an empty batch of shape {s.shape}")
    r = _masks(requests, "requests", s.shape)
    if not np.isfinite(s).all() or s.min(initial=0.0) < 0 or s.max(initial=0.0) > 1:
        raise ValueError(
            "maps must hold finite values in [0, 1] for CBD (normalise gradient maps first, "
            f"see gsutils.saliency.gradient.context_maps); got range [{s.min()}, {s.max()}]"
        )
    n_ctx = _check_context(r)  # (N,)
    return (s * ~r).reshape(len(s), -1).sum(1) / n_ctx  # (N,)


def chance_cbl(requests: Any, biased: Any) -> np.ndarray:
    """CBL of a uniform map: ``|B \\ R| / |1 - R|`` per image, ``(N,)``."""
    r = _as_array(requests, "requests")
    r = _masks(r, "requests", r.shape)
    b = _masks(biased, "biased", r.shape) & ~r
    n_ctx = (~r).reshape(len(r), -1).sum(1)
    return b.reshape(len(r), -1).sum(1) / np.maximum(n_ctx, 1)


def _has_mass(mass: np.ndarray, n_ctx: np.ndarray, tol: float) -> np.ndarray:
    """Mean context saliency ``mass / n_ctx`` above ``tol`` (for ``tol == 0``: any mass at all,
    compared without dividing, so a subnormal mass is not lost to underflow)."""
    if tol == 0:
        return mass > 0
    return mass / np.maximum(n_ctx, 1) > tol  # the same division as cbd()


def empty_maps(maps: Any, requests: Any, tol: float = EMPTY_TOL) -> np.ndarray:
    """Which maps hold no context saliency, bool ``(N,)``.

    A map is empty when its context saliency mass is at most ``tol`` times
    the number of context pixels, i.e. (for maps in ``[0, 1]``) when its CBD
    is at most ``tol``. ``maps`` are ``(N, H, W)``, non-negative; ``requests``
    the request masks ``R``.
    """
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    s = _as_array(maps, "maps", np.float64)
    r = _masks(requests, "requests", s.shape)
    if not np.isfinite(s).all() or s.min(initial=0.0) < 0:
        raise ValueError(f"maps must be finite and non-negative, got minimum {s.min()}")
    n = len(s)
    mass = (s * ~r).reshape(n, -1).sum(1)  # (N,) context saliency mass
    return ~_has_mass(mass, (~r).reshape(n, -1).sum(1), tol)


def cbl(maps: Any, requests: Any, biased: Any, *, empty: str = "chance", tol: float = 0.0) -> np.ndarray:
    """Context bias localisation per image, float64 ``(N,)`` in ``[0, 1]``.

    Parameters
    ----------
    maps:
        ``(N, H, W)`` non-negative saliency maps (any scale).
    requests:
        ``(N, H, W)`` request masks ``R``.
    biased:
        ``(N, H, W)`` masks ``B`` of the biased part of the context (pixels
        inside ``R`` are ignored).
    empty:
        Value for an image whose map has no context saliency: ``"chance"``
        (:func:`chance_cbl`) or ``"nan"`` (to exclude it from a ``nanmean``).
    tol:
        A map is empty when its context mass is at most ``tol`` times the
        number of context pixels (:func:`empty_maps`); the default 0 means
        exactly no mass. Pass :data:`EMPTY_TOL` for maps in ``[0, 1]``.

    Raises
    ------
    ValueError
        Shapes differ, maps negative or not finite, or an image without
        context (a request covering the whole image, as for :func:`cbd`).
    """
    if empty not in ("chance", "nan"):
        raise ValueError(f"empty must be 'chance' or 'nan', got {empty!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    s = _as_array(maps, "maps", np.float64)
    r = _masks(requests, "requests", s.shape)
    b = _masks(biased, "biased", s.shape) & ~r
    if not np.isfinite(s).all() or s.min(initial=0.0) < 0:
        raise ValueError(f"maps must be finite and non-negative for CBL, got minimum {s.min()}")
    _check_context(r)
    n = len(s)
    total = (s * ~r).reshape(n, -1).sum(1)  # (N,) context saliency mass
    inside = (s * b).reshape(n, -1).sum(1)  # (N,) mass on the biased part
    has_mass = _has_mass(total, (~r).reshape(n, -1).sum(1), tol)  # (N,) not empty (empty_maps)
    fallback = chance_cbl(r, b) if empty == "chance" else np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(has_mass, inside / np.where(has_mass, total, 1.0), fallback)
    return np.clip(out, 0.0, 1.0)
