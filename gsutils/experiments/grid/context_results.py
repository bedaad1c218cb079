"""Aggregates of the context-saliency runs (Grid Saliency S1.3 and S1.4).

:class:`ContextSaliencyResults` holds the per-network result arrays of
:mod:`gsutils.experiments.grid.context_saliency` and computes what the chapters
show: the CBD matrices (Fig. S4/S5), CBL per bias texture and digit (Fig.
S6/S7, with empty maps counted as chance or excluded), the empty-map rates
of the bias digit and of the other digits, and the network's scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gsutils.experiments.grid.segmentation import SegRun

#: method keys, in the order of the supplement's figures
METHODS: tuple[str, ...] = ("vg", "sg", "ig", "grid")


@dataclass
class ContextSaliencyResults:
    """Per-network results of a profile's biased networks, with the summaries of S1.3/S1.4.

    ``results`` hold :func:`compute_context_saliency`'s arrays; results of
    :func:`compute_fixed_grey` (one method, ``(n,)`` arrays) work too, with
    ``methods=("grid",)``.
    """

    runs: list[SegRun]
    results: list[dict[str, np.ndarray]]
    bias_digits: tuple[int, ...]
    textures: tuple[int, ...]
    strengths: tuple[str, ...]
    methods: tuple[str, ...] = METHODS

    def _values(self, res: dict[str, np.ndarray], key: str, method: str) -> np.ndarray:
        v = np.asarray(res[key])
        return v[self.methods.index(method)] if v.ndim == 2 else v

    def _cell(self, strength: str, texture: int, digit: int) -> list[tuple[SegRun, dict[str, np.ndarray]]]:
        return [(run, res) for run, res in zip(self.runs, self.results)
                if run.bias.strength == strength and run.bias.texture == texture and run.bias.digit == digit]

    def _of(self, strength: str) -> list[tuple[SegRun, dict[str, np.ndarray]]]:
        return [(run, res) for run, res in zip(self.runs, self.results) if run.bias.strength == strength]

    def cbd_matrix(self, strength: str, method: str) -> np.ndarray:
        """Mean CBD, float64 ``(textures, bias digits, 10 test digits)`` (mean over seeds and images)."""
        out = np.full((len(self.textures), len(self.bias_digits), 10), np.nan)
        for ti, t in enumerate(self.textures):
            for di, d in enumerate(self.bias_digits):
                cell = self._cell(strength, t, d)
                for j in range(10):
                    vals = [self._values(res, "cbd", method)[res["digits"] == j] for _, res in cell]
                    vals = np.concatenate(vals) if vals else np.zeros(0)
                    out[ti, di, j] = vals.mean() if len(vals) else np.nan
        return out

    def cbl_matrix(self, strength: str, method: str, empty: str = "chance") -> np.ndarray:
        """Mean CBL on the biased images of the bias digit, ``(textures, bias digits)``.

        ``empty="chance"``: empty maps count as chance; ``"exclude"``: they
        are left out (NaN where every map of a cell is empty).
        """
        if empty not in ("chance", "exclude"):
            raise ValueError(f"empty must be 'chance' or 'exclude', got {empty!r}")
        keep: Callable[[dict[str, np.ndarray]], np.ndarray | bool] = (
            (lambda res: ~self._values(res, "empty", method)) if empty == "exclude" else (lambda res: True))
        return self._bias_digit_mean(strength, lambda res: self._values(res, "cbl", method), keep)

    def chance_matrix(self, strength: str) -> np.ndarray:
        """CBL of a uniform map on the same images, ``(textures, bias digits)``."""
        return self._bias_digit_mean(strength, lambda res: res["chance"], lambda res: True)

    def mean_chance(self, strength: str) -> float:
        """Mean chance CBL over the biased bias-digit images of ``strength``'s networks (pooled)."""
        v = [res["chance"][(res["digits"] == run.bias.digit) & res["is_biased"]] for run, res in self._of(strength)]
        v = np.concatenate(v) if v else np.zeros(0)
        return float(v.mean()) if len(v) else float("nan")

    def _bias_digit_mean(self, strength: str, values, keep) -> np.ndarray:
        out = np.full((len(self.textures), len(self.bias_digits)), np.nan)
        for ti, t in enumerate(self.textures):
            for di, d in enumerate(self.bias_digits):
                vals = [values(res)[(res["digits"] == d) & res["is_biased"] & keep(res)]
                        for _, res in self._cell(strength, t, d)]
                vals = np.concatenate(vals) if vals else np.zeros(0)
                out[ti, di] = vals.mean() if len(vals) else np.nan
        return out

    def mean_cbl(self, strength: str, method: str, empty: str = "chance") -> float:
        """Mean CBL over all biased bias-digit images of ``strength``'s networks (pooled)."""
        vals = self._pooled_cbl(strength, method, empty)
        return float(vals.mean()) if len(vals) else float("nan")

    def n_cbl_images(self, strength: str, method: str, empty: str = "chance") -> int:
        """How many images :meth:`mean_cbl` averages."""
        return len(self._pooled_cbl(strength, method, empty))

    def _pooled_cbl(self, strength: str, method: str, empty: str) -> np.ndarray:
        if empty not in ("chance", "exclude"):
            raise ValueError(f"empty must be 'chance' or 'exclude', got {empty!r}")
        vals = []
        for run, res in self._of(strength):
            sel = (res["digits"] == run.bias.digit) & res["is_biased"]
            if empty == "exclude":
                sel &= ~self._values(res, "empty", method)
            vals.append(self._values(res, "cbl", method)[sel])
        return np.concatenate(vals) if vals else np.zeros(0)

    def _pooled_mean(self, key: str, strength: str, method: str, bias_digit: bool) -> float:
        """Mean of the per-image ``key`` over the bias digit's images (or the others'), pooled over networks."""
        v = [self._values(res, key, method)[(res["digits"] == run.bias.digit) == bias_digit]
             for run, res in self._of(strength)]
        v = np.concatenate(v) if v else np.zeros(0)
        return float(v.mean()) if len(v) else float("nan")

    def empty_rate(self, strength: str, method: str, *, bias_digit: bool) -> float:
        """Share of empty maps among the bias digit's images (``bias_digit=True``) or the others'."""
        return self._pooled_mean("empty", strength, method, bias_digit)

    def bias_digit_cbd(self, strength: str, method: str, *, bias_digit: bool = True) -> float:
        """Mean CBD over the bias digit's images (or the other digits'), pooled over networks."""
        return self._pooled_mean("cbd", strength, method, bias_digit)

    def n_images(self, strength: str) -> int:
        """Images explained per method over the networks of ``strength``."""
        return int(sum(len(res["digits"]) for _, res in self._of(strength)))

    def mean_score(self, strength: str, *, bias_digit: bool | None = None) -> float:
        """Mean softmax score of the request digit on its mask (all images, or the bias digit's / others')."""
        v = []
        for run, res in self._of(strength):
            on = res["digits"] == run.bias.digit
            sel = np.ones_like(on) if bias_digit is None else (on if bias_digit else ~on)
            v.append(res["score"][sel])
        return float(np.concatenate(v).mean()) if v else float("nan")

    def seconds(self) -> float:
        """Wall time the stored results took to compute, summed over networks."""
        return float(sum(float(res.get("seconds", np.nan)) for res in self.results))


def diagonal_split(matrix: np.ndarray, bias_digits: Sequence[int]) -> tuple[float, float]:
    """Mean of a ``(..., bias digits, 10)`` CBD matrix on the biased digit and off it."""
    mat = np.asarray(matrix, dtype=np.float64)
    on = np.zeros(mat.shape, dtype=bool)
    for di, d in enumerate(bias_digits):
        on[..., di, d] = True
    return float(np.nanmean(mat[on])), float(np.nanmean(mat[~on]))


