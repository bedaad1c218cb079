"""The claims, gate and tables of the S1.3 (CBD) and S1.4 (CBL) chapters.

Every criterion is a module constant, fixed before measuring. A saliency
claim is judged only when the networks pass the gate
(:func:`saliency_gate`: the unbiased network's mean digit IoU at least
``profile.train.gate_digit_miou``); otherwise :func:`record` writes it to the
ledger as "not measured", with the gate's numbers in its note.

A claim that an uninformative map would pass (a CBL near chance "as on the
poster", a spread across textures that network-to-network noise alone could
produce) is judged together with :func:`informative`: the method's maps of the
bias digit are non-empty and their CBD stands above the other digits'.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from gsutils.claims import Gate
from gsutils.experiments.grid.context_results import METHODS, ContextSaliencyResults, diagonal_split
from gsutils.profiles import Profile
from gsutils.references import (
    CBL_MARGIN,
    CBL_POSTER,
    CBL_POSTER_READING,
    DETECT_OFF,
    DETECT_ON,
    DETECT_RATIO,
    INFORMATIVE_NONEMPTY,
    INFORMATIVE_RATIO,
    TEXTURE_SPREAD,
    cbl_poster,
)

GRADIENTS = ("vg", "sg", "ig")
#: the context score with only the bias-texture part kept
#: (:func:`gsutils.experiments.grid.context_evidence.context_scores`)
KEPT = "bias part kept"
LABELS = {"vg": "VG", "sg": "SG", "ig": "IG", "grid": "Grid"}


# ------------------------------------------------------------------------------------ the gate


def saliency_gate(profile: Profile, threshold: float | None = None) -> Gate:
    """The networks' quality gate, from the bias grid's results (trained and evaluated if missing).

    The unbiased network of ``profile.train.backbone`` must reach a mean digit
    IoU on the unbiased test set of at least ``threshold`` (default
    ``profile.train.gate_digit_miou``); see
    :func:`gsutils.experiments.grid.bias_results.network_gate`.
    """
    from gsutils.experiments.grid import bias_results as br
    from gsutils.experiments.grid import segmentation as seg

    thr = profile.train.gate_digit_miou if threshold is None else threshold
    results = seg.run_grid(profile, seg.grid_runs(profile), executor="local", progress=False)
    return br.network_gate(br.results_frame(results), thr, backbone=profile.train.backbone)


def record(ledger: Any, claims: list[dict[str, Any]], gate: Gate, section: str | None = None) -> list[Any]:
    """Record saliency ``claims`` in ``ledger``: judged if the gate holds, else "not measured".

    With ``section`` (``"S1.3"``), the gate's own row (section ``"S1.3 (gate)"``) is recorded first.
    """
    rows = [ledger.check(**gate.row(section=f"{section} (gate)"))] if section is not None else []
    return rows + [ledger.check(**gate.guard(c)) for c in claims]


def record_detection(ledger: Any, results: ContextSaliencyResults, gate: Gate) -> list[Any]:
    """Record the S1.3 chapter's rows: the gate, then :func:`detection_claims` under it."""
    return record(ledger, detection_claims(results), gate, section="S1.3")


def record_localisation(ledger: Any, results: ContextSaliencyResults, gate: Gate) -> list[Any]:
    """Record the S1.4 chapter's rows: the gate, then :func:`localisation_claims` under it."""
    return record(ledger, localisation_claims(results), gate, section="S1.4")


# ------------------------------------------------------------------------------------ informative maps


def informative(results: ContextSaliencyResults, strength: str, method: str) -> dict[str, Any]:
    """Are ``method``'s maps under ``strength`` bias informative? Measurements and verdict.

    Informative: at least :data:`INFORMATIVE_NONEMPTY` of the bias digit's maps
    are non-empty, and the bias digit's mean CBD is at least
    :data:`INFORMATIVE_RATIO` times the other digits' (pooled over networks).
    """
    nonempty = 1.0 - results.empty_rate(strength, method, bias_digit=True)
    on = results.bias_digit_cbd(strength, method, bias_digit=True)
    off = results.bias_digit_cbd(strength, method, bias_digit=False)
    ratio = on / off if off > 0 else (float("inf") if on > 0 else float("nan"))
    ok = bool(nonempty >= INFORMATIVE_NONEMPTY and ratio >= INFORMATIVE_RATIO)
    return {"non-empty (bias digit)": nonempty, "CBD bias digit / other digits": ratio, "passed": ok}


INFORMATIVE_CRITERION = (f"informative maps: >= {INFORMATIVE_NONEMPTY:.0%} of the bias digit's maps non-empty "
                         f"and its mean CBD >= {INFORMATIVE_RATIO} x the other digits'")


# ------------------------------------------------------------------------------------ S1.3


def texture_spread(results: ContextSaliencyResults, strength: str, method: str) -> tuple[float, float]:
    """(max - min) / mean over bias textures of the mean CBD on the bias digit, and on the other digits."""
    mat = results.cbd_matrix(strength, method)  # (T, D, 10)
    per_t = np.array([diagonal_split(mat[t:t + 1], results.bias_digits) for t in range(len(results.textures))])

    def spread(v: np.ndarray) -> float:
        return float(np.ptp(v) / v.mean()) if v.mean() > 0 else float("nan")

    return spread(per_t[:, 0]), spread(per_t[:, 1])


def detection_claims(results: ContextSaliencyResults) -> list[dict[str, Any]]:
    """The S1.3 claims (grid saliency detects the bias; VG and SG depend on the bias texture)."""
    claims = []
    for strength in results.strengths:
        on, off = diagonal_split(results.cbd_matrix(strength, "grid"), results.bias_digits)
        claims.append(dict(
            id=f"grid_cbd_detects_bias_{strength}", section="S1.3",
            claim=f"Grid saliency's CBD is high on the biased digit and near zero elsewhere ({strength} bias)",
            measured={"bias digit": on, "elsewhere": off},
            passed=bool(on >= DETECT_ON and off <= DETECT_OFF and on >= DETECT_RATIO * off),
            criterion=(f"mean CBD on bias digit >= {DETECT_ON}, elsewhere <= {DETECT_OFF}, "
                       f"ratio >= {DETECT_RATIO:g}"),
        ))
    several = len(results.textures) >= 2
    measured, ok = {}, True
    for strength in results.strengths:
        for m in ("vg", "sg"):
            s_on, s_off = texture_spread(results, strength, m)
            inf = informative(results, strength, m)
            measured[f"{m} {strength}"] = {"spread": s_on, "spread other digits": s_off,
                                           "non-empty": inf["non-empty (bias digit)"],
                                           "CBD ratio": inf["CBD bias digit / other digits"]}
            ok &= bool(s_on >= TEXTURE_SPREAD and s_on > s_off and inf["passed"])
    claims.append(dict(
        id="vg_sg_texture_dependence", section="S1.3",
        claim="VG and SG results depend on the bias texture",
        measured=measured if several else None,
        passed=bool(ok) if several else None,
        criterion=(f"for VG and SG, both strengths: (max - min) / mean over bias textures of the bias digit's "
                   f"CBD >= {TEXTURE_SPREAD} and larger than the same spread of the other digits' CBD "
                   f"(the networks' variation); {INFORMATIVE_CRITERION}"),
        note="" if several else f"the profile has one bias texture {results.textures}",
    ))
    return claims


def cbd_summary(results: ContextSaliencyResults):
    """Mean CBD on the bias digit and elsewhere per strength and method, with their ratio."""
    import pandas as pd

    rows = []
    for st in results.strengths:
        for m in results.methods:
            on, off = diagonal_split(results.cbd_matrix(st, m), results.bias_digits)
            rows.append({"strength": st, "method": LABELS[m], "CBD on bias digit": on, "CBD elsewhere": off,
                         "ratio": on / off if off > 0 else float("nan")})
    return pd.DataFrame(rows)


def per_texture_table(results: ContextSaliencyResults, what: str = "cbd"):
    """Bias-digit CBD (``what="cbd"``) or CBL (``"cbl"``, empty maps as chance) per bias texture.

    Rows: strength x method; columns: bias textures (means over bias digits and seeds).
    """
    import pandas as pd

    rows = {}
    for st in results.strengths:
        for m in results.methods:
            if what == "cbd":
                mat = results.cbd_matrix(st, m)
                vals = [diagonal_split(mat[t:t + 1], results.bias_digits)[0] for t in range(len(results.textures))]
            elif what == "cbl":
                vals = list(np.nanmean(results.cbl_matrix(st, m), axis=1))
            else:
                raise ValueError(f"what must be 'cbd' or 'cbl', got {what!r}")
            rows[(st, LABELS[m])] = {f"texture {t}": v for t, v in zip(results.textures, vals)}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = ["strength", "method"]
    return out


def empty_rate_table(results: ContextSaliencyResults):
    """Share of empty maps per strength and method, for the bias digit and for the other digits."""
    import pandas as pd

    rows = [{"strength": st, "method": LABELS[m],
             "empty, bias digit": results.empty_rate(st, m, bias_digit=True),
             "empty, other digits": results.empty_rate(st, m, bias_digit=False)}
            for st in results.strengths for m in results.methods]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ S1.4


def cbl_table(results: ContextSaliencyResults):
    """Mean CBL per strength and method, empty maps counted as chance and excluded, beside the poster."""
    import pandas as pd

    rows = []
    for st in results.strengths:
        chance = results.mean_chance(st)
        for m in results.methods:
            n_all = results.n_cbl_images(st, m, "chance")
            n_kept = results.n_cbl_images(st, m, "exclude")
            rows.append({"strength": st, "method": LABELS[m],
                         "CBL, empty = chance": results.mean_cbl(st, m, "chance"),
                         "CBL, empty excluded": results.mean_cbl(st, m, "exclude"),
                         "non-empty maps": f"{n_kept}/{n_all}",
                         "chance": chance,
                         "poster": cbl_poster(m, st) if m in CBL_POSTER else float("nan")})
    return pd.DataFrame(rows)


def localisation_claims(results: ContextSaliencyResults) -> list[dict[str, Any]]:
    """The S1.4 claims: grid saliency localises far better; each method's CBL as on the poster."""
    claims = []
    for st in results.strengths:
        means = {m: results.mean_cbl(st, m) for m in METHODS}
        best = max(means[m] for m in GRADIENTS)
        claims.append(dict(
            id=f"grid_cbl_far_above_gradients_{st}", section="S1.4",
            claim=f"Grid saliency's CBL is far above IG, VG and SG ({st} bias)",
            reported={"grid": cbl_poster("grid", st), "best other": max(cbl_poster(m, st) for m in GRADIENTS)},
            measured={"grid": means["grid"], "best other": best,
                      "grid, empty excluded": results.mean_cbl(st, "grid", "exclude")},
            passed=bool(means["grid"] - best >= CBL_MARGIN),
            criterion=f"mean CBL (empty maps = chance) of grid saliency - max(VG, SG, IG) >= {CBL_MARGIN}",
        ))
        for m in METHODS:
            inf = informative(results, st, m)
            close = abs(means[m] - cbl_poster(m, st)) <= CBL_POSTER_READING
            claims.append(dict(
                id=f"cbl_{m}_{st}", section="S1.4",
                claim=f"Mean CBL of {LABELS[m]} ({st} bias) as on the poster, from informative maps",
                reported=cbl_poster(m, st),
                measured={"CBL": means[m], "non-empty (bias digit)": inf["non-empty (bias digit)"],
                          "CBD bias digit / other digits": inf["CBD bias digit / other digits"]},
                passed=bool(close and inf["passed"]),
                criterion=(f"|measured - poster| <= {CBL_POSTER_READING} (empty maps = chance), and "
                           f"{INFORMATIVE_CRITERION} (a uniform or empty map scores chance, about 0.5)"),
            ))
    return claims


def sensitivity_table(main: ContextSaliencyResults, fixed: ContextSaliencyResults, grey: float,
                      candidates: tuple[float, ...]):
    """Grid saliency on the bias digit's images: grey chosen per image among ``candidates`` (the main
    run) vs fixed at ``grey`` (:func:`gsutils.experiments.grid.context_saliency.collect_fixed_grey`)."""
    import pandas as pd

    greys = ", ".join(f"{a:g}" for a in candidates)
    rows = []
    for st in main.strengths:
        for label, res in ((f"grey chosen per image ({greys})", main), (f"grey fixed at {grey:g}", fixed)):
            rows.append({"strength": st, "grid saliency": label,
                         "CBD, bias digit": res.bias_digit_cbd(st, "grid"),
                         "CBL, empty = chance": res.mean_cbl(st, "grid", "chance"),
                         "CBL, empty excluded": res.mean_cbl(st, "grid", "exclude"),
                         "empty maps, bias digit": res.empty_rate(st, "grid", bias_digit=True),
                         "images": res.n_cbl_images(st, "grid", "chance")})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ evidence


def scores_table(results: ContextSaliencyResults, scores: list[dict[str, float]]):
    """Per network: the bias digit's score in each context, the grey grid saliency chose, its empty maps.

    ``scores`` are :func:`gsutils.experiments.grid.context_evidence.context_scores`
    of ``results.runs``, in order.
    """
    import pandas as pd

    rows = []
    for run, res, sc in zip(results.runs, results.results, scores):
        on = res["digits"] == run.bias.digit
        chosen = Counter(np.round(np.asarray(res["grey"])[on], 4).tolist()).most_common(1)
        greys = sorted((k for k in sc if k.startswith("grey ")), key=lambda k: float(k.split()[1]))
        row = {"network": run.label, "biased context": sc["biased context"],
               "ordinary context": sc["ordinary context"], **{k: sc[k] for k in greys},
               **({KEPT: sc[KEPT]} if KEPT in sc else {}),
               "grey chosen (most often)": chosen[0][0] if chosen else float("nan"),
               "empty grid maps": float(np.asarray(res["empty"])[METHODS.index("grid")][on].mean())}
        rows.append(row)
    return pd.DataFrame(rows).set_index("network")


def _grid_losses(results: ContextSaliencyResults, strength: str) -> tuple[float, float]:
    """Mean loss of grid saliency's returned maps of the bias digit: the empty ones, the others."""
    k = results.methods.index("grid")
    empty, full = [], []
    for run, res in zip(results.runs, results.results):
        if run.bias.strength != strength or "loss" not in res:
            continue
        on = res["digits"] == run.bias.digit
        e = np.asarray(res["empty"])
        e = e[k] if e.ndim == 2 else e
        empty.append(np.asarray(res["loss"])[on & e])
        full.append(np.asarray(res["loss"])[on & ~e])

    def mean(v: list[np.ndarray]) -> float:
        v = np.concatenate(v) if v else np.zeros(0)
        return float(v.mean()) if len(v) else float("nan")

    return mean(empty), mean(full)


def evidence_lines(results: ContextSaliencyResults, scores: list[dict[str, float]]) -> list[str]:
    """Plain sentences, per strength, on why grid saliency does (not) mark the bias, from the measurements.

    The thresholds here only choose the wording (a score 0.1 lower counts as
    "relies on the bias", a grey within 0.05 of the biased context's score as
    "stands in for it"); no claim is judged by them.
    """
    table = scores_table(results, scores)
    out = []
    for st in results.strengths:
        sel = [r.label for r in results.runs if r.bias.strength == st]
        if not sel:
            continue
        t = table.loc[sel]
        biased, ordinary = float(t["biased context"].mean()), float(t["ordinary context"].mean())
        grey_cols = [c for c in t.columns if c.startswith("grey ") and c != "grey chosen (most often)"]
        best_col = max(grey_cols, key=lambda c: float(t[c].mean()))
        best = float(t[best_col].mean())
        kept = float(t[KEPT].mean()) if KEPT in t.columns else float("nan")
        empty_on = results.empty_rate(st, "grid", bias_digit=True)
        empty_off = results.empty_rate(st, "grid", bias_digit=False)
        relies = ordinary <= biased - 0.1
        stands_in = best >= biased - 0.05
        s = (f"{st} bias: the bias digit's mean score is {biased:.2f} with its biased context, {ordinary:.2f} "
             f"with an ordinary one (bias texture replaced) and at most {best:.2f} with a grey context "
             f"({best_col}); {empty_on:.0%} of grid saliency's maps of the bias digit are empty "
             f"({empty_off:.0%} of the other digits'). ")
        if biased < 0.5:
            s += ("The network hardly recognises the bias digit even with its biased context (mean score below "
                  "0.5), so there is little prediction for a saliency method to explain.")
        elif not relies:
            s += "The network scores the digit about as well without the bias texture, so there is little bias to find."
        elif stands_in:
            s += ("The network relies on the bias texture, but a grey context keeps the score as well, so the "
                  "empty mask preserves the request and grid saliency need not mark the biased part.")
        else:
            s += "The network relies on the bias texture and no grey value replaces it"
            if np.isfinite(kept):
                s += (f"; keeping only the biased part (the rest grey) gives a score of {kept:.2f}"
                      + (", so a mask on that part preserves the request" if kept >= biased - 0.1 else ""))
            if empty_on > 0:
                l_empty, l_full = _grid_losses(results, st)
                s += (f". Yet {empty_on:.0%} of the maps are empty: for those images the optimisation ended "
                      f"with no mask better than the empty one (mean loss of the empty maps {l_empty:.2f}, "
                      f"of the others {l_full:.2f}).")
            else:
                s += ", and grid saliency keeps context in every map of the bias digit."
        out.append(s)
    return out


def network_evidence(profile: Profile, results: ContextSaliencyResults):
    """Why a claim holds or not, per biased network: how much the network uses its bias (the bias
    digit's IoU on unbiased test data, and its drop from N's) beside each method's CBD on the bias
    digit, the other digits' CBD, the bias digit's empty-map share and its CBL (empty maps = chance)."""
    import pandas as pd

    from gsutils.data.toy import BiasConfig
    from gsutils.experiments.grid import segmentation as seg

    n_iou = {}
    rows = []
    for run, res in zip(results.runs, results.results):
        d = run.bias.digit
        if run.seed not in n_iou:
            n_run = seg.SegRun(BiasConfig(strength="none"), run.backbone, run.seed)
            n_iou[run.seed] = seg.evaluate_iou(profile, n_run).iou
        bias_iou = seg.evaluate_iou(profile, run).bias_digit_iou
        on = res["digits"] == d
        biased = on & res["is_biased"]
        row = {"network": run.label, "bias digit IoU": bias_iou, "drop from N": n_iou[run.seed][d] - bias_iou}
        for m in results.methods:
            lab = LABELS[m]
            row[f"{lab} CBD bias digit"] = float(results._values(res, "cbd", m)[on].mean())
            row[f"{lab} CBD others"] = float(results._values(res, "cbd", m)[~on].mean())
            row[f"{lab} empty"] = float(results._values(res, "empty", m)[on].mean())
            row[f"{lab} CBL"] = float(results._values(res, "cbl", m)[biased].mean()) if biased.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("network")
