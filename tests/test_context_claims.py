"""Tests of the S1.3/S1.4 claims, gate and tables (gsutils.experiments.grid.context_claims)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gsutils.claims import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Ledger
from gsutils.data.toy import BiasConfig
from gsutils.experiments.grid import context_claims as cc
from gsutils.experiments.grid.context_results import METHODS, ContextSaliencyResults
from gsutils.experiments.grid.segmentation import SegRun
from gsutils.references import CBL_POSTER, cbl_poster


def _results(*, textures=(0, 1, 2), strengths=("strong", "weak"), on=None, off=None, cbl=None, empty=None,
             n_on=4, n_off=1):
    """One network per (strength, texture), bias digit 2; per method and texture: CBD of the bias
    digit ``on[m][t]``, of the others ``off[m][t]``, CBL ``cbl[m]``, empty share ``empty[m]`` (bias digit)."""
    on = on or {m: [0.5] * len(textures) for m in METHODS}
    off = off or {m: [0.01] * len(textures) for m in METHODS}
    cbl = cbl or {m: 0.5 for m in METHODS}
    empty = empty or {m: 0.0 for m in METHODS}
    runs, results = [], []
    digits = np.concatenate([np.full(n_on if d == 2 else n_off, d) for d in range(10)])
    is_on = digits == 2
    for st in strengths:
        for ti, t in enumerate(textures):
            runs.append(SegRun(BiasConfig(strength=st, digit=2, texture=t), "tiny", 0))
            n = len(digits)
            cbd_v = np.zeros((4, n))
            cbl_v = np.zeros((4, n))
            emp = np.zeros((4, n), bool)
            for k, m in enumerate(METHODS):
                cbd_v[k] = np.where(is_on, on[m][ti], off[m][ti])
                cbl_v[k] = cbl[m]
                n_empty = int(round(empty[m] * n_on))
                emp[k, np.flatnonzero(is_on)[:n_empty]] = True
                cbd_v[k, emp[k]] = 0.0
                cbl_v[k, emp[k]] = 0.5
            results.append({"digits": digits, "is_biased": is_on, "cbd": cbd_v, "cbl": cbl_v, "empty": emp,
                            "chance": np.full(n, 0.5), "score": np.full(n, 0.9),
                            "grey": np.where(is_on, 0.0, 0.5), "loss": np.where(emp[3], 0.7, 0.2)})
    return ContextSaliencyResults(runs, results, bias_digits=(2,), textures=tuple(textures),
                                  strengths=tuple(strengths))


def _ledger(tmp_path):
    return Ledger(chapter="test/ch", paper="grid_saliency", profile=SimpleNamespace(name="quick",
                                                                                     results_dir=tmp_path))


def _gate(passed, value=0.8):
    from gsutils.experiments.grid.bias_results import saliency_network_gate

    gate = saliency_network_gate(value, 0.75, "mean digit IoU of the unbiased tiny network (1 network(s))",
                                 {"tiny seed 0": value})
    assert gate.passed is passed
    return gate


# --------------------------------------------------------------------------- informative maps


def test_uninformative_maps_are_not_informative():
    # CBD equal on and off the bias digit (noise or uniform maps): not informative
    flat = _results(on={m: [0.2] * 3 for m in METHODS}, off={m: [0.2] * 3 for m in METHODS})
    assert not cc.informative(flat, "strong", "vg")["passed"]
    # empty maps of the bias digit: not informative even if the rest detect
    empty = _results(empty={**{m: 0.0 for m in METHODS}, "grid": 0.5})
    out = cc.informative(empty, "strong", "grid")
    assert out["non-empty (bias digit)"] == 0.5 and not out["passed"]
    # non-empty and above the other digits: informative
    assert cc.informative(_results(), "strong", "vg")["passed"]


def test_cbl_as_on_the_poster_fails_for_uninformative_maps():
    """A uniform map scores chance (0.5), within the reading accuracy of VG's poster CBL: the pairing
    with the informativeness check keeps that from counting as reproduced."""
    assert abs(0.5 - cbl_poster("vg", "strong")) <= 0.05
    flat = _results(on={m: [0.2] * 3 for m in METHODS}, off={m: [0.2] * 3 for m in METHODS})
    claims = {c["id"]: c for c in cc.localisation_claims(flat)}
    assert claims["cbl_vg_strong"]["passed"] is False
    assert claims["cbl_sg_weak"]["passed"] is False
    # the same CBL from informative maps passes
    good = {c["id"]: c for c in cc.localisation_claims(_results())}
    assert good["cbl_vg_strong"]["passed"] is True
    assert good["cbl_grid_strong"]["passed"] is False  # 0.5, far from the poster's 0.95
    assert good["grid_cbl_far_above_gradients_strong"]["passed"] is False


def test_grid_localises_far_better():
    res = _results(cbl={"vg": 0.5, "sg": 0.45, "ig": 0.6, "grid": 0.93})
    claims = {c["id"]: c for c in cc.localisation_claims(res)}
    assert claims["grid_cbl_far_above_gradients_strong"]["passed"] is True
    assert claims["cbl_grid_strong"]["passed"] is True  # |0.93 - 0.95| <= 0.05, informative
    assert claims["cbl_grid_weak"]["passed"] is True  # |0.93 - 0.89|
    # with half the bias digit's grid maps empty, chance pulls CBL down; the excluded mean stays
    half = _results(cbl={"vg": 0.5, "sg": 0.45, "ig": 0.6, "grid": 0.93},
                    empty={**{m: 0.0 for m in METHODS}, "grid": 0.5})
    c = {c["id"]: c for c in cc.localisation_claims(half)}["grid_cbl_far_above_gradients_strong"]
    assert np.isclose(c["measured"]["grid"], (0.93 + 0.5) / 2)
    assert np.isclose(c["measured"]["grid, empty excluded"], 0.93)
    assert c["passed"] is False


def test_detection_claims():
    res = _results()
    claims = {c["id"]: c for c in cc.detection_claims(res)}
    assert claims["grid_cbd_detects_bias_strong"]["passed"] is True
    # the same CBD on every texture: no texture dependence
    assert claims["vg_sg_texture_dependence"]["passed"] is False
    # spread across textures on the bias digit, steady elsewhere: dependence
    dep = {m: [0.1, 0.5, 0.3] for m in METHODS}
    assert {c["id"]: c for c in cc.detection_claims(_results(on=dep))}["vg_sg_texture_dependence"]["passed"]
    # a larger relative spread on the other digits (the networks differ, not the bias): no claim
    spread_off = {m: [0.005, 0.05, 0.03] for m in METHODS}
    c = {c["id"]: c for c in cc.detection_claims(_results(on=dep, off=spread_off))}
    assert c["vg_sg_texture_dependence"]["passed"] is False
    # uninformative (bias digit not above the others), even with a spread
    c = {c["id"]: c for c in cc.detection_claims(_results(on=dep, off={m: [0.4] * 3 for m in METHODS}))}
    assert c["vg_sg_texture_dependence"]["passed"] is False
    # one texture: not measurable
    one = {c["id"]: c for c in cc.detection_claims(_results(textures=(0,)))}
    assert one["vg_sg_texture_dependence"]["passed"] is None


# --------------------------------------------------------------------------- the gate


def test_record_respects_the_gate(tmp_path):
    claims = cc.localisation_claims(_results(cbl={"vg": 0.5, "sg": 0.45, "ig": 0.6, "grid": 0.93}))
    led = _ledger(tmp_path)
    rows = cc.record(led, claims, _gate(False, 0.6))
    assert all(r.verdict == NOT_MEASURED for r in rows)
    assert all(r.note.startswith("not measured: networks below the gate") for r in rows)
    assert "0.600 < 0.75" in rows[0].note
    assert rows[0].measured is not None  # the numbers are still shown
    led2 = _ledger(tmp_path / "b")
    rows = cc.record(led2, claims, _gate(True))
    verdicts = {r.id: r.verdict for r in rows}
    assert verdicts["grid_cbl_far_above_gradients_strong"] == REPRODUCED
    assert verdicts["cbl_ig_weak"] in (REPRODUCED, NOT_REPRODUCED)
    from gsutils.report import chapter_table

    table = chapter_table(led)  # what the pages show: every row, its note folded under the claim
    assert len(repr(table).splitlines()) == len(claims) and "not measured: networks below the gate" in table._repr_html_()
    # the gate's own row
    g = led.check(**_gate(False, 0.6).row(section="S1.4 (gate)"))
    assert g.verdict == NOT_REPRODUCED and "0.75" in g.criterion and g.is_gate and g.id == "gate"


#: the ids the S1.3 and S1.4 pages recorded before their rows moved into record_detection / record_localisation
DETECTION_IDS = ["gate", "grid_cbd_detects_bias_strong", "grid_cbd_detects_bias_weak", "vg_sg_texture_dependence"]
LOCALISATION_IDS = ["gate"] + [i for st in ("strong", "weak") for i in
                               [f"grid_cbl_far_above_gradients_{st}"] + [f"cbl_{m}_{st}" for m in METHODS]]


@pytest.mark.parametrize("record, ids, section", [(cc.record_detection, DETECTION_IDS, "S1.3"),
                                                  (cc.record_localisation, LOCALISATION_IDS, "S1.4")])
def test_the_chapters_record_their_gate_then_their_claims(tmp_path, record, ids, section):
    res = _results(cbl={"vg": 0.5, "sg": 0.45, "ig": 0.6, "grid": 0.93})
    rows = record(_ledger(tmp_path / "fail"), res, _gate(False, 0.6))
    assert [r.id for r in rows] == ids
    assert rows[0].section == f"{section} (gate)" and rows[0].kind == "gate" and rows[0].verdict == NOT_REPRODUCED
    assert {r.verdict for r in rows[1:]} == {NOT_MEASURED}
    assert all("0.600 < 0.75" in r.note for r in rows[1:])
    rows = record(_ledger(tmp_path / "pass"), res, _gate(True))
    assert [r.id for r in rows] == ids and rows[0].verdict == REPRODUCED
    assert {r.verdict for r in rows[1:]} <= {REPRODUCED, NOT_REPRODUCED, NOT_MEASURED}
    # the same claims as the judged ones, only the gate decides
    judged = {c["id"]: c["passed"] for c in (cc.detection_claims(res) if section == "S1.3"
                                              else cc.localisation_claims(res))}
    assert all(r.verdict == {True: REPRODUCED, False: NOT_REPRODUCED, None: NOT_MEASURED}[judged[r.id]]
               for r in rows[1:])


def test_gate_from_the_grid_results(monkeypatch):
    from gsutils.experiments.grid import segmentation as seg

    def result(strength, iou):
        run = SegRun(BiasConfig(strength, digit=None if strength == "none" else 2), "tiny", 0)
        return seg.SegIoU(run=run, iou=(iou,) * 10 + (0.99,), miou=iou, digit_miou=iou, pixel_acc=0.9, n_test=10,
                          key="k")

    monkeypatch.setattr(seg, "grid_runs", lambda profile: [])
    monkeypatch.setattr(seg, "run_grid", lambda profile, runs, **kw: [result("none", 0.8), result("strong", 0.1)])
    prof = SimpleNamespace(train=SimpleNamespace(gate_digit_miou=0.75, backbone="tiny"))
    gate = cc.saliency_gate(prof)
    assert gate.passed and np.isclose(gate.measured, 0.8) and gate.threshold == 0.75
    assert gate.per == {"tiny seed 0": pytest.approx(0.8)}
    assert not cc.saliency_gate(prof, threshold=0.9).passed
    assert "0.800" in gate.line() and "holds" in gate.line()
    t = cc.saliency_gate(prof, threshold=0.9).table()
    assert t.loc[0, "gate"] == "fails" and t.loc[0, "threshold"] == 0.9


# --------------------------------------------------------------------------- tables and evidence


def test_tables():
    res = _results(empty={**{m: 0.0 for m in METHODS}, "grid": 0.5})
    er = cc.empty_rate_table(res).set_index(["strength", "method"])
    assert er.loc[("strong", "Grid"), "empty, bias digit"] == 0.5
    assert er.loc[("strong", "Grid"), "empty, other digits"] == 0.0
    t = cc.cbl_table(res).set_index(["strength", "method"])
    assert t.loc[("weak", "Grid"), "non-empty maps"] == "6/12"
    assert np.isclose(t.loc[("weak", "VG"), "poster"], CBL_POSTER["vg"][1])
    assert {"CBL, empty = chance", "CBL, empty excluded", "chance"} <= set(t.columns)
    pt = cc.per_texture_table(res, "cbd")
    assert list(pt.columns) == ["texture 0", "texture 1", "texture 2"] and len(pt) == 8
    assert cc.per_texture_table(res, "cbl").shape == (8, 3)
    with pytest.raises(ValueError, match="what"):
        cc.per_texture_table(res, "iou")
    s = cc.cbd_summary(res)
    assert np.allclose(s["ratio"], s["CBD on bias digit"] / s["CBD elsewhere"])


def test_sensitivity_table():
    main = _results()
    fixed = ContextSaliencyResults(main.runs, [{k: (v[3] if k in ("cbd", "cbl", "empty") else v)
                                                for k, v in r.items()} for r in main.results],
                                   main.bias_digits, main.textures, main.strengths, methods=("grid",))
    t = cc.sensitivity_table(main, fixed, 0.5, (0.0, 0.25, 0.5, 0.75, 1.0))
    assert len(t) == 4 and set(t["grid saliency"]) == {"grey chosen per image (0, 0.25, 0.5, 0.75, 1)",
                                                       "grey fixed at 0.5"}
    assert np.allclose(t["CBD, bias digit"], 0.5)


def test_evidence_lines():
    res = _results(empty={**{m: 0.0 for m in METHODS}, "grid": 1.0})
    greys = {f"grey {a:g}": 0.3 for a in (0, 0.25, 0.5, 0.75, 1)}
    # relies on the bias, and grey 0 stands in for it
    stands_in = [{"biased context": 0.9, "ordinary context": 0.4, **greys, "grey 0": 0.9}] * len(res.runs)
    lines = cc.evidence_lines(res, stands_in)
    assert len(lines) == 2 and "grey context keeps the score" in lines[0] and "100%" in lines[0]
    table = cc.scores_table(res, stands_in)
    assert table["grey chosen (most often)"].iloc[0] == 0.0 and table["empty grid maps"].iloc[0] == 1.0
    # relies, no grey replaces it, keeping the biased part restores the score, yet every map is empty
    relies = [{"biased context": 0.9, "ordinary context": 0.4, **greys, "bias part kept": 0.85}] * len(res.runs)
    line = cc.evidence_lines(res, relies)[0]
    assert "no grey value replaces it" in line and "a mask on that part preserves the request" in line
    assert "Yet 100% of the maps are empty" in line and "empty maps 0.70" in line
    # ... and grid saliency keeps context everywhere
    full = _results()
    line = cc.evidence_lines(full, relies[:len(full.runs)])[0]
    assert "keeps context in every map" in line and "Yet" not in line
    # does not rely on the bias
    no_bias = [{"biased context": 0.9, "ordinary context": 0.88, **greys}] * len(res.runs)
    assert "little bias to find" in cc.evidence_lines(res, no_bias)[0]
    # does not see the digit at all
    blind = [{"biased context": 0.1, "ordinary context": 0.1, **greys}] * len(res.runs)
    assert "hardly recognises the bias digit" in cc.evidence_lines(res, blind)[0]
    # the table's columns: contexts, then the greys in order of value
    cols = list(cc.scores_table(res, blind).columns)
    assert cols[:2] == ["biased context", "ordinary context"]
    assert cols[2:7] == ["grey 0", "grey 0.25", "grey 0.5", "grey 0.75", "grey 1"]


def test_figures_handle_many_textures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gsutils.plots.context import plot_cbd_matrices, plot_cbl

    for textures, digits in (((0, 1, 2, 3, 4), (2,)), ((0, 1), (2, 5, 8))):
        rng = np.random.default_rng(0)
        mats = {m: rng.random((len(textures), len(digits), 10)) for m in METHODS}
        fig = plot_cbd_matrices(mats, digits, textures, title="t")
        assert len([a for a in fig.axes if a.get_visible() and a.images]) == len(METHODS)
        plt.close(fig)
        # the supplement's layout: (a) the IoU drop, then the methods, in one row
        drop = -rng.random((len(textures), len(digits), 10))
        fig = plot_cbd_matrices(mats, digits, textures, iou_drop=drop, title="t")
        panels = [a for a in fig.axes if a.images]
        assert len(panels) == len(METHODS) + 1 and panels[0].get_title().startswith("a) IoU drop")
        assert len({round(a.get_position().y0, 3) for a in panels}) == 1  # one row
        plt.close(fig)
        cbl = {m: rng.random((len(textures), len(digits))) for m in METHODS}
        excl = {m: np.where(rng.random((len(textures), len(digits))) > 0.5, np.nan, 0.7) for m in METHODS}
        fig = plot_cbl(cbl, np.full((len(textures), len(digits)), 0.5), digits, textures, excluded=excl,
                       poster={m: CBL_POSTER[m][0] for m in METHODS})
        # Fig. S6/S7: one panel per method, a) b) c) d), one y scale, a bar per network and the mean
        panels = [a for a in fig.axes if a.get_visible()]
        assert len(panels) == len(METHODS)
        assert [a.get_title()[:2] for a in panels] == [f"{chr(97 + k)})" for k in range(len(METHODS))]
        assert {a.get_ylim() for a in panels} == {(0.0, 1.05)}
        assert all(len(a.patches) == len(textures) * len(digits) + 1 for a in panels)
        assert 10 <= fig.get_size_inches()[0] <= 12  # a page width
        plt.close(fig)


def test_network_evidence_rows(monkeypatch):
    """Per network: its bias digit's IoU drop from N's beside each method's CBD, empty share and CBL."""
    from gsutils.experiments.grid import segmentation as seg

    res = _results(textures=(0,), on={m: [0.3] for m in METHODS}, off={m: [0.02] for m in METHODS},
                   cbl={m: 0.8 for m in METHODS}, empty={"vg": 0.0, "sg": 0.0, "ig": 0.0, "grid": 0.5})

    def fake_iou(profile, run):
        iou = [0.9] * 11 if run.bias.strength == "none" else [0.9, 0.9, 0.1] + [0.9] * 8
        return seg.SegIoU(run=run, iou=tuple(iou), miou=0.9, digit_miou=0.9, pixel_acc=0.9, n_test=10, key="k")

    monkeypatch.setattr(seg, "evaluate_iou", fake_iou)
    ev = cc.network_evidence(None, res)
    assert list(ev.index) == ["tiny/strong-d2-t0/s0", "tiny/weak-d2-t0/s0"]
    row = ev.loc["tiny/strong-d2-t0/s0"]
    assert row["bias digit IoU"] == pytest.approx(0.1) and row["drop from N"] == pytest.approx(0.8)
    assert row["VG CBD bias digit"] == pytest.approx(0.3) and row["VG CBD others"] == pytest.approx(0.02)
    assert row["Grid empty"] == pytest.approx(0.5) and row["Grid CBD bias digit"] == pytest.approx(0.15)
    assert row["VG CBL"] == pytest.approx(0.8) and row["Grid CBL"] == pytest.approx(0.65)
