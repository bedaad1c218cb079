"""The S1.3/S1.4 runners end to end on the quick profile's data, with small stand-in networks
(no training): cached runs, the fixed-grey sensitivity run, evidence and figures' inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from gsutils.experiments.grid import context_claims as cc
from gsutils.experiments.grid import context_evidence as ev
from gsutils.experiments.grid import context_saliency as cs
from gsutils.profiles import get_profile


@pytest.fixture
def small_profile(tmp_path, monkeypatch):
    """The quick profile's grid and data, few images and steps, results in ``tmp_path``; every
    network is a small fixed-seed convolutional model (counted in ``loads``)."""
    prof = get_profile("quick", device="cpu", results_dir=tmp_path)
    sal = dataclasses.replace(prof.saliency, images_per_digit=4, workers=1, grid_steps=2, ig_steps=2, sg_samples=2,
                              batch_size=16, gallery_images=2)
    prof = dataclasses.replace(prof, saliency=sal)
    loads = []

    def fake_load(profile, run, progress=False):
        loads.append(run.label)
        torch.manual_seed(len(run.label) + run.bias.texture)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 11, 3, padding=1)).eval()

    monkeypatch.setattr(cs, "train_or_load", fake_load)
    return prof, loads


def test_collect_runs_once_and_loads_after(small_profile):
    prof, loads = small_profile
    res = cs.collect(prof, progress=False)
    runs = cs.biased_runs(prof)
    assert len(res.runs) == len(runs) == len(prof.grid.strengths) * len(prof.grid.bias_textures)
    n_other = cs.images_per_other_digit(prof)
    for run, r in zip(res.runs, res.results):
        counts = np.bincount(r["digits"], minlength=10)
        assert counts[run.bias.digit] == 4 and np.all(np.delete(counts, run.bias.digit) == n_other)
        assert r["empty"].dtype == bool and r["empty"].shape == r["cbd"].shape
        assert float(r["seconds"]) > 0
    n_loads = len(loads)
    again = cs.collect(prof, progress=False)  # from the store
    assert len(loads) == n_loads
    for a, b in zip(res.results, again.results):
        np.testing.assert_array_equal(a["cbd"], b["cbd"])
    assert again.seconds() == pytest.approx(res.seconds())
    # the tables and claims run on real result arrays
    assert len(cc.cbl_table(res)) == 8 and len(cc.empty_rate_table(res)) == 8
    assert {c["id"] for c in cc.detection_claims(res)} >= {"vg_sg_texture_dependence"}
    assert len(cc.localisation_claims(res)) == 2 * 5


def test_fixed_grey_run(small_profile):
    prof, loads = small_profile
    fixed = cs.collect_fixed_grey(prof, 0.5, progress=False)
    for run, r in zip(fixed.runs, fixed.results):
        assert np.all(r["digits"] == run.bias.digit) and len(r["digits"]) == 4
        assert np.all(r["grey"] == 0.5)
    main = cs.collect(prof, progress=False)
    # the same images as the main run's bias digit
    for run, a, b in zip(main.runs, main.results, fixed.results):
        np.testing.assert_array_equal(a["index"][a["digits"] == run.bias.digit], b["index"])
    t = cc.sensitivity_table(main, fixed, 0.5, cs.grid_config(prof).greys)
    assert len(t) == 2 * len(main.strengths)
    n = len(loads)
    cs.collect_fixed_grey(prof, 0.5, progress=False)
    assert len(loads) == n  # cached
    cs.collect_fixed_grey(prof, 0.25, progress=False)
    assert len(loads) == n + len(fixed.runs)  # another grey, another entry


def test_evidence(small_profile):
    prof, _ = small_profile
    res = cs.collect(prof, progress=False)
    scores = [ev.context_scores(prof, run) for run in res.runs]
    assert all(set(s) >= {"biased context", "ordinary context", "grey 0.5"} for s in scores)
    table = cc.scores_table(res, scores)
    assert len(table) == len(res.runs)
    assert len(cc.evidence_lines(res, scores)) == len(res.strengths)
    ex = ev.example_maps(prof, res, "strong")
    assert ex.images.shape[0] == len(prof.grid.bias_textures) == len(ex.labels)
    assert set(ex.maps) == set(cs.METHODS)
    views = ev.gallery_views(prof, res.runs[0])
    assert list(views.digits[:2]) == [res.runs[0].bias.digit] * 2
    assert views.n_images == len(views.input) == len(views.grey)
    with pytest.raises(ValueError, match="unbiased"):
        ev.context_scores(prof, cs.grid_runs(prof)[0])
