"""S1.5 backbone comparison: the derived profile, the runs, the tables (closed form) and the claims."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gsutils.claims import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Ledger
from gsutils.data.toy import BiasConfig
from gsutils.experiments.grid import backbones as bk
from gsutils.experiments.grid import context_claims as cc
from gsutils.experiments.grid.seg_runs import SegIoU, SegRun
from gsutils.profiles import get_profile



def test_every_quick_comparison_network_is_shipped_and_compact():
    from gsutils.experiments.grid import shipped_unets

    rows = shipped_unets.grid_manifest(get_profile("quick", device="cpu"), "backbones")
    assert len(rows) == 9
    assert all(r["shipped"] for r in rows), [r["network"] for r in rows if not r["shipped"]]
    assert max(r["kB"] for r in rows) < 6_000  # float16: at most about 5 MB (MobileNetV2's 2.5M parameters)
    assert sum(r["kB"] for r in rows) * 1024 < 40_000_000  # 9 networks


def test_backbone_profile_is_the_weak_sub_grid():
    q = get_profile("quick", device="cpu")
    p = bk.backbone_profile(q)
    assert p.grid.strengths == ("weak",)
    assert p.grid.backbones == ("small_vgg16", "small_mobilenet_v2_fs", "small_resnet18_fs")
    assert (p.grid.bias_digits, p.grid.bias_textures, p.grid.seeds) == ((2,), (0, 1), (0,))
    assert p.saliency.images_per_digit == 8
    # the small networks share the S1.2 networks' 64 px data and recipe
    assert p.toy == q.toy and p.toy.resolution == 64 and p.toy.render_resolution is None
    assert p.train == q.train and p.results_dir == q.results_dir
    # VGG16 keeps S1.2's recipe; ResNet18 and MobileNetV2 train in float32 for the cycles they need
    assert bk.backbone_profile(q, "small_vgg16").train == q.train
    mn, rn = (bk.backbone_profile(q, b).train for b in ("small_mobilenet_v2_fs", "small_resnet18_fs"))
    assert (mn.epochs, mn.autocast, rn.epochs, rn.autocast) == (64, None, 32, None)
    assert dataclasses.replace(mn, epochs=q.train.epochs, autocast=q.train.autocast) == q.train
    with pytest.raises(ValueError, match="not compared at this profile"):
        bk.backbone_profile(q, "small_resnet18")
    g0 = bk.backbone_profile(get_profile("gpu", device="cpu"))
    assert g0.toy == get_profile("gpu", device="cpu").toy  # unset: the profile's own data
    runs = bk.backbone_runs(q)
    assert [r.label for r in runs[:4]] == ["small_vgg16/N/s0", "small_vgg16/weak-d2-t0/s0",
                                           "small_vgg16/weak-d2-t1/s0", "small_mobilenet_v2_fs/N/s0"]
    assert len(runs) == 9 and len(bk.backbone_runs(q, biased_only=True)) == 6
    g = bk.backbone_profile(get_profile("gpu", device="cpu"))
    assert g.grid.backbones == ("vgg16", "mobilenet_v2", "resnet18")  # the paper's encoders at gpu/paper
    paper = get_profile("paper", device="cpu")
    assert len(bk.backbone_runs(paper)) == 3 * (5 + 10 * 5 * 5)  # N per seed + weak x digit x texture x seed
    with pytest.raises(TypeError, match="gsutils.profiles.Profile"):
        bk.backbone_profile("quick")


def fake_result(backbone, strength, digit, texture, iou_bias, iou_other=0.8):
    iou = [iou_other] * 10 + [0.95]
    if digit is not None:
        iou[digit] = iou_bias
    bias = BiasConfig(strength, digit=digit, texture=texture or 0)
    return SegIoU(run=SegRun(bias, backbone, 0), iou=tuple(iou), digit_miou=float(np.mean(iou[:10])),
                  miou=float(np.mean(iou)), pixel_acc=0.9, n_test=10, key="k")


def test_miou_table_mean_std_and_ns_bias_digit():
    res = [fake_result("tiny", "none", None, None, None, 0.9),
           fake_result("tiny", "weak", 2, 0, 0.5), fake_result("tiny", "weak", 2, 1, 0.7)]
    t = bk.miou_table(res)
    assert t.loc[("tiny", "N"), "bias_digit_iou"] == pytest.approx(0.9)  # N read on digit 2
    assert t.loc[("tiny", "weak"), "bias_digit_iou"] == pytest.approx(0.6)
    assert t.loc[("tiny", "weak"), "bias_digit_iou_std"] == pytest.approx(0.1)  # population std over textures
    assert t.loc[("tiny", "weak"), "miou"] == pytest.approx((9 * 0.8 + 0.6) / 10)
    assert t.loc[("tiny", "N"), "n"] == 1 and t.loc[("tiny", "weak"), "n"] == 2


def frames(gap_grid=0.3, lead=0.2, drop=0.3, bbs=("slim_vgg16", "slim_mobilenet_v2", "slim_resnet18")):
    import pandas as pd

    miou = pd.DataFrame([{"backbone": b, "network": n, "miou": 0.9 - 0.1 * i,
                          "bias_digit_iou": 0.9 if n == "N" else 0.9 - drop - 0.05 * i, "n": 1}
                         for i, b in enumerate(bbs) for n in ("N", "weak")]).set_index(["backbone", "network"])
    rows = []
    for i, b in enumerate(bbs):
        for m in ("vg", "sg", "ig", "grid"):
            gap = gap_grid if m in ("ig", "grid") else 0.0
            rows.append({"backbone": b, "method": m, "gap": gap, "cbl": 0.5 + (lead - 0.01 * i if m == "grid" else 0)})
    t = pd.DataFrame(rows).set_index(["backbone", "method"])
    return miou, t, t


def test_claims_pass_and_fail_on_their_criteria():
    ok = {c["id"]: c["passed"] for c in bk.backbone_claims(*frames())}
    assert ok == {"s15_every_backbone_picks_up_bias": True, "s15_vgg_best_base_smallest_drop": True,
                  "s15_ig_grid_detect_on_every_backbone": True, "s15_grid_cbl_best_on_every_backbone": True,
                  "s15_grid_localises_best_with_vgg": True}
    bad = {c["id"]: c["passed"] for c in bk.backbone_claims(*frames(gap_grid=0.01, lead=-0.1, drop=0.0))}
    assert bad["s15_every_backbone_picks_up_bias"] is False
    assert bad["s15_ig_grid_detect_on_every_backbone"] is False
    assert bad["s15_grid_cbl_best_on_every_backbone"] is False


def test_every_size_of_the_three_families_gets_all_five_claims():
    # the quick profile's small and full-stem variants are the same families as the paper's encoders
    quick = bk.backbone_profile(get_profile("quick", device="cpu")).grid.backbones
    for bbs in (quick, ("vgg16", "mobilenet_v2", "resnet18")):
        ids = [c["id"] for c in bk.backbone_claims(*frames(bbs=bbs))]
        assert "s15_vgg_best_base_smallest_drop" in ids and "s15_grid_localises_best_with_vgg" in ids, bbs
        assert len(ids) == 5


def test_below_the_gate_every_claim_is_not_measured(tmp_path):
    prof = get_profile("quick", device="cpu", results_dir=tmp_path)
    miou, cbd, cbl = frames()
    gate = bk.backbone_gate(prof, miou)  # N: 0.9, 0.8, 0.7 against 0.75
    assert gate.passed is False and gate.measured == pytest.approx(0.7)
    assert "slim_resnet18 0.700" in gate.line()
    ledger = Ledger(chapter="t/05", paper="grid_saliency", profile=prof)
    rows = bk.record_backbones(ledger, gate, miou, cbd, cbl)
    # the ids the page recorded before record_backbones: the gate, then the claims
    assert [r.id for r in rows] == ["gate"] + [c["id"] for c in bk.backbone_claims(miou, cbd, cbl)]
    assert rows[0].section == "S1.5 (gate)" and rows[0].kind == "gate" and rows[0].verdict == NOT_REPRODUCED
    assert {r.verdict for r in rows[1:]} == {NOT_MEASURED}
    assert all("0.700 < 0.75" in r.note for r in rows[1:])
    passing = dataclasses.replace(prof, train=dataclasses.replace(prof.train, gate_digit_miou=0.6))
    rows = cc.record(ledger, bk.backbone_claims(miou, cbd, cbl), bk.backbone_gate(passing, miou))
    assert {r.verdict for r in rows} == {REPRODUCED}
    rows = cc.record(ledger, bk.backbone_claims(*frames(drop=0.0)), bk.backbone_gate(passing, miou))
    assert NOT_REPRODUCED in {r.verdict for r in rows}


def test_end_to_end_on_a_shrunken_profile(tmp_path):
    """Two slim backbones trained for one epoch on 64 images, explained on 2 + 1 images per digit.

    (slim_vgg16 is left out for time: smp builds VGG through torchvision's VGG, whose
    120M-parameter classifier is initialised and then dropped, about 2 s per build.)"""
    q = get_profile("quick", device="cpu", results_dir=tmp_path)
    prof = dataclasses.replace(
        q, toy=dataclasses.replace(q.toy, n_train=64, n_test=80),
        train=dataclasses.replace(q.train, autocast=None),  # bfloat16 is emulated, 20x slower, on AVX2 CPUs
        backbone_cmp=dataclasses.replace(q.backbone_cmp, backbones=("slim_mobilenet_v2", "slim_resnet18"),
                                         bias_textures=(0,), seeds=(0,), epochs=1, images_per_digit=2),
        saliency=dataclasses.replace(q.saliency, grid_steps=2, ig_steps=2, sg_samples=2))
    results = bk.train_and_evaluate(prof, progress=False)
    assert [r.run.backbone for r in results] == ["slim_mobilenet_v2"] * 2 + ["slim_resnet18"] * 2
    miou = bk.miou_table(results)
    per = bk.saliency_results(prof, progress=False)
    assert set(per) == {"slim_mobilenet_v2", "slim_resnet18"}
    cbd, cbl = bk.saliency_table(per), bk.cbl_table(per)
    assert cbd.shape[0] == cbl.shape[0] == 8  # 2 backbones x 4 methods
    assert cbd[["cbd_bias_digit", "cbd_other"]].stack().between(0, 1).all()
    assert (cbl["n_images"] == 2).all()  # the bias digit always carries the bias texture
    claims = bk.backbone_claims(miou, cbd, cbl)
    assert all(isinstance(c["passed"], bool) for c in claims)
    # a second call loads everything from the store
    again = bk.saliency_table(bk.saliency_results(prof, progress=False))
    np.testing.assert_array_equal(again.to_numpy(), cbd.to_numpy())


def test_reduced_widths_are_part_of_the_cache_key(monkeypatch):
    # a change of a reduced encoder's widths must retrain, never load a network of another shape
    from gsutils.experiments.grid.segmentation import model_dir
    from gsutils.models import smp_unet

    q = bk.backbone_profile(get_profile("quick", device="cpu"))
    runs = {r.backbone: r for r in bk.backbone_runs(q) if r.bias.strength == "none"}
    before = {b: model_dir(bk.run_profile(q, r), r).name for b, r in runs.items()}
    monkeypatch.setitem(smp_unet.REDUCED_WIDTHS, "small_resnet18_fs", [32, 48, 80, 160])
    after = {b: model_dir(bk.run_profile(q, r), r).name for b, r in runs.items()}
    assert after["small_resnet18_fs"] != before["small_resnet18_fs"]
    assert after["small_vgg16"] == before["small_vgg16"]
    assert after["small_mobilenet_v2_fs"] == before["small_mobilenet_v2_fs"]


def test_spread_of_one_network_is_missing_not_zero():
    """A std over one network is shown as missing (no spread), never as 0."""
    import math

    from gsutils.experiments.grid.backbones import _spread

    assert math.isnan(_spread([0.4])) and math.isnan(_spread([0.4, float("nan")]))
    assert _spread([0.4, 0.6]) == pytest.approx(0.1)


def test_parameters_line_shows_a_family_recipe_by_what_it_changes():
    """The S1.5 page's parameters: a per-family recipe is shown by its changes to the profile's
    recipe, and settings unset in both profiles are left out."""
    from gsutils.profiles import describe, get_profile

    text = describe(get_profile("quick", device="cpu"), "backbone_cmp", "toy")
    assert "TrainSettings(epochs=64, autocast=None)" in text and "gate_digit_miou" not in text
    assert "epochs=None" not in text and "render_resolution=None" not in text
    assert "family_train=() (paper" not in describe(get_profile("gpu", device="cpu"), "backbone_cmp")


def test_a_network_with_a_recipe_of_its_own_trains_in_a_group_of_its_own():
    q2 = get_profile("quick", device="cpu")
    q = dataclasses.replace(q2, backbone_cmp=dataclasses.replace(q2.backbone_cmp, bias_textures=(0,)))
    runs = bk.backbone_runs(q2)
    vgg_t1 = next(r for r in runs if r.label == "small_vgg16/weak-d2-t1/s0")
    own = bk.run_profile(q2, vgg_t1).train
    assert own.autocast is None and own.epochs == q.train.epochs  # the family's steps, in float32
    assert dataclasses.replace(own, autocast=q.train.autocast) == q.train
    assert bk.run_profile(q2, runs[0]).train == q.train  # VGG16's N keeps the family's recipe
    groups = bk.recipe_groups(q2)
    assert [len(g) for _, g in groups] == [2, 1, 3, 3]  # VGG16 N and t0, VGG16 t1, MobileNetV2, ResNet18
    assert [r.label for r in groups[1][1]] == ["small_vgg16/weak-d2-t1/s0"]
    assert [r for _, g in groups for r in g] != [] and sorted(r.label for _, g in groups for r in g) == sorted(
        r.label for r in runs)
    assert all(bk.run_profile(q2, r) == p for p, g in groups for r in g)
    # with texture 0 alone the override names no network, and nothing changes
    assert [len(g) for _, g in bk.recipe_groups(q)] == [2, 2, 2]


def test_the_page_lists_each_familys_recipe_then_each_network_that_deviates():
    q2 = get_profile("quick", device="cpu")
    lines = bk.recipe_lines(q2)
    assert [ln.split(":")[0] for ln in lines] == [*bk.backbone_profile(q2).grid.backbones,
                                                   "small_vgg16/weak-d2-t1/s0 only"]
    assert lines[-1].endswith("forward pass in float32") and "(3,000 steps of 32)" in lines[-1]
    assert lines[0].endswith("forward pass in bfloat16")
    q = dataclasses.replace(q2, backbone_cmp=dataclasses.replace(q2.backbone_cmp, network_train=()))
    assert bk.recipe_lines(q) == lines[:-1]  # no override: one line per family only
