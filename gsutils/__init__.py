"""gsutils: grid saliency, Extract & Aggregate saliency, and the experiments of the book.

The public entry points (each imports what it needs on first use, so
``import gsutils`` stays light):

* :func:`explain`: context explanations for any torch segmentation model;
* :func:`load_network`: a trained network of a profile's S1.2 bias grid;
* :func:`load_test_set`: that network's test set.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["explain", "load_network", "load_test_set"]

#: the bias strengths of the S1.2 grid's networks
_BIASES = ("strong", "weak", "none")


def __getattr__(name: str):
    """``gsutils.explain`` (imported on first use, so ``import gsutils`` stays light)."""
    if name == "explain":
        from gsutils.saliency.explain import explain

        return explain
    raise AttributeError(f"module 'gsutils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _grid_run(profile: Any, bias: str, digit: int, texture: int, seed: int, device: str):
    """``(profile, run)``: the resolved profile and the network of its grid the arguments name.

    Raises ``ValueError`` (one line, listing what the grid holds) for a
    combination that is not in the profile's grid.
    """
    import dataclasses

    from gsutils.experiments.grid.seg_runs import grid_runs
    from gsutils.profiles import Profile, get_profile, resolve_device

    if isinstance(profile, Profile):
        prof = dataclasses.replace(profile, device=resolve_device(device))
    elif isinstance(profile, str):
        prof = get_profile(profile, device=device)
    else:
        raise TypeError(f"profile must be a profile name ('quick', 'gpu', 'paper') or a Profile, got "
                        f"{type(profile).__name__}")
    if bias not in _BIASES:
        raise ValueError(f"bias must be one of {', '.join(map(repr, _BIASES))}, got {bias!r}")
    for name, value in (("digit", digit), ("texture", texture), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    for run in grid_runs(prof):
        b = run.bias
        if run.seed == seed and b.strength == bias and (
                bias == "none" or (b.digit == digit and b.texture == texture)):
            return prof, run
    g = prof.grid
    asked = f"bias={bias!r}, seed={seed}" if bias == "none" else \
        f"bias={bias!r}, digit={digit}, texture={texture}, seed={seed}"
    raise ValueError(
        f"profile {prof.name!r} has no network {asked}; it has bias in {tuple(g.strengths) + ('none',)}, "
        f"digit in {tuple(g.bias_digits)}, texture in {tuple(g.bias_textures)}, seed in {tuple(g.seeds)} "
        "(digit and texture are ignored for bias='none')")


def load_network(profile: Any = "quick", bias: str = "strong", digit: int = 2, texture: int = 0, seed: int = 0,
                 device: str = "cpu"):
    """The trained U-Net of a profile's S1.2 bias grid, in eval mode on ``device``.

    Example::

        net = gsutils.load_network("quick", bias="strong", digit=2, texture=0)
        data = gsutils.load_test_set("quick", bias="strong", digit=2, texture=0)

    Parameters
    ----------
    profile:
        ``"quick"`` (default; its networks ship in ``checkpoints/quick`` and are
        restored in seconds), ``"gpu"``, ``"paper"`` or a
        :class:`gsutils.profiles.Profile`.
    bias:
        ``"strong"``, ``"weak"`` or ``"none"`` (the unbiased network; ``digit``
        and ``texture`` are then ignored).
    digit, texture:
        The bias digit (0-9) and bias texture (0-4) of the training data.
    seed:
        The network's dataset seed.
    device:
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.

    The network is the one of
    :func:`gsutils.experiments.grid.segmentation.train_or_load`: loaded from the
    results folder, restored from a shipped checkpoint, or else trained
    (which takes long outside the quick profile) and cached.

    Raises
    ------
    ValueError
        A combination that is not in the profile's grid (the message lists
        the grid), or an unknown profile, bias or device.
    """
    prof, run = _grid_run(profile, bias, digit, texture, seed, device)
    from gsutils.experiments.grid import segmentation

    return segmentation.train_or_load(prof, run).eval()


def load_test_set(profile: Any = "quick", bias: str = "strong", digit: int = 2, texture: int = 0, seed: int = 0,
                  device: str = "cpu"):
    """The test set of :func:`load_network`'s network (same arguments), a :class:`gsutils.data.toy.ToyData`.

    A biased network's test set is the test split generated with its own
    bias config (:func:`gsutils.experiments.grid.context_saliency.biased_test_set`,
    what the S1.3-S1.4 chapters explain); for ``bias="none"`` it is the
    unbiased test set every network is evaluated on
    (:func:`gsutils.experiments.grid.segmentation.unbiased_test_set`). Images are
    ``data.images`` ``(N, 1, H, W)`` float32 in ``[0, 1]``, labels
    ``data.labels`` ``(N, H, W)``, digits ``data.digits`` ``(N,)``, digit masks
    ``data.digit_mask`` ``(N, H, W)`` (the request regions). ``device``
    is only checked (the data are numpy arrays).
    """
    prof, run = _grid_run(profile, bias, digit, texture, seed, device)
    if bias == "none":
        from gsutils.experiments.grid import segmentation

        return segmentation.unbiased_test_set(prof)
    from gsutils.experiments.grid import context_saliency

    return context_saliency.biased_test_set(prof, run)
