"""Context saliency of the biased networks: the runs behind Grid Saliency S1.3 and S1.4.

For every biased network of the grid (:func:`gsutils.experiments.segmentation.grid_runs`:
strength x bias digit x bias texture x seed) this module explains, on the
network's *biased* test set (the test split generated with the network's own
bias config, as the paper does), the first ``profile.saliency.images_per_digit``
test images of each digit with four methods:

* ``"vg"``, ``"sg"``, ``"ig"``: vanilla gradient, SmoothGrad and integrated
  gradients of the request objective (:mod:`gsutils.saliency.gradient`),
  normalised per image by their whole-image maximum and zeroed inside the
  request;
* ``"grid"``: context saliency with the S1.2 settings (:mod:`gsutils.saliency.grid`).

The request of an image is its digit mask ``R`` and its class the digit; the
context is the background. Per image it stores CBD (:func:`gsutils.metrics.context_bias.cbd`)
and CBL (:func:`gsutils.metrics.context_bias.cbl`, against the background part
that holds the bias texture; only meaningful for images with ``is_biased``).

Each network's result is one :class:`gsutils.experiments.store.Store` entry
(``context_saliency/<key>.npz``), keyed by the network's weights key, the test
data and the saliency settings, so a re-run loads it.

Command line::

    python -m gsutils.experiments.context_saliency --profile gpu
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gsutils.data.toy import ToyData, make_toy_dataset
from gsutils.experiments.segmentation import SegRun, _toy_cfg, grid_runs, train_config, train_or_load
from gsutils.experiments.store import Store, config_key
from gsutils.metrics.context_bias import cbd, cbl, chance_cbl
from gsutils.saliency.gradient import gradient_context_saliency, request_objective
from gsutils.saliency.grid import (
    GridSaliencyConfig,
    GridSaliencyResult,
    context_saliency,
    saliency_views,
    segmentation_probs,
)

#: method keys, in the order of the supplement's figures
METHODS: tuple[str, ...] = ("vg", "sg", "ig", "grid")
METHOD_LABELS: dict[str, str] = {"vg": "VG", "sg": "SG", "ig": "IG", "grid": "Grid"}
#: bump when the computation changes in a way that changes stored results
VERSION = 2


def _check_profile(profile: Any) -> None:
    for attr in ("toy", "train", "grid", "saliency", "results_dir", "device", "seed"):
        if not hasattr(profile, attr):
            raise TypeError(
                f"profile must be a gsutils.profiles.Profile (from get_profile), got {type(profile).__name__}"
            )


def biased_runs(profile: Any) -> list[SegRun]:
    """The biased networks of ``profile``'s grid (the unbiased ones have no bias to detect)."""
    _check_profile(profile)
    return [r for r in grid_runs(profile) if r.bias.strength != "none"]


def biased_test_set(profile: Any, run: SegRun) -> ToyData:
    """The test split generated with ``run``'s own bias config (``profile.toy.n_test`` images)."""
    return make_toy_dataset(_toy_cfg(profile, run.bias, run.seed), split="test", n=profile.toy.n_test)


def select_per_digit(digits: np.ndarray, per_digit: int) -> np.ndarray:
    """Indices of the first ``per_digit`` images of each digit 0..9, in digit order.

    Raises
    ------
    ValueError
        ``per_digit < 1`` or a digit with fewer images than asked for.
    """
    if not isinstance(per_digit, (int, np.integer)) or per_digit < 1:
        raise ValueError(f"per_digit must be a positive int, got {per_digit!r}")
    out = []
    for d in range(10):
        idx = np.flatnonzero(np.asarray(digits) == d)
        if len(idx) < per_digit:
            raise ValueError(
                f"the test set holds only {len(idx)} images of digit {d}; "
                f"per_digit={per_digit} needs a larger profile.toy.n_test"
            )
        out.append(idx[:per_digit])
    return np.concatenate(out)


def grid_config(profile: Any) -> GridSaliencyConfig:
    """The S1.2 grid-saliency settings with the profile's number of steps."""
    return GridSaliencyConfig(steps=profile.saliency.grid_steps)


def saliency_key_config(profile: Any, run: SegRun) -> dict[str, Any]:
    """Everything that determines :func:`run_context_saliency`'s result (its cache key)."""
    _check_profile(profile)
    s = dataclasses.asdict(profile.saliency)
    return {
        "what": "context_saliency",
        "version": VERSION,
        "model": config_key(train_config(profile, run)),
        "data": dataclasses.asdict(_toy_cfg(profile, run.bias, run.seed)),
        "n_test": profile.toy.n_test,
        "saliency": s,
        "grid": dataclasses.asdict(grid_config(profile)),
        "seed": profile.seed,
    }


def _device_of(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


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
        network's mean softmax score of the digit on its own mask (near 1
        when the network segments the digit); ``cbd``, ``cbl``
        float64 ``(4, n)`` in :data:`METHODS` order; ``chance`` ``(n,)``
        (CBL of a uniform map); ``grey``, ``loss``, ``empty`` ``(n,)`` and
        ``grid_masks`` ``(n, rows, cols)`` of grid saliency;
        ``example_index`` ``(g,)`` (positions in ``index`` of the first
        ``examples`` images of ``example_digit``) and their maps
        ``example_maps`` float32 ``(4, g, H, W)``.
    """
    device = _device_of(model)
    sub = data.subset(index)
    n = len(sub)
    x_all = torch.from_numpy(np.ascontiguousarray(sub.images)).to(device)  # (n, 1, H, W)
    r_all = torch.from_numpy(sub.digit_mask).to(device)  # (n, H, W) request = digit
    c_all = torch.from_numpy(sub.digits).to(device)  # (n,) request class = digit
    maps = np.zeros((len(METHODS), n, *sub.digit_mask.shape[1:]), dtype=np.float32)
    grid_parts: list[GridSaliencyResult] = []
    score = np.zeros(n, dtype=np.float64)  # f_c(x) averaged over R: does the network see the digit?
    blocks = list(range(0, n, batch_size))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * len(METHODS), desc="context saliency", unit="map", leave=False)
    for b0 in blocks:
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
         for k in ("grey", "loss", "empty", "grid_masks")}
    req, biased = sub.digit_mask, sub.biased_mask
    ex = np.flatnonzero(sub.digits == example_digit)[:examples]
    return {
        "index": np.asarray(index, dtype=np.int64),
        "digits": sub.digits.astype(np.int64),
        "is_biased": sub.is_biased.astype(bool),
        "score": score,
        "cbd": np.stack([cbd(maps[m], req) for m in range(len(METHODS))]),
        "cbl": np.stack([cbl(maps[m], req, biased) for m in range(len(METHODS))]),
        "chance": chance_cbl(req, biased),
        "example_index": ex.astype(np.int64),
        "example_maps": maps[:, ex],
        **g,
    }


def run_context_saliency(profile: Any, run: SegRun, *, progress: bool = False) -> dict[str, np.ndarray]:
    """The cached result of :func:`compute_context_saliency` for one network of the grid."""
    _check_profile(profile)
    if not isinstance(run, SegRun):
        raise TypeError(f"run must be a SegRun, got {type(run).__name__}")
    if run.bias.strength == "none":
        raise ValueError(f"run must be a biased network; {run.label} is unbiased")
    s = profile.saliency

    def compute() -> dict[str, np.ndarray]:
        model = train_or_load(profile, run, progress=progress)
        data = biased_test_set(profile, run)
        index = select_per_digit(data.digits, s.images_per_digit)
        return compute_context_saliency(
            model, data, index, grid=grid_config(profile), ig_steps=s.ig_steps,
            sg_samples=s.sg_samples, batch_size=s.batch_size, seed=profile.seed,
            example_digit=run.bias.digit, examples=s.gallery_images, progress=progress,
        )

    return Store(profile.results_dir).get_or_compute(
        "context_saliency", saliency_key_config(profile, run), compute, fmt="npz")


@dataclass
class ContextSaliencyResults:
    """The results of every biased network of a profile, with the summaries of S1.3/S1.4."""

    runs: list[SegRun]
    results: list[dict[str, np.ndarray]]
    bias_digits: tuple[int, ...]
    textures: tuple[int, ...]
    strengths: tuple[str, ...]

    def _cell(self, strength: str, texture: int, digit: int) -> list[dict[str, np.ndarray]]:
        return [res for run, res in zip(self.runs, self.results)
                if run.bias.strength == strength and run.bias.texture == texture
                and run.bias.digit == digit]

    def cbd_matrix(self, strength: str, method: str) -> np.ndarray:
        """Mean CBD, float64 ``(textures, bias digits, 10 test digits)`` (mean over seeds and images)."""
        m = METHODS.index(method)
        out = np.full((len(self.textures), len(self.bias_digits), 10), np.nan)
        for ti, t in enumerate(self.textures):
            for di, d in enumerate(self.bias_digits):
                cell = self._cell(strength, t, d)
                if not cell:
                    continue
                for j in range(10):
                    vals = np.concatenate([res["cbd"][m][res["digits"] == j] for res in cell])
                    out[ti, di, j] = vals.mean() if len(vals) else np.nan
        return out

    def cbl_matrix(self, strength: str, method: str) -> np.ndarray:
        """Mean CBL on the biased images of the bias digit, ``(textures, bias digits)``."""
        return self._biased_digit_mean(strength, lambda res: res["cbl"][METHODS.index(method)])

    def chance_matrix(self, strength: str) -> np.ndarray:
        """CBL of a uniform map on the same images, ``(textures, bias digits)``."""
        return self._biased_digit_mean(strength, lambda res: res["chance"])

    def _biased_digit_mean(self, strength: str, values) -> np.ndarray:
        out = np.full((len(self.textures), len(self.bias_digits)), np.nan)
        for ti, t in enumerate(self.textures):
            for di, d in enumerate(self.bias_digits):
                vals = [values(res)[(res["digits"] == d) & res["is_biased"]]
                        for res in self._cell(strength, t, d)]
                vals = np.concatenate(vals) if vals else np.zeros(0)
                out[ti, di] = vals.mean() if len(vals) else np.nan
        return out

    def n_images(self, strength: str) -> int:
        """Images explained per method over the networks of ``strength``."""
        return int(sum(len(res["digits"]) for run, res in zip(self.runs, self.results)
                       if run.bias.strength == strength))

    def mean_score(self, strength: str) -> float:
        """Mean softmax score of the request digit on its mask, over the explained images."""
        v = [res["score"] for run, res in zip(self.runs, self.results) if run.bias.strength == strength]
        return float(np.concatenate(v).mean()) if v else float("nan")

    def empty_fraction(self, strength: str) -> float:
        """Share of grid-saliency maps that are empty."""
        e = [res["empty"] | (res["grid_masks"].reshape(len(res["empty"]), -1).sum(1) == 0)
             for run, res in zip(self.runs, self.results) if run.bias.strength == strength]
        return float(np.concatenate(e).mean()) if e else float("nan")


def diagonal_split(matrix: np.ndarray, bias_digits: Sequence[int]) -> tuple[float, float]:
    """Mean of a ``(..., bias digits, 10)`` CBD matrix on the biased digit and off it."""
    mat = np.asarray(matrix, dtype=np.float64)
    on = np.zeros(mat.shape, dtype=bool)
    for di, d in enumerate(bias_digits):
        on[..., di, d] = True
    return float(np.nanmean(mat[on])), float(np.nanmean(mat[~on]))


def collect(profile: Any, *, progress: bool = True) -> ContextSaliencyResults:
    """Run (or load) :func:`run_context_saliency` for every biased network of the profile."""
    runs = biased_runs(profile)
    it = runs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(runs, desc="networks", unit="net")
    results = [run_context_saliency(profile, run, progress=progress) for run in it]
    g = profile.grid
    return ContextSaliencyResults(runs=runs, results=results, bias_digits=tuple(g.bias_digits),
                                  textures=tuple(g.bias_textures),
                                  strengths=tuple(s for s in g.strengths if s != "none"))


def context_scores(profile: Any, run: SegRun, *, n_images: int | None = None) -> dict[str, float]:
    """How the bias digit's score depends on its context: a diagnostic for grid saliency.

    For the first ``n_images`` (default ``profile.saliency.images_per_digit``)
    test images of ``run``'s bias digit, the mean softmax score of the digit
    on its mask (the request objective) with

    * ``"biased context"``: the image as in the biased test set;
    * ``"unbiased context"``: the same digit, crops and textures generated
      without the bias (the data generator changes only the biased part);
    * ``"grey a"``: the context replaced by each candidate grey value ``a`` of
      grid saliency (the ``M = 0`` perturbation).

    Grid saliency can only mark context as salient when the chosen grey value
    (the one that keeps the score best) lowers the score.
    """
    from gsutils.data.toy import BiasConfig

    _check_profile(profile)
    if run.bias.strength == "none":
        raise ValueError(f"run must be a biased network; {run.label} is unbiased")
    n = profile.saliency.images_per_digit if n_images is None else n_images
    model = train_or_load(profile, run, progress=False)
    dev = _device_of(model)
    biased = biased_test_set(profile, run)
    unbiased = make_toy_dataset(_toy_cfg(profile, BiasConfig(strength="none"), run.seed), split="test",
                                n=profile.toy.n_test)
    sel = np.flatnonzero(biased.digits == run.bias.digit)[:n]
    r = torch.from_numpy(biased.digit_mask[sel]).to(dev)  # (n, H, W)
    c = torch.from_numpy(biased.digits[sel]).to(dev)  # (n,)

    def score(images: np.ndarray, grey: float | None = None) -> float:
        x = torch.from_numpy(np.ascontiguousarray(images[sel])).to(dev)  # (n, 1, H, W)
        if grey is not None:
            x = torch.where(r[:, None], x, torch.full_like(x, grey))  # context -> grey
        with torch.no_grad():
            return float(request_objective(segmentation_probs(model, x), r, c).mean())

    out = {"biased context": score(biased.images), "unbiased context": score(unbiased.images)}
    for a in grid_config(profile).greys:
        out[f"grey {a:g}"] = score(biased.images, a)
    return out


def gallery_views(profile: Any, run: SegRun, *, n_bias: int | None = None, n_other: int = 1) -> dict[str, Any]:
    """The panels of Fig. S13 for test images of ``run``'s biased test set (cached).

    Takes the first ``n_bias`` images of the bias digit (default
    ``profile.saliency.gallery_images``) and the first image of each of the
    next ``n_other`` digits, and returns :func:`gsutils.saliency.grid.saliency_views`'s
    arrays (as numpy) plus ``digits``, ``grey`` and ``empty``.
    """
    _check_profile(profile)
    if run.bias.strength == "none":
        raise ValueError(f"run must be a biased network; {run.label} is unbiased")
    n_bias = profile.saliency.gallery_images if n_bias is None else n_bias
    if n_bias < 1 or n_other < 0:
        raise ValueError(f"n_bias must be >= 1 and n_other >= 0, got {n_bias}, {n_other}")
    conf = dict(saliency_key_config(profile, run), what="context_saliency_gallery",
                n_bias=n_bias, n_other=n_other)

    def compute() -> dict[str, np.ndarray]:
        model = train_or_load(profile, run, progress=False)
        data = biased_test_set(profile, run)
        d = run.bias.digit
        idx = list(np.flatnonzero(data.digits == d)[:n_bias])
        for k in range(1, n_other + 1):
            idx.append(int(np.flatnonzero(data.digits == (d + k) % 10)[0]))
        sub = data.subset(np.asarray(idx))
        dev = _device_of(model)
        x = torch.from_numpy(np.ascontiguousarray(sub.images)).to(dev)  # (g, 1, H, W)
        r = torch.from_numpy(sub.digit_mask).to(dev)  # (g, H, W)
        c = torch.from_numpy(sub.digits).to(dev)  # (g,)
        res = context_saliency(model, x, r, c, config=grid_config(profile))
        views = saliency_views(model, x, r, res)
        out = {k: v.numpy() for k, v in views.items()}
        out.update(digits=sub.digits, request=sub.digit_mask, biased=sub.biased_mask,
                   grey=res.grey.cpu().numpy(), empty=res.empty.cpu().numpy())
        return out

    return Store(profile.results_dir).get_or_compute("context_saliency_gallery", conf, compute, fmt="npz")


def main(argv: Sequence[str] | None = None) -> None:
    """Compute every biased network's context saliency for a profile (for GPU machines)."""
    from gsutils.profiles import get_profile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", default=None)
    a = ap.parse_args(argv)
    prof = get_profile(a.profile, device=a.device, seed=a.seed, data_root=a.data_root)
    res = collect(prof, progress=True)
    for s in res.strengths:
        on, off = diagonal_split(res.cbd_matrix(s, "grid"), res.bias_digits)
        print(f"{s}: grid CBD on the biased digit {on:.3f}, elsewhere {off:.3f}")


if __name__ == "__main__":
    main()
