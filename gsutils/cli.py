"""What every command line of the project shares: one-line user errors, profiles.

A user error (a bad option value, an unwritable output file, an unknown
profile or device) is reported as one line on stderr,
``<prog>: error: <message>``, with exit status 2, the convention of
:mod:`argparse`, and never as a traceback. :class:`Parser` makes argparse's
own errors one line too (the usage is left to ``--help``).
"""

from __future__ import annotations

import argparse
import errno
import os
import pickle
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

#: profiles sized for a GPU: running one on the CPU is allowed but worth a warning
GPU_PROFILES = ("gpu", "paper")


def one_line(message: object) -> str:
    """``message`` with its lines joined (an error report is one line)."""
    return " ".join(str(message).split())


#: what a command reports as a one-line user error (see :func:`error_message`): bad values, and
#: files that cannot be read or written (``OSError``) or that are truncated or corrupt
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError)

_MOVE_RESULTS = "set GSUTILS_RESULTS (results) and GSUTILS_CACHE (caches) to folders"
#: errno -> the fix named after the problem
_OS_FIXES: dict[int, str] = {
    errno.ENOSPC: f"free some disk space, or {_MOVE_RESULTS} on a disk with room",
    errno.EDQUOT: f"free some of your disk quota, or {_MOVE_RESULTS} on a disk with room",
    errno.EROFS: f"{_MOVE_RESULTS} on a writable disk",
    errno.EACCES: f"change its permissions, or {_MOVE_RESULTS} you can write",
    errno.EPERM: f"change its permissions, or {_MOVE_RESULTS} you can write",
    errno.ENOTDIR: "a file stands where a folder is needed: move the file or choose another folder",
    errno.EEXIST: "a file stands where a folder is needed: move the file or choose another folder",
    errno.EISDIR: "a folder stands where a file is needed: give a file name",
    errno.ENOENT: "check the path (a relative one is taken from the current folder)",
}


def error_message(err: BaseException) -> str:
    """The one-line report of a :data:`USER_ERRORS` exception: the problem, then its fix.

    An ``OSError`` with an error number names the file and the fix (a full
    disk, a read-only or non-directory folder, a missing file); a truncated
    or corrupt file (``EOFError``, a bad zip or pickle) says so; any other
    message is the exception's own, joined into one line.
    """
    if isinstance(err, OSError) and err.errno in _OS_FIXES:
        where = " -> ".join(repr(str(f)) for f in (err.filename, err.filename2) if f is not None)
        problem = f"{where}: {err.strerror}" if where else (err.strerror or os.strerror(err.errno))
        return one_line(f"{problem}; {_OS_FIXES[err.errno]}")
    if isinstance(err, (EOFError, zipfile.BadZipFile, pickle.UnpicklingError)):
        return one_line(f"a truncated or corrupt input file ({type(err).__name__}: {err}); delete it "
                        "(a result is then recomputed) or download it again")
    return one_line(err)


def check_writable_folder(path: str | os.PathLike, what: str = "the results folder") -> None:
    """Raise ``OSError`` (one-line message naming the fix) unless ``path`` is, or can be made, a writable folder.

    The folders of ``path`` that do not exist yet count as creatable when
    their nearest existing parent is a writable folder.
    """
    path = Path(path)
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"{what} {str(path)!r} cannot be created: {str(parent)!r} is a file, not a "
                                 "folder; move the file or set GSUTILS_RESULTS to another folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(path)!r} cannot be written: {str(parent)!r} is read-only (for "
                              "you, or its disk is); make it writable or set GSUTILS_RESULTS to a writable "
                              "folder")


#: ``{module's prog: prog to show}`` while :func:`command_prog` is active
_PROG_ALIASES: dict[str, str] = {}


@contextmanager
def command_prog(module: str, prog: str) -> Iterator[None]:
    """Within the block, a :class:`Parser` named ``python -m <module>`` is named ``prog``.

    ``python -m gsutils train`` runs ``gsutils.experiments.grid.segmentation.main``:
    its usage and errors then read ``python -m gsutils train``, not the module path.
    """
    _PROG_ALIASES[f"python -m {module}"] = prog
    try:
        yield
    finally:
        _PROG_ALIASES.pop(f"python -m {module}", None)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``prog: error: message (see --help)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("prog") in _PROG_ALIASES:
            kwargs["prog"] = _PROG_ALIASES[kwargs["prog"]]
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def fail(parser: argparse.ArgumentParser, message: object) -> NoReturn:
    """Report a user error in one line on stderr and exit with status 2."""
    parser.exit(2, f"{parser.prog}: error: {one_line(message)}\n")


def warn(parser: argparse.ArgumentParser, message: object) -> None:
    """A one-line warning on stderr."""
    print(f"{parser.prog}: warning: {one_line(message)}", file=sys.stderr, flush=True)


def cpu_fallback_message(profile: str, requested: str, resolved: str) -> str | None:
    """The warning for a GPU-sized profile that ``device="auto"`` resolved to the CPU, or ``None``."""
    if profile in GPU_PROFILES and requested == "auto" and resolved == "cpu":
        return (f"profile {profile!r} is sized for a GPU but none is visible: falling back to "
                "the CPU (much slower; pass --device cpu to silence this, or --profile quick)")
    return None


def add_profile_arguments(parser: argparse.ArgumentParser, *, data_root_default: str | None = None) -> None:
    """The arguments every profile-driven command shares: ``--profile``, ``--device``, ``--seed``, ``--data-root``.

    Resolve them with :func:`profile_or_exit`.
    """
    from gsutils.profiles import PROFILE_NAMES

    parser.add_argument("--profile", default="quick", choices=PROFILE_NAMES,
                        help="the sizes to run: quick (any CPU, minutes per chapter), gpu (one GPU, "
                             "a sub-grid) or paper (the papers' full grids) (default: quick)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda, cuda:N or mps (default: auto, a GPU when one is visible, "
                             "else the CPU)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data, the training and the saliency (default: 0)")
    parser.add_argument("--data-root", default=data_root_default,
                        help="folder holding the real data sets (MNIST/raw, textures/, VOCdevkit/, coco/, "
                             "cityscapes/), relative to the current folder (default: none, the data "
                             "that ship with the packages and the stand-ins)")


def add_executor_arguments(parser: argparse.ArgumentParser, *, executor: str | None = "local",
                           workers: int | None = 2) -> None:
    """Where a grid of tasks runs: locally, on a Dask scheduler, or on a Slurm/PBS cluster.

    ``--executor``, ``--address``, ``--workers`` and the dask-jobqueue options
    ``--cluster``, ``--jobs``, ``--queue``, ``--walltime``, ``--memory``,
    ``--account``. Resolve them with :func:`gsutils.experiments.common.executor.executor_or_exit`,
    which starts the cluster.
    """
    parser.add_argument("--executor", default=executor, choices=("local", "dask"),
                        help="where the tasks run (default: " + (executor or "the profile's") + ")")
    parser.add_argument("--address", default=None, help="a Dask scheduler address (tcp://host:8786)")
    parser.add_argument("--workers", type=int, default=workers, help="local workers (one thread each)")
    parser.add_argument("--cluster", default=None, choices=("slurm", "pbs"),
                        help="start workers through dask-jobqueue")
    parser.add_argument("--jobs", type=int, default=4, help="cluster jobs (one single-threaded worker each)")
    parser.add_argument("--queue", default=None)
    parser.add_argument("--walltime", default="01:00:00")
    parser.add_argument("--memory", default="8GB")
    parser.add_argument("--account", default=None)


def grid_parser(prog: str, description: str, *, executor: str | None = "local",
                workers: int | None = 2) -> argparse.ArgumentParser:
    """A :class:`Parser` for a command that runs a grid of tasks: profile and executor options."""
    parser = Parser(prog=prog, description=description)
    add_profile_arguments(parser)
    add_executor_arguments(parser, executor=executor, workers=workers)
    return parser


def resolve_profile(name: str, **kwargs: Any):
    """:func:`gsutils.profiles.get_profile`, where a ``data_root`` that is given must be a folder.

    Every path, ``data_root``, ``results_dir`` and the path variables of the
    environment (:func:`gsutils.paths.absolute_path_environment`), is made
    absolute against the current working directory here, before it reaches a
    notebook kernel, a worker or a cluster job that runs elsewhere.

    Raises
    ------
    ValueError, TypeError
        A bad profile name, device, seed or data root (one-line messages).
    """
    from pathlib import Path

    from gsutils.paths import absolute_path_environment
    from gsutils.profiles import get_profile

    absolute_path_environment()
    root = kwargs.get("data_root")
    if root:
        if not Path(root).expanduser().is_dir():
            raise ValueError(f"--data-root {str(root)!r} is not a folder; give an existing folder "
                             "(relative to the current one) or leave it out")
        kwargs["data_root"] = Path(root).expanduser().resolve()
    if kwargs.get("results_dir"):
        kwargs["results_dir"] = Path(kwargs["results_dir"]).expanduser().resolve()
    return get_profile(name, **kwargs)


def parse_with_profile(parser: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, Any]:
    """Parse ``argv`` and resolve :func:`add_profile_arguments`' options: ``(args, profile)``.

    A ``--results-dir`` option, where the command has one, overrides the
    profile's results folder.
    """
    a = parser.parse_args(argv)
    extra = {"results_dir": a.results_dir} if getattr(a, "results_dir", None) is not None else {}
    return a, profile_or_exit(parser, a.profile, device=a.device, seed=a.seed, data_root=a.data_root, **extra)


def profile_or_exit(parser: argparse.ArgumentParser, name: str, **kwargs: Any):
    """:func:`resolve_profile`, with its errors as a one-line user error.

    A ``data_root`` that is given must be an existing folder. Warns (one line)
    when a GPU-sized profile falls back to the CPU.
    """
    try:
        cfg = resolve_profile(name, **kwargs)
    except (ValueError, TypeError) as err:
        fail(parser, err)
    note = cpu_fallback_message(name, kwargs.get("device", "auto"), cfg.device)
    if note:
        warn(parser, note)
    return cfg
