"""The claims of the NormGrad chapters on layers: combination (section C, Table 3 and Fig. 1),
meta-saliency (D, Figs. 2-3) and randomisation (E, Fig. 5).

Each ``record_*`` function records every row of its chapter and returns them.
Every claim here is about depth, so each is judged only above the classifiers'
gate (:func:`gsutils.experiments.normgrad.normgrad_data.open_classifiers`), whose numbers
every row carries in its note.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gsutils.claims import Gate
from gsutils.experiments.normgrad.layer_combination import COMBO_METHODS, depth_trend, positive_gains
from gsutils.experiments.normgrad.meta_saliency import META_METHODS
from gsutils.experiments.normgrad.normgrad_claims import accuracy_most_consistent, spread_vgg16_claim
from gsutils.experiments.normgrad.pointing_results import LayerWeights
from gsutils.experiments.normgrad.randomisation import RANDOM_METHODS

__all__ = ["record_layer_combination", "record_meta", "record_randomisation"]


# ------------------------------------------------------------------------------------ C


def record_layer_combination(ledger: Any, tables: dict[str, Any], weights: dict[str, LayerWeights],
                             gate: Gate, archs: Sequence[str]) -> list[Any]:
    """Record the section C chapter's rows.

    ``tables``: :func:`gsutils.experiments.normgrad.layer_combination.table3` per architecture;
    ``weights``: :func:`gsutils.experiments.normgrad.layer_combination.layer_weights` per architecture
    (``vgg16`` and ``resnet50``).
    """
    g = gate
    rows = []
    cells = {(arch, m): tables[arch].loc[(m, "product", "accuracy")] for arch in archs for m in COMBO_METHODS}
    rows.append(ledger.check(
        "combination_product_accuracy_beats_best_layer", "C (Table 3)",
        "The product of layers with accuracy weights beats the best single layer, for linear approximation "
        "and selective NormGrad on both networks",
        measured={f"{a} {m}": round(float(r["gain all"]), 1) for (a, m), r in cells.items()},
        reported="positive gains in all four cells (VOC07, Table 3)",
        passed=g.judge(all(r["low"] > 0 for r in cells.values())),
        criterion="in every (network, method) cell the 95 % bootstrap interval of the gain (all pairs) lies above 0",
        note=g.note + "; intervals " + "; ".join(f"{a} {m} [{r['low']:.1f}, {r['high']:.1f}]"
                                                 for (a, m), r in cells.items()),
    ))
    positive = positive_gains(tables)
    n_cells = 2 * len(COMBO_METHODS) * 2 * len(archs)
    rows.append(ledger.check(
        "combination_accuracy_most_consistent", "C (Table 3)",
        "Accuracy weights give the most consistent gains",
        measured={w: f"{v}/{n_cells}" for w, v in positive.items()},
        reported="accuracy weights improve all 16 cells of Table 3 (linear weights too)",
        passed=g.judge(accuracy_most_consistent(positive)),
        criterion=f"no other weighting has more positive gains than the accuracy weighting over the "
                  f"{n_cells} cells (network x method x sum/product x all/difficult)",
        note="at least as many, not strictly more: in the supplement's Table 3 the linear weights also gain in "
             "all 16 cells; " + g.note,
    ))
    rows.append(ledger.check(**spread_vgg16_claim(tables, g)))
    for arch, w in weights.items():
        rows.append(_rises_with_depth(ledger, g, f"accuracy_rises_with_depth_{arch}",
                                      f"{arch}: the linear-probe accuracy of a layer's features rises with depth",
                                      w.accuracy, "probe mAP"))
    rows.append(_rises_with_depth(ledger, g, "spread_rises_with_depth_resnet50",
                                  "resnet50: the feature spread rises with depth", weights["resnet50"].spread,
                                  "spread"))
    sv = weights["vgg16"].spread
    rows.append(ledger.check(
        "spread_falls_last_two_vgg16", "C (Fig. 1)",
        "vgg16: the feature spread rises with depth up to features.15 and falls in the last two layers",
        measured=[round(v, 3) for v in sv],
        reported="falls at features.22 and features.29",
        passed=g.judge(sv[2] > sv[3] > sv[4] and sv[2] > sv[0]),
        criterion="spread(features.15) > spread(features.22) > spread(features.29), and "
                  "spread(features.15) > spread(features.3)",
        note=g.note,
    ))
    return rows


# ------------------------------------------------------------------------------------ D


def record_meta(ledger: Any, fig2: dict[str, Any], fig3: dict[str, Any], available: dict[str, bool],
                gate: Gate) -> list[Any]:
    """Record the section D chapter's two rows (Figs. 2 and 3).

    ``fig2``: :func:`gsutils.experiments.normgrad.meta_saliency.meta_curves` and ``fig3``:
    :func:`gsutils.experiments.normgrad.meta_saliency.to_final_curves` per architecture with epoch snapshots;
    ``available``: per architecture, whether it has them (else both rows are not measured).
    """
    g = gate
    have = all(available.values())
    lower, stable = {}, {}
    for arch, t in fig2.items():
        for m in META_METHODS:
            lower[arch, m] = (float(t[("train", m, "input")].mean()), float(t[("validation", m, "input")].mean()))
            f = fig3[arch][(m, "input")].to_numpy()
            steps = np.abs(np.diff(f[:-1]))  # epoch-to-epoch changes before the final epoch
            half = len(steps) // 2
            stable[arch, m] = (float(f[0]), float(f[-2]), float(steps[:half].mean()), float(steps[half:].mean()))
    why = "" if have else ("; epoch snapshots absent (a published checkpoint, or networks restored without them): "
                           "not measured")
    return [
        ledger.check(
            "meta_lower_on_validation", "D (Fig. 2)",
            "Meta and plain maps agree less on validation images than on training images",
            measured={f"{a} {m}": f"train {tr:.2f}, validation {va:.2f}" for (a, m), (tr, va) in lower.items()},
            reported="lower correlation on validation (Fig. 2)",
            passed=g.judge(all(va < tr for tr, va in lower.values())) if have else None,
            criterion="for every (network, method), maps at the input: the mean over epochs of Spearman(meta, plain) "
                      "is lower on validation than on training images",
            note=g.note + why,
        ),
        ledger.check(
            "meta_maps_stabilise", "D (Fig. 3)",
            "Validation meta-maps stabilise over training",
            measured={f"{a} {m}": f"first {f0:.2f}, last-but-one {f1:.2f}, step {s0:.3f} -> {s1:.3f}"
                      for (a, m), (f0, f1, s0, s1) in stable.items()},
            reported="the correlation with the final meta-maps rises and levels off (Fig. 3)",
            passed=g.judge(all(f1 > f0 and s1 < s0 for f0, f1, s0, s1 in stable.values())) if have else None,
            criterion="for every (network, method), maps at the input: correlation with the final meta-map higher "
                      "at the last-but-one epoch than at the first, and smaller epoch-to-epoch changes in the "
                      "second half of training than in the first",
            note=g.note + why,
        ),
    ]


# ------------------------------------------------------------------------------------ E


def record_randomisation(ledger: Any, curves: dict[str, Any], hits: dict[str, Any], abs_curves: dict[str, Any],
                         gate: Gate, archs: Sequence[str]) -> list[Any]:
    """Record the section E chapter's two rows (Fig. 5).

    ``curves`` and ``abs_curves``: :func:`gsutils.experiments.normgrad.randomisation.randomisation_curves`
    (signed and absolute values ranked) and ``hits``:
    :func:`gsutils.experiments.normgrad.randomisation.randomisation_hits`, per architecture.
    """
    g = gate
    last, cells, abs_last, abs_cells = {}, {}, {}, {}
    for arch in archs:
        c, h, a = curves[arch], hits[arch], abs_curves[arch]
        for m in RANDOM_METHODS:
            plain, meta = ("plain", m, "input"), ("meta", m, "input")
            last[arch, m] = (float(c[plain].iloc[-1]), float(h[plain].iloc[0]), float(h[plain].iloc[-1]))
            cells[arch, m] = (float(c[plain].iloc[1:].mean()), float(c[meta].iloc[1:].mean()))
            abs_last[arch, m] = float(a[plain].iloc[-1])
            abs_cells[arch, m] = (float(a[plain].iloc[1:].mean()), float(a[meta].iloc[1:].mean()))
    abs_loses = all(r < 0.5 and h1 < h0 for r, (_, h0, h1) in zip(abs_last.values(), last.values()))
    abs_delays = all(q > p for p, q in abs_cells.values())
    return [
        ledger.check(
            "randomisation_loses_object", "E (Fig. 5)",
            "As the weights are randomised from the top down, the maps lose the object",
            measured={f"{a} {m}": f"Spearman {r:.2f}, hits {h0:.0f}% -> {h1:.0f}%"
                      for (a, m), (r, h0, h1) in last.items()},
            reported="the object fades as more layers are randomised (Fig. 5)",
            passed=g.judge(all(r < 0.5 and h1 < h0 for r, h0, h1 in last.values())),
            criterion="for every (network, method), plain maps at the input: mean Spearman (signed values ranked) "
                      "with the original below 0.5 at the last stage, and fewer pointing hits than the original",
            note="with absolute values ranked instead: last-stage Spearman " + ", ".join(
                f"{a} {m} {r:.2f}" for (a, m), r in abs_last.items())
                + f"; the criterion would {'hold' if abs_loses else 'not hold'}; " + g.note,
        ),
        ledger.check(
            "meta_delays_degradation", "E (Fig. 5)",
            "Meta-saliency delays the degradation of the maps under randomisation",
            measured={f"{a} {m}": f"plain {p:.2f}, meta {q:.2f}" for (a, m), (p, q) in cells.items()},
            reported="meta-saliency maps keep the object for more stages",
            passed=g.judge(all(q > p for p, q in cells.values())),
            criterion="for every (network, method), the mean Spearman (signed values ranked) over the randomised "
                      "stages (maps at the input) is higher for the meta-maps than for the plain maps",
            note="with absolute values ranked instead: " + ", ".join(
                f"{a} {m} plain {p:.2f}, meta {q:.2f}" for (a, m), (p, q) in abs_cells.items())
                + f"; the criterion would {'hold' if abs_delays else 'not hold'}; " + g.note,
        ),
    ]


def _rises_with_depth(ledger, g, claim_id: str, claim: str, values, what: str):
    """A Fig. 1 row: ``values`` (one per layer, shallow to deep) rise with depth: the deepest
    exceeds the shallowest and the rank correlation with depth is at least 0.8."""
    trend = depth_trend(values)
    return ledger.check(
        claim_id, "C (Fig. 1)", claim,
        measured=[round(v, 3) for v in values],
        reported="rises with depth",
        passed=g.judge(values[-1] > values[0] and trend >= 0.8),
        criterion=f"the deepest layer's {what} exceeds the shallowest's and its rank correlation "
                  "with depth is at least 0.8",
        note=g.note + f"; rank correlation {trend:.2f}",
    )
