"""The one gate type (gsutils.claims.Gate) and the chapters' opening (gsutils.claims.open_chapter)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from gsutils.claims import GATE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Gate, Ledger, open_chapter


def _gate(passed: bool, **kw) -> Gate:
    return Gate(what="mean digit IoU", measured=0.8 if passed else 0.6, threshold=0.75, passed=passed,
                section="S1.3 (gate)", claim="the network is good enough", criterion="IoU >= 0.75",
                detail={"tiny seed 0": 0.8 if passed else 0.6}, note="IoU 0.600, threshold 0.75",
                reason="not measured: below the gate (0.600 < 0.75)", **kw)


def _ledger(tmp_path):
    return Ledger("grid_saliency/99_t", profile=SimpleNamespace(name="quick", results_dir=tmp_path))


def test_a_passed_gate_judges_and_a_failed_one_does_not():
    ok, bad = _gate(True), _gate(False)
    assert ok.judge(True) is True and ok.judge(False) is False
    assert ok.judge(np.bool_(True)) is True and type(ok.judge(np.float64(1.0))) is bool
    assert bad.judge(True) is None and bad.judge(False) is None
    # a claim that is not measurable stays so under any gate
    assert ok.judge(None) is None and bad.judge(None) is None


def test_guard_turns_a_claim_under_a_failed_gate_into_not_measured_with_the_gates_numbers():
    claim = dict(id="c", section="S1.3", claim="x", measured=1.0, passed=True, criterion="y", note="own note")
    assert _gate(True).guard(claim) is claim
    guarded = _gate(False).guard(claim)
    assert guarded["passed"] is None and guarded["note"] == "not measured: below the gate (0.600 < 0.75); own note"
    assert guarded["measured"] == 1.0 and claim["passed"] is True  # the numbers stay, the input is not changed
    assert _gate(False).guard(dict(claim, note=""))["note"] == "not measured: below the gate (0.600 < 0.75)"


def test_the_gates_row_is_a_gate_row_of_the_ledger(tmp_path):
    g = _gate(False, row_note="below the gate every claim is not measured")
    row = g.row()
    assert row == dict(id="gate", section="S1.3 (gate)", claim="the network is good enough", measured=0.6,
                       passed=False, criterion="IoU >= 0.75", note="below the gate every claim is not measured",
                       kind=GATE)
    assert g.row(section="S1.4 (gate)", id="g2")["section"] == "S1.4 (gate)"
    assert g.row(id="g2")["id"] == "g2"
    led = _ledger(tmp_path)
    r = led.check(**row)
    assert r.is_gate and r.verdict == NOT_REPRODUCED and r.outcome == "gate failed"
    assert led.check(**_gate(True).row(id="g3")).verdict == REPRODUCED
    # a row may show more than the compared number
    shown = dataclasses.replace(g, shown={"F1": 0.6, "BLEU-4": 0.3})
    assert shown.row()["measured"] == {"F1": 0.6, "BLEU-4": 0.3} and shown.measured == 0.6
    # a failed gate's claims read "not measured"
    c = led.check(**g.guard(dict(id="c", section="S1.3", claim="x", measured=1, passed=True, criterion="y")))
    assert c.verdict == NOT_MEASURED and "0.600 < 0.75" in c.note and not c.is_gate


def test_the_gate_is_frozen_and_typed():
    g = _gate(True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.passed = False  # type: ignore[misc]
    with pytest.raises(TypeError, match="bool"):
        Gate(what="x", measured=1, threshold=1, passed=None)  # type: ignore[arg-type]
    assert Gate(what="x", measured=1, threshold=1, passed=np.bool_(True)).passed is True
    assert g.detail == (("tiny seed 0", 0.8),) and g.per == {"tiny seed 0": 0.8}
    assert hash(g) == hash(_gate(True))


def test_line_and_table_say_what_was_measured():
    line = _gate(True).line()
    assert line == "Gate: mean digit IoU 0.800 (tiny seed 0 0.800); threshold 0.75; the gate holds: the claims are judged."
    assert "fails: the claims are recorded as not measured" in _gate(False).line()
    none = Gate(what="published checkpoints", measured=None, threshold=None, passed=True,
                note="published VOC checkpoints: no gate")
    assert none.line() == "Gate: published VOC checkpoints: no gate; no threshold applies, the claims are judged."
    assert none.judge(False) is False
    t = _gate(False).table()
    assert t.loc[0, "gate"] == "fails" and t.loc[0, "threshold"] == 0.75 and t.loc[0, "tiny seed 0"] == 0.6


def test_open_chapter_gives_the_profile_and_the_chapters_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("GSUTILS_RESULTS", str(tmp_path))
    cfg, ledger = open_chapter("normgrad/02_identity_trick", profile="quick", device="cpu", seed=3, data_root="")
    assert cfg.name == "quick" and cfg.seed == 3 and cfg.data_root is None
    assert ledger.chapter == "normgrad/02_identity_trick" and ledger.paper == "normgrad"
    assert ledger.profile == "quick" and ledger.path.parent == cfg.results_dir / "claims"
    assert not ledger.claims and not ledger.path.exists()  # nothing is written before a row
