"""The gate and claims of the captioning chapter (NormGrad section F, Fig. 6).

:func:`captioner_gate` is the chapter's gate (the captioner names the scene's
digits: the mention F1 of its greedy test captions reaches
``profile.captioning.gate_mention_f1``); :func:`record_captioning` records the
gate's row and the three Fig. 6 claims, judged only when it passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gsutils.claims import Gate
from gsutils.experiments.normgrad.caption_results import CaptionEvaluation, ExplainedCaptions, SharpnessSummary
from gsutils.experiments.normgrad.caption_saliency import paired_interval
from gsutils.models.captioner import EXPLAINED_LAYERS

__all__ = ["captioner_gate", "record_captioning"]


def captioner_gate(ev: CaptionEvaluation) -> Gate:
    """The gate of :func:`gsutils.experiments.normgrad.captioning.evaluate_captioner`'s result ``ev``.

    Its row shows the mention F1 beside BLEU-4, ROUGE-L and CIDEr (for information).
    """
    thr = ev.gate_threshold
    f1 = None if ev.mentions is None else ev.mentions.f1
    return Gate(
        what="micro-F1 of the digit words of the greedy test captions", measured=f1, threshold=thr,
        passed=bool(ev.gate_passed), id="captioner_gate", section="F",
        claim="The captioner describes the test scenes (gate for the saliency claims of this page)",
        shown={"mention F1": None if f1 is None else round(f1, 3), **{k: round(v, 3) for k, v in ev.scores.items()}},
        criterion=f"micro-F1 of the digit words of the greedy test captions >= {thr} (fixed before measuring)",
        row_note="BLEU-4, ROUGE-L and CIDEr are shown for information (CIDEr's document frequencies "
                 "come from this test set)",
        reason="not measured: the captioner is below the gate")


def record_captioning(ledger: Any, ex: ExplainedCaptions, summary: SharpnessSummary, names: Sequence[str],
                      gate: Gate) -> list[Any]:
    """Record the section F chapter's rows: the gate, then the three Fig. 6 claims (judged only above it).

    ``ex``: :func:`gsutils.experiments.normgrad.caption_saliency.explain_captions`; ``summary``:
    :func:`gsutils.experiments.normgrad.caption_saliency.sharpness_summary` of it; ``names``: the maps' names
    (:func:`gsutils.experiments.normgrad.caption_saliency.map_names`, the layers and ``"combined"``).
    """
    layers = list(EXPLAINED_LAYERS)
    j = {n: k for k, n in enumerate(names)}
    area = summary.named_area
    per = summary.maps
    ent = {l: paired_interval(ex.entropy[:, j[l]], ex.entropy[:, j["combined"]]) for l in layers}
    mass = {l: paired_interval(ex.mass[:, j["combined"]], ex.mass[:, j[l]]) for l in layers}
    return [
        ledger.check(**gate.row()),
        ledger.check(
            "layers_broad", "F (Fig. 6)",
            "Selective NormGrad at a single layer highlights a large part of the image",
            measured={**{l: round(per[l].half_max, 3) for l in layers}, "named objects": round(area, 3)},
            reported="qualitative (Fig. 6)",
            passed=gate.judge(all(per[l].half_max > area for l in layers)),
            criterion="at every single layer, the mean share of the image at or above half the map's maximum "
                      "exceeds the mean share covered by the named objects",
        ),
        _interval_claim(
            ledger, gate, "combination_sharper",
            "The product combination of the layers is sharper than each layer (lower entropy)",
            {l: round(per[l].entropy, 3) for l in names}, ent, ".3f",
            "for every layer, the 95 % bootstrap interval of mean[entropy(layer) - "
            "entropy(combination)] over the explained captions lies above 0"),
        _interval_claim(
            ledger, gate, "combination_on_objects",
            "The combination puts more of its mass on the objects the caption names than each layer",
            {l: round(per[l].mass, 3) for l in names}, mass, "+.3f",
            "for every layer, the 95 % bootstrap interval of mean[mass share(combination) - "
            "mass share(layer)] on the named objects' pixels lies above 0"),
    ]


def _interval_claim(ledger: Any, gate: Gate, claim_id: str, claim: str, measured: dict[str, float],
                    diffs: dict[str, dict[str, float]], fmt: str, criterion: str) -> Any:
    """A Fig. 6 row judged by paired bootstrap intervals (one per layer, combination against the
    layer): it holds when every interval lies above 0; the note lists them (``fmt``: their format)."""
    return ledger.check(
        claim_id, "F (Fig. 6)", claim, measured=measured, reported="qualitative (Fig. 6)",
        passed=gate.judge(all(d["low"] > 0 for d in diffs.values())), criterion=criterion,
        note="; ".join(f"{l}: {d['difference']:{fmt}} [{d['low']:{fmt}}, {d['high']:{fmt}}]" for l, d in diffs.items()),
    )
