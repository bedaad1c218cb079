"""The typed NormGrad runs (pointing game, layer weights and combinations, randomisation) and their cache.

Each run converts to the stored form the string-keyed dict it replaces had and
back: the entries the runners write are byte for byte those of the old
records (written out here as the runners used to build them), so existing
caches still load.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gsutils.experiments.common.store import Store, decode, encode
from gsutils.experiments.normgrad.pointing_results import CombinationRun, LayerWeights, PointingHits, PointingRun
from gsutils.experiments.normgrad.randomisation import RandomisationRun

LAYERS = ["input", "layer1", "layer2", "layer3", "layer4"]
PAIRS = [SimpleNamespace(index=0, class_id=3, difficult=True), SimpleNamespace(index=0, class_id=5, difficult=False),
         SimpleNamespace(index=2, class_id=3, difficult=False)]
HITS = {("gradient", "input"): [True, False, True], ("normgrad_conv", "layer4"): [False, False, True],
        ("center",): [False, True, True]}


def _tiny_profile(tmp_path):
    from gsutils.profiles import get_profile

    p = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    ng = dataclasses.replace(p.normgrad, width=0.125, image_size=32, n_train_scenes=16, n_test_scenes=6,
                             epochs=1, batch_size=8, tolerance=2)
    return dataclasses.replace(p, normgrad=ng)


def _old_pointing_record(**extra):
    """A record as ``pointing_runs._run_record`` built it before runs were typed."""
    return {"arch": "resnet50", "layers": LAYERS, "tolerance": 2, "image_size": [32, 32], "n_pairs": 3,
            "n_skipped": 1, "image_index": [0, 0, 2], "class_id": [3, 5, 3], "difficult": [True, False, False],
            "hits": {"|".join(k): v for k, v in HITS.items()}, **extra}


def _old_weights():
    return {"arch": "resnet50", "layers": LAYERS[1:], "accuracy": [0.25, 0.5, 0.625, 0.75],
            "spread": [0.01, 0.125, 0.2, 0.3], "linear": [1.0, 2.0, 3.0, 4.0], "uniform": [1.0, 1.0, 1.0, 1.0],
            "test_map": 0.6875, "n_probe_train": 16, "n_probe_test": 6, "data": "stand-in"}


@pytest.mark.parametrize("extra", [{"data": "stand-in", "test_map": 0.8125},
                                   {"data": "VOC test at /voc", "image_size": None}])
def test_a_pointing_run_round_trips_through_its_stored_form(extra):
    old = _old_pointing_record(**extra)
    run = PointingRun.from_dict(old)
    assert run.arch == "resnet50" and run.layers == tuple(LAYERS) and run.n_pairs == 3
    assert run.hits[("center",)] == (False, True, True) and run.test_map == extra.get("test_map")
    assert run.as_dict() == old
    assert encode(run.as_dict(), "json") == encode(old, "json")
    assert PointingRun.from_dict(decode(encode(run.as_dict(), "json"), "json")) == run
    # hits already keyed by tuples are taken as they are
    assert PointingRun.from_dict({**old, "hits": HITS}) == run


def test_a_run_needs_one_entry_per_pair():
    with pytest.raises(ValueError, match="one entry per pair"):
        PointingHits(arch="vgg16", layers=["input"], image_index=[0, 1], class_id=[0, 1], difficult=[False, False],
                     hits={("gradient", "input"): [True]})
    with pytest.raises(ValueError, match="spread has 1 values for 4 layers"):
        LayerWeights.from_dict({**_old_weights(), "spread": [0.5]})
    with pytest.raises(ValueError, match="weighting must be one of"):
        LayerWeights.from_dict(_old_weights()).weighting("depth")


def test_pointing_game_run_writes_the_old_record(tmp_path, monkeypatch):
    import gsutils.experiments.normgrad.pointing_runs as pr

    profile = _tiny_profile(tmp_path)
    scenes = SimpleNamespace(image_size=(32, 32), pairs=lambda: [*PAIRS, SimpleNamespace(skip=True)])
    monkeypatch.setattr(pr, "stand_in_hits", lambda *a, **k: (None, scenes, PAIRS, HITS))
    monkeypatch.setattr(pr, "evaluate_classifier", lambda model, s: {"mAP": 0.8125})
    run = pr.pointing_game_run(profile, "resnet50", progress=False)
    old = _old_pointing_record(data="stand-in", test_map=0.8125)
    path = Store(profile.results_dir).path("normgrad_pointing", pr.pointing_config(profile, "resnet50"), "json")
    assert path.read_bytes() == encode(old, "json")
    assert run == PointingRun.from_dict(old) and isinstance(run, PointingRun)
    monkeypatch.setattr(pr, "stand_in_hits", lambda *a, **k: pytest.fail("recomputed a cached run"))
    assert pr.pointing_game_run(profile, "resnet50", progress=False) == run


def test_combination_run_writes_the_old_record(tmp_path, monkeypatch):
    import gsutils.experiments.normgrad.layer_combination as lc

    profile = _tiny_profile(tmp_path)
    w = _old_weights()
    weights = LayerWeights.from_dict(w)
    assert weights.as_dict() == w and encode(weights.as_dict(), "json") == encode(w, "json")
    assert weights.weighting("linear") == (1.0, 2.0, 3.0, 4.0)
    hits = {("linear_approx", "layer1"): [True, False, True], ("linear_approx", "product", "accuracy"): [True] * 3}
    monkeypatch.setattr(lc, "layer_weights", lambda *a, **k: weights)
    monkeypatch.setattr(lc, "stand_in_hits", lambda *a, **k: (None, None, PAIRS, hits))
    run = lc.combination_run(profile, "resnet50")
    # the record as combination_run built it before runs were typed (the weights as layer_weights returned them)
    old = {"arch": "resnet50", "layers": LAYERS[1:], "n_pairs": 3, "image_index": [0, 0, 2],
           "class_id": [3, 5, 3], "difficult": [True, False, False],
           "hits": {"|".join(k): v for k, v in hits.items()}, "weights": w, "test_map": w["test_map"]}
    path = Store(profile.results_dir).path("normgrad_layer_combination", lc.combination_config(profile, "resnet50"),
                                           "json")
    assert path.read_bytes() == encode(old, "json")
    assert isinstance(run, CombinationRun) and run == CombinationRun.from_dict(old)
    assert run.weights == weights and run.as_dict() == old
    single = lc.single_layer_table(run)
    assert list(single.index) == ["linear_approx"]


def _old_randomisation_record():
    """A record as ``randomisation_run`` built it before runs were typed (the same key tuples in every dict)."""
    g = torch.Generator().manual_seed(0)
    keys = [(kind, m, layer) for kind in ("plain", "meta") for m in ("linear_approx", "selective_normgrad")
            for layer in ("input", "layer4")]
    stages = ["original", "fc", "layer4"]
    return {"arch": "resnet50", "stages": stages,
            "spearman": {k: torch.rand(3, 4, generator=g, dtype=torch.float64) for k in keys},
            "spearman_abs": {k: torch.rand(3, 4, generator=g, dtype=torch.float64) for k in keys},
            "hits": {k: torch.rand(3, 4, generator=g) > 0.5 for k in keys},
            "figure_maps": {k: torch.rand(3, 2, 8, 8, generator=g).half() for k in keys},
            "pairs": [(1, 3), (2, 0), (4, 7), (5, 1)]}


def test_a_randomisation_run_round_trips_through_its_stored_form(tmp_path):
    from gsutils.experiments.normgrad.randomisation import randomisation_curves, randomisation_hits

    old = _old_randomisation_record()
    run = RandomisationRun.from_dict(old)
    assert run.stages == ("original", "fc", "layer4") and run.pairs[2] == (4, 7)
    assert encode(run.as_dict(), "pt") == encode(old, "pt")
    store = Store(tmp_path)
    stored = store.get_or_compute("normgrad_randomisation", {"k": 1}, lambda: run.as_dict(), fmt="pt")
    assert store.path("normgrad_randomisation", {"k": 1}, "pt").read_bytes() == encode(old, "pt")
    again = RandomisationRun.from_dict(store.load("normgrad_randomisation", {"k": 1}, "pt"))
    for back in (RandomisationRun.from_dict(stored), again):
        assert (back.arch, back.stages, back.pairs) == (run.arch, run.stages, run.pairs)
        for name in ("spearman", "spearman_abs", "hits", "figure_maps"):
            mine, theirs = getattr(run, name), getattr(back, name)
            assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    curves = randomisation_curves(again)
    assert list(curves.index) == list(run.stages)
    key = ("plain", "linear_approx", "input")
    assert curves[key].to_numpy() == pytest.approx(old["spearman"][key].mean(1).numpy())
    assert randomisation_hits(again)[key].to_numpy() == pytest.approx(100 * old["hits"][key].double().mean(1).numpy())
    assert np.all(np.isfinite(randomisation_curves(again, absolute=True).to_numpy()))
