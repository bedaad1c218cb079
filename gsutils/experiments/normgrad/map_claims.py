"""The claims of the NormGrad chapters on single maps: the identity trick (section B, Table 1)
and the layers of Fig. 7.

:func:`record_identity_trick` and :func:`record_fig7` record every row of their
chapter and return them; the criteria are stated in each row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gsutils.claims import Gate
from gsutils.experiments.normgrad.fig7_results import Fig7Selectivity, GradCamEnergy
from gsutils.experiments.normgrad.identity_trick_results import IdentityTrickRun
from gsutils.experiments.normgrad.normgrad_claims import fig7_across_claim, fig7_gradient_claim, fig7_selectivity_claim
from gsutils.experiments.normgrad.normgrad_maps import FIG7_LAYERS
from gsutils.experiments.normgrad.pointing_results import PointingRun
from gsutils.references import IDENTITY_TRICK_CORRELATION_RANGE, IDENTITY_TRICK_POINTING_DIFF

__all__ = ["record_identity_trick", "record_fig7", "SPEARMAN_MIN", "POINTING_DIFF_MAX"]

#: every layer's mean Spearman correlation of the two NormGrads must reach this (fixed before measuring)
SPEARMAN_MIN = 0.90
#: the mean absolute pointing-accuracy difference (percentage points) may be at most this
POINTING_DIFF_MAX = 2.0


def record_identity_trick(ledger: Any, runs: Sequence[IdentityTrickRun], t1: Any, diffs: np.ndarray) -> list[Any]:
    """Record the section B chapter's two rows: the rank correlation of the NormGrads with and without
    the trick at every layer of Table 1, and the size of their pointing-accuracy differences.

    ``runs``: :func:`gsutils.experiments.normgrad.normgrad_maps.identity_trick_run` per architecture;
    ``t1``: :func:`gsutils.experiments.normgrad.normgrad_claims.table1_comparison`;
    ``diffs``: :func:`gsutils.experiments.normgrad.normgrad_maps.pointing_differences`.
    """
    spearman_means = np.array([r.spearman_mean for run in runs for r in run.layers.values()])
    return [
        ledger.check(
            "identity_trick_spearman",
            "B (Table 1)",
            "NormGrad maps with and without the virtual identity trick are strongly rank-correlated "
            "at every layer of Table 1",
            measured=[round(100 * spearman_means.min(), 1), round(100 * spearman_means.max(), 1)],
            reported=list(IDENTITY_TRICK_CORRELATION_RANGE),
            passed=bool((spearman_means >= SPEARMAN_MIN).all()),
            criterion="every layer's mean Spearman correlation (over test pairs) is at least 90 %; "
                      "numbers are the [min, max] over layers in %",
            note="per layer, ours against Table 1: " + "; ".join(
                f"{a} {layer} {r['ours %']:.1f} vs {r['paper %']:.2f}" for (a, layer), r in t1.iterrows()),
        ),
        ledger.check(
            "identity_trick_pointing",
            "B",
            "The trick barely changes pointing accuracy",
            measured=f"{diffs.mean():.2f} ± {diffs.std():.2f}",
            reported="{} ± {}".format(*IDENTITY_TRICK_POINTING_DIFF),
            passed=bool(diffs.mean() <= POINTING_DIFF_MAX),
            criterion="mean absolute difference of pointing accuracy (percentage points) over "
                      "architectures, layers and the all/difficult subsets is at most 2 points",
            note="we read the paper's figure as mean ± std of the absolute difference",
        ),
    ]


def record_fig7(ledger: Any, energy: GradCamEnergy, vgg_run: PointingRun, sel: Fig7Selectivity, gate: Gate,
                *, seed: int = 0) -> list[Any]:
    """Record the Fig. 7 chapter's rows, each judged only above section A's gate: Grad-CAM at the last
    layer (on ``energy``, :func:`gsutils.experiments.normgrad.normgrad_maps.gradcam_energy_by_layer`), and the
    caption's three rows (:mod:`gsutils.experiments.normgrad.normgrad_claims`) on ``vgg_run`` and ``sel``."""
    last = energy.share["features.29"]
    earlier = {layer: energy.share[layer] for layer in FIG7_LAYERS if layer != "features.29"}
    rows = [ledger.check(
        "gradcam_last_layer",
        "Fig. 7",
        "Grad-CAM localises the class at the last convolutional layer and fails at earlier layers",
        measured={layer: round(100 * v, 1) for layer, v in energy.share.items()},
        passed=gate.judge(np.isfinite(last) and all(np.isfinite(v) and last > v for v in earlier.values())),
        criterion="the share of Grad-CAM's mass inside the target's boxes (mean over test pairs, %) "
                  "is higher at features.29 than at every earlier candidate layer",
        note=f"a uniform map scores {100 * energy.box_area:.1f} %; " + gate.note,
    )]
    rows.append(ledger.check(**fig7_gradient_claim(vgg_run, gate, seed=seed)))
    rows.append(ledger.check(**fig7_across_claim(vgg_run, gate, seed=seed)))
    rows.append(ledger.check(**fig7_selectivity_claim(sel, gate)))
    return rows
