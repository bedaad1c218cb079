"""The grid executors: local and Dask distributed give the same per-run result files."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gsutils.data.toy import BiasConfig
from gsutils.experiments.grid import segmentation as seg
from gsutils.experiments.grid.segmentation import SegRun, run_grid
from gsutils.profiles import get_profile


def tiny_profile(tmp_path, name):
    cfg = get_profile("quick", device="cpu", results_dir=tmp_path / name)
    return dataclasses.replace(
        cfg,
        toy=dataclasses.replace(cfg.toy, resolution=16, n_train=60, n_test=20),
        train=dataclasses.replace(cfg.train, backbone="tiny", epochs=1, batch_size=30),
    )


RUNS = [
    SegRun(BiasConfig(), "tiny", 0),
    SegRun(BiasConfig("strong", digit=3, texture=1), "tiny", 0),
    SegRun(BiasConfig("weak", digit=3, texture=1), "tiny", 1),
]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here trains on one torch thread (see conftest.one_thread)."""


def test_local_grid_writes_each_run_and_skips_done(tmp_path, monkeypatch):
    cfg = tiny_profile(tmp_path, "local")
    res = run_grid(cfg, RUNS, progress=False)
    assert [r.run for r in res] == RUNS
    for run in RUNS:
        assert (seg.model_dir(cfg, run) / "model.pt").exists()

    def boom(*a, **k):
        raise AssertionError("a finished run was redone")

    monkeypatch.setattr(seg, "train_unet", boom)
    assert run_grid(cfg, RUNS, progress=False) == res


def test_crash_loses_only_the_run_in_flight(tmp_path, monkeypatch):
    cfg = tiny_profile(tmp_path, "crash")
    real = seg.train_unet

    def crash_on_second(profile, run, **kw):
        if run == RUNS[1]:
            raise RuntimeError("worker died")
        return real(profile, run, **kw)

    monkeypatch.setattr(seg, "train_unet", crash_on_second)
    with pytest.raises(RuntimeError, match="worker died"):
        run_grid(cfg, RUNS, progress=False)
    assert (seg.model_dir(cfg, RUNS[0]) / "model.pt").exists()
    assert not (seg.model_dir(cfg, RUNS[1]) / "model.pt").exists()
    monkeypatch.setattr(seg, "train_unet", real)
    assert len(run_grid(cfg, RUNS, progress=False)) == 3


@pytest.mark.slow
def test_dask_local_cluster_matches_local(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    cfg_dask = tiny_profile(tmp_path, "dask")
    res_dask = run_grid(cfg_dask, RUNS, executor="dask", n_workers=2, progress=False)
    # the workers ran one torch thread, as this process does here: identical results
    res_local = run_grid(tiny_profile(tmp_path, "local"), RUNS, progress=False)
    assert res_dask == res_local
    # every run left its files; re-running (locally) redoes nothing
    monkeypatch.setattr(seg, "train_unet", lambda *a, **k: (_ for _ in ()).throw(AssertionError("redone")))
    assert run_grid(cfg_dask, RUNS, progress=False) == res_dask


def test_bad_executor_arguments(tmp_path):
    cfg = tiny_profile(tmp_path, "bad")
    with pytest.raises(ValueError, match="executor must be 'local' or 'dask'"):
        run_grid(cfg, RUNS, executor="threads")
    with pytest.raises(ValueError, match="address"):
        run_grid(cfg, RUNS, executor="local", address="tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="SegRun"):
        run_grid(cfg, ["tiny"])
    with pytest.raises(ValueError, match="n_workers"):
        run_grid(cfg, RUNS, executor="dask", n_workers=0)


@pytest.mark.slow
def test_dask_local_workers_run_one_thread_without_malloc_trim(tmp_path):
    """Local Dask workers: one thread each, and glibc's adaptive mmap threshold left on.

    Distributed's default MALLOC_TRIM_THRESHOLD_ doubled the training step time
    (see executor._worker_environ); the executor must not pass it to its workers.
    """
    pytest.importorskip("distributed")
    from gsutils.experiments.common.executor import run_dask

    def probe(profile, run, progress):  # pickled by value (defined in a test)
        import os

        import torch

        return {"malloc_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                "omp": os.environ.get("OMP_NUM_THREADS"), "threads": torch.get_num_threads()}

    cfg = tiny_profile(tmp_path, "env")
    out = run_dask(probe, cfg, [0, 1], n_workers=2, progress=False)
    assert out == [{"malloc_trim": None, "omp": "1", "threads": 1}] * 2


def test_dask_local_cluster_is_quiet_when_the_default_port_is_taken(tmp_path, caplog):
    """A second cluster (the other chapter of a parallel book build) must not print a port warning
    on the page, and the loggers the executor quietens while it runs are restored afterwards."""
    pytest.importorskip("distributed")
    import logging
    import socket
    import warnings

    from gsutils.experiments.common.executor import run_dask

    def square(profile, run, progress):
        return run * run

    cfg = tiny_profile(tmp_path, "quiet")
    before = logging.getLogger("distributed.nanny").level
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # already taken by something else: the same situation
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert run_dask(square, cfg, [2, 3], n_workers=1, progress=False) == [4, 9]
    assert not [w for w in caught if "8787" in str(w.message)]
    assert logging.getLogger("distributed.nanny").level == before
