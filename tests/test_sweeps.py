"""S1.6 sweeps: the points, the task list, resuming after a killed sweep, Dask, the table and claims."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gsutils.experiments.common.store import Store
from gsutils.experiments.grid import sweeps as S
from gsutils.experiments.grid.segmentation import train_or_load
from gsutils.profiles import get_profile
from gsutils.saliency.grid import GridSaliencyConfig

REPO = Path(__file__).resolve().parents[1]


def small_profile(results_dir: Path):
    """A shrunken quick profile: one one-epoch tiny network on 64 images, 3 grid steps, 3 images per network."""
    p = get_profile("quick", device="cpu", results_dir=results_dir)
    return dataclasses.replace(
        p,
        toy=dataclasses.replace(p.toy, n_train=64, n_test=80),
        train=dataclasses.replace(p.train, epochs=1, autocast=None),  # bfloat16: emulated, slow on AVX2
        saliency=dataclasses.replace(p.saliency, grid_steps=3),
        sweeps=dataclasses.replace(p.sweeps, lam=(0.0125, 0.025, 0.05, 0.1, 0.2), lr=(0.2,), momentum=(0.5,),
                                   init=(0.5, 1.0), greys=((0.0, 0.25, 0.5, 0.75, 1.0), (0.5,)),
                                   bias_textures=(0,), images_bias_digit=2, images_other_digit=1,
                                   informative_networks=None),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The small profile with its one network trained (shared by the tests below)."""
    root = tmp_path_factory.mktemp("sweeps")
    prof = small_profile(root / "results")
    for run in S.sweep_networks(prof):
        train_or_load(prof, run, progress=False, shipped=False)
    return prof


def test_points_vary_one_parameter_around_the_s12_setting():
    prof = get_profile("quick", device="cpu")
    base = S.base_config(prof)
    assert base == GridSaliencyConfig(steps=prof.saliency.grid_steps)
    assert (base.lam, base.lr, base.momentum, base.init) == (0.05, 0.2, 0.5, 0.5)
    points = S.sweep_points(prof)
    for p in points:
        diff = [f.name for f in dataclasses.fields(base) if getattr(p.config, f.name) != getattr(base, f.name)]
        assert diff in ([], [p.param])
    chosen = [p for p in points if S.is_chosen(p, prof)]
    assert sorted(p.param for p in chosen) == sorted(S.PARAMS)  # the S1.2 value is on every sweep
    # the S1.2 config is one task per network, shared by the five sweeps
    every = dataclasses.replace(prof, sweeps=dataclasses.replace(prof.sweeps, informative_networks=None))
    n_nets = len(S.sweep_networks(every))
    assert len(S.sweep_tasks(every)) == n_nets * (len(points) - len(S.PARAMS) + 1)
    assert {p.label for p in points if p.param == "greys"} == {"choice", "0", "0.5", "1"}


def test_bad_settings_are_named():
    prof = get_profile("quick", device="cpu")
    with pytest.raises(ValueError, match="profile.sweeps.lam is empty"):
        S.sweep_points(dataclasses.replace(prof, sweeps=dataclasses.replace(prof.sweeps, lam=())))
    with pytest.raises(ValueError, match="strengths must be 'weak' and/or 'strong'"):
        S.sweep_networks(dataclasses.replace(prof, sweeps=dataclasses.replace(prof.sweeps, strengths=("none",))))
    with pytest.raises(ValueError, match="executor must be 'local' or 'dask'"):
        S.run_sweeps(prof, executor="spark", progress=False)
    with pytest.raises(ValueError, match="cluster must be one of"):
        S.make_cluster("lsf", 2)
    with pytest.raises(ValueError, match="jobs must be a positive int"):
        S.make_cluster("slurm", 0)


def test_cluster_without_a_scheduler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch / qsub here
    with pytest.raises(RuntimeError, match="sbatch is not on PATH.*login node"):
        S.make_cluster("slurm", 2)
    from gsutils.experiments.grid.sweeps import main

    with pytest.raises(SystemExit) as exc:
        main(["--profile", "quick", "--device", "cpu", "--cluster", "pbs", "--jobs", "2"])
    assert exc.value.code == 2


KILLER = textwrap.dedent("""
    import os, signal, sys, dataclasses, pickle
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_sweeps import small_profile
    from gsutils.experiments.grid import sweeps as S
    from pathlib import Path
    prof = small_profile(Path({results!r}))
    started = []
    def task(profile, t, progress=False):
        started.append(t)
        if len(started) == {kill_at}:  # the process dies while this task is in flight
            os.kill(os.getpid(), signal.SIGKILL)
        return S.run_task(profile, t)
    S.run_sweeps(prof, executor="local", progress=False, task=task)
""")


def test_a_killed_sweep_resumes_losing_only_the_task_in_flight(trained, tmp_path):
    prof = trained
    tasks = S.sweep_tasks(prof)
    assert len(tasks) == 7  # 5 lambdas (one the S1.2 setting) + init 1.0 + grey 0.5
    store = Store(prof.results_dir)
    for t in tasks:  # start from no sweep results (the network stays)
        path = store.path("grid_sweep", S.task_key_config(prof, *t), "npz")
        for f in (path, path.with_name(path.name + ".sha256")):
            f.unlink(missing_ok=True)
    script = KILLER.format(tests=str(REPO / "tests"), results=str(prof.results_dir), kill_at=4)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL: no cleanup ran
    done = [t for t in tasks if store.exists("grid_sweep", S.task_key_config(prof, *t), fmt="npz")]
    assert len(done) == 3  # the three finished tasks are kept
    before = {t: store.path("grid_sweep", S.task_key_config(prof, *t), "npz").read_bytes() for t in done}
    computed = []

    def counting(profile, t, progress=False):
        computed.append(t)
        return S.run_task(profile, t)

    results = S.run_sweeps(prof, executor="local", progress=False, task=counting)
    assert len(computed) == 4 and not set(computed) & set(done)  # only the lost and unstarted tasks ran
    for t in done:  # the finished results were not rewritten
        assert store.path("grid_sweep", S.task_key_config(prof, *t), "npz").read_bytes() == before[t]
    assert len(results) == len(tasks) and all("cbd" in r for r in results)


def test_dask_gives_the_local_results(trained, tmp_path):
    """The same tasks on a Dask cluster (here an in-process one, by address) give identical results."""
    from distributed import LocalCluster

    prof = trained
    local = S.run_sweeps(prof, executor="local", progress=False)
    other = dataclasses.replace(prof, results_dir=tmp_path / "dask")
    # the network is copied, the sweep results are not
    import shutil

    shutil.copytree(Path(prof.results_dir) / "models", Path(other.results_dir) / "models")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = S.run_sweeps(other, executor="dask", address=cluster.scheduler_address, progress=False)
    assert len(remote) == len(local)
    for a, b in zip(local, remote):
        for k in ("cbd", "cbl", "empty", "grey"):
            np.testing.assert_array_equal(a[k], b[k])


def test_table_and_claims_from_the_results(trained):
    prof = trained
    table = S.sweep_table(prof)
    assert len(table) == len(S.sweep_points(prof))
    assert table["chosen"].sum() == len(S.PARAMS)
    for col in ("mcbd_biased", "mcbd_unbiased", "mcbl", "area", "gap"):
        assert table[col].between(0, 1).all() or col == "gap"
    # CBD is a mean of a map in [0, 1] over the context; recompute one cell from the stored arrays
    run = S.sweep_networks(prof)[0]
    r = S.run_task(prof, (run, S.base_config(prof)))
    on = r["digits"] == run.bias.digit
    row = table[(table.param == "lam") & table.chosen].iloc[0]
    assert row["mcbd_biased"] == pytest.approx(float(r["cbd"][on].mean()))
    claims = S.sweep_claims(prof, table)
    assert [c["id"] for c in claims] == ["s16_smooth_around_setting", "s16_lambda_trades_detection_for_localisation",
                                         "s16_chosen_setting_keeps_both_high"]
    assert all(isinstance(c["passed"], bool) for c in claims)
    json.dumps([c["measured"] for c in claims])  # ledger-ready


def test_lambda_trend_is_spearman_of_the_lambda_rows():
    import pandas as pd

    t = pd.DataFrame({"param": ["lam"] * 4 + ["lr"], "value": ["0.1", "0.2", "0.4", "0.8", "0.2"],
                      "area": [0.4, 0.3, 0.2, 0.1, 9.0], "mcbd_biased": [0.5, 0.5, 0.4, 0.3, 9.0],
                      "mcbl": [0.5, 0.6, 0.7, 0.8, 0.0]})
    tr = S.lambda_trend(t)
    assert tr["area"] == pytest.approx(-1.0) and tr["mcbl"] == pytest.approx(1.0)
    assert -1.0 < tr["mcbd_biased"] < -0.8  # a tie: 0.5, 0.5


def test_quick_sweeps_take_the_first_informative_strong_network():
    # Fig. S11 at quick: the 17 settings on the first shipped strongly biased small network whose
    # maps at the S1.2 setting are informative (chosen at run time, before the sweep)
    from gsutils.experiments.grid.segmentation import shipped_network

    q = get_profile("quick", device="cpu")
    cands = S.candidate_networks(q)
    assert [r.label for r in cands] == [f"small/strong-d2-t{t}/s0" for t in range(5)]
    assert q.sweeps.informative_networks == 1
    assert len({p.config for p in S.sweep_points(q)}) == 17  # distinct settings (the S1.2 one in every row)
    assert all(shipped_network(q, r).exists() for r in cands)


def _fake_result(run, empty):
    digits = np.array([run.bias.digit] * 4 + [(run.bias.digit + 1) % 10])
    return {"digits": digits, "empty": np.array(empty + [False]), "cbd": np.zeros(5)}


def test_networks_with_empty_s12_maps_are_passed_over(tmp_path):
    """The selection reads each candidate's S1.2 point and keeps the first n with >= 90 % non-empty maps."""
    p = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    prof = dataclasses.replace(p, sweeps=dataclasses.replace(p.sweeps, bias_textures=(0, 1, 2),
                                                             informative_networks=1))
    calls = []

    def task(profile, t, progress=False):
        run, cfg = t
        calls.append((run.bias.texture, cfg == S.base_config(profile)))
        empty = {0: [True] * 4, 1: [False, False, False, True], 2: [False] * 4}[run.bias.texture]
        return _fake_result(run, empty)

    nets = S.sweep_networks(prof, task)
    assert [r.bias.texture for r in nets] == [2]  # texture 0: all empty, texture 1: 75 % non-empty
    assert calls == [(0, True), (1, True), (2, True)]  # only S1.2 points were computed, in grid order
    none = dataclasses.replace(prof, sweeps=dataclasses.replace(prof.sweeps, bias_textures=(0,)))
    assert [r.bias.texture for r in S.sweep_networks(none, task)] == [0]  # none qualifies: the first n
    with pytest.raises(ValueError, match="informative_networks"):
        S.sweep_networks(dataclasses.replace(prof, sweeps=dataclasses.replace(prof.sweeps,
                                                                              informative_networks=0)), task)
