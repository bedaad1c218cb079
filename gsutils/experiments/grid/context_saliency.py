"""Context saliency of the biased networks: the runs behind Grid Saliency S1.3 and S1.4.

For every biased network of the grid (:func:`gsutils.experiments.grid.segmentation.grid_runs`:
strength x bias digit x bias texture x seed) this module explains, on the
network's *biased* test set (the test split generated with the network's own
bias config, as the paper does), the first ``profile.saliency.images_per_digit``
test images of the network's bias digit and the first
:func:`images_per_other_digit` test images of every other digit with four methods:

* ``"vg"``, ``"sg"``, ``"ig"``: vanilla gradient, SmoothGrad and integrated
  gradients of the request objective (:mod:`gsutils.saliency.gradient`),
  normalised per image by their whole-image maximum and zeroed inside the
  request;
* ``"grid"``: context saliency with the S1.2 settings (:mod:`gsutils.saliency.grid`).

The request of an image is its digit mask ``R`` and its class the digit; the
context is the background. Per image and method it stores CBD
(:func:`gsutils.metrics.context_bias.cbd`), CBL
(:func:`gsutils.metrics.context_bias.cbl` against the background parts that
hold the bias texture, empty maps scored as chance; only meaningful for images
with ``is_biased``) and whether the map is empty
(:func:`gsutils.metrics.context_bias.empty_maps`).

A sensitivity run (:func:`run_fixed_grey`) repeats grid saliency on the bias
digit's images with the grey value fixed (0.5) instead of chosen per image.

Each network's result is one :class:`gsutils.experiments.common.store.Store` entry,
keyed by the network's weights key, the test data and the saliency settings,
so a re-run loads it; each entry records the seconds its computation took.

Command line (``--networks`` and ``--images`` make a run small; it closes
with a line naming the result files)::

    python -m gsutils saliency --profile gpu
    python -m gsutils saliency --networks small/strong-d2-t0/s0 --images 2
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsutils.data.toy import ToyData, make_toy_dataset
from gsutils.experiments.common.store import Store
from gsutils.experiments.grid.context_results import METHODS, ContextSaliencyResults, diagonal_split
from gsutils.experiments.grid.segmentation import SegRun, run_toy_config, grid_runs, train_config, train_or_load
from gsutils.io import config_key
from gsutils.metrics.context_bias import EMPTY_TOL, cbd, cbl, chance_cbl, empty_maps
from gsutils.models.precision import autocast_model, effective_autocast
from gsutils.profiles import Profile, check_profile
from gsutils.saliency.gradient import gradient_context_saliency, request_objective
from gsutils.saliency.grid import GridSaliencyConfig, GridSaliencyResult, context_saliency, segmentation_probs

__all__ = ["METHODS", "METHOD_LABELS", "ContextSaliencyResults", "diagonal_split", "biased_runs",
           "biased_test_set", "collect", "collect_fixed_grey", "explained_model", "saliency_autocast", "result_paths", "run_context_saliency",
           "run_fixed_grey", "select_runs"]

#: method keys (in the order of the supplement's figures) and their labels
METHOD_LABELS: dict[str, str] = {"vg": "VG", "sg": "SG", "ig": "IG", "grid": "Grid"}
#: bump when the computation changes in a way that changes stored results (4: the networks
#: run in the channels-last layout, about 1.3x faster on a CPU, rounding differently)
VERSION = 4
#: every digit other than the bias digit is explained on ``images_per_digit // OTHER_DIGIT_DIVISOR``
#: images (at least one): the off-diagonal CBD pools nine digits, so it still rests on
#: more images than the bias digit's, and the run costs about a third
OTHER_DIGIT_DIVISOR = 4
#: the grey value of the sensitivity run (instead of the per-image choice among ``greys``)
FIXED_GREY = 0.5




def check_biased(run: Any) -> None:
    if not isinstance(run, SegRun):
        raise TypeError(f"run must be a SegRun, got {type(run).__name__}")
    if run.bias.strength == "none":
        raise ValueError(f"run must be a biased network; {run.label} is unbiased")


def biased_runs(profile: Profile) -> list[SegRun]:
    """The biased networks of ``profile``'s grid (the unbiased ones have no bias to detect)."""
    check_profile(profile)
    return [r for r in grid_runs(profile) if r.bias.strength != "none"]


def biased_test_set(profile: Profile, run: SegRun) -> ToyData:
    """The test split generated with ``run``'s own bias config (``profile.toy.n_test`` images)."""
    return make_toy_dataset(run_toy_config(profile, run.bias, run.seed), split="test", n=profile.toy.n_test)


def images_per_other_digit(profile: Profile) -> int:
    """Images explained per digit other than the bias digit (see :data:`OTHER_DIGIT_DIVISOR`)."""
    return max(1, profile.saliency.images_per_digit // OTHER_DIGIT_DIVISOR)


def select_images(digits: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Indices of the first ``counts[d]`` images of each digit ``d`` 0..9, in digit order.

    Raises
    ------
    ValueError
        ``counts`` not ten non-negative ints, or a digit with fewer images than asked for.
    """
    counts = list(counts)
    if len(counts) != 10 or any(not isinstance(c, (int, np.integer)) or c < 0 for c in counts):
        raise ValueError(f"counts must be ten non-negative ints (one per digit), got {counts!r}")
    out = []
    for d in range(10):
        idx = np.flatnonzero(np.asarray(digits) == d)
        if len(idx) < counts[d]:
            raise ValueError(
                f"the test set holds only {len(idx)} images of digit {d}; "
                f"{counts[d]} were asked for: a larger profile.toy.n_test is needed"
            )
        out.append(idx[: counts[d]])
    return np.concatenate(out).astype(np.int64)


def select_per_digit(digits: np.ndarray, per_digit: int) -> np.ndarray:
    """Indices of the first ``per_digit`` images of each digit 0..9, in digit order."""
    if not isinstance(per_digit, (int, np.integer)) or per_digit < 1:
        raise ValueError(f"per_digit must be a positive int, got {per_digit!r}")
    return select_images(digits, [per_digit] * 10)


def explained_counts(profile: Profile, run: SegRun) -> list[int]:
    """Images explained per digit 0..9 for ``run``: more for its bias digit."""
    n_other = images_per_other_digit(profile)
    return [profile.saliency.images_per_digit if d == run.bias.digit else n_other for d in range(10)]


def grid_config(profile: Profile, greys: Sequence[float] | None = None) -> GridSaliencyConfig:
    """The S1.2 grid-saliency settings with the profile's number of steps (and ``greys`` if given)."""
    if greys is None:
        return GridSaliencyConfig(steps=profile.saliency.grid_steps)
    return GridSaliencyConfig(steps=profile.saliency.grid_steps, greys=tuple(greys))


def saliency_key_config(profile: Profile, run: SegRun) -> dict[str, Any]:
    """Everything that determines :func:`run_context_saliency`'s result (its cache key)."""
    check_profile(profile)
    return {
        "what": "context_saliency",
        "version": VERSION,
        "model": config_key(train_config(profile, run)),
        "data": dataclasses.asdict(run_toy_config(profile, run.bias, run.seed)),
        "n_test": profile.toy.n_test,
        "counts": explained_counts(profile, run),
        "saliency": {**{k: v for k, v in dataclasses.asdict(profile.saliency).items() if k != "workers"},
                     "autocast": saliency_autocast(profile)},
        "grid": dataclasses.asdict(grid_config(profile)),
        "empty_tol": EMPTY_TOL,
        "seed": profile.seed,
    }


def saliency_autocast(profile: Profile) -> str | None:
    """The precision the saliency runs use on this machine: ``profile.saliency.autocast`` where the
    profile's device computes it natively, else ``None`` (float32); results are keyed by it."""
    return effective_autocast(profile.saliency.autocast, profile.device)


def explained_model(profile: Profile, run: SegRun, *, progress: bool = False) -> torch.nn.Module:
    """``run``'s trained network as the saliency runs call it: at :func:`saliency_autocast`'s precision,
    in the channels-last layout its training used (a float32 U-Net explains about 1.3x faster in it
    on a CPU than in the default layout; measured on the quick networks)."""
    model = train_or_load(profile, run, progress=progress).to(memory_format=torch.channels_last)
    return autocast_model(model, saliency_autocast(profile))


def _device_of(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def as_tensors(model: torch.nn.Module, sub: ToyData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dev = _device_of(model)
    x = torch.from_numpy(np.ascontiguousarray(sub.images)).to(dev)  # (n, 1, H, W)
    r = torch.from_numpy(sub.digit_mask).to(dev)  # (n, H, W) request = digit
    c = torch.from_numpy(sub.digits).to(dev)  # (n,) request class = digit
    return x, r, c


def _map_metrics(maps: np.ndarray, sub: ToyData) -> dict[str, np.ndarray]:
    """CBD, CBL (empty maps scored as chance) and emptiness of ``maps`` ``(M, n, H, W)``, each ``(M, n)``."""
    req, biased = sub.digit_mask, sub.biased_mask
    return {
        "cbd": np.stack([cbd(m, req) for m in maps]),
        "cbl": np.stack([cbl(m, req, biased, tol=EMPTY_TOL) for m in maps]),
        "empty": np.stack([empty_maps(m, req, EMPTY_TOL) for m in maps]),
    }


def compute_context_saliency(
    model: torch.nn.Module,
    data: ToyData,
    index: np.ndarray,
    *,
    grid: GridSaliencyConfig,
    ig_steps: int,
    sg_samples: int,
    batch_size: int,
    seed: int,
    example_digit: int = 0,
    examples: int = 3,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """All four methods' context maps for ``data[index]`` and their CBD/CBL.

    Returns
    -------
    dict
        ``index``, ``digits``, ``is_biased`` ``(n,)``; ``score`` ``(n,)``, the
        network's mean softmax score of the digit on its mask (near 1
        when the network segments the digit); ``cbd``, ``cbl`` float64 and
        ``empty`` bool ``(4, n)`` in :data:`METHODS` order; ``chance`` ``(n,)``
        (CBL of a uniform map); ``grey``, ``loss``, ``grid_empty`` ``(n,)``
        and ``grid_masks`` ``(n, rows, cols)`` of grid saliency;
        ``example_index`` ``(g,)`` (positions in ``index`` of the first
        ``examples`` images of ``example_digit``) and their maps
        ``example_maps`` float32 ``(4, g, H, W)``; ``seconds`` (the
        computation's wall time).
    """
    t0 = time.perf_counter()
    sub = data.subset(index)
    n = len(sub)
    x_all, r_all, c_all = as_tensors(model, sub)
    maps = np.zeros((len(METHODS), n, *sub.digit_mask.shape[1:]), dtype=np.float32)
    grid_parts: list[GridSaliencyResult] = []
    score = np.zeros(n, dtype=np.float64)  # f_c(x) averaged over R: does the network see the digit?
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * len(METHODS), desc="context saliency", unit="map", leave=False)
    for b0 in range(0, n, batch_size):
        sl = slice(b0, b0 + batch_size)
        x, r, c = x_all[sl], r_all[sl], c_all[sl]  # (b, 1, H, W), (b, H, W), (b,)
        with torch.no_grad():
            score[sl] = request_objective(segmentation_probs(model, x), r, c).cpu().numpy()
        for m, method in enumerate(METHODS[:3]):
            maps[m, sl] = gradient_context_saliency(
                model, x, r, c, method, ig_steps=ig_steps, sg_samples=sg_samples,
                seed=seed + b0, batch_size=batch_size,
            ).cpu().numpy()
            if bar is not None:
                bar.update(len(x))
        res = context_saliency(model, x, r, c, config=grid, batch_size=batch_size)
        maps[3, sl] = res.maps.cpu().numpy()
        grid_parts.append(res)
        if bar is not None:
            bar.update(len(x))
    if bar is not None:
        bar.close()
    g = {k: torch.cat([getattr(p, k) for p in grid_parts]).cpu().numpy()
         for k in ("grey", "loss", "grid_masks")}
    g["grid_empty"] = torch.cat([p.empty for p in grid_parts]).cpu().numpy()
    ex = np.flatnonzero(sub.digits == example_digit)[:examples]
    return {
        "index": np.asarray(index, dtype=np.int64),
        "digits": sub.digits.astype(np.int64),
        "is_biased": sub.is_biased.astype(bool),
        "score": score,
        **_map_metrics(maps, sub),
        "chance": chance_cbl(sub.digit_mask, sub.biased_mask),
        "example_index": ex.astype(np.int64),
        "example_maps": maps[:, ex],
        **g,
        "seconds": np.float64(time.perf_counter() - t0),
    }


def run_context_saliency(profile: Profile, run: SegRun, *, progress: bool = False) -> dict[str, np.ndarray]:
    """The cached result of :func:`compute_context_saliency` for one network of the grid."""
    check_profile(profile)
    check_biased(run)
    s = profile.saliency

    def compute() -> dict[str, np.ndarray]:
        model = explained_model(profile, run, progress=progress)
        data = biased_test_set(profile, run)
        index = select_images(data.digits, explained_counts(profile, run))
        return compute_context_saliency(
            model, data, index, grid=grid_config(profile), ig_steps=s.ig_steps,
            sg_samples=s.sg_samples, batch_size=s.batch_size, seed=profile.seed,
            example_digit=run.bias.digit, examples=s.gallery_images, progress=progress,
        )

    return Store(profile.results_dir).get_or_compute(
        "context_saliency", saliency_key_config(profile, run), compute, fmt="npz")


def fixed_grey_key_config(profile: Profile, run: SegRun, grey: float = FIXED_GREY) -> dict[str, Any]:
    """Everything that determines :func:`run_fixed_grey`'s result (its cache key)."""
    counts = [profile.saliency.images_per_digit if d == run.bias.digit else 0 for d in range(10)]
    return dict(saliency_key_config(profile, run), what="context_saliency_fixed_grey",
                counts=counts, grid=dataclasses.asdict(grid_config(profile, greys=(grey,))))


def result_paths(profile: Profile, run: SegRun, grey: float = FIXED_GREY) -> list[Path]:
    """The store entries of ``run``: :func:`run_context_saliency`'s and :func:`run_fixed_grey`'s ``.npz``."""
    store = Store(profile.results_dir)
    return [store.path("context_saliency", saliency_key_config(profile, run), "npz"),
            store.path("context_saliency_fixed_grey", fixed_grey_key_config(profile, run, grey), "npz")]


def compute_fixed_grey(
    model: torch.nn.Module, data: ToyData, index: np.ndarray, *, grid: GridSaliencyConfig, batch_size: int,
) -> dict[str, np.ndarray]:
    """Grid saliency alone on ``data[index]`` with ``grid``'s greys; CBD, CBL, emptiness ``(n,)``."""
    t0 = time.perf_counter()
    sub = data.subset(index)
    x, r, c = as_tensors(model, sub)
    res = context_saliency(model, x, r, c, config=grid, batch_size=batch_size)
    met = _map_metrics(res.maps.cpu().numpy()[None], sub)
    return {
        "index": np.asarray(index, dtype=np.int64),
        "digits": sub.digits.astype(np.int64),
        "is_biased": sub.is_biased.astype(bool),
        **{k: v[0] for k, v in met.items()},
        "chance": chance_cbl(sub.digit_mask, sub.biased_mask),
        "grey": res.grey.cpu().numpy(),
        "seconds": np.float64(time.perf_counter() - t0),
    }


def run_fixed_grey(profile: Profile, run: SegRun, grey: float = FIXED_GREY) -> dict[str, np.ndarray]:
    """Sensitivity run: grid saliency with the grey value fixed at ``grey`` (cached).

    Explains the same bias-digit images as :func:`run_context_saliency` (the
    first ``images_per_digit`` test images of ``run``'s bias digit) with the
    same settings, except that every image is perturbed with ``grey`` instead
    of the candidate of lowest loss.
    """
    check_profile(profile)
    check_biased(run)
    cfg = grid_config(profile, greys=(grey,))
    conf = fixed_grey_key_config(profile, run, grey)

    def compute() -> dict[str, np.ndarray]:
        model = explained_model(profile, run)
        data = biased_test_set(profile, run)
        return compute_fixed_grey(model, data, select_images(data.digits, conf["counts"]), grid=cfg,
                                  batch_size=profile.saliency.batch_size)

    return Store(profile.results_dir).get_or_compute("context_saliency_fixed_grey", conf, compute, fmt="npz")


def _results(profile: Profile, runs: list[SegRun], results: list, methods: tuple[str, ...]) -> ContextSaliencyResults:
    g = profile.grid
    return ContextSaliencyResults(runs=runs, results=results, bias_digits=tuple(g.bias_digits),
                                  textures=tuple(g.bias_textures),
                                  strengths=tuple(s for s in g.strengths if s != "none"), methods=methods)


def select_runs(profile: Profile, networks: Sequence[str | int] | None = None) -> list[SegRun]:
    """The biased networks named by ``networks``: labels (``small/strong-d2-t0/s0``) or indices into
    :func:`biased_runs` (ints or digit strings), in the order given; ``None``: all of them.

    Raises
    ------
    ValueError
        An unknown label or index, in one line listing the valid ones.
    """
    runs = biased_runs(profile)
    if networks is None:
        return runs
    by_label = {r.label: r for r in runs}
    valid = ", ".join(f"{i} {r.label}" for i, r in enumerate(runs))
    out: list[SegRun] = []
    for n in networks:
        key = str(n).strip()
        if key.isdigit() and int(key) < len(runs):
            run = runs[int(key)]
        elif key in by_label:
            run = by_label[key]
        else:
            why = ("is unbiased: only biased networks are explained" if "/N/" in key
                   else f"is not a biased network of profile {profile.name!r}")
            raise ValueError(f"network {key!r} {why}; give labels or indices among: {valid}")
        if run not in out:
            out.append(run)
    return out


def _compute_task(profile: Profile, run: SegRun, progress: bool = False) -> dict[str, Any]:
    """One network's saliency runs, computed and stored (a Dask worker's task; results are loaded after)."""
    run_context_saliency(profile, run, progress=False)
    return {}


def collect(profile: Profile, *, runs: Sequence[SegRun] | None = None,
            progress: bool = True) -> ContextSaliencyResults:
    """Run (or load) :func:`run_context_saliency` for ``runs`` (default: every biased network of the profile).

    With ``profile.saliency.workers`` above one, the networks whose results are not stored yet are
    computed on a local Dask cluster of that many one-thread processes first (same results).
    """
    runs = biased_runs(profile) if runs is None else list(runs)
    missing = [r for r in runs if not result_paths(profile, r)[0].is_file()]
    if profile.saliency.workers > 1 and len(missing) > 1:
        from gsutils.experiments.common.executor import run_dask

        run_dask(_compute_task, profile, missing, progress=progress,
                 n_workers=min(profile.saliency.workers, len(missing)))
    it = runs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(runs, desc="networks", unit="net")
    results = [run_context_saliency(profile, run, progress=progress) for run in it]
    return _results(profile, runs, results, METHODS)


def collect_fixed_grey(profile: Profile, grey: float = FIXED_GREY, *, runs: Sequence[SegRun] | None = None,
                       progress: bool = True) -> ContextSaliencyResults:
    """Run (or load) :func:`run_fixed_grey` for ``runs`` (default: every biased network; grid saliency only)."""
    runs = biased_runs(profile) if runs is None else list(runs)
    it = runs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(runs, desc=f"grid saliency, grey {grey:g}", unit="net")
    return _results(profile, runs, [run_fixed_grey(profile, run, grey) for run in it], ("grid",))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def main(argv: Sequence[str] | None = None) -> None:
    """Compute the biased networks' context saliency for a profile (all of them: for GPU machines).

    Ends with one line naming the result store entries written (and those
    that were already there and only loaded).
    """
    from gsutils.cli import fail, parse_with_profile
    from gsutils.cli_commands import command_parser

    ap = command_parser("saliency", prog="python -m gsutils.experiments.grid.context_saliency")
    a, prof = parse_with_profile(ap, argv)
    if a.images is not None:
        if a.images < 1:
            fail(ap, f"--images must be at least 1, got {a.images}")
        prof = dataclasses.replace(prof, saliency=dataclasses.replace(prof.saliency, images_per_digit=a.images))
    try:
        runs = select_runs(prof, a.networks)
    except ValueError as err:
        fail(ap, err)
    paths = [p for run in runs for p in result_paths(prof, run)]
    before = {p: _stamp(p) for p in paths}
    res = collect(prof, runs=runs, progress=True)
    collect_fixed_grey(prof, runs=runs, progress=True)
    for s in res.strengths:
        if any(r.bias.strength == s for r in runs):
            on, off = diagonal_split(res.cbd_matrix(s, "grid"), res.bias_digits)
            print(f"{s}: grid CBD on the biased digit {on:.3f}, elsewhere {off:.3f}")
    root = Path(prof.results_dir)
    written = [str(p.relative_to(root)) for p in paths if _stamp(p) != before[p]]
    kept = [str(p.relative_to(root)) for p in paths if _stamp(p) == before[p]]
    line = (f"saliency of {len(runs)} network{'s' * (len(runs) != 1)}: wrote {len(written)} result "
            f"file{'s' * (len(written) != 1)} under {root}" + (f": {', '.join(written)}" if written else ""))
    if kept:
        line += f"; {len(kept)} already there (loaded): {', '.join(kept)}"
    print(line)


if __name__ == "__main__":
    main()
