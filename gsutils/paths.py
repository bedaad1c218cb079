"""Where the repository, results and caches are."""

from __future__ import annotations

import os
from pathlib import Path

#: the repository root (gsutils is installed in editable mode from it)
REPO_ROOT = Path(__file__).resolve().parents[1]


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
