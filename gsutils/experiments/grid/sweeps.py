"""Sweeps of grid saliency's optimisation parameters (Grid Saliency S1.6, Fig. S11).

Around the S1.2 setting (:class:`gsutils.saliency.grid.GridSaliencyConfig`'s
defaults: lambda 0.05, lr 0.2, momentum 0.5, initial mask 0.5, grey chosen
per image among 0, 0.25, ..., 1), one parameter at a time takes each value of
``profile.sweeps`` while the others keep their S1.2 value. Every point is run
on the biased networks of the sweep's sub-grid (strengths x bias digits x
textures x seeds of ``profile.sweeps``, the profile's training backbone) with
grid (context) saliency alone
(:func:`gsutils.experiments.grid.context_saliency.compute_fixed_grey`, which runs
any :class:`GridSaliencyConfig`), on the first ``images_bias_digit`` test
images of the bias digit and ``images_other_digit`` of every other digit.

One *task* is one (network, grid config) pair; its result (per-image CBD, CBL,
emptiness) is one entry of the result store, keyed by the network's weights
key, the images and the config. Tasks run in this process, on a local Dask
cluster, on a scheduler address, or on a Slurm/PBS cluster through
dask-jobqueue; each writes its own entry when it finishes, so a killed sweep
loses only the tasks in flight and the same command resumes it. A grid config
shared by several sweeps (the S1.2 setting is in all of them) is one task.

Command lines::

    python -m gsutils.experiments.grid.sweeps --profile quick
    python -m gsutils.experiments.grid.sweeps --profile paper --executor dask --workers 8
    python -m gsutils.experiments.grid.sweeps --profile paper --executor dask --address tcp://host:8786
    python -m gsutils.experiments.grid.sweeps --profile paper --cluster slurm --jobs 20 \\
        --queue gpu --walltime 02:00:00 --memory 16GB --device cuda
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gsutils.data.toy import BiasConfig
from gsutils.experiments.common.executor import make_cluster
from gsutils.experiments.common.store import Store
from gsutils.experiments.grid.context_claims import record
from gsutils.experiments.grid.context_saliency import (biased_test_set, compute_fixed_grey, explained_model,
                                                       saliency_autocast, select_images)
from gsutils.experiments.grid.segmentation import SegRun, train_config, train_or_load
from gsutils.io import config_key
from gsutils.metrics.context_bias import EMPTY_TOL
from gsutils.profiles import Profile
from gsutils.saliency.grid import GridSaliencyConfig

__all__ = ["PARAMS", "PARAM_LABELS", "SweepPoint", "base_config", "sweep_points", "candidate_networks",
           "nonempty_share", "sweep_networks",
           "sweep_tasks", "task_key_config", "run_task", "run_sweeps", "sweep_table", "lambda_trend",
           "sweep_claims", "record_sweeps", "make_cluster"]

#: the swept parameters, in the order of Fig. S11
PARAMS: tuple[str, ...] = ("lam", "lr", "momentum", "init", "greys")
#: the swept parameters whose values are ordered (the smoothness claim looks at their neighbours)
ORDERED_PARAMS: tuple[str, ...] = ("lam", "lr", "momentum", "init")
PARAM_LABELS: dict[str, str] = {"lam": "λ (L1 weight)", "lr": "learning rate", "momentum": "momentum",
                                "init": "initial mask value", "greys": "grey value"}
#: bump when a task's computation changes
VERSION = 2  # 2: the networks explain in the channels-last layout (context_saliency.VERSION 4)
#: "smooth degradation": at the chosen value's neighbours, mCBD gap and mCBL change by at most this
SMOOTH_TOL = 0.1


@dataclass(frozen=True)
class SweepPoint:
    """One value of one swept parameter, and the grid config it gives."""

    param: str
    value: Any
    config: GridSaliencyConfig

    @property
    def label(self) -> str:
        """The value as written on the figure's axis (``"choice"`` for the per-image grey choice)."""
        if self.param == "greys":
            return f"{self.value[0]:g}" if len(self.value) == 1 else "choice"
        return f"{self.value:g}"


def base_config(profile: Profile) -> GridSaliencyConfig:
    """The S1.2 setting with the profile's number of steps."""
    return GridSaliencyConfig(steps=profile.saliency.grid_steps)


def sweep_points(profile: Profile) -> list[SweepPoint]:
    """Every (parameter, value) of ``profile.sweeps``, the others at the S1.2 setting."""
    if not isinstance(profile, Profile):
        raise TypeError(f"profile must be a gsutils.profiles.Profile (from get_profile), got {type(profile).__name__}")
    base, s = base_config(profile), profile.sweeps
    out = []
    for param in PARAMS:
        values = getattr(s, param)
        if len(values) == 0:
            raise ValueError(f"profile.sweeps.{param} is empty; give at least the S1.2 value")
        for v in values:
            v = tuple(float(x) for x in v) if param == "greys" else float(v)
            out.append(SweepPoint(param, v, dataclasses.replace(base, **{param: v})))
    return out


def is_chosen(point: SweepPoint, profile: Profile) -> bool:
    """Whether ``point`` is the S1.2 setting (drawn red in Fig. S11)."""
    return point.config == base_config(profile)


def candidate_networks(profile: Profile) -> list[SegRun]:
    """The biased networks of ``profile.sweeps``'s sub-grid (``None`` fields = the grid's), in grid order."""
    s, g = profile.sweeps, profile.grid
    digits = s.bias_digits if s.bias_digits is not None else g.bias_digits
    textures = s.bias_textures if s.bias_textures is not None else g.bias_textures
    seeds = s.seeds if s.seeds is not None else g.seeds
    bad = [x for x in s.strengths if x not in ("weak", "strong")]
    if bad:
        raise ValueError(f"profile.sweeps.strengths must be 'weak' and/or 'strong', got {bad}")
    return [SegRun(BiasConfig(strength=st, digit=d, texture=t, probability=1.0), profile.train.backbone, sd)
            for st in s.strengths for d in digits for t in textures for sd in seeds]


def nonempty_share(run: SegRun, result: dict[str, Any]) -> float:
    """Share of ``run``'s bias-digit maps that are not empty in one task's ``result``."""
    on = result["digits"] == run.bias.digit
    return float(1.0 - result["empty"][on].mean()) if on.any() else 0.0


def sweep_networks(profile: Profile, task: Callable[..., dict] | None = None) -> list[SegRun]:
    """The networks the sweeps explain.

    Every :func:`candidate_networks` when ``profile.sweeps.informative_networks`` is ``None``;
    else the first ``n`` candidates whose bias-digit maps at the S1.2 setting are at least
    :data:`gsutils.references.INFORMATIVE_NONEMPTY` non-empty (the S1.3/S1.4 safeguard, applied
    before the sweep; the S1.2 point of each candidate is computed, or read from the store, to
    decide). When fewer qualify, those that do; when none does, the first ``n`` candidates (the
    claims then fail their informative-maps condition).
    """
    from gsutils.references import INFORMATIVE_NONEMPTY

    cands, n = candidate_networks(profile), profile.sweeps.informative_networks
    if n is None:
        return cands
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"profile.sweeps.informative_networks must be None or a positive int, got {n!r}")
    task = run_task if task is None else task
    base, chosen, store = base_config(profile), [], Store(profile.results_dir)
    for run in cands:
        stored = store.exists("grid_sweep", task_key_config(profile, run, base), fmt="npz")
        result = (run_task if stored else task)(profile, (run, base))
        if nonempty_share(run, result) >= INFORMATIVE_NONEMPTY:
            chosen.append(run)
            if len(chosen) == n:
                break
    return chosen or cands[:n]


def _counts(profile: Profile, run: SegRun) -> list[int]:
    s = profile.sweeps
    return [s.images_bias_digit if d == run.bias.digit else s.images_other_digit for d in range(10)]


def task_key_config(profile: Profile, run: SegRun, config: GridSaliencyConfig) -> dict[str, Any]:
    """Everything that determines one task's result (its store key)."""
    return {
        "what": "grid_sweep",
        "version": VERSION,
        "model": config_key(train_config(profile, run)),
        "run": run.as_dict(),
        "n_test": profile.toy.n_test,
        "seed": profile.seed,
        "counts": _counts(profile, run),
        "grid": dataclasses.asdict(config),
        "batch_size": profile.saliency.batch_size,
        **({"autocast": ac} if (ac := saliency_autocast(profile)) is not None else {}),
        "empty_tol": EMPTY_TOL,
    }


def sweep_tasks(profile: Profile, task: Callable[..., dict] | None = None) -> list[tuple[SegRun, GridSaliencyConfig]]:
    """The distinct (network, grid config) pairs of the sweeps, in a stable order."""
    seen, out = set(), []
    for run in sweep_networks(profile, task):
        for p in sweep_points(profile):
            if (run, p.config) not in seen:
                seen.add((run, p.config))
                out.append((run, p.config))
    return out


def run_task(profile: Profile, task: tuple[SegRun, GridSaliencyConfig], progress: bool = False) -> dict[str, Any]:
    """One task's result, computed and stored when missing (idempotent; the executors call this)."""
    run, config = task

    def compute() -> dict[str, np.ndarray]:
        model = explained_model(profile, run, progress=progress)
        data = biased_test_set(profile, run)
        return compute_fixed_grey(model, data, select_images(data.digits, _counts(profile, run)), grid=config,
                                  batch_size=profile.saliency.batch_size)

    return Store(profile.results_dir).get_or_compute("grid_sweep", task_key_config(profile, run, config),
                                                     compute, fmt="npz")


def run_sweeps(
    profile: Profile,
    *,
    executor: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    task: Callable[..., dict] = run_task,
) -> list[dict[str, Any]]:
    """Run (or load) every task of :func:`sweep_tasks`; results in task order.

    ``executor`` (default ``profile.sweeps.executor``): ``"local"`` or
    ``"dask"`` (a ``LocalCluster`` of ``workers`` one-thread processes, or the
    scheduler at ``address``). Finished tasks are read from the store.
    """
    from gsutils.experiments.common.executor import run_dask, run_local

    executor = executor or profile.sweeps.executor
    workers = workers or profile.sweeps.workers
    if executor not in ("local", "dask"):
        raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}")
    if address is not None and executor != "dask":
        raise ValueError("address is only used with executor='dask'")
    tasks = sweep_tasks(profile, task)
    store = Store(profile.results_dir)
    todo = [t for t in tasks if not store.exists("grid_sweep", task_key_config(profile, *t), fmt="npz")]
    if todo:
        # the networks first, once each (in this process), so that parallel tasks only load them
        for run in dict.fromkeys(r for r, _ in todo):
            train_or_load(profile, run, progress=progress)
        if executor == "local":
            run_local(task, profile, todo, progress=progress)
        else:
            run_dask(task, profile, todo, address=address, progress=progress, n_workers=workers)
    return [run_task(profile, t) for t in tasks]


# ------------------------------------------------------------------------------------- tables


def sweep_table(profile: Profile, results: Sequence[dict[str, Any]] | None = None):
    """Fig. S11's numbers: one row per (parameter, value), means over the sweep's networks.

    Columns: ``mcbd_biased`` (mean CBD over the bias digit's images),
    ``mcbd_unbiased`` (over the other digits'), ``gap`` (their difference),
    ``mcbl`` (mean CBL over the biased images of the bias digit, empty maps as
    chance), ``chance`` (a uniform map's CBL on the same images), ``area``
    (mean salient share of the context over all explained images, i.e. mean
    CBD), ``empty_rate`` (bias digit), ``chosen`` (the S1.2 setting),
    ``seconds``; each mean is the mean over networks of per-network means.
    """
    import pandas as pd

    tasks = sweep_tasks(profile)
    if results is None:
        results = run_sweeps(profile, progress=False)
    by_task = dict(zip(tasks, results))
    nets = list(dict.fromkeys(r for r, _ in tasks))
    rows = []
    for p in sweep_points(profile):
        per = {k: [] for k in ("mcbd_biased", "mcbd_unbiased", "mcbl", "chance", "area", "empty_rate", "seconds")}
        for run in nets:
            r = by_task[(run, p.config)]
            on = r["digits"] == run.bias.digit
            biased = on & r["is_biased"]
            per["mcbd_biased"].append(r["cbd"][on].mean())
            per["mcbd_unbiased"].append(r["cbd"][~on].mean() if (~on).any() else np.nan)
            per["mcbl"].append(r["cbl"][biased].mean() if biased.any() else np.nan)
            per["chance"].append(r["chance"][biased].mean() if biased.any() else np.nan)
            per["area"].append(r["cbd"].mean())
            per["empty_rate"].append(r["empty"][on].mean())
            per["seconds"].append(float(r["seconds"]))
        row = {"param": p.param, "value": p.label, "chosen": is_chosen(p, profile)}
        row.update({k: float(np.nanmean(v)) if k != "seconds" else float(np.sum(v)) for k, v in per.items()})
        rows.append(row)
    out = pd.DataFrame(rows)
    out["gap"] = out["mcbd_biased"] - out["mcbd_unbiased"]
    return out


def lambda_trend(table) -> dict[str, float]:
    """Spearman correlations of lambda with the salient area, mCBD (bias digit) and mCBL."""
    import warnings

    from scipy.stats import spearmanr

    lam = table[table.param == "lam"]
    x = lam["value"].astype(float).to_numpy()
    with warnings.catch_warnings():  # a constant column has no correlation: NaN (the claim then fails)
        warnings.simplefilter("ignore")
        return {k: float(spearmanr(x, lam[k].to_numpy()).statistic) for k in ("area", "mcbd_biased", "mcbl")}


def record_sweeps(ledger: Any, profile: Profile, table, gate: Any) -> list[Any]:
    """Record the S1.6 chapter's rows: the gate (:func:`gsutils.experiments.grid.context_claims.saliency_gate`,
    section "S1.6 (gate)"), then :func:`sweep_claims` under it."""
    return record(ledger, sweep_claims(profile, table), gate, section="S1.6")


def sweep_claims(profile: Profile, table) -> list[dict[str, Any]]:
    """The S1.6 claims as keyword dicts for :meth:`gsutils.claims.Ledger.check` (not yet gated).

    As in S1.3/S1.4, a claim holds only on informative maps: at the S1.2 setting at least
    :data:`gsutils.references.INFORMATIVE_NONEMPTY` of the bias digit's maps are non-empty (on
    networks whose bias grid saliency does not find, every sweep point is the same empty map,
    and "smooth" or "as good as the median" would hold for no reason).
    """
    from gsutils.references import INFORMATIVE_NONEMPTY

    nonempty = 1.0 - float(table[table.chosen].iloc[0]["empty_rate"])
    informative = nonempty >= INFORMATIVE_NONEMPTY
    info = (f"; and informative maps: >= {INFORMATIVE_NONEMPTY:.0%} of the bias digit's maps non-empty "
            f"at the S1.2 setting")
    claims = []
    jumps = {}
    for param in ORDERED_PARAMS:  # the grey options have no order, so no neighbours
        t = table[table.param == param].reset_index(drop=True)
        ci = np.flatnonzero(t["chosen"].to_numpy())
        if len(ci) != 1:
            continue
        c = int(ci[0])
        nb = [i for i in (c - 1, c + 1) if 0 <= i < len(t)]
        jumps[param] = float(max(abs(t.loc[i, k] - t.loc[c, k]) for i in nb for k in ("gap", "mcbl"))) if nb else 0.0
    claims.append(dict(
        id="s16_smooth_around_setting", section="S1.6 / Fig. S11",
        claim="the results degrade smoothly around the chosen setting (no cliff next to it)",
        measured={**jumps, "non-empty (bias digit, S1.2 setting)": round(nonempty, 4)},
        passed=bool(informative and all(v <= SMOOTH_TOL for v in jumps.values())),
        criterion=(f"for every ordered swept parameter (λ, lr, momentum, initial mask), the mCBD gap "
                   f"(bias digit - others) and the mCBL at the values next to the S1.2 value differ from "
                   f"the S1.2 point's by at most {SMOOTH_TOL}" + info),
        reported="smooth changes; the chosen setting is robust"))
    trend = lambda_trend(table)
    claims.append(dict(
        id="s16_lambda_trades_detection_for_localisation", section="S1.6 / Fig. S11",
        claim="λ trades detection against localisation: a higher λ gives a smaller salient region "
              "(lower mCBD) and a more concentrated one (higher mCBL)",
        measured={**trend, "non-empty (bias digit, S1.2 setting)": round(nonempty, 4)},
        passed=bool(informative and _le(trend["area"], -0.8) and _le(trend["mcbd_biased"], -0.8)
                    and _le(0.8, trend["mcbl"])),
        criterion="Spearman ρ(λ, salient area) <= -0.8, ρ(λ, mCBD bias digit) <= -0.8 and ρ(λ, mCBL) >= 0.8" + info,
        reported="higher λ: smaller salient regions, better localisation, weaker detection"))
    chosen = table[table.chosen].iloc[0]
    med_gap, med_cbl = float(table["gap"].median()), float(table["mcbl"].median())
    claims.append(dict(
        id="s16_chosen_setting_keeps_both_high", section="S1.6 / Fig. S11",
        claim="the chosen (S1.2) setting keeps both detection (mCBD) and localisation (mCBL) high",
        measured={"gap": float(chosen["gap"]), "mcbl": float(chosen["mcbl"]),
                  "median_gap": med_gap, "median_mcbl": med_cbl, "non-empty (bias digit, S1.2 setting)": round(nonempty, 4)},
        passed=bool(informative and chosen["gap"] >= med_gap and chosen["mcbl"] >= med_cbl),
        criterion="the S1.2 point's mCBD gap and mCBL are each at least the median over all sweep points" + info,
        reported="both high at the red points"))
    return claims


def _le(a: Any, b: Any) -> bool:
    """``a <= b``, False when either is missing (a correlation of constant values is undefined)."""
    return a is not None and b is not None and bool(np.isfinite(a) and np.isfinite(b) and a <= b)


# ------------------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Run a profile's sweeps locally, on Dask, or on a Slurm/PBS cluster; print the table."""
    from gsutils.cli import parse_with_profile
    from gsutils.cli_commands import command_parser
    from gsutils.experiments.common.executor import executor_or_exit

    ap = command_parser("sweeps", prog="python -m gsutils.experiments.grid.sweeps")
    a, prof = parse_with_profile(ap, argv)
    with executor_or_exit(ap, a) as (executor, address, workers):
        results = run_sweeps(prof, executor=executor, address=address, workers=workers)
    table = sweep_table(prof, results)
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
