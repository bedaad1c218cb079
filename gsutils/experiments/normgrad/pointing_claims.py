"""The claims of the pointing-game chapter (NormGrad section A, Table 2).

:func:`record_pointing` records every row of the chapter, per network: NormGrad
against the plain gradient, Grad-CAM at the last block, every method against
the center baseline, the depth of the best layers and Table 2's layers
(:func:`gsutils.experiments.normgrad.normgrad_claims.table2_claim`). The depth claims are
judged only when the classifiers pass the gate (the chapter's
:func:`gsutils.experiments.normgrad.normgrad_data.open_classifiers`); every row carries the
gate's numbers in its note except the center baseline's, which is not about
depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gsutils.claims import Gate
from gsutils.experiments.normgrad.normgrad_claims import table2_claim
from gsutils.experiments.normgrad.pointing_results import PointingRun
from gsutils.experiments.normgrad.pointing_runs import CENTER, best_layers, paired_bootstrap
from gsutils.models.classifiers import CANDIDATE_LAYERS
from gsutils.references import table2_best_layer

__all__ = ["record_pointing"]


def record_pointing(ledger: Any, runs: Sequence[PointingRun], tables: dict[str, Any],
                    centres: dict[str, dict[str, float]], last_grid: dict[str, int], gate: Gate, *,
                    seed: int = 0) -> list[Any]:
    """Record the section A chapter's rows for every run; returns them.

    ``tables``: :func:`gsutils.experiments.normgrad.pointing_runs.pointing_accuracies` per architecture;
    ``centres``: :func:`gsutils.experiments.normgrad.pointing_runs.center_accuracy` per architecture;
    ``last_grid``: the side of each architecture's last block.
    """
    rows = []
    for run in runs:
        arch = run.arch
        best = best_layers(run)
        layers = CANDIDATE_LAYERS[arch]
        last = layers[-1]
        centre = centres[arch]["all"]
        ng_layer = best.loc["normgrad", "best layer"]
        d = paired_bootstrap(run, ("normgrad", ng_layer), ("gradient", "input"))
        rows.append(ledger.check(
            f"normgrad_beats_gradient_{arch}", "A (Table 2)",
            f"{arch}: NormGrad at its best layer points better than the plain gradient at the input",
            measured={"normgrad": round(best.loc["normgrad", "all %"], 1), "layer": ng_layer,
                      "gradient@input": round(tables[arch].loc["gradient", ("all", "input")], 1)},
            passed=gate.judge(d["low"] > 0),
            criterion="the 95 % bootstrap interval of [NormGrad at its best layer minus the gradient at "
                      "the input] (all pairs) lies above 0",
            note=f"difference {d['difference']:.1f} points, interval [{d['low']:.1f}, {d['high']:.1f}]; "
                 + gate.note,
        ))
        gc = tables[arch].loc["grad_cam", "all"]
        rows.append(ledger.check(
            f"gradcam_last_block_{arch}", "A (Table 2)",
            f"{arch}: Grad-CAM points best at the last convolutional block ({last})",
            measured={"best layer": best.loc["grad_cam", "best layer"], "at best": round(gc.max(), 1),
                      f"at {last}": round(gc[last], 1)},
            reported=f"best at {table2_best_layer('grad_cam', arch)} (Table 2, all and difficult)",
            passed=gate.judge(best.loc["grad_cam", "best layer"] == last),
            criterion=f"Grad-CAM's best layer (all pairs) is {last}",
            note=f"the last block is a {last_grid[arch]}x{last_grid[arch]} map; " + gate.note,
        ))
        vs_centre = {m: paired_bootstrap(run, (m, best.loc[m, "best layer"]), CENTER) for m in best.index}
        weakest = min(vs_centre, key=lambda m: vs_centre[m]["low"])
        rows.append(ledger.check(
            f"beats_center_{arch}", "A (Table 2)",
            f"{arch}: every method, at its best layer, beats the center baseline",
            measured={"least clear method": weakest, "its accuracy": round(best.loc[weakest, "all %"], 1),
                      "center": round(centre, 1)},
            passed=bool(all(v["low"] > 0 for v in vs_centre.values())),
            criterion="for every method, the 95 % bootstrap interval of [its best-layer accuracy minus the "
                      "center baseline's] (all pairs) lies above 0",
            note=f"least clear: {weakest}, {vs_centre[weakest]['difference']:.1f} points, interval "
                 f"[{vs_centre[weakest]['low']:.1f}, {vs_centre[weakest]['high']:.1f}]",
        ))
        depth = best["best layer"].map(layers.index)
        rows.append(ledger.check(
            f"deeper_layers_help_{arch}", "A (Table 2)",
            f"{arch}: for most methods the best layer lies past the input",
            measured=f"{int((depth > 0).sum())} of {len(best)} methods",
            passed=gate.judge((depth > 0).sum() > len(best) / 2),
            criterion="more than half of the methods have their best layer (all pairs) past the input",
            note="best layers: " + ", ".join(f"{m} {l}" for m, l in best["best layer"].items()) + "; " + gate.note,
        ))
        rows.append(ledger.check(**table2_claim(run, gate, seed=seed)))
    return rows
