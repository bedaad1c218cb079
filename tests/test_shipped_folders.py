"""Every folder shipped in ``checkpoints/quick/`` restores through the one shipped-network type.

For each folder (U-Nets, DeepLabs, NormGrad classifiers, the captioner):
its config hashes to its folder's name (so the run of that config finds it),
:meth:`ShippedNetwork.restore` puts it into a fresh results folder with a
verifying checksum, and the restored weights load, strictly, into the network
its config describes, which runs one forward pass on a tiny input. No
training, no dataset.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from gsutils.experiments.common.shipped import FILES, KINDS, ShippedNetwork, shipped_networks
from gsutils.experiments.common.store import Store
from gsutils.experiments.grid.deeplab_training import DeepLabRecipe, model_dir
from gsutils.experiments.normgrad import captioning as cap
from gsutils.experiments.normgrad import classifier_training as ct
from gsutils.io import config_key, read_checked
from gsutils.models.deeplab import deeplab
from gsutils.models.unet import build_unet, load_checkpoint_into
from gsutils.profiles import get_profile

NETWORKS = shipped_networks("quick")


def test_every_kind_is_shipped_and_every_folder_is_known():
    from gsutils.paths import REPO_ROOT

    folders = sorted(p.name for p in (REPO_ROOT / "checkpoints" / "quick").iterdir() if p.is_dir())
    assert [n.folder for n in NETWORKS] == folders
    assert {n.kind for n in NETWORKS} == set(KINDS)


def _load(net: ShippedNetwork, results) -> torch.nn.Module:
    """The restored network of ``net`` in ``results``, loaded strictly into its architecture."""
    cfg = net.config
    if net.kind == "unet":
        model = build_unet(cfg["backbone"], cfg["num_classes"], cfg["in_channels"])
        return load_checkpoint_into(model, net.target(results) / "model.pt"), (1, cfg["in_channels"], 64, 64)
    if net.kind == "deeplab":
        r = DeepLabRecipe(**cfg["recipe"])
        model = deeplab(r.encoder, r.classes, decoder_channels=r.decoder_channels)
        saved = torch.load(net.target(results) / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        return model, (2, 3, 64, 64)
    entry = Store(results).load(net.kind, cfg, "pt")
    if net.kind == "normgrad_classifier":
        model = ct.deployed_model(cfg)
        model.load_state_dict(entry["state_dict"])
        return model, (1, 3, 64, 64)
    model = cap._build(cfg, len(entry["vocab"]))
    model.load_state_dict(entry["state_dict"])
    return model.encoder, (1, 3, 64, 64)


@pytest.mark.parametrize("net", NETWORKS, ids=[n.folder for n in NETWORKS])
def test_a_shipped_folder_restores_verified_and_loads_into_its_network(net, tmp_path):
    quick = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    if net.kind == "deeplab":
        r = DeepLabRecipe(**net.config["recipe"])
        assert model_dir(quick, r, net.config["data"]).name == net.folder
    elif net.kind == "unet":
        assert config_key(net.config) == net.folder
    else:
        assert ShippedNetwork.of(net.kind, quick, net.config) == net
    assert net.exists() and net.provenance() is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a refused folder warns: fail on it
        assert net.restore(quick.results_dir)
    target = net.target(quick.results_dir)
    if KINDS[net.kind].store:
        assert Store(quick.results_dir).exists(net.kind, net.config, "pt")  # written with its checksum
    else:
        assert sorted(p.name for p in target.iterdir()) == sorted(FILES)
        assert read_checked(target / "model.pt") == read_checked(net.path / "model.pt")
    model, shape = _load(net, quick.results_dir)
    with torch.no_grad():
        out = model.eval()(torch.rand(shape))
    assert torch.isfinite(out).all()


def test_the_profile_finds_its_shipped_classifiers_and_captioner(tmp_path):
    quick = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    wanted = {ct.shipped_network(quick, arch).folder for arch in quick.normgrad.archs}
    wanted.add(cap.shipped_network(quick).folder)
    assert wanted <= {n.folder for n in NETWORKS}


def test_a_corrupt_shipped_file_is_refused_in_one_line_naming_it_and_the_fix(tmp_path, monkeypatch):
    import shutil

    from gsutils.experiments.common import shipped

    net = next(n for n in NETWORKS if n.kind == "deeplab")
    root = tmp_path / "checkpoints"
    shutil.copytree(net.path, root / "quick" / net.folder)
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", root)
    data = bytearray((net.path / "model.pt").read_bytes())
    data[100] ^= 1
    (net.path / "model.pt").write_bytes(bytes(data))
    with pytest.warns(UserWarning) as record:
        assert not net.restore(tmp_path / "results")
    (message,) = [str(w.message) for w in record]
    assert "\n" not in message and "model.pt: checksum mismatch" in message
    assert "git checkout --" in message and "python -m gsutils scenes --profile quick --export" in message
    assert not net.target(tmp_path / "results").exists()


@pytest.mark.parametrize("net", NETWORKS, ids=[n.folder for n in NETWORKS])
def test_restore_then_export_gives_back_the_shipped_files_byte_for_byte(net, tmp_path, monkeypatch):
    """Today's on-disk formats: what a restored network exports is what was committed (float16
    U-Nets stay float16), and the export adds this machine's ``provenance.json``."""
    from gsutils.experiments.common import shipped

    results = tmp_path / "results"
    assert net.restore(results)
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", tmp_path / "checkpoints")
    committed = shipped.REPO_ROOT / "checkpoints" / "quick" / net.folder
    out = net.export(results, threads=1)
    assert out == tmp_path / "checkpoints" / "quick" / net.folder
    for f in FILES:
        assert (out / f).read_bytes() == (committed / f).read_bytes(), f
    assert net.provenance() == {**shipped.machine(), "threads": 1}
    assert (out.parent / "PROVENANCE.json").is_file()
