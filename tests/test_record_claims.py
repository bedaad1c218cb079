"""Each chapter's ``record_*`` function on small made-up inputs: the rows it writes (the same ids, in
the same order, as the page wrote them before the claims moved into the library), and a failed gate
turning every gated claim into "not measured" with the gate's numbers in its note."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from gsutils.claims import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Gate, Ledger

VERDICTS = {REPRODUCED, NOT_REPRODUCED, NOT_MEASURED}


def _ledger(tmp_path, chapter="grid_saliency/99_t"):
    return Ledger(chapter, profile=SimpleNamespace(name="quick", results_dir=tmp_path))


def _gate(passed: bool, **kw) -> Gate:
    return Gate(what="test mAP", measured=0.9 if passed else 0.1, threshold=0.5, passed=passed,
                note="gate (test mAP >= 0.50): vgg16 0.900" if passed else "gate (test mAP >= 0.50): vgg16 0.100",
                claim="good enough", criterion="test mAP >= 0.50", reason="not measured: below the gate (0.100)", **kw)


def _both(tmp_path, record, *args, **kw):
    """``record`` run under a passing and under a failed gate (the gate is the last positional argument)."""
    ok = record(_ledger(tmp_path / "pass"), *args, _gate(True), **kw)
    bad = record(_ledger(tmp_path / "fail"), *args, _gate(False), **kw)
    assert [r.id for r in ok] == [r.id for r in bad]
    return ok, bad


def _assert_gated(rows, ungated=()):
    for r in rows:
        if r.is_gate or r.id in ungated:
            continue
        assert r.verdict == NOT_MEASURED, r.id
    assert {r.verdict for r in rows} <= VERDICTS


# ------------------------------------------------------------------------------------ S1.1


class _Assignment:
    def __init__(self, n, bias_digit=2):
        self.digits = np.arange(n) % 10
        self.n = n

    def __len__(self):
        return self.n


def test_record_toy(tmp_path, monkeypatch):
    from gsutils.experiments.grid import toy_claims

    strong = np.array([0.0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    weak = np.where(np.arange(10) == 2, 1.0, 0.078)
    fractions = {"strong": strong, "weak": weak}
    bias = {k: _Assignment(1000) for k in fractions}
    for k, a in bias.items():
        a.kind = k
    monkeypatch.setattr(toy_claims, "bias_fraction_per_digit", lambda a: fractions[a.kind])
    toy = SimpleNamespace(n_parts=2, n_train=1000, n_test=100)
    rows = toy_claims.record_toy(_ledger(tmp_path), toy, n_textures=25, bias_digit=2, train_bias=bias,
                                 test_bias={"strong": _Assignment(100)}, strong_labels=np.arange(11))
    assert [r.id for r in rows] == ["toy-strong-exclusive", "toy-strong-always", "toy-weak-elsewhere",
                                    "toy-classes", "toy-sizes"]
    assert [r.verdict for r in rows] == [REPRODUCED] * 4 + [NOT_MEASURED]  # not the paper's sizes
    assert rows[2].reported == round(1 - (24 / 25) ** 2, 4) and rows[4].measured == [1000, 100]
    fractions["strong"] = np.where(np.arange(10) == 5, 0.1, strong)
    assert toy_claims.record_toy(_ledger(tmp_path), toy, n_textures=25, bias_digit=2, train_bias=bias,
                                 test_bias={"strong": _Assignment(100)},
                                 strong_labels=np.arange(11))[0].verdict == NOT_REPRODUCED


# ------------------------------------------------------------------------------------ S1.2, S1.6


def test_record_bias_writes_the_gate_then_the_claims(tmp_path, monkeypatch):
    from gsutils.experiments.grid import bias_results as br

    monkeypatch.setattr(br, "bias_claims", lambda frame, backbone: [
        dict(id=f"claim_{backbone}", section="S1.2", claim="c", measured=1, passed=True, criterion="x")])
    monkeypatch.setattr(br, "backbone_claim", lambda frame: dict(
        id="bias_order_all_backbones", section="S1.5", claim="c", measured=None, passed=None, criterion="x"))
    gate = br.saliency_network_gate(0.6, 0.75, "mean digit IoU", {"tiny seed 0": 0.6})
    rows = br.record_bias(_ledger(tmp_path), None, gate, "tiny")
    assert [r.id for r in rows] == ["gate", "claim_tiny", "bias_order_all_backbones"]
    assert rows[0].section == "S1.2 (gate)" and rows[0].is_gate and rows[0].verdict == NOT_REPRODUCED
    assert rows[0].criterion == "mean digit IoU of N on unbiased test data >= 0.75 (fixed beforehand)"
    assert rows[1].verdict == REPRODUCED  # S1.2's own claims are not gated (its statement says so)


def test_record_sweeps(tmp_path, monkeypatch):
    from gsutils.experiments.grid import bias_results as br
    from gsutils.experiments.grid import sweeps as sw

    ids = ["s16_smooth_around_setting", "s16_lambda_trades_detection_for_localisation",
           "s16_chosen_setting_keeps_both_high"]
    monkeypatch.setattr(sw, "sweep_claims", lambda profile, table: [
        dict(id=i, section="S1.6 / Fig. S11", claim="c", measured=1, passed=True, criterion="x") for i in ids])
    for value, verdict in ((0.8, REPRODUCED), (0.6, NOT_MEASURED)):
        gate = br.saliency_network_gate(value, 0.75, "mean digit IoU", {})
        rows = sw.record_sweeps(_ledger(tmp_path / str(value)), None, None, gate)
        assert [r.id for r in rows] == ["gate"] + ids and rows[0].section == "S1.6 (gate)"
        assert {r.verdict for r in rows[1:]} == {verdict}
    assert all("0.600 < 0.75" in r.note for r in rows[1:])


# ------------------------------------------------------------------------------------ S2, S3


def test_record_cityscapes(tmp_path, monkeypatch):
    from gsutils.experiments.grid import scene_claims as sc

    seen = []

    def fake(cid):
        def claim(res, *args, gate_ok, **kw):
            seen.append((kw.get("cid", cid), gate_ok))
            return dict(id=kw.get("cid", cid), section="S2", claim="c", measured=1,
                        passed=True if gate_ok else None, criterion="x")
        return claim

    monkeypatch.setattr(sc, "preservation_claim", fake("s2_fig_s13_preservation"))
    monkeypatch.setattr(sc, "pair_claim", fake(None))
    monkeypatch.setattr(sc, "size_claim", fake("s2_fig_s12_size"))
    monkeypatch.setattr(sc, "empty_map_claim", fake("s2_fig_s15_empty_large"))
    ids = ["s2_gate", "s2_fig_s13_preservation", "s2_rider_bicycle", "s2_sign_pole", "s2_fig_s12_size",
           "s2_fig_s15_empty_large"]
    for miou, ok in ((0.7, True), (0.5, False)):
        gate = sc.scene_gate(miou, 0.6, {"car": miou, "road": miou}, "S2")
        rows = sc.record_cityscapes(_ledger(tmp_path / str(ok)), {}, gate, max_loss=0.1)
        assert [r.id for r in rows] == ids
        assert rows[0].is_gate and rows[0].measured == miou and rows[0].verdict == (REPRODUCED if ok else NOT_REPRODUCED)
        assert rows[0].criterion == "mIoU on the held-out split over its 2 classes >= 0.6 (fixed before measuring)"
        assert {g for _, g in seen[-5:]} == {ok}
        if not ok:
            _assert_gated(rows)


def test_record_coco(tmp_path):
    from scene_results import coco_result

    from gsutils.experiments.grid import scene_claims as sc

    rng = np.random.default_rng(0)
    res = coco_result([rng.uniform(0.5, 1, 20), rng.uniform(0, 0.5, 20)], encoders=("mobilenet_v2", "xception65"),
                      miou=(0.7, 0.5))
    assert res.miou == {"mobilenet_v2": 0.7, "xception65": 0.5}
    for thr, verdict in ((0.45, REPRODUCED), (0.6, NOT_MEASURED)):
        gates = sc.coco_gates(res, thr)
        rows = sc.record_coco(_ledger(tmp_path / str(thr)), res, gates)
        assert [r.id for r in rows] == ["s3_gate_mobilenet_v2", "s3_gate_xception65", "s3_mobilenet_more_context"]
        assert all(r.is_gate and r.section == "S3" for r in rows[:2])
        assert rows[2].verdict == verdict
    assert rows[2].note == "not measured: a network is below the gate"


# ------------------------------------------------------------------------------------ NormGrad A, B, Fig. 7


def test_record_pointing(tmp_path):
    from test_normgrad_claims import _run

    from gsutils.experiments.normgrad.pointing_claims import record_pointing
    from gsutils.experiments.normgrad.pointing_runs import center_accuracy, pointing_accuracies

    runs = [_run({("gradient", "input"): 0.3}, arch="vgg16"), _run(arch="resnet50")]
    tables = {r.arch: pointing_accuracies(r) for r in runs}
    centres = {r.arch: center_accuracy(r) for r in runs}
    ok, bad = _both(tmp_path, record_pointing, runs, tables, centres, {"vgg16": 7, "resnet50": 7})
    assert [r.id for r in ok] == [f"{c}_{a}" for a in ("vgg16", "resnet50") for c in (
        "normgrad_beats_gradient", "gradcam_last_block", "beats_center", "deeper_layers_help", "table2_best_layers")]
    ungated = {"beats_center_vgg16", "beats_center_resnet50"}  # not about depth: judged under any gate
    _assert_gated(bad, ungated)
    assert all(r.note.endswith("vgg16 0.100") for r in bad if r.id not in ungated)
    assert {r.verdict for r in ok} <= {REPRODUCED, NOT_REPRODUCED}


def test_record_identity_trick(tmp_path):
    from gsutils.experiments.normgrad.identity_trick_results import IdentityTrickRun, TrickLayer
    from gsutils.experiments.normgrad.map_claims import record_identity_trick

    def run(means):
        return [IdentityTrickRun(arch="vgg16", n_pairs=20, layers={layer: TrickLayer(
            spearman_mean=m, spearman_std=0.01, spearman_min=0.5, n_correlated=20, n_constant=0,
            pointing={"normgrad": {"all": 0.5}, "normgrad_conv": {"all": 0.5}}, n_pointing_pairs={"all": 20})
            for layer, m in zip(("features.3", "features.8"), means)})]

    runs = run([0.95, 0.92])
    t1 = pd.DataFrame({"ours %": [95.0, 92.0], "paper %": [99.1, 98.2]},
                      index=pd.MultiIndex.from_tuples([("vgg16", "features.3"), ("vgg16", "features.8")]))
    rows = record_identity_trick(_ledger(tmp_path, "normgrad/99_t"), runs, t1, np.array([1.0, 2.0, 0.5]))
    assert [r.id for r in rows] == ["identity_trick_spearman", "identity_trick_pointing"]
    assert [r.verdict for r in rows] == [REPRODUCED, REPRODUCED] and rows[0].measured == [92.0, 95.0]
    assert record_identity_trick(_ledger(tmp_path, "normgrad/99_t"), run([0.95, 0.85]), t1,
                                 np.array([3.0]))[0].verdict == NOT_REPRODUCED


def test_record_fig7(tmp_path):
    from test_normgrad_claims import _run

    from gsutils.experiments.normgrad.fig7_results import Fig7Selectivity, GradCamEnergy
    from gsutils.experiments.normgrad.map_claims import record_fig7
    from gsutils.experiments.normgrad.normgrad_maps import FIG7_LAYERS

    energy = GradCamEnergy(share={layer: 0.2 + 0.1 * k for k, layer in enumerate(FIG7_LAYERS)},
                           n_zero_maps={layer: 0 for layer in FIG7_LAYERS}, box_area=0.1, n_pairs=10)
    sel = Fig7Selectivity(ratio={}, mean={"normgrad": 0.8, "linear_approx": 0.5, "selective_normgrad": 0.6},
                          n_scenes=2, other_area=0.2)
    ok, bad = _both(tmp_path, record_fig7, energy, _run(), sel)
    assert [r.id for r in ok] == ["gradcam_last_layer", "fig7_gradient_fails_only_at_the_end",
                                  "fig7_methods_work_across_layers", "fig7_la_sng_more_selective"]
    assert ok[0].verdict == REPRODUCED and ok[3].verdict == REPRODUCED
    _assert_gated(bad)


# ------------------------------------------------------------------------------------ NormGrad C, D, E


def test_record_layer_combination(tmp_path):
    from gsutils.experiments.normgrad.layer_claims import record_layer_combination
    from gsutils.experiments.normgrad.layer_combination import COMBO_METHODS, WEIGHTINGS

    archs = ("vgg16", "resnet50")
    idx = pd.MultiIndex.from_product([COMBO_METHODS, ("sum", "product"), WEIGHTINGS],
                                     names=["method", "mode", "weighting"])
    tables = {a: pd.DataFrame({"gain all": 3.0, "gain difficult": 2.0, "low": 1.0, "high": 5.0}, index=idx)
              for a in archs}
    from gsutils.experiments.normgrad.pointing_results import LayerWeights

    def _weights(arch, accuracy, spread):
        n = len(accuracy)
        return LayerWeights(arch=arch, layers=[f"l{i}" for i in range(n)], accuracy=accuracy, spread=spread,
                            linear=range(1, n + 1), uniform=[1.0] * n, test_map=0.9, n_probe_train=8,
                            n_probe_test=8, data="made up")

    up = [0.1, 0.2, 0.3, 0.4, 0.5]
    weights = {"vgg16": _weights("vgg16", up, [1.0, 2.0, 3.0, 2.5, 2.0]),
               "resnet50": _weights("resnet50", up[:4], up[:4])}
    ok, bad = _both(tmp_path, record_layer_combination, tables, weights, archs=archs)
    assert [r.id for r in ok] == ["combination_product_accuracy_beats_best_layer",
                                  "combination_accuracy_most_consistent", "combination_spread_loses_vgg16",
                                  "accuracy_rises_with_depth_vgg16", "accuracy_rises_with_depth_resnet50",
                                  "spread_rises_with_depth_resnet50", "spread_falls_last_two_vgg16"]
    assert ok[0].verdict == REPRODUCED and ok[-1].verdict == REPRODUCED
    _assert_gated(bad)
    assert all("vgg16 0.100" in r.note for r in bad)


def test_record_meta(tmp_path):
    from gsutils.experiments.normgrad.layer_claims import record_meta
    from gsutils.experiments.normgrad.meta_saliency import META_METHODS

    epochs = 6
    fig2 = {"vgg16": pd.DataFrame({(s, m, "input"): np.full(epochs, 0.8 if s == "train" else 0.5)
                                   for s in ("train", "validation") for m in META_METHODS})}
    fig3 = {"vgg16": pd.DataFrame({(m, "input"): [0.2, 0.6, 0.8, 0.85, 0.87, 1.0] for m in META_METHODS})}
    ok, bad = _both(tmp_path, record_meta, fig2, fig3, {"vgg16": True})
    assert [r.id for r in ok] == ["meta_lower_on_validation", "meta_maps_stabilise"]
    assert {r.verdict for r in ok} == {REPRODUCED}
    _assert_gated(bad)
    missing = record_meta(_ledger(tmp_path / "m"), {}, {}, {"vgg16": False}, _gate(True))
    assert {r.verdict for r in missing} == {NOT_MEASURED} and "epoch snapshots absent" in missing[0].note


def test_record_randomisation(tmp_path):
    from gsutils.experiments.normgrad.layer_claims import record_randomisation
    from gsutils.experiments.normgrad.randomisation import RANDOM_METHODS

    stages = 4
    curves = {"vgg16": pd.DataFrame({(k, m, "input"): np.linspace(1, 0.1 if k == "plain" else 0.6, stages)
                                     for k in ("plain", "meta") for m in RANDOM_METHODS})}
    hits = {"vgg16": pd.DataFrame({(k, m, "input"): np.linspace(90, 40, stages)
                                   for k in ("plain", "meta") for m in RANDOM_METHODS})}
    ok, bad = _both(tmp_path, record_randomisation, curves, hits, curves, archs=("vgg16",))
    assert [r.id for r in ok] == ["randomisation_loses_object", "meta_delays_degradation"]
    assert {r.verdict for r in ok} == {REPRODUCED}
    _assert_gated(bad)


# ------------------------------------------------------------------------------------ NormGrad F


def test_record_captioning(tmp_path):
    from gsutils.experiments.normgrad.caption_claims import captioner_gate, record_captioning
    from gsutils.experiments.normgrad.caption_results import (CaptionEvaluation, ExplainedCaptions, MapSharpness,
                                                              MentionScores, SharpnessSummary)
    from gsutils.experiments.normgrad.caption_saliency import map_names

    names = map_names()
    n, s = 30, 4
    rng = np.random.default_rng(0)
    per_map = np.full((n, len(names)), np.nan)
    ex = ExplainedCaptions(
        maps=np.zeros((n, len(names), s, s), np.float32), word_maps=np.zeros((n, len(names), s, s), np.float32),
        word_pos=np.full(n, -1), mass=rng.uniform(0.1, 0.3, (n, len(names))), word_mass=per_map,
        named_mask=np.zeros((n, s, s), np.uint8), entropy=rng.uniform(0.9, 1.0, (n, len(names))),
        half_max=per_map, named_area=np.full(n, 0.1), images=np.zeros((n, 3, s, s), np.uint8), index=np.arange(n))
    summary = SharpnessSummary(maps={l: MapSharpness(mass=0.2, entropy=0.95, half_max=0.5, word_mass=0.3)
                                     for l in names}, named_area=0.1, n_named=n)

    def ev(f1):
        return CaptionEvaluation(scores={"BLEU-4": 0.31234, "CIDEr": 1.5},
                                 mentions=MentionScores(precision=f1, recall=f1, f1=f1, exact=0.5),
                                 gate_threshold=0.5, gate_passed=f1 >= 0.5, captions=(), references=(), n=0)

    for f1, ok in ((0.8, True), (0.3, False)):
        gate = captioner_gate(ev(f1))
        rows = record_captioning(_ledger(tmp_path / str(ok), "normgrad/99_t"), ex, summary, names, gate)
        assert [r.id for r in rows] == ["captioner_gate", "layers_broad", "combination_sharper",
                                        "combination_on_objects"]
        assert rows[0].is_gate and rows[0].section == "F"
        assert rows[0].measured == {"mention F1": f1, "BLEU-4": 0.312, "CIDEr": 1.5}
        assert rows[0].criterion == "micro-F1 of the digit words of the greedy test captions >= 0.5 (fixed before measuring)"
        if ok:
            assert rows[1].verdict == REPRODUCED
        else:
            _assert_gated(rows)


def test_s3_tables_and_reading():
    """S3's page tables (gate, long reliance table) and its generated reading follow the numbers."""
    from scene_results import coco_result

    from gsutils.experiments.grid import scene_claims as sc

    rng = np.random.default_rng(1)
    cls = np.array([1] * 10 + [2] * 10)
    kept = np.stack([np.r_[np.full(10, 0.9), np.full(10, 0.2)], np.r_[np.full(10, 0.1), np.full(10, 0.3)]])
    # the second network relies more: the reading must say "the other way round"
    res = coco_result([rng.uniform(0, 0.2, 20), rng.uniform(0.6, 1.0, 20)], encoders=("mobilenet_v2", "xception65"),
                      miou=(0.7, 0.65), cls=cls, kept_without_context=kept.astype(np.float32))
    gates = sc.coco_gates(res, 0.6)
    gt = sc.coco_gate_table(res, gates)
    assert list(gt["network"]) == ["mobilenet_v2", "xception65"] and list(gt["passed"]) == ["yes", "yes"]
    table = sc.reliance_table(res)
    long = sc.reliance_long(table, res.encoders)
    assert len(long) == 2 * len(table) and list(long.columns) == [
        "class", "network", "requests", "reliance", "empty maps", "kept at M=0"]
    assert long.loc[0, "kept at M=0"] == pytest.approx(0.9)
    text = sc.reliance_reading(res, table, gate_ok=True)
    assert "xception65's is the higher, the other way round from the paper" in text
    assert "lies below zero" in text
    assert "boat: mobilenet_v2 keeps 90% of the request without context, xception65 10%" in text
    assert "train:" not in text  # neither network keeps most of a train request
    flipped = coco_result([rng.uniform(0.6, 1.0, 20), rng.uniform(0, 0.2, 20)], encoders=("mobilenet_v2", "xception65"),
                          miou=(0.7, 0.65), cls=cls)
    assert "as in the paper" in sc.reliance_reading(flipped, sc.reliance_table(flipped), gate_ok=True)
    assert "not measured" in sc.reliance_reading(flipped, sc.reliance_table(flipped), gate_ok=False)


def test_s2_reading_counts():
    """S2's generated reading counts the requests of each class it names, from the result."""
    from scene_results import street_result

    from gsutils.data.cityscapes import TRAIN_CLASSES
    from gsutils.experiments.grid import scene_claims as sc

    rider, person, car = (TRAIN_CLASSES.index(c) for c in ("rider", "person", "car"))
    masks = np.zeros((4, 8, 8), bool)
    masks[:, 2:5, 2:5] = True
    # four explained requests: a rider (dropped: loss), two cars (one empty map), a person that is a rider
    res = street_result(cls=np.array([rider, car, car, person]), masks=masks,
                        gt_cls=np.array([rider, car, car, rider]),
                        correct=np.array([True, True, True, False]),
                        dropped_loss=np.array([True, False, False, False]),
                        dropped_empty=np.array([False, True, False, False]),
                        kept=np.array([False, False, True, True]))
    text = sc.street_reading(res)
    assert "**ground-truth riders**: 2 predicted request(s) are mostly rider pixels; the network predicts " \
           "1 of them as rider and 1 as person." in text
    assert "**rider**: 1 request(s) predicted (0 erroneous), 1 explained: 1 dropped with loss > 0.1, " \
           "0 with an empty map, 0 kept." in text
    assert "**car**: 2 request(s) predicted (0 erroneous), 2 explained: 0 dropped with loss > 0.1, " \
           "1 with an empty map, 1 kept." in text
    assert "**traffic sign**: the network predicted no traffic sign request in these frames." in text
