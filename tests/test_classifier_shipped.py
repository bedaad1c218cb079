"""Shipped NormGrad classifiers: present for the quick profile, restored only for their exact
config, and their logged first training steps re-run from the same initialisation."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from gsutils.experiments.common import shipped
from gsutils.experiments.normgrad import classifier_snapshots as snaps
from gsutils.experiments.normgrad import classifier_training as ct
from gsutils.profiles import get_profile

#: compares floats or bytes to what the same code made elsewhere: also run with a forced CPU kernel set
pytestmark = pytest.mark.numeric


@pytest.fixture
def quick(tmp_path):
    return get_profile("quick", device="cpu", results_dir=tmp_path / "results")


def test_quick_classifiers_are_shipped_and_small(quick):
    total = 0
    for arch in quick.normgrad.archs:
        folder = ct.shipped_network(quick, arch).path
        missing = [f for f in shipped.FILES if not (folder / f).is_file()]
        assert not missing, (f"{arch}: {missing} missing in {folder}; train and export with `python -m "
                             "gsutils.experiments.normgrad.classifier_training --profile quick --retrain --export`")
        assert json.loads((folder / "config.json").read_text()) == ct.classifier_config(quick, arch)
        total += (folder / "model.pt").stat().st_size
    assert total < 5_000_000


def test_restore_without_training_and_only_for_the_same_config(tmp_path, monkeypatch):
    prof = get_profile("quick", device="cpu", results_dir=tmp_path / "trained")
    prof = dataclasses.replace(prof, normgrad=dataclasses.replace(prof.normgrad, n_train_scenes=32, n_test_scenes=8,
                                                                  epochs=1, width=0.0625, image_size=48))
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", tmp_path / "checkpoints")
    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path / "cache"))
    trained = ct.train_or_load_classifier(prof, "resnet50", progress=False)
    assert snaps.classifier_snapshot(prof, "resnet50", 1) is not None
    folder = ct.export_shipped(prof, "resnet50")
    fresh = dataclasses.replace(prof, results_dir=tmp_path / "fresh")

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a matching network is shipped")

    monkeypatch.setattr(ct, "_train", no_training)
    model = ct.train_or_load_classifier(fresh, "resnet50", progress=False)
    for k, v in trained.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    # the epoch snapshots ship too; with one epoch the only one is the float32 network itself
    snap = snaps.classifier_snapshot(fresh, "resnet50", 1)
    assert snaps.snapshot_precision(fresh, "resnet50") == "float32"
    for k, v in trained.state_dict().items():
        assert torch.equal(v, snap.state_dict()[k])
    # a tampered checkpoint is ignored with a warning (and the network would be trained)
    (folder / "model.pt").write_bytes(b"junk")
    other = dataclasses.replace(prof, results_dir=tmp_path / "other")
    with pytest.warns(UserWarning, match="ignoring shipped network"):
        assert ct.restore_shipped(other, "resnet50") is False


def test_half_precision_snapshots_round_trip():
    from gsutils.experiments.common.shipped import pack_half, unpack_half

    g = torch.Generator().manual_seed(0)
    states = {e: {"w": torch.randn(4, 3, generator=g), "n": torch.tensor(7 * e)} for e in (1, 2)}
    back = unpack_half(pack_half(states))
    assert sorted(back) == [1, 2]
    for e, st in states.items():
        assert back[e]["w"].dtype == torch.float32
        torch.testing.assert_close(back[e]["w"], st["w"], rtol=1e-3, atol=1e-4)
        assert not torch.equal(back[e]["w"], st["w"])  # really rounded
        assert back[e]["n"].dtype == st["n"].dtype and torch.equal(back[e]["n"], st["n"])
    with pytest.raises(ValueError, match="float16's range"):
        pack_half({1: {"w": torch.tensor([1e6])}})


@pytest.mark.parametrize("arch", ["vgg16", "resnet50"])
def test_restored_network_brings_its_epoch_snapshots(quick, arch):
    # Fig. 2/3 of NormGrad D from a fresh checkout: every epoch, the last one the float32 network
    model = ct.train_or_load_classifier(quick, arch, progress=False)
    assert snaps.snapshot_precision(quick, arch) == "float16"
    final = snaps.classifier_snapshot(quick, arch, quick.normgrad.epochs)
    for name, t in model.state_dict().items():
        assert torch.equal(final.state_dict()[name], t), name
    first = snaps.classifier_snapshot(quick, arch, 1)
    assert first is not None and first.state_dict().keys() == model.state_dict().keys()
    assert any(not torch.equal(first.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_corrupt_shipped_snapshot_leaves_the_epochs_absent_with_a_warning(quick, tmp_path, monkeypatch):
    import shutil

    cfg = ct.classifier_config(quick, "resnet50")
    src = ct.shipped_network(quick, "resnet50").path
    root = tmp_path / "checkpoints"
    dst = root / quick.name / src.name
    shutil.copytree(src, dst)
    (dst / ct.SHIPPED_SNAPSHOTS.format(epoch=3)).write_bytes(b"junk")
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", root)
    with pytest.warns(UserWarning, match="ignoring the shipped snapshots"):
        assert ct.restore_shipped(quick, "resnet50")
    assert snaps.classifier_snapshot(quick, "resnet50", 1) is None  # all or none
    assert snaps.classifier_snapshot(quick, "resnet50", quick.normgrad.epochs) is not None
    assert snaps.snapshot_precision(quick, "resnet50") is None
