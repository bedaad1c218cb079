"""Cascading weight randomisation (Adebayo et al., 2018; Rebuffi et al., 2020, Sec. E).

A saliency method that explains the *model* should change when the model's
weights are destroyed. The cascading test re-initialises the network from the
top down, one block at a time, keeping the blocks already randomised, and
compares each stage's saliency map with the trained model's (Spearman rank
correlation, :func:`spearman_rows`).

:func:`cascading_randomization` yields the stages; :data:`RANDOMIZATION_BLOCKS`
names the blocks of the two classifier architectures, top first. A block is
re-initialised with its modules' own ``reset_parameters`` (PyTorch's default
initialisation, as Quantus's ``MPRT`` does), each module under its own seed,
in a forked random state (CPU and the model's devices) that leaves the
caller's untouched. The trained model itself is never modified: each stage is
a copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

#: Blocks of the classifiers, top (output) first; each entry is a list of module-path
#: prefixes whose parameterised modules are re-initialised together.
RANDOMIZATION_BLOCKS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "vgg16": (
        ("classifier", ("classifier",)),
        ("block5", ("features.24", "features.26", "features.28")),
        ("block4", ("features.17", "features.19", "features.21")),
        ("block3", ("features.10", "features.12", "features.14")),
        ("block2", ("features.5", "features.7")),
        ("block1", ("features.0", "features.2")),
    ),
    "resnet50": (
        ("fc", ("fc",)),
        ("layer4", ("layer4",)),
        ("layer3", ("layer3",)),
        ("layer2", ("layer2",)),
        ("layer1", ("layer1",)),
        ("stem", ("conv1", "bn1")),
    ),
}


def _resettable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules with a ``reset_parameters`` method and parameters of their own, in ``named_modules`` order."""
    return [(n, m) for n, m in model.named_modules()
            if n and hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))]


def layer_blocks(model: nn.Module) -> list[tuple[str, tuple[str, ...]]]:
    """One block per parameterised module, top first (Quantus ``MPRT``'s ``top_down`` order)."""
    return [(n, (n,)) for n, _ in reversed(_resettable(model))]


def _block_modules(model: nn.Module, prefixes: Sequence[str]) -> list[tuple[str, nn.Module]]:
    mods = _resettable(model)
    out = [(n, m) for n, m in mods if any(n == p or n.startswith(p + ".") for p in prefixes)]
    if not out:
        raise ValueError(f"no module with parameters under {list(prefixes)}; module paths of the model "
                         f"with parameters: {[n for n, _ in mods][:20]}")
    return out


def default_module_seed(seed: int) -> Callable[[str], int]:
    """Seeds per module path: a stable hash of ``(seed, path)``."""
    import zlib

    return lambda name: (int(seed) * 1_000_003 + zlib.crc32(name.encode())) & ((1 << 63) - 1)


def cascading_randomization(
    model: nn.Module,
    blocks: Sequence[tuple[str, Sequence[str]]],
    *,
    seed: int = 0,
    module_seed: Callable[[str], int] | None = None,
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(block name, model)`` with the blocks re-initialised cumulatively, top first.

    Parameters
    ----------
    model:
        The trained network; it is copied once and never modified.
    blocks:
        ``[(name, module-path prefixes), ...]`` in the order to randomise
        (top first for the cascading test), e.g. ``RANDOMIZATION_BLOCKS["vgg16"]``
        or :func:`layer_blocks` (one module at a time).
    seed, module_seed:
        Each module is re-initialised right after seeding, with
        ``module_seed(path)`` (default :func:`default_module_seed` of ``seed``),
        the CPU generator and the generators of the CUDA (or MPS) devices the
        model's parameters live on (what ``torch.manual_seed`` would set for
        them). All of them are forked: the caller's random state, CPU and
        device, is left as it was, and no other device's generator is touched.

    Yields
    ------
    (str, torch.nn.Module)
        The block just randomised and the *same* copy, now with every block up
        to and including it re-initialised (copy it if you keep it past the
        next iteration). The copy keeps the original's training flags.
    """
    import copy

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if len(blocks) == 0:
        raise ValueError("blocks is empty: name at least one block to randomise")
    seeds = module_seed or default_module_seed(seed)
    work = copy.deepcopy(model)
    cuda = sorted({p.device.index or 0 for p in work.parameters() if p.device.type == "cuda"})
    mps = any(p.device.type == "mps" for p in work.parameters())
    for name, prefixes in blocks:
        if isinstance(prefixes, str):
            raise TypeError(f"block {name!r}: give its module paths as a sequence of strings, not one string")
        # torch.manual_seed would reseed every device's generator, and fork_rng restores only these
        mps_state = torch.mps.get_rng_state() if mps else None
        try:
            with torch.random.fork_rng(devices=cuda, device_type="cuda"):
                for path, module in _block_modules(work, prefixes):
                    s = int(seeds(path))
                    torch.default_generator.manual_seed(s)
                    for d in cuda:
                        torch.cuda.default_generators[d].manual_seed(s)
                    if mps:
                        torch.mps.manual_seed(s)
                    module.reset_parameters()
        finally:
            if mps_state is not None:
                torch.mps.set_rng_state(mps_state)
        yield name, work


def spearman_rows(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Spearman rank correlation (the statistic) of each row of ``a`` with the same row of ``b``.

    Ties get their average rank; a row where either side is constant gives NaN.

    Parameters
    ----------
    a, b:
        ``(P, D)`` (``P`` maps flattened to ``D`` values), or ``(P, ...)``, flattened here.

    Returns
    -------
    numpy.ndarray
        ``(P,)`` float64 correlations.
    """
    a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must have the same shape (P, ...), got {a.shape} and {b.shape}")
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    ra = rankdata(a, axis=1)  # (P, D)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))  # (P,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / den, np.nan)


__all__ = [
    "RANDOMIZATION_BLOCKS",
    "layer_blocks",
    "cascading_randomization",
    "default_module_seed",
    "spearman_rows",
]
