"""The S1 network study's committed table is the one its script prints from the committed trials.

The appendix ("How the networks were obtained") includes
``benchmarks/results/s1_network_study/table.md``; this test fails when a trial's JSON was added or
changed without re-running ``python benchmarks/s1_network_study.py --table-only``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _study():
    spec = importlib.util.spec_from_file_location("s1_network_study", ROOT / "benchmarks" / "s1_network_study.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)  # its dataclasses look their module up by name
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_committed_table_is_the_scripts():
    study = _study()
    committed = (study.STUDY_DIR / "table.md").read_text()
    assert committed == study.table(study.finished_rows(study.STUDY_DIR)) + "\n", (
        "benchmarks/results/s1_network_study/table.md is stale: run "
        "`python benchmarks/s1_network_study.py --table-only`")


def test_table_row_reports_gate_pass_and_cpu(tmp_path):
    study = _study()
    name = next(iter(study.TRIALS))
    row = {"trial": name, "widths": [8], "resolution": 64, "render_resolution": None, "bf16": False,
           "steps": 2000, "backbone": "small", "params": 1_300_000, "threads": 1, "cpu": "Some CPU",
           "curve": [{"step": 1000, "digit_miou": 0.6, "cpu_s": 600.0, "wall_s": 700.0},
                     {"step": 2000, "digit_miou": 0.8, "cpu_s": 1200.0, "wall_s": 1400.0}]}
    (tmp_path / f"{name}.json").write_text(json.dumps(row))
    (tmp_path / "other.partial.json").write_text("{}")  # an unfinished trial is not a row
    lines = study.table(study.finished_rows(tmp_path)).splitlines()
    assert len(lines) == 3
    assert "1,000: 0.60 (10), 2,000: 0.80 (20)" in lines[2]
    assert "| step 2,000, 20 CPU min | Some CPU, 1 thread(s) |" in lines[2]
    assert "| 1.30M | 64 px | float32 | 2,000 |" in lines[2]
