"""The NormGrad supplement's numbers beside ours, and the ledger rows that compare them.

Each function here reads measurements the NormGrad chapters already make
(pointing runs, identity-trick runs, Table 3 of the layer combinations, the
Fig. 7 maps) and either lays the supplement's published values
(:mod:`gsutils.references`) beside them or returns a ledger row
(``Ledger.check(**row)``) whose criterion is fixed here, before measuring:

* Table 2 (:func:`table2_comparison`, :func:`table2_claim`): our best layer per
  method against the supplement's, and whether the supplement's layer is also
  a best layer here within the bootstrap interval;
* Table 1 (:func:`table1_comparison`): the correlation per layer, ours and the
  supplement's;
* Table 3 (:func:`table3_comparison`, :func:`table3_differences`,
  :func:`spread_vgg16_claim`): the gains row for row and where they differ;
* Fig. 7's caption (:func:`fig7_gradient_claim`, :func:`fig7_across_claim`,
  :func:`fig7_selectivity`, :func:`fig7_selectivity_claim`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gsutils.claims import Gate
from gsutils.experiments.normgrad.fig7_results import Fig7Maps, Fig7Selectivity
from gsutils.experiments.normgrad.identity_trick_results import IdentityTrickRun
from gsutils.experiments.normgrad.pointing_results import PointingHits
from gsutils.experiments.normgrad.pointing_runs import CENTER, best_layers, paired_bootstrap, pointing_accuracies
from gsutils.models.classifiers import CANDIDATE_LAYERS
from gsutils.references import (
    IDENTITY_TRICK_TABLE1,
    TABLE2_ABBREVIATIONS,
    TABLE2_BEST_LAYERS,
    table2_best_layer,
    table3_gain,
)

#: bootstrap resamples of every interval here (test scenes resampled, as in section A)
N_BOOT = 1000
#: the methods Fig. 7's caption says work at every layer
FIG7_ACROSS_METHODS: tuple[str, ...] = ("linear_approx", "normgrad", "selective_normgrad")
#: the methods Fig. 7's caption calls more class-selective than NormGrad
FIG7_SELECTIVE_METHODS: tuple[str, ...] = ("linear_approx", "selective_normgrad")

__all__ = [
    "N_BOOT",
    "FIG7_ACROSS_METHODS",
    "FIG7_SELECTIVE_METHODS",
    "table2_comparison",
    "table2_gap_line",
    "table2_claim",
    "table1_comparison",
    "table3_comparison",
    "table3_differences",
    "spread_vgg16_claim",
    "fig7_gradient_claim",
    "fig7_across_claim",
    "fig7_selectivity",
    "fig7_selectivity_claim",
    "paper_table3",
    "accuracy_most_consistent",
]


# --------------------------------------------------------------------------------- Table 2


def table2_comparison(run: PointingHits):
    """Table 2 for one pointing run: the supplement's best layer per method beside ours.

    For each subset (all pairs, difficult) and method: the supplement's best
    layer (``paper``), ours (``ours``), our accuracy (%) at both (``% at
    paper's``, ``% at ours``), the points our best layer gains over the
    supplement's (``gap``, >= 0) and how many candidate layers apart they are
    (``steps``, negative when ours is shallower).

    Returns
    -------
    pandas.DataFrame
        Index: method; ``Table 2``: the supplement's abbreviation.
    """
    import pandas as pd

    arch = run.arch
    layers = list(CANDIDATE_LAYERS[arch])
    acc = pointing_accuracies(run)
    rows = []
    for method in acc.index:
        if method not in TABLE2_BEST_LAYERS:
            continue  # normgrad_conv: not in Table 2
        row: dict[str, Any] = {"method": method, "Table 2": TABLE2_ABBREVIATIONS[method]}
        for subset in ("all", "difficult"):
            ours = best_layers(run, subset).loc[method, "best layer"]
            theirs = table2_best_layer(method, arch, subset)
            row[f"paper {subset}"] = theirs
            row[f"ours {subset}"] = ours
            row[f"% at paper's {subset}"] = float(acc.loc[method, (subset, theirs)])
            row[f"% at ours {subset}"] = float(acc.loc[method, (subset, ours)])
            row[f"gap {subset}"] = row[f"% at ours {subset}"] - row[f"% at paper's {subset}"]
            row[f"steps {subset}"] = layers.index(ours) - layers.index(theirs)
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def table2_gap_line(run: PointingHits, subset: str = "all") -> str:
    """One sentence: how many best layers agree with Table 2, which way they differ, and the accuracy gap."""
    t = table2_comparison(run)
    steps = t[f"steps {subset}"]
    gap = t[f"gap {subset}"]
    worst = gap.idxmax()
    return (f"{run.arch} ({subset} pairs): our best layer is the supplement's for {int((steps == 0).sum())} "
            f"of {len(t)} methods, shallower for {int((steps < 0).sum())}, deeper for {int((steps > 0).sum())}; "
            f"at the supplement's layers we point {gap.mean():.1f} points worse on average than at ours, "
            f"at most {gap.max():.1f} ({worst}: {t.loc[worst, f'paper {subset}']} against our "
            f"{t.loc[worst, f'ours {subset}']})")


def table2_claim(run: PointingHits, gate: Gate, *, seed: int = 0) -> dict[str, Any]:
    """Ledger row: every method's Table 2 layer is, within the bootstrap interval, a best layer here.

    For each method, the 95 % paired bootstrap interval (all pairs) of [ours at
    our best layer minus ours at the supplement's layer] must include 0.
    """
    arch = run.arch
    t = table2_comparison(run)
    worse = {}
    for method, row in t.iterrows():
        ours, theirs = row["ours all"], row["paper all"]
        if ours == theirs:
            continue
        d = paired_bootstrap(run, (method, ours), (method, theirs), n_boot=N_BOOT, seed=seed)
        if d["low"] > 0:
            worse[method] = (theirs, ours, d)
    note = ("supplement's layer clearly worse for: " + "; ".join(
        f"{m} {a} vs {b}, {d['difference']:.1f} points [{d['low']:.1f}, {d['high']:.1f}]"
        for m, (a, b, d) in worse.items()) if worse else "no method's supplement layer is clearly worse")
    return dict(
        id=f"table2_best_layers_{arch}", section="A (Table 2)",
        claim=f"{arch}: each method points best at the layer Table 2 lists for it",
        measured={"same layer": f"{int((t['steps all'] == 0).sum())}/{len(t)}",
                  "paper layer clearly worse": f"{len(worse)}/{len(t)}"},
        reported={m: TABLE2_BEST_LAYERS[m][arch][0] for m in t.index},
        passed=gate.judge(not worse),
        criterion="for every method, the 95 % paired bootstrap interval (all pairs) of [accuracy at our best "
                  "layer minus accuracy at the supplement's layer] includes 0",
        note=note + "; " + gate.note,
    )


# --------------------------------------------------------------------------------- Table 1


def table1_comparison(runs: Sequence[IdentityTrickRun]):
    """Table 1 per layer: our Spearman correlation (%, mean and std over pairs) beside the supplement's.

    ``runs``: :func:`gsutils.experiments.normgrad.normgrad_maps.identity_trick_run` per architecture.
    """
    import pandas as pd

    rows = []
    for run in runs:
        order = [layer for (a, layer) in IDENTITY_TRICK_TABLE1 if a == run.arch]  # the table's order
        for layer in sorted(run.layers, key=lambda x: order.index(x) if x in order else len(order)):
            r = run.layers[layer]
            paper = IDENTITY_TRICK_TABLE1.get((run.arch, layer), (np.nan, np.nan))
            rows.append({"arch": run.arch, "layer": layer,
                         "ours %": 100 * r.spearman_mean, "ours std %": 100 * r.spearman_std,
                         "paper %": paper[0], "paper std %": paper[1],
                         "ours - paper (points)": 100 * r.spearman_mean - paper[0]})
    return pd.DataFrame(rows).set_index(["arch", "layer"])


# --------------------------------------------------------------------------------- Table 3


def table3_comparison(tables: dict[str, Any]):
    """Table 3 row for row: our gain beside the supplement's, per network and subset (points).

    ``tables``: ``{arch: layer_combination.table3(...)}``.
    """
    import pandas as pd

    rows = []
    for arch, t in tables.items():
        for (method, mode, weighting), r in t.iterrows():
            row = {"arch": arch, "method": method, "mode": mode, "weighting": weighting}
            for subset in ("all", "difficult"):
                row[f"ours {subset}"] = float(r[f"gain {subset}"])
                row[f"paper {subset}"] = table3_gain(method, mode, weighting, arch, subset)
            row["same sign"] = bool(all(np.sign(row[f"ours {s}"]) == np.sign(row[f"paper {s}"])
                                        for s in ("all", "difficult")))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["arch", "method", "mode", "weighting"])


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.1f} to {max(values):.1f}"


def table3_differences(tables: dict[str, Any]) -> list[str]:
    """Sentences naming where our Table 3 differs from the supplement's.

    Three comparisons: the accuracy-weighted rows (the supplement's gains all
    positive, 0.2 to 2.9 points), VGG16's spread-weighted rows (all negative in
    the supplement) and the sign agreement over all cells.
    """
    c = table3_comparison(tables)
    cells = [(idx, s) for idx in c.index for s in ("all", "difficult")]
    out = []
    acc = [(idx, s) for idx, s in cells if idx[3] == "accuracy"]
    ours = [c.loc[idx, f"ours {s}"] for idx, s in acc]
    paper = [c.loc[idx, f"paper {s}"] for idx, s in acc]
    pos = sum(v > 0 for v in ours)
    out.append(f"Accuracy weights: the supplement's {len(paper)} gains range from {_range(paper)} points, all "
               f"positive; ours range from {_range(ours)}, {pos} of {len(ours)} positive"
               + (" (the same sign throughout)." if pos == len(ours) else "."))
    if "vgg16" in tables:
        sp = [(idx, s) for idx, s in cells if idx[0] == "vgg16" and idx[3] == "spread"]
        ours = [c.loc[idx, f"ours {s}"] for idx, s in sp]
        paper = [c.loc[idx, f"paper {s}"] for idx, s in sp]
        neg = sum(v < 0 for v in ours)
        out.append(f"VGG16 spread weights: the supplement's {len(paper)} gains are all negative ({_range(paper)} "
                   f"points; its spread falls in the last two layers); ours range from {_range(ours)}, negative in "
                   f"{neg} of {len(ours)}" + (" (the same sign)." if neg == len(ours) else
                                               ": the sign differs in " + str(len(ours) - neg) + "."))
    agree = sum(np.sign(c.loc[idx, f"ours {s}"]) == np.sign(c.loc[idx, f"paper {s}"]) for idx, s in cells)
    out.append(f"Over all {len(cells)} cells (network x method x sum/product x weighting x all/difficult) our "
               f"gain has the supplement's sign in {agree}.")
    return out


def spread_vgg16_claim(tables: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Ledger row: on VGG16, weighting the layers by feature spread loses to the best single layer.

    Table 3's eight VGG16 spread cells (two methods x sum/product x all/difficult)
    are all negative in the supplement; the criterion asks the same of ours.
    """
    t = tables["vgg16"].xs("spread", level="weighting")
    ours = {f"{m} {mode} {s}": round(float(r[f"gain {s}"]), 1)
            for (m, mode), r in t.iterrows() for s in ("all", "difficult")}
    paper = {f"{m} {mode} {s}": table3_gain(m, mode, "spread", "vgg16", s)
             for (m, mode), _ in t.iterrows() for s in ("all", "difficult")}
    return dict(
        id="combination_spread_loses_vgg16", section="C (Table 3)",
        claim="vgg16: combining layers with feature-spread weights points worse than the best single layer",
        measured=ours, reported=paper,
        passed=gate.judge(all(v < 0 for v in ours.values())),
        criterion="all eight VGG16 spread-weighted gains (linear approximation and selective NormGrad, sum "
                  "and product, all pairs and difficult) are below 0, as all eight are in Table 3",
        note=gate.note,
    )


# --------------------------------------------------------------------------------- Fig. 7


def _vs_centre(run: PointingHits, method: str, layer: str, seed: int) -> dict[str, float]:
    return paired_bootstrap(run, (method, layer), CENTER, n_boot=N_BOOT, seed=seed)


def fig7_gradient_claim(run: PointingHits, gate: Gate, *, seed: int = 0) -> dict[str, Any]:
    """Ledger row for Fig. 7's caption: the gradient works at every stage but the last.

    On VGG16's pointing run (all pairs): at each candidate layer before the last
    the gradient beats the center baseline (95 % paired bootstrap interval of
    the difference above 0), at the last one it does not.
    """
    layers = list(CANDIDATE_LAYERS[run.arch])
    d = {layer: _vs_centre(run, "gradient", layer, seed) for layer in layers}
    early_ok = all(d[layer]["low"] > 0 for layer in layers[:-1])
    last_fails = not d[layers[-1]]["low"] > 0
    return dict(
        id="fig7_gradient_fails_only_at_the_end", section="Fig. 7",
        claim="The gradient localises at every stage of VGG16 except at the end of the network",
        measured={layer: f"{v['difference']:+.1f} [{v['low']:.1f}, {v['high']:.1f}]" for layer, v in d.items()},
        reported="works at every stage except the end (Fig. 7, first row)",
        passed=gate.judge(early_ok and last_fails),
        criterion=f"pointing accuracy of the gradient minus the center baseline (points, all pairs, 95 % paired "
                  f"bootstrap interval): interval above 0 at {', '.join(layers[:-1])}, and not above 0 at "
                  f"{layers[-1]}",
        note="Table 2 of the supplement lists feat.29 as the gradient's best VGG16 layer on all pairs, so the "
             "caption's 'end of the network' may lie past features.29; we test it at our last column. "
             + gate.note,
    )


def fig7_across_claim(run: PointingHits, gate: Gate, *, seed: int = 0) -> dict[str, Any]:
    """Ledger row for Fig. 7's caption: linear approximation, NormGrad and selective NormGrad work at every layer."""
    layers = list(CANDIDATE_LAYERS[run.arch])
    d = {(m, layer): _vs_centre(run, m, layer, seed) for m in FIG7_ACROSS_METHODS for layer in layers}
    failing = [f"{m}@{layer} {v['difference']:+.1f} [{v['low']:.1f}, {v['high']:.1f}]"
               for (m, layer), v in d.items() if not v["low"] > 0]
    weakest = min(d, key=lambda k: d[k]["low"])
    return dict(
        id="fig7_methods_work_across_layers", section="Fig. 7",
        claim="Linear approximation, NormGrad and selective NormGrad localise at every stage of VGG16",
        measured={"layers beating the center": f"{len(d) - len(failing)}/{len(d)}",
                  "weakest": f"{weakest[0]}@{weakest[1]} {d[weakest]['difference']:+.1f} "
                             f"[{d[weakest]['low']:.1f}, {d[weakest]['high']:.1f}]"},
        reported="perform well across the network (Fig. 7, rows 2-4)",
        passed=gate.judge(not failing),
        criterion=f"for each of the three methods at each of {', '.join(layers)}: the 95 % paired bootstrap "
                  "interval of [its pointing accuracy minus the center baseline's] (all pairs) lies above 0",
        note=("not above the center: " + "; ".join(failing) + "; " if failing else "") + gate.note,
    )


def fig7_selectivity(data: Fig7Maps, scenes: Any) -> Fig7Selectivity:
    """How strongly each Fig. 7 map shows the classes *not* explained, relative to the one explained.

    Each map is scaled to ``[0, 1]`` by its own minimum and maximum, as the
    figure draws it; the ratio is its mean over the pixels of the scene's other
    present classes (outside the target's own pixels) divided by its mean over
    the target's pixels, averaged over the figure's scenes. 0: only the target
    shows; 1: the map does not tell the classes apart (a flat map scores 1 too);
    above 1: the other classes show more.

    Parameters
    ----------
    data:
        :func:`gsutils.experiments.normgrad.normgrad_maps.fig7_maps`'s result.
    scenes:
        The test scenes the figure's ``image_index`` refers to (``gt_mask``, ``labels``).

    Returns
    -------
    Fig7Selectivity
        The ratio per method and layer, its mean over the layers per method, the scenes
        measured and the mean share of the image the other classes cover.
    """
    from gsutils.experiments.normgrad.normgrad_maps import FIG7_LAYERS
    from gsutils.saliency.extract_aggregate import METHODS

    maps = np.asarray(data.maps, dtype=np.float64)  # (B, M, L, S, S)
    ratios: dict[str, dict[str, list[float]]] = {m: {layer: [] for layer in FIG7_LAYERS} for m in METHODS}
    area = []
    for b, (i, t) in enumerate(zip(np.asarray(data.image_index).tolist(), np.asarray(data.target).tolist())):
        target = scenes.gt_mask(int(i), int(t)).numpy().astype(bool)
        present = [c for c in np.flatnonzero(scenes.labels[int(i)].numpy() > 0.5).tolist() if c != int(t)]
        other = np.zeros_like(target)
        for c in present:
            other |= scenes.gt_mask(int(i), int(c)).numpy().astype(bool)
        other &= ~target
        if not other.any() or not target.any():
            continue
        area.append(float(other.mean()))
        for mi, m in enumerate(METHODS):
            for li, layer in enumerate(FIG7_LAYERS):
                x = maps[b, mi, li]
                if np.isnan(x).all():
                    continue
                lo, hi = float(x.min()), float(x.max())
                y = (x - lo) / (hi - lo) if hi > lo else np.ones_like(x)  # a flat map shows every class alike
                on_target = float(y[target].mean())
                ratios[m][layer].append(float(y[other].mean()) / on_target if on_target > 0 else float("inf"))
    ratio = {m: {layer: float(np.mean(v)) for layer, v in per.items() if v} for m, per in ratios.items()}
    mean = {m: float(np.mean(list(v.values()))) for m, v in ratio.items() if v}
    return Fig7Selectivity(ratio=ratio, mean=mean, n_scenes=len(area),
                           other_area=float(np.mean(area)) if area else 0.0)


def fig7_selectivity_claim(sel: Fig7Selectivity, gate: Gate) -> dict[str, Any]:
    """Ledger row for Fig. 7's caption: linear approximation and selective NormGrad are more
    class-selective than NormGrad (the classes not explained show less, relative to the target)."""
    mean = sel.mean
    measurable = sel.n_scenes > 0 and all(m in mean for m in ("normgrad", *FIG7_SELECTIVE_METHODS))
    ok = measurable and all(mean[m] < mean["normgrad"] for m in FIG7_SELECTIVE_METHODS)
    return dict(
        id="fig7_la_sng_more_selective", section="Fig. 7",
        claim="Linear approximation and selective NormGrad are more class-selective than NormGrad",
        measured={m: round(mean[m], 3) for m in ("normgrad", *FIG7_SELECTIVE_METHODS) if m in mean},
        reported="the non-target class shows more in NormGrad's maps (Fig. 7, third row)",
        passed=gate.judge(ok) if measurable else None,
        criterion="mean of the min-max scaled map on the other present classes' pixels over its mean on the "
                  "target's pixels, averaged over the figure's scenes and VGG16's six columns: lower for "
                  "linear approximation and for selective NormGrad than for NormGrad",
        note=f"{sel.n_scenes} scenes (the figure's; the supplement's figure shows one image); the other "
             f"classes cover {100 * sel.other_area:.1f} % of the image on average; " + gate.note,
    )


def paper_table3() -> dict[str, Any]:
    """The supplement's Table 3 in the shape of :func:`gsutils.experiments.normgrad.layer_combination.table3`
    (``{arch: DataFrame}`` with ``gain all`` / ``gain difficult``), to judge criteria on its own numbers."""
    import pandas as pd

    from gsutils.references import TABLE3_GAINS

    out = {}
    for arch in ("resnet50", "vgg16"):
        rows = [{"method": m, "mode": mode, "weighting": w, "gain all": v[arch][0], "gain difficult": v[arch][1]}
                for (m, mode, w), v in TABLE3_GAINS.items()]
        out[arch] = pd.DataFrame(rows).set_index(["method", "mode", "weighting"])
    return out


def accuracy_most_consistent(positive: dict[str, int]) -> bool:
    """The criterion of "accuracy weights give the most consistent gains": no other weighting has more
    positive cells. (Not *strictly* more: in the supplement's own Table 3 the linear weights gain in all
    16 cells too, so the strict form would reject the table the claim comes from.)"""
    return positive["accuracy"] >= max(v for w, v in positive.items() if w != "accuracy")
