"""The one-GPU script (``benchmarks/device_run.sh``) runs end to end on the CPU at a tiny scale.

No GPU is lent to this project's CI, so this is how the script that trains the gpu profile's S1.2
sub-grid (N, strong and weak bias on one digit; VGG16 U-Nets, the paper's recipe) is kept working:
its networks train for one epoch of 200 images, are evaluated, and the summary it writes under
``results/gpu/`` carries every network and the gate; a second run restores instead of training.

The end-to-end run builds three full-size VGG16 U-Nets and takes about 8 minutes on one CPU
thread, too long for every ``make test``: it runs when ``GSUTILS_DEVICE_SCRIPT_TEST=1`` is set
(``GSUTILS_DEVICE_SCRIPT_TEST=1 pytest tests/test_device_run.py``), before a GPU run and after a
change to the script or to the S1.2 training it calls.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _device_run():
    spec = importlib.util.spec_from_file_location("device_run", ROOT / "benchmarks" / "device_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GSUTILS_DEVICE_SCRIPT_TEST") != "1",
                    reason="about 8 min on a CPU; set GSUTILS_DEVICE_SCRIPT_TEST=1 to run it")
def test_the_gpu_script_trains_evaluates_and_resumes_on_the_cpu(tmp_path, capsys):
    dr = _device_run()
    argv = ["--device", "cpu", "--scale", "0.001", "--out", str(tmp_path)]
    assert dr.main(argv) == 0
    summary = json.loads((tmp_path / "s1_2_subgrid-scale0.001.json").read_text())
    assert [r["network"].split("/")[1] for r in summary["networks"]] == ["N", "strong-d2-t0", "weak-d2-t0"]
    assert summary["n_train"] == 200 and summary["epochs"] == 1 and summary["device"] == "cpu"
    assert summary["gate"]["threshold"] == 0.9 and isinstance(summary["gate"]["passed"], bool)
    for r in summary["networks"]:
        assert len(r["iou"]) == 11 and 0 <= r["digit_miou"] <= 1 and r["train_seconds"] > 0
    first = summary["networks"]
    capsys.readouterr()
    assert dr.main(argv) == 0  # everything is restored from the run folder: same numbers, no training
    again = json.loads((tmp_path / "s1_2_subgrid-scale0.001.json").read_text())["networks"]
    assert again == first


def test_a_scale_outside_zero_to_one_is_refused_with_the_range(capsys):
    dr = _device_run()
    with pytest.raises(SystemExit):
        dr.main(["--device", "cpu", "--scale", "2"])
    assert "--scale must be in (0, 1], got 2" in capsys.readouterr().err
