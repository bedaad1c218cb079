"""Run a list of independent experiment runs locally or on a Dask cluster.

Both executors call ``task(profile, run, progress)`` once per run and return
the results in the order of ``runs``. Tasks must be idempotent and write their
own result files (as :func:`gsutils.experiments.grid.segmentation.run_one` does), so
that a crash loses at most the runs in flight and re-running skips finished
runs.

Dask: without ``address`` a ``LocalCluster`` of ``n_workers`` single-threaded
worker processes is started for the call and closed afterwards; with an
``address`` the caller's scheduler is used. When the profile's device is a GPU
every task asks for the worker resource ``GPU: 1``, so start GPU workers with
``dask worker <scheduler> --nthreads 1 --resources "GPU=1"`` (one per GPU, with
``CUDA_VISIBLE_DEVICES`` set). Each task limits torch to one thread.

Slurm/PBS: :func:`make_cluster` starts a dask-jobqueue cluster, and
:func:`executor_or_exit` turns the executor options every grid command shares
(:func:`gsutils.cli.add_executor_arguments`) into an executor, a scheduler
address and a number of workers, starting and closing that cluster.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from gsutils.cli import fail
from gsutils.paths import absolute_path_environment
from gsutils.profiles import Profile

#: what a task returns (e.g. a :class:`~gsutils.experiments.grid.seg_runs.SegIoU`); it must pickle for Dask
R = TypeVar("R")


def run_local(
    task: Callable[..., R], profile: Profile, runs: Sequence[Any], *, progress: bool = True
) -> list[R]:
    """Run ``task(profile, run, progress)`` for each run in this process, in order."""
    from tqdm.auto import tqdm

    results = []
    for run in tqdm(runs, desc="grid", disable=not progress or len(runs) < 2):
        results.append(task(profile, run, progress))
    return results


def _in_worker(task: Callable[..., R], profile: Profile, run: Any) -> R:
    """Executed on a Dask worker: one torch thread, no progress bars."""
    import torch

    torch.set_num_threads(1)
    return task(profile, run, False)


def _worker_environ() -> dict[str, Any]:
    """Dask's environment for new worker processes, without ``MALLOC_TRIM_THRESHOLD_``.

    Distributed sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers by default.
    Setting it at all turns off glibc's adaptive mmap threshold, so every
    tensor above 128 KiB is mapped and unmapped afresh: measured here, a tiny
    U-Net training step took 2x as long (most of it system time). The
    one-thread settings (``OMP_NUM_THREADS`` ...) are kept.
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def run_dask(
    task: Callable[..., R],
    profile: Profile,
    runs: Sequence[Any],
    *,
    address: str | None = None,
    progress: bool = True,
    n_workers: int = 2,
    processes: bool = True,
) -> list[R]:
    """Run ``task`` for each run on Dask workers; results in the order of ``runs``.

    Parameters
    ----------
    address:
        Scheduler address of a running cluster; ``None`` starts a local one.
    n_workers, processes:
        Size and kind of the local cluster (ignored with ``address``).
    """
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError as err:  # pragma: no cover - distributed is a dependency
        raise ImportError("executor='dask' needs the 'distributed' package") from err
    from tqdm.auto import tqdm

    if not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
    gpu = str(profile.device).startswith("cuda")
    resources = {"GPU": 1} if gpu else None
    cluster = None
    absolute_path_environment()  # workers inherit the environment, not the working directory
    if address is None:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=processes,
                # a free port of its own (None falls back to 8787, which a second cluster, such as
                # the other chapter's of a parallel book build, finds taken and warns about on the page)
                dashboard_address=":0",
                # the worker processes' own logs: a worker stopped with the cluster reports, at
                # WARNING or (a heartbeat to the scheduler that just closed) ERROR level, a
                # shutdown that is not news; a task's error still reaches the page, re-raised
                # by its future below
                silence_logs=logging.CRITICAL,
                resources=resources,
            )
        client = Client(cluster)
    else:
        client = Client(address)
    quiet = _quiet_logs()
    try:
        futures = [
            client.submit(_in_worker, task, profile, run, pure=False, resources=resources)
            for run in runs
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[R | None] = [None] * len(futures)
        bar = tqdm(total=len(futures), desc="grid (dask)", disable=not progress)
        for fut in as_completed(futures):
            results[index[fut.key]] = fut.result()  # re-raises a task's error here
            bar.update(1)
        bar.close()
        return results  # type: ignore[return-value]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        quiet.restore()


class _quiet_logs:
    """Raise the ``distributed`` loggers to ERROR until :meth:`restore`.

    Closing a local cluster logs, at WARNING level, that the nanny had to kill a
    worker still shutting down; in a book chapter that line lands on the page
    although nothing went wrong. Errors are still shown.
    """

    NAMES = ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker",
             "distributed.core", "distributed.batched")

    def __init__(self) -> None:
        self.levels = {n: logging.getLogger(n).level for n in self.NAMES}
        for n in self.NAMES:
            logging.getLogger(n).setLevel(logging.ERROR)

    def restore(self) -> None:
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)


def make_cluster(kind: str, jobs: int, **kwargs: Any):
    """A dask-jobqueue cluster (``"slurm"`` or ``"pbs"``) scaled to ``jobs`` one-task jobs.

    ``kwargs`` go to ``SLURMCluster`` / ``PBSCluster`` (``queue``, ``walltime``,
    ``memory``, ``account``, ``job_extra_directives`` ...); every job runs one
    single-threaded worker (``cores=1``, ``processes=1``) unless given. The
    path variables of the environment that are set (``GSUTILS_RESULTS``,
    ``GSUTILS_CACHE``) are exported, as absolute paths, at the top of every
    job script (``job_script_prologue``): a job starts in another folder, and
    PBS does not pass the submitting environment on.
    """
    try:
        import dask_jobqueue
    except ImportError as err:  # pragma: no cover - a dependency
        raise ImportError("--cluster needs the 'dask-jobqueue' package (pip install dask-jobqueue)") from err
    classes = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}
    if kind not in classes:
        raise ValueError(f"cluster must be one of {sorted(classes)}, got {kind!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    import shutil

    submit = {"slurm": "sbatch", "pbs": "qsub"}[kind]
    if shutil.which(submit) is None:  # otherwise the jobs fail in the background and the sweep waits forever
        raise RuntimeError(f"{submit} is not on PATH: --cluster {kind} must run where {kind.upper()} jobs "
                           f"can be submitted (a login node); use --executor dask [--address ...] elsewhere")
    import shlex

    exports = [f"export {k}={shlex.quote(v)}" for k, v in absolute_path_environment().items()]
    key = "env_extra" if "env_extra" in kwargs else "job_script_prologue"  # env_extra: its old name
    kwargs[key] = exports + list(kwargs.get(key) or [])
    kwargs.setdefault("cores", 1)
    kwargs.setdefault("processes", 1)
    kwargs.setdefault("memory", "8GB")
    cluster = classes[kind](**kwargs)
    cluster.scale(jobs=jobs)
    return cluster


@contextmanager
def executor_or_exit(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Iterator[tuple[Any, Any, Any]]:
    """``(executor, address, workers)`` from :func:`gsutils.cli.add_executor_arguments`' options.

    A bad combination is a one-line error. With ``--cluster`` the jobqueue
    cluster is started here (:func:`make_cluster`) and closed when the block
    ends; an address (given or the cluster's) implies the Dask executor.
    """
    if args.workers is not None and args.workers < 1:
        fail(parser, f"--workers must be at least 1, got {args.workers}")
    if args.cluster and args.address:
        fail(parser, "give either --cluster or --address, not both")
    if args.jobs < 1:
        fail(parser, f"--jobs must be at least 1, got {args.jobs}")
    if args.address is not None and args.executor == "local":
        fail(parser, "--address is only used with --executor dask")
    cluster, address, executor = None, args.address, args.executor
    if args.cluster:
        kw = {k: v for k, v in {"queue": args.queue, "walltime": args.walltime, "memory": args.memory,
                                "account": args.account}.items() if v is not None}
        try:
            cluster = make_cluster(args.cluster, args.jobs, **kw)
        except (ImportError, ValueError, RuntimeError, OSError) as err:
            fail(parser, f"could not start the {args.cluster} cluster: {err}")
        address = cluster.scheduler_address
    if address is not None:
        executor = "dask"
    try:
        yield executor, address, args.workers
    finally:
        if cluster is not None:
            cluster.close()
