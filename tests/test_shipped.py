"""Shipped networks: complete for the quick grid, restored only for their exact config,
and their logged first training steps re-run bit for bit from the same initialisation."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from gsutils.experiments import segmentation as seg
from gsutils.experiments import shipped
from gsutils.profiles import get_profile


@pytest.fixture
def quick(tmp_path):
    return get_profile("quick", device="cpu", results_dir=tmp_path / "results")


def test_every_quick_network_is_shipped(quick):
    rows = shipped.manifest(quick, seg.grid_runs(quick))
    missing = [r["network"] for r in rows if not r["shipped"]]
    assert not missing, (f"no shipped network for {missing}: train them with "
                         "`python -m gsutils.experiments.shipped --profile quick --retrain --export`")
    assert sum(r["kB"] for r in rows) < 20_000  # compact: a few MB in all


@pytest.mark.parametrize("index", range(11))
def test_shipped_first_steps_reproduce_bit_for_bit(quick, index):
    """Re-run the first logged training steps of each shipped network: the losses agree exactly."""
    run = seg.grid_runs(quick)[index]
    folder = shipped.shipped_dir(quick, seg.model_dir(quick, run).name)
    if not folder.is_dir():
        pytest.fail(f"{run.label} is not shipped (see test_every_quick_network_is_shipped)")
    history = json.loads((folder / "history.json").read_text())
    assert len(history) == quick.train.epochs  # a finished run
    logged = history[0]["first_step_losses"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the networks were trained (one-thread workers)
    try:
        again = seg.first_step_losses(quick, run, len(logged))
    finally:
        torch.set_num_threads(threads)
    trained_on = shipped.provenance(quick)
    assert trained_on is not None, "checkpoints/quick/PROVENANCE.json is missing"
    here = shipped.machine()
    if all(trained_on[k] == here[k] for k in ("torch", "cpu_capability", "cpu")):
        assert again == logged  # the same machine kind and torch: bit for bit
    else:  # another CPU kernel set or torch version: float rounding may differ, nothing else
        np.testing.assert_allclose([float.fromhex(v) for v in again], [float.fromhex(v) for v in logged],
                                   rtol=1e-5)


@pytest.fixture
def tiny_shipped(tmp_path, monkeypatch):
    """A two-epoch network of a shrunken quick profile, trained and exported to a temporary root."""
    prof = get_profile("quick", device="cpu", results_dir=tmp_path / "trained")
    prof = dataclasses.replace(prof, toy=dataclasses.replace(prof.toy, n_train=64, n_test=20),
                               train=dataclasses.replace(prof.train, epochs=2))
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", tmp_path / "checkpoints")
    run = seg.grid_runs(prof)[1]
    seg.train_or_load(prof, run, progress=False, shipped=False)
    (folder,) = shipped.export(prof, [run])
    fresh = dataclasses.replace(prof, results_dir=tmp_path / "fresh")
    return fresh, run, folder


def test_restore_loads_the_shipped_weights_without_training(tiny_shipped, monkeypatch):
    prof, run, folder = tiny_shipped

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a matching network is shipped")

    monkeypatch.setattr(seg, "train_unet", no_training)
    model = seg.train_or_load(prof, run, progress=False)
    weights = torch.load(folder / "model.pt", weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), weights[k]), k


def test_restore_refuses_another_config_and_a_bad_checksum(tiny_shipped):
    prof, run, folder = tiny_shipped
    cfg = json.loads((folder / "config.json").read_text())
    cfg["recipe"]["lr"] = 1.0
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="config differs"):
        assert not shipped.restore(prof, run)
    shutil.rmtree(prof.results_dir, ignore_errors=True)
    cfg["recipe"]["lr"] = seg.train_config(prof, run)["recipe"]["lr"]
    (folder / "config.json").write_text(json.dumps(cfg))
    data = bytearray((folder / "model.pt").read_bytes())
    data[-1] ^= 1
    (folder / "model.pt").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="ignoring shipped network"):
        assert not shipped.restore(prof, run)
    assert not (seg.model_dir(prof, run) / "model.pt").exists()
