"""Where the repository, results and caches are."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

#: the repository root (gsutils is installed in editable mode from it)
REPO_ROOT = Path(__file__).resolve().parents[1]

#: environment variables that name folders (see :func:`absolute_path_environment`)
PATH_VARIABLES = ("GSUTILS_RESULTS", "GSUTILS_CACHE")


def results_root() -> Path:
    """``$GSUTILS_RESULTS`` if set, else ``<repo>/results``."""
    env = os.environ.get("GSUTILS_RESULTS")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "results"


def cache_root() -> Path:
    """Where derived data (MNIST .npz caches, datasets) is cached.

    ``$GSUTILS_CACHE`` if set, else ``<repo>/.cache``.
    """
    env = os.environ.get("GSUTILS_CACHE")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".cache"


def absolute_path_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Make the :data:`PATH_VARIABLES` of ``environ`` (default ``os.environ``) absolute, in place.

    A relative value is resolved against the current working directory, the
    caller's, so that a notebook kernel (run in ``book/<part>/``), a Dask
    worker or a cluster job started afterwards, which inherit the environment
    but not the working directory, sees the same folders. Returns the
    variables that are set, ``{name: absolute path}``.
    """
    env = os.environ if environ is None else environ
    out = {}
    for name in PATH_VARIABLES:
        if env.get(name):
            env[name] = out[name] = str(Path(env[name]).expanduser().resolve())
    return out
