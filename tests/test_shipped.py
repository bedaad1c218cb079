"""Shipped networks: complete for the quick grid, restored only for their exact config,
and their logged first training steps re-run bit for bit from the same initialisation."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from gsutils.experiments.common import shipped
from gsutils.experiments.grid import segmentation as seg
from gsutils.experiments.grid import shipped_unets
from gsutils.profiles import get_profile

#: compares floats or bytes to what the same code made elsewhere: also run with a forced CPU kernel set
pytestmark = pytest.mark.numeric


@pytest.fixture
def quick(tmp_path):
    return get_profile("quick", device="cpu", results_dir=tmp_path / "results")


def test_every_quick_network_is_shipped(quick):
    rows = shipped_unets.manifest(quick, seg.grid_runs(quick))
    missing = [r["network"] for r in rows if not r["shipped"]]
    assert not missing, (f"no shipped network for {missing}: train them with "
                         "`python -m gsutils shipped --profile quick --retrain --export`")
    assert max(r["kB"] for r in rows) < 3_000  # compact: 2.6 MB each (1.3M float16 weights)


def test_the_manifest_takes_the_key_of_other_runs(quick):
    from types import SimpleNamespace

    rows = shipped.manifest(quick, [SimpleNamespace(label="x")],
                            network=lambda profile, run: shipped.ShippedNetwork("unet", profile.name, None, "no-such-key"))
    assert rows == [{"network": "x", "key": "no-such-key", "shipped": False, "sha256": None, "kB": None}]


@pytest.fixture(scope="module")
def _tiny_trained(tmp_path_factory):
    """A two-epoch network of a shrunken quick profile, trained once per module (and worker) and
    exported: the folder holding ``trained/`` (its results) and ``checkpoints/`` (the export).

    Trained in float32: the quick recipe's bfloat16 autocast runs 15-20x slower on a CPU that
    emulates it (AVX2 only), and shipping does not depend on the precision."""
    base = tmp_path_factory.mktemp("tiny_shipped")
    prof = get_profile("quick", device="cpu", results_dir=base / "trained")
    prof = dataclasses.replace(prof, toy=dataclasses.replace(prof.toy, n_train=64, n_test=20),
                               train=dataclasses.replace(prof.train, epochs=2, autocast=None))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shipped, "SHIPPED_ROOT", base / "checkpoints")
        run = seg.grid_runs(prof)[1]
        seg.train_or_load(prof, run, progress=False, shipped=False)
        (folder,) = shipped_unets.export(prof, [run])
    return base, prof, run, folder.relative_to(base)


@pytest.fixture
def tiny_shipped(_tiny_trained, tmp_path, monkeypatch):
    """:func:`_tiny_trained`'s network exported to this test's own copy (a test may change its
    files): the profile with a fresh results folder, the run, and the shipped folder."""
    base, prof, run, rel = _tiny_trained
    shutil.copytree(base, tmp_path / "copy")
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", tmp_path / "copy" / "checkpoints")
    trained = dataclasses.replace(prof, results_dir=tmp_path / "copy" / "trained")
    fresh = dataclasses.replace(trained, results_dir=tmp_path / "copy" / "fresh")
    return fresh, run, tmp_path / "copy" / rel


def test_restore_loads_the_shipped_weights_without_training(tiny_shipped, monkeypatch):
    prof, run, folder = tiny_shipped

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a matching network is shipped")

    monkeypatch.setattr(seg, "train_unet", no_training)
    model = seg.train_or_load(prof, run, progress=False)
    weights = torch.load(folder / "model.pt", weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), weights[k].to(v.dtype)), k


def _restore(prof, run) -> bool:
    return seg.shipped_network(prof, run).restore(prof.results_dir)


def test_restore_refuses_another_config_and_a_bad_checksum(tiny_shipped):
    prof, run, folder = tiny_shipped
    cfg = json.loads((folder / "config.json").read_text())
    cfg["recipe"]["lr"] = 1.0
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="config differs"):
        assert not _restore(prof, run)
    shutil.rmtree(prof.results_dir, ignore_errors=True)
    cfg["recipe"]["lr"] = seg.train_config(prof, run)["recipe"]["lr"]
    (folder / "config.json").write_text(json.dumps(cfg))
    data = bytearray((folder / "model.pt").read_bytes())
    data[-1] ^= 1
    (folder / "model.pt").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="ignoring shipped network .*model.pt: checksum mismatch.*git checkout"):
        assert not _restore(prof, run)
    assert not (seg.model_dir(prof, run) / "model.pt").exists()


def test_each_exported_network_records_the_machine_that_trained_it(tiny_shipped):
    """A network trained on another machine than the rest carries its own provenance.json; the
    profile's PROVENANCE.json (the machine of the networks without one) is not overwritten."""
    prof, run, folder = tiny_shipped
    root = shipped.SHIPPED_ROOT / prof.name
    assert json.loads((folder / "provenance.json").read_text()) == {**shipped.machine(), "threads": 1}
    other = {"torch": "0.0", "cpu_capability": "DEFAULT", "cpu": "another CPU", "threads": 1}
    (root / "PROVENANCE.json").write_text(json.dumps(other))
    trained = dataclasses.replace(prof, results_dir=prof.results_dir.parent / "trained")
    shipped_unets.export(trained, [run])
    assert json.loads((root / "PROVENANCE.json").read_text()) == other
    net = seg.shipped_network(prof, run)
    assert net.path == folder and net.provenance() == {**shipped.machine(), "threads": 1}
    (folder / "provenance.json").unlink()
    assert net.provenance() == other
    # the captioner's first export named its own file PROVENANCE.json: still read
    (folder / "PROVENANCE.json").write_text(json.dumps({**other, "cpu": "its own CPU"}))
    assert net.provenance()["cpu"] == "its own CPU"


def test_half_precision_keeps_a_tensor_beyond_float16_at_float32(tmp_path):
    """A batch-norm running variance above 65,504 stays float32; loading restores every value."""
    import io

    from gsutils.models.unet import build_unet, load_checkpoint_into, save_unet

    net = build_unet("tiny", seed=0).eval()
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var.fill_(1e6)
    data = shipped.half_model_bytes(save_unet(net, tmp_path / "m.pt").read_bytes())
    state = torch.load(io.BytesIO(data), weights_only=True)["state_dict"]
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    assert dtypes == {torch.float16, torch.float32}
    (tmp_path / "h.pt").write_bytes(data)
    back = load_checkpoint_into(build_unet("tiny", seed=1).eval(), tmp_path / "h.pt")
    got = next(m for m in back.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_var
    assert got.dtype == torch.float32 and torch.equal(got, torch.full_like(got, 1e6))
