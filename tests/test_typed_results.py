"""The typed identity-trick, meta-saliency and Fig. S13 gallery results, and their cache.

Each cached result converts to the stored form the string-keyed dict it
replaces had and back: the entries the runners write are those of the old
records (written out here as the runners used to build them), so existing
caches still load.
"""

from __future__ import annotations

import dataclasses
import io
import math
import zipfile

import numpy as np
import pytest
import torch

from gsutils.experiments.common.store import Store, decode, encode
from gsutils.experiments.grid.context_evidence import ExampleMaps, GalleryViews
from gsutils.experiments.normgrad.identity_trick_results import IdentityTrickRun, TrickLayer
from gsutils.experiments.normgrad.meta_saliency import MetaExamples, MetaTrainingRun, TrainTestMap

# ------------------------------------------------------------------------------ identity trick (Table 1)


def _old_trick_record(nan: bool = True):
    """A record as ``normgrad_maps._identity_trick_compute`` built it before runs were typed."""
    def layer(mean, diff):
        return {"spearman_mean": mean, "spearman_std": 0.03125, "spearman_min": mean - 0.25, "n_correlated": 11,
                "n_constant": 1,
                "pointing": {"normgrad": {"all": 0.75, "difficult": float("nan") if nan else 0.5},
                             "normgrad_conv": {"all": 0.75 - diff, "difficult": float("nan") if nan else 0.25}},
                "n_pointing_pairs": {"all": 12, "difficult": 0 if nan else 3}}

    return {"arch": "resnet50", "n_pairs": 12,
            "layers": {"layer1.0.conv1": layer(0.96875, 0.0625), "layer2.0.conv1": layer(0.9375, -0.125),
                       "layer3.0.conv1": layer(0.90625, 0.0), "layer4.0.conv1": layer(0.875, 0.25)}}


def test_an_identity_trick_run_round_trips_through_its_stored_form():
    old = _old_trick_record()
    run = IdentityTrickRun.from_dict(old)
    assert run.arch == "resnet50" and run.n_pairs == 12 and list(run.layers) == list(old["layers"])
    r = run.layers["layer2.0.conv1"]
    assert isinstance(r, TrickLayer) and r.spearman_mean == 0.9375 and r.n_constant == 1
    assert r.difference("all") == pytest.approx(-0.125) and math.isnan(r.difference("difficult"))
    assert encode(run.as_dict(), "json") == encode(old, "json")
    back = IdentityTrickRun.from_dict(decode(encode(run.as_dict(), "json"), "json"))
    assert encode(back.as_dict(), "json") == encode(old, "json")
    full = IdentityTrickRun.from_dict(_old_trick_record(nan=False))
    assert IdentityTrickRun.from_dict(decode(encode(full.as_dict(), "json"), "json")) == full
    # layers given as stored dicts are typed on construction
    assert IdentityTrickRun(arch="resnet50", n_pairs=12, layers=old["layers"]).layers["layer1.0.conv1"] == \
        TrickLayer.from_dict(old["layers"]["layer1.0.conv1"])


def test_identity_trick_run_writes_the_old_record(tmp_path, monkeypatch):
    import gsutils.experiments.normgrad.normgrad_maps as nm
    from gsutils.profiles import get_profile

    profile = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    old = _old_trick_record(nan=False)
    monkeypatch.setattr(nm, "_identity_trick_compute", lambda *a: IdentityTrickRun.from_dict(old))
    run = nm.identity_trick_run(profile, "resnet50", progress=False)
    path = Store(profile.results_dir).path("normgrad_identity_trick", nm.identity_trick_config(profile, "resnet50"),
                                           "json")
    assert path.read_bytes() == encode(old, "json")
    assert isinstance(run, IdentityTrickRun) and run == IdentityTrickRun.from_dict(old)
    monkeypatch.setattr(nm, "_identity_trick_compute", lambda *a: pytest.fail("recomputed a cached run"))
    assert nm.identity_trick_run(profile, "resnet50", progress=False) == run
    table = nm.identity_trick_table([run])
    assert list(table["layer"]) == list(nm.TRICK_LAYERS["resnet50"])
    assert table["difference all (pp)"].to_numpy() == pytest.approx([6.25, -12.5, 0.0, 25.0])
    assert sorted(nm.pointing_differences([run])) == pytest.approx(sorted([6.25, 12.5, 0.0, 25.0] + [25.0] * 4))


# ------------------------------------------------------------------------------ meta-saliency (Fig. 2-4)


def _old_meta_record():
    """A record as ``meta_training_run`` built it before runs were typed (the same key tuples in its dicts)."""
    g = torch.Generator().manual_seed(0)
    keys = [(m, layer) for m in ("normgrad", "selective_normgrad") for layer in ("input", "layer4")]
    splits = ("train", "validation")
    vs = {s: {k: torch.from_numpy(torch.rand(3, 5, generator=g, dtype=torch.float64).numpy()) for k in keys}
          for s in splits}
    to_final = {k: torch.rand(3, 5, generator=g, dtype=torch.float64) for k in vs["validation"]}
    return {"arch": "resnet50", "epochs": list(range(1, 4)), "meta_vs_plain": vs, "to_final": to_final}


def test_a_meta_training_run_round_trips_through_its_stored_form(tmp_path):
    from gsutils.experiments.normgrad.meta_saliency import meta_curves, to_final_curves

    old = _old_meta_record()
    run = MetaTrainingRun.from_dict(old)
    assert run.arch == "resnet50" and run.epochs == (1, 2, 3)
    assert encode(run.as_dict(), "pt") == encode(old, "pt")
    store = Store(tmp_path)
    stored = store.get_or_compute("normgrad_meta_training", {"k": 1}, lambda: run.as_dict(), fmt="pt")
    assert store.path("normgrad_meta_training", {"k": 1}, "pt").read_bytes() == encode(old, "pt")
    again = MetaTrainingRun.from_dict(store.load("normgrad_meta_training", {"k": 1}, "pt"))
    for back in (MetaTrainingRun.from_dict(stored), again):
        assert (back.arch, back.epochs) == (run.arch, run.epochs)
        assert list(back.meta_vs_plain) == ["train", "validation"]
        for s, d in run.meta_vs_plain.items():
            theirs = back.meta_vs_plain[s]
            assert list(d) == list(theirs) and all(torch.equal(d[k], theirs[k]) for k in d)
        assert all(torch.equal(v, back.to_final[k]) for k, v in run.to_final.items())
    curves = meta_curves(again)
    assert list(curves.index) == [1, 2, 3] and curves.index.name == "epoch"
    key = ("validation", "normgrad", "input")
    assert curves[key].to_numpy() == pytest.approx(old["meta_vs_plain"]["validation"][key[1:]].mean(1).numpy())
    final = to_final_curves(again)
    assert final[("selective_normgrad", "layer4")].to_numpy() == pytest.approx(
        old["to_final"][("selective_normgrad", "layer4")].mean(1).numpy())


def test_meta_examples_and_fit_gap_are_typed():
    S = 8
    ex = MetaExamples(rgb=torch.rand(2, 3, S, S), present=["dog", "cat"], absent=("car", "bus"),
                      maps={("plain", "positive", "normgrad", "input"): torch.rand(2, S, S)})
    assert ex.n_images == 2 and ex.present == ("dog", "cat") and ex.absent[1] == "bus"
    with pytest.raises(ValueError, match="one class per scene"):
        MetaExamples(rgb=torch.rand(2, 3, S, S), present=["dog"], absent=["car", "bus"], maps={})
    fit = TrainTestMap(train=0.875, test=0.75)
    assert (fit.train, fit.test) == (0.875, 0.75)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.train = 1.0


# ------------------------------------------------------------------------------ grid saliency: Fig. S13


def _old_gallery(g: int = 3, k: int = 11, s: int = 8):
    """The arrays as ``gallery_views`` built them before they were typed (the same keys, in the same order)."""
    rng = np.random.default_rng(0)
    views = {"input": rng.random((g, 1, s, s), dtype=np.float32),
             "input_probs": rng.random((g, k, s, s), dtype=np.float32),
             "perturbed": rng.random((g, 1, s, s), dtype=np.float32),
             "perturbed_probs": rng.random((g, k, s, s), dtype=np.float32),
             "optimised": rng.random((g, 1, s, s), dtype=np.float32),
             "optimised_probs": rng.random((g, k, s, s), dtype=np.float32),
             "map": rng.random((g, s, s), dtype=np.float32)}
    views.update(digits=np.array([3, 3, 4]), request=rng.random((g, s, s)) > 0.5,
                 biased=rng.random((g, s, s)) > 0.5, grey=np.array([0.0, 0.5, 1.0], dtype=np.float32),
                 empty=np.array([False, True, False]))
    return views


def _members(data: bytes) -> list[tuple[str, bytes]]:
    """An ``.npz``'s members in order, by name and content (its zip timestamps left out)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(n, z.read(n)) for n in z.namelist()]


def test_gallery_views_round_trip_through_their_stored_form(tmp_path):
    old = _old_gallery()
    views = GalleryViews.from_arrays(old)
    assert views.n_images == 3 and list(views.digits) == [3, 3, 4] and views.map.shape == (3, 8, 8)
    arrays = views.to_arrays()
    assert list(arrays) == list(old) and all(arrays[k] is old[k] for k in old)
    store = Store(tmp_path)
    stored = store.get_or_compute("context_saliency_gallery", {"k": 1}, lambda: views.to_arrays(), fmt="npz")
    data = store.path("context_saliency_gallery", {"k": 1}, "npz").read_bytes()
    assert _members(data) == _members(encode(old, "npz"))
    back = GalleryViews.from_arrays(stored)
    for k, v in old.items():
        assert getattr(back, k).dtype == v.dtype and np.array_equal(getattr(back, k), v)
    with pytest.raises(ValueError, match="one row per image"):
        GalleryViews.from_arrays({**old, "grey": old["grey"][:2]})
    with pytest.raises(KeyError):
        GalleryViews.from_arrays({k: v for k, v in old.items() if k != "empty"})


def test_example_maps_hold_one_row_per_network():
    rng = np.random.default_rng(1)
    ex = ExampleMaps(images=rng.random((2, 1, 8, 8)), maps={"grid": rng.random((2, 8, 8))},
                     biased=rng.random((2, 8, 8)) > 0.5, labels=["t0 d3 s0", "t1 d3 s0"])
    assert ex.labels == ("t0 d3 s0", "t1 d3 s0") and set(ex.maps) == {"grid"}
    with pytest.raises(ValueError, match="one entry per image"):
        ExampleMaps(images=ex.images, maps={"vg": rng.random((1, 8, 8))}, biased=ex.biased, labels=ex.labels)
