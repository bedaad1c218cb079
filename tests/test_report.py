"""Gate rows are not paper claims: the ledger marks them and the report counts them apart."""

from __future__ import annotations

import json

import pytest

from gsutils import claims
from gsutils.experiments import context_claims as cc
from gsutils.experiments import scene_claims
from gsutils.profiles import get_profile
from gsutils.report import ledger_html, verdict_counts


@pytest.fixture
def cfg(tmp_path):
    return get_profile("quick", device="cpu", results_dir=tmp_path)


def test_gate_rows_are_recognised():
    assert claims.is_gate_row("gate") and claims.is_gate_row("s2_gate") and claims.is_gate_row("s3_gate_xception65")
    assert claims.is_gate_row("captioner_gate") and claims.is_gate_row("x", "S1.2 (gate)")
    assert not claims.is_gate_row("gradcam_last_block_vgg16", "A (Table 2)")
    assert not claims.is_gate_row("navigate_x") and not claims.is_gate_row("gates_of_x")


def test_a_failed_gate_is_not_a_failed_reproduction(cfg):
    led = claims.Ledger("grid_saliency/99_x", profile=cfg)
    led.check(**cc.gate_claim({"digit_miou": 0.6, "passed": False, "threshold": 0.75}, "S1.3"))
    led.check(**scene_claims.gate_row(0.7, 0.65, {"car": 0.7}, "S2"))
    led.check("claim_a", "S1.3", "a claim", measured=1, passed=True, criterion="x")
    led.check("claim_b", "S1.3", "b claim", measured=1, passed=None, criterion="x")
    other = claims.Ledger("normgrad/99_y", profile=cfg)
    other.check("captioner_gate", "F", "gate", measured=0.2, passed=False, criterion="x", kind="gate")
    other.check("c", "F", "c", measured=0.2, passed=False, criterion="x")
    with pytest.raises(ValueError, match="kind"):
        other.check("d", "F", "d", measured=0, passed=True, criterion="x", kind="other")
    rows = claims.load(cfg.results_dir)
    assert {r.id for r in claims.gates(rows)} == {"gate", "s2_gate", "captioner_gate"}
    assert {r.id for r in claims.paper_claims(rows)} == {"claim_a", "claim_b", "c"}
    gate = next(r for r in rows if r.id == "gate")
    assert gate.verdict == claims.NOT_REPRODUCED and gate.outcome == "gate failed"
    text = repr(verdict_counts(rows))
    assert "3 paper claims" in text and "3 gates" in text
    assert "grid_saliency: reproduced 1, not reproduced 0" in text  # the failed gate is not counted here
    assert "normgrad: reproduced 0, not reproduced 1" in text
    assert "grid_saliency: passed 1, failed 1" in text and "normgrad: passed 0, failed 1" in text
    assert "[gate failed] S1.3 (gate) gate" in repr(ledger_html(rows))
    assert "[gate failed]" in led.summary()
    assert list(led.table()["kind"]) == ["gate", "gate", "claim", "claim"]


def test_rows_written_before_the_kind_existed_are_read(cfg):
    old = [{"id": "gate", "paper": "grid_saliency", "section": "S1.2 (gate)", "claim": "c", "criterion": "x",
            "reported": None, "measured": 0.8, "profile": "quick", "verdict": "reproduced",
            "chapter": "grid_saliency/02", "note": ""},
           {"id": "x", "paper": "grid_saliency", "section": "S1.2", "claim": "c", "criterion": "x",
            "reported": None, "measured": 0.8, "profile": "quick", "verdict": "reproduced",
            "chapter": "grid_saliency/02", "note": ""}]
    (cfg.results_dir / "claims").mkdir(parents=True)
    (cfg.results_dir / "claims" / "grid_saliency__02.json").write_text(json.dumps(old))
    rows = claims.load(cfg.results_dir)
    assert {r.id: r.kind for r in rows} == {"gate": "gate", "x": "claim"}
