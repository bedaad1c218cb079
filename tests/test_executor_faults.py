"""Fault injection for the sweep executors: a worker dies in the middle of a task.

The task below kills its own process (``os._exit``) on the first attempt at
one run, marked by a file. On Dask the nanny restarts the worker and the
scheduler reschedules the task; locally the whole process dies and a re-run
picks up where it stopped. Either way the grid completes with every run's
result present exactly once, and a finished run is not computed twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from gsutils.experiments.common.executor import run_local

REPO = Path(__file__).resolve().parents[1]
RUNS = list(range(5))
VICTIM = 2


def flaky_task(profile, run, progress):
    """Idempotent: a run's result is a file; the victim run kills its process once."""
    d = Path(profile.dir)
    done = d / f"result-{run}.json"
    if done.exists():
        return json.loads(done.read_text())
    marker = d / f"attempt-{run}"
    if run == VICTIM and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(13)  # the worker dies mid-task, without cleaning up
    result = {"run": run, "square": run * run}
    with open(d / "computed.log", "a") as f:  # one line per computation
        f.write(f"{run}\n")
    done.write_text(json.dumps(result))
    return result


def _check(results, d: Path) -> None:
    assert results == [{"run": r, "square": r * r} for r in RUNS]
    computed = sorted(int(x) for x in (d / "computed.log").read_text().split())
    assert computed == RUNS, "a run was computed twice, or not at all"
    assert (d / f"attempt-{VICTIM}").exists(), "the fault was not injected"


def test_dask_grid_survives_a_killed_worker(tmp_path):
    pytest.importorskip("distributed")
    import cloudpickle

    from gsutils.experiments.common.executor import run_dask

    # the workers get this module's task by value (they need not import the tests)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        profile = SimpleNamespace(device="cpu", dir=str(tmp_path))
        results = run_dask(flaky_task, profile, RUNS, n_workers=2, progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    _check(results, tmp_path)


def test_local_grid_resumes_after_the_process_is_killed(tmp_path):
    # run_local in a child process: the fault kills it; a second run completes the grid
    script = textwrap.dedent(f"""
        import json, sys
        from types import SimpleNamespace
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_executor_faults import RUNS, flaky_task
        from gsutils.experiments.common.executor import run_local
        res = run_local(flaky_task, SimpleNamespace(device="cpu", dir={str(tmp_path)!r}), RUNS,
                        progress=False)
        print(json.dumps(res))
    """)
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           cwd=REPO, timeout=120)
    assert first.returncode == 13, first.stderr
    assert sorted(p.name for p in tmp_path.glob("result-*.json")) == [
        f"result-{r}.json" for r in RUNS if r < VICTIM]
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert second.returncode == 0, second.stderr
    _check(json.loads(second.stdout.strip().splitlines()[-1]), tmp_path)
    # and in this process, with everything done: nothing is computed again
    again = run_local(flaky_task, SimpleNamespace(device="cpu", dir=str(tmp_path)), RUNS, progress=False)
    _check(again, tmp_path)
