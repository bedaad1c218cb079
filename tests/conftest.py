"""Shared fixtures: seeds and paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def results_env(tmp_path, monkeypatch):
    """Point the result and cache roots at a temporary folder."""
    monkeypatch.setenv("GSUTILS_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests using it skip when absent."""
    d = SHARED / "data"
    if not d.exists():
        pytest.skip("../shared/data is not present beside the checkout")
    return d


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (training tests: deterministic and fair on a shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
