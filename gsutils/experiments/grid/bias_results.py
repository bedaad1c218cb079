"""Tables, figures and claims of the bias grid (Grid Saliency S1.2, Fig. S4a, S5a, S9).

Input everywhere is the list of :class:`~gsutils.experiments.grid.seg_runs.SegIoU` of
:func:`gsutils.experiments.grid.segmentation.run_grid` (one per network: its run and
its per-class IoU on the *unbiased* test set). :func:`results_frame` turns it
into a long table; the other functions read that table.

Reference values read off the poster's figure (Hoyer et al., 2019), IoU of the
biased digit on unbiased test data, about +-0.05: 0.96 for the unbiased
network, 0.74 under weak bias, 0.14 under strong bias; the other digits stay
high.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gsutils.claims import Gate
from gsutils.experiments.grid.segmentation import SegIoU, training_history, training_steps

from gsutils.references import BIAS_DIGIT_IOU_POSTER as REFERENCE_IOU
from gsutils.references import HIGH_IOU, ORDER_MARGIN, REFERENCE_TOL



def results_frame(results: Sequence[SegIoU]):
    """One row per (network, test digit): backbone, strength, bias digit, texture, seed, test digit, IoU.

    ``bias_digit`` is ``-1`` for the unbiased network. Background IoU and mIoU
    are in the columns ``background_iou`` and ``miou`` of every row.
    """
    import pandas as pd

    rows = []
    for res in results:
        run, b = res.run, res.run.bias
        iou = [np.nan if v is None else float(v) for v in res.iou]
        for digit in range(10):
            rows.append({
                "backbone": run.backbone,
                "strength": b.strength,
                "bias_digit": -1 if b.digit is None else b.digit,
                "texture": b.texture if b.strength != "none" else -1,
                "seed": run.seed,
                "test_digit": digit,
                "iou": iou[digit],
                "background_iou": iou[10],
                "miou": res.miou,
            })
    if not rows:
        raise ValueError("results is empty: run the grid first")
    return pd.DataFrame(rows)


def unbiased_iou_table(frame):
    """Per-class IoU (digits, background) and mIoU of the unbiased networks, mean over seeds.

    One row per backbone.
    """
    import pandas as pd

    n = frame[frame.strength == "none"]
    if n.empty:
        raise ValueError("no unbiased network in the results")
    out = {}
    for bb, g in n.groupby("backbone", sort=False):
        per_digit = g.groupby("test_digit")["iou"].mean()
        row = {str(d): per_digit[d] for d in range(10)}
        row["background"] = g.groupby("seed")["background_iou"].first().mean()
        row["mIoU"] = g.groupby("seed")["miou"].first().mean()
        out[bb] = row
    return pd.DataFrame.from_dict(out, orient="index")


def iou_matrix(frame, strength: str, backbone: str):
    """Fig. S4a (strong) / S5a (weak): rows ``N`` and each bias digit, columns test digits 0-9.

    Values are IoUs on the unbiased test set, averaged over bias textures and
    seeds. Returns ``(iou, drop)``: the matrix and the matrix minus its ``N``
    row (negative = the network lost IoU on that digit).
    """
    if strength not in ("strong", "weak"):
        raise ValueError(f"strength must be 'strong' or 'weak', got {strength!r}")
    f = frame[frame.backbone == backbone]
    if f.empty:
        raise ValueError(f"no results for backbone {backbone!r}; have {sorted(frame.backbone.unique())}")
    n = f[f.strength == "none"].groupby("test_digit")["iou"].mean()
    b = f[f.strength == strength].pivot_table(index="bias_digit", columns="test_digit", values="iou", aggfunc="mean")
    b.index = [str(i) for i in b.index]
    mat = b.copy()
    mat.loc["N"] = n
    mat = mat.loc[["N"] + [i for i in mat.index if i != "N"]]
    mat.columns = [int(c) for c in mat.columns]
    mat.index.name, mat.columns.name = "bias digit", "test digit"
    return mat, mat - mat.loc["N"]


def iou_drop_by_texture(frame, strength: str, backbone: str, textures, bias_digits) -> np.ndarray:
    """Fig. S4a/S5a per bias texture: ``(textures, bias digits, 10)`` IoU of the biased network on each
    test digit minus N's (mean over seeds; NaN where no network was evaluated)."""
    f = frame[frame.backbone == backbone]
    n = f[f.strength == "none"].groupby("test_digit")["iou"].mean()
    out = np.full((len(textures), len(bias_digits), 10), np.nan)
    b = f[f.strength == strength]
    for ti, t in enumerate(textures):
        for di, d in enumerate(bias_digits):
            cell = b[(b.texture == t) & (b.bias_digit == d)].groupby("test_digit")["iou"].mean()
            for j in cell.index:
                out[ti, di, int(j)] = cell[j] - n.get(j, np.nan)
    return out


def biased_digit_frame(frame):
    """One row per biased network: the IoU on its bias digit and the mean over the other digits.

    The unbiased networks appear once per bias digit of the grid (``strength
    == "none"``), with that digit's IoU, so that every strength is compared on
    the same digits.
    """
    import pandas as pd

    biased = frame[frame.strength != "none"]
    digits = sorted(biased.bias_digit.unique())
    rows = []
    for (bb, st, d, tex, seed), g in biased.groupby(["backbone", "strength", "bias_digit", "texture", "seed"]):
        iou = g.set_index("test_digit")["iou"]
        rows.append({"backbone": bb, "strength": st, "bias_digit": d, "texture": tex, "seed": seed,
                     "biased_iou": iou[d], "other_iou": iou.drop(d).mean()})
    for (bb, seed), g in frame[frame.strength == "none"].groupby(["backbone", "seed"]):
        iou = g.set_index("test_digit")["iou"]
        for d in digits:
            rows.append({"backbone": bb, "strength": "none", "bias_digit": d, "texture": -1, "seed": seed,
                         "biased_iou": iou[d], "other_iou": iou.drop(d).mean()})
    return pd.DataFrame(rows)


def texture_table(frame, backbone: str):
    """IoU of the bias digit on unbiased test data per strength (rows) and bias texture (columns).

    Means over bias digits and seeds; N's value is repeated in every column.
    """
    f = frame[(frame.backbone == backbone) & ((frame.test_digit == frame.bias_digit) | (frame.strength == "none"))]
    none = f[f.strength == "none"]
    none = none[none.test_digit.isin(frame.bias_digit[frame.bias_digit >= 0].unique())].iou.mean()
    biased = f[f.strength != "none"].pivot_table(index="strength", columns="texture", values="iou", aggfunc="mean")
    biased.loc["none"] = none
    order = [s for s in ("none", "weak", "strong") if s in biased.index]
    biased = biased.loc[order]
    biased.columns = [f"texture {c}" for c in biased.columns]
    return biased


def backbone_summary(frame):
    """Fig. S9: mean and std (over bias digits, textures and seeds) of the biased-digit IoU.

    Rows: backbone x strength (``none``, ``weak``, ``strong``); columns
    ``mean``, ``std``, ``n`` (networks), ``other_mean`` (IoU on the other digits).
    """
    bd = biased_digit_frame(frame)
    g = bd.groupby(["backbone", "strength"], sort=False)
    out = g["biased_iou"].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    out["other_mean"] = g["other_iou"].mean()
    order = {"none": 0, "weak": 1, "strong": 2}
    bb_order = {bb: i for i, bb in enumerate(frame.backbone.unique())}  # as trained
    return out.sort_index(key=lambda idx: idx.map(order) if idx.name == "strength" else idx.map(bb_order))


def _per_strength(s, column: str) -> dict[str, float]:
    """``column`` of one backbone's :func:`backbone_summary` rows by strength (NaN where absent)."""
    return {st: float(s.loc[st, column]) if st in s.index else float("nan") for st in ("none", "weak", "strong")}


def _order_holds(m: dict[str, float]) -> bool:
    """strong < weak < unbiased, each gap at least :data:`ORDER_MARGIN`."""
    return (m["strong"] + ORDER_MARGIN <= m["weak"]) and (m["weak"] + ORDER_MARGIN <= m["none"])


def _claim(id: str, section: str, claim: str, measured: float | dict[str, float], holds: bool,
           criterion: str, reported: Any) -> dict[str, Any]:
    """A claim's keyword dict; the verdict is ``None`` when any measured value is NaN."""
    values = measured.values() if isinstance(measured, dict) else [measured]
    return dict(id=id, section=section, claim=claim, measured=measured,
                passed=None if any(np.isnan(v) for v in values) else bool(holds),
                criterion=criterion, reported=reported)


def bias_claims(frame, backbone: str) -> list[dict[str, Any]]:
    """The chapter's claims, with measurement, criterion and pass/fail computed here.

    Returns keyword dicts for :meth:`gsutils.claims.Ledger.check`. The values
    are means over bias digits, textures and seeds of ``backbone``'s networks.
    """
    s = backbone_summary(frame).loc[backbone]
    m, other = _per_strength(s, "mean"), _per_strength(s, "other_mean")
    claims = []
    names = {"none": "the unbiased network (N)", "weak": "networks trained with weak bias",
             "strong": "networks trained with strong bias"}
    section = "S1.2 / Fig. S4a, S5a"
    for st in ("none", "weak", "strong"):
        claims.append(_claim(
            f"biased_digit_iou_{st}", section,
            f"IoU on the bias digit, unbiased test data, for {names[st]} is about {REFERENCE_IOU[st]:.2f}",
            m[st], abs(m[st] - REFERENCE_IOU[st]) <= REFERENCE_TOL,
            f"|measured - {REFERENCE_IOU[st]:.2f}| <= {REFERENCE_TOL} (the reference is read off a figure)",
            REFERENCE_IOU[st],
        ))
    claims.append(_claim(
        "strong_bias_drop", "S1.2 / Fig. S4a",
        "a strong bias costs IoU on the bias digit: strong < unbiased",
        {"strong": m["strong"], "none": m["none"]}, m["strong"] + ORDER_MARGIN <= m["none"],
        f"IoU_strong + {ORDER_MARGIN} <= IoU_N",
        {"strong": REFERENCE_IOU["strong"], "none": REFERENCE_IOU["none"]},
    ))
    claims.append(_claim(
        "bias_order", section, "the bias costs IoU on the bias digit: strong < weak < unbiased",
        {"strong": m["strong"], "weak": m["weak"], "none": m["none"]}, _order_holds(m),
        f"IoU_strong + {ORDER_MARGIN} <= IoU_weak and IoU_weak + {ORDER_MARGIN} <= IoU_N",
        dict(REFERENCE_IOU),
    ))
    claims.append(_claim(
        "other_digits_stay_high", section, "the IoU on the other (unbiased) digits stays high",
        {"none": other["none"], "weak": other["weak"], "strong": other["strong"]},
        (other["none"] >= HIGH_IOU and other["strong"] >= other["none"] - REFERENCE_TOL
         and other["weak"] >= other["none"] - REFERENCE_TOL),
        (f"mean IoU of the other digits >= {HIGH_IOU} for N, and for the biased networks "
         f"at most {REFERENCE_TOL} below N's"),
        "high",
    ))
    return claims


def backbone_claim(frame) -> dict[str, Any]:
    """S1.5 / Fig. S9: the drop (strong < weak < N) holds for every backbone compared.

    ``passed`` is ``None`` when fewer than two backbones were trained.
    """
    s = backbone_summary(frame)
    backbones = list(dict.fromkeys(s.index.get_level_values(0)))
    measured, ok = {}, True
    for bb in backbones:
        sb = s.loc[bb]
        measured[bb] = vals = _per_strength(sb, "mean")
        ok &= _order_holds(vals)
    return dict(
        id="bias_order_all_backbones",
        section="S1.5 / Fig. S9",
        claim="every backbone (VGG16, MobileNetV2, ResNet18) picks up the bias: strong < weak < unbiased",
        measured=measured,
        passed=None if len(backbones) < 2 else bool(ok),
        criterion=f"the bias_order criterion (gaps >= {ORDER_MARGIN}) for each of at least two backbones",
        reported="all three backbones",
        note="" if len(backbones) >= 2 else f"only {backbones} trained at this profile",
    )


# ------------------------------------------------------------------------------------ figures


def plot_iou_matrices(frame, backbone: str, strengths: Sequence[str] = ("strong", "weak")):
    """Fig. S4a / S5a: per strength, the IoU matrix and its drop against N, annotated.

    Returns the matplotlib figure (rows: strengths; columns: IoU, drop).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(strengths), 2, figsize=(11, 1.2 + 0.55 * 3 * len(strengths) + 0.6),
                             squeeze=False, constrained_layout=True)
    fig_no = {"strong": "S4a", "weak": "S5a"}
    for row, st in enumerate(strengths):
        iou, drop = iou_matrix(frame, st, backbone)
        for col, (mat, title, cmap, lim) in enumerate(
            [(iou, "IoU on unbiased test data", "viridis", (0, 1)), (drop, "IoU minus N's", "RdBu", (-1, 1))]
        ):
            ax = axes[row, col]
            vals = mat.to_numpy(dtype=float)
            im = ax.imshow(vals, cmap=cmap, vmin=lim[0], vmax=lim[1], aspect="auto")
            for (i, j), v in np.ndenumerate(vals):
                if np.isfinite(v):
                    dark = (v < 0.5) if col == 0 else (abs(v) > 0.6)
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if dark else "black")
            ax.set_xticks(range(vals.shape[1]), [str(c) for c in mat.columns])
            ax.set_yticks(range(vals.shape[0]), list(mat.index))
            ax.set_xlabel("test digit")
            ax.set_ylabel("network's bias digit")
            ax.set_title(f"Fig. {fig_no.get(st, '')} {st} bias: {title}", fontsize=10)
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{backbone} U-Nets on unbiased test data (N = unbiased network)")
    return fig


def plot_backbone_comparison(frame):
    """Fig. S9: biased-digit IoU (mean +- std over bias digits, textures, seeds) per backbone."""
    import matplotlib.pyplot as plt

    s = backbone_summary(frame)
    backbones = list(dict.fromkeys(s.index.get_level_values(0)))
    strengths = [("none", "unbiased (N)", "#4c72b0"), ("weak", "weak bias", "#dd8452"),
                 ("strong", "strong bias", "#c44e52")]
    fig, ax = plt.subplots(figsize=(max(4.8, 1.6 + 1.8 * len(backbones)), 3.8), constrained_layout=True)
    width = 0.8 / len(strengths)
    for k, (st, label, color) in enumerate(strengths):
        means = [s.loc[(bb, st), "mean"] if (bb, st) in s.index else np.nan for bb in backbones]
        stds = [s.loc[(bb, st), "std"] if (bb, st) in s.index else 0.0 for bb in backbones]
        x = np.arange(len(backbones)) + (k - 1) * width
        ax.bar(x, means, width, yerr=stds, capsize=3, label=label, color=color)
        for xi, mu in zip(x, means):
            if np.isfinite(mu):
                ax.text(xi, mu + 0.02, f"{mu:.2f}", ha="center", va="bottom", fontsize=8)
    for st, ref in REFERENCE_IOU.items():
        ax.axhline(ref, color="gray", lw=0.6, ls=":")
    ax.set_xticks(range(len(backbones)), backbones)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("IoU of the bias digit\n(unbiased test data)")
    ax.set_title("Fig. S9: encoders compared\n(dotted: the poster's 0.96 / 0.74 / 0.14)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=3, frameon=False)
    return fig


def recipe_table(profile):
    """The S1.2 training recipe: the paper's values next to this profile's."""
    import pandas as pd

    t, toy, g = profile.train, profile.toy, profile.grid
    n_late = int(np.floor(t.late_fraction * t.epochs + 0.5))
    rows = [
        ("encoder", "VGG16 / MobileNetV2 / ResNet18", t.backbone),
        ("input", "64x64 grayscale, 11 classes",
         f"{toy.resolution}x{toy.resolution} grayscale, 11 classes"
         + (f" (rendered at {toy.render_resolution}, area-downsampled)" if toy.render_resolution else "")),
        ("training images", "50,000", f"{toy.n_train:,}"),
        ("test images (unbiased)", "(not stated)", f"{toy.n_test:,}"),
        ("loss", "pixel-wise cross entropy", "pixel-wise cross entropy"),
        ("optimizer", "RMSprop (Keras: rho 0.9, epsilon 1e-7)",
         "RMSprop (rho 0.9, epsilon 1e-7)" if t.optimizer == "rmsprop" else "AdamW (weight decay 1e-4)"),
        ("batch size", "100", str(t.batch_size)),
        ("epochs", "50", f"{t.epochs} (each a fresh draw of {toy.n_train:,} images)"),
        ("learning rate", "1e-3 (40 epochs), then 1e-4 (10 epochs)",
         f"{t.lr:g} ({t.epochs - n_late} epochs), then {t.lr_late:g} ({n_late} epochs)" if t.schedule == "step"
         else f"one cycle per step: warm-up to {t.lr:g} over 15 % of the steps, cosine decay"),
        ("training steps", "25,000", f"{training_steps(toy.n_train, t):,}"),
        ("bias digits", "0-9", ", ".join(map(str, g.bias_digits))),
        ("bias textures", "5", str(len(g.bias_textures))),
        ("dataset seeds", "5", str(len(g.seeds))),
        ("backbones compared (Fig. S9)", "3", ", ".join(g.backbones)),
    ]
    return pd.DataFrame(rows, columns=["setting", "paper (S1.2)", f"this run ({profile.name})"]).set_index("setting")


def bias_effect_statement(frame, backbone: str, gate: float) -> str:
    """Plain sentences on what this run shows of the bias effect, from the measurements.

    It says whether the unbiased network passes the gate (mean digit IoU at
    least ``gate``; below it the networks are not good enough for their
    absolute values to be compared with the poster's), then
    whether a strong bias costs IoU on the bias digit, how much a weak bias
    costs, and whether the order strong < weak < unbiased holds, each with the
    chapter's margin.
    """
    s = backbone_summary(frame).loc[backbone]
    m, other = _per_strength(s, "mean"), _per_strength(s, "other_mean")
    unbiased = unbiased_iou_table(frame).loc[backbone]
    digit_iou = float(np.nanmean([unbiased[str(d)] for d in range(10)]))
    values = f"IoU on the bias digit: N {m['none']:.2f}, weak {m['weak']:.2f}, strong {m['strong']:.2f}"
    poster = (f"the poster: N {REFERENCE_IOU['none']}, weak {REFERENCE_IOU['weak']}, "
              f"strong {REFERENCE_IOU['strong']}")
    if not digit_iou >= gate:
        head = (f"The unbiased {backbone} network reaches a mean digit IoU of {digit_iou:.2f}, below the gate "
                f"of {gate:.2f}: its absolute values are not comparable with the poster's.")
    else:
        head = (f"The {backbone} networks segment the digits (mean digit IoU of N {digit_iou:.2f}, gate "
                f"{gate:.2f}).")
    gap_s, gap_w = m["none"] - m["strong"], m["none"] - m["weak"]
    other_gap = max(abs(other["strong"] - other["none"]), abs(other["weak"] - other["none"]))
    strong = (f"A strong bias {'costs' if gap_s >= ORDER_MARGIN else 'does not clearly cost'} IoU on the bias "
              f"digit ({gap_s:.2f} below N; the margin is {ORDER_MARGIN}), while the other digits stay within "
              f"{other_gap:.2f} of N's.")
    weak = (f"A weak bias costs {gap_w:.2f}, {'at least' if gap_w >= ORDER_MARGIN else 'less than'} the "
            f"margin.")
    ordered = _order_holds(m)
    order = (f"The order strong < weak < unbiased {'holds' if ordered else 'does not hold'} with gaps of at "
             f"least {ORDER_MARGIN} ({values}; {poster}).")
    return " ".join([head, strong, weak, order])


# ------------------------------------------------------------------------------------ the gate


def network_gate(frame, threshold: float, backbone: str | None = None) -> Gate:
    """Is the unbiased network good enough to carry saliency claims? (fixed before measuring)

    The gate: the unbiased network's mean digit IoU on the unbiased test set
    (mean over digits 0-9 and seeds) is at least ``threshold``
    (``profile.train.gate_digit_miou``). Saliency claims are judged only when it
    holds; otherwise their verdict is "not measured" with these numbers shown.

    Returns a :class:`gsutils.claims.Gate` (``detail``: each unbiased network's mean digit IoU;
    its row's section is set by the chapter that records it).
    """
    f = frame[frame.strength == "none"]
    if backbone is not None:
        f = f[f.backbone == backbone]
    if f.empty:
        raise ValueError(f"no unbiased network in the results (backbone={backbone!r}): train it first")
    per_net = f.groupby(["backbone", "seed"]).iou.mean()  # mean digit IoU per network
    value = float(per_net.mean())
    name = backbone if backbone is not None else ",".join(sorted(f.backbone.unique()))
    return saliency_network_gate(
        value, float(threshold), f"mean digit IoU of the unbiased {name} network ({len(per_net)} network(s))",
        {f"{bb} seed {s}": float(v) for (bb, s), v in per_net.items()})


def saliency_network_gate(value: float, threshold: float, what: str, detail: dict[str, float]) -> Gate:
    """The S1.2 gate on a measured mean digit IoU (shared by S1.2-S1.6): its row, criterion and note."""
    return Gate(
        what=what, measured=value, threshold=threshold, passed=bool(value >= threshold), detail=detail,
        claim="the unbiased network segments the digits well enough to carry saliency claims",
        criterion=f"mean digit IoU of N on unbiased test data >= {threshold:.2f} (fixed beforehand)",
        note=f"mean digit IoU of the unbiased network {value:.3f}, threshold {threshold:.2f}",
        reason=(f"not measured: networks below the gate (mean digit IoU of the unbiased network "
                f"{value:.3f} < {threshold:.2f})"))


def record_bias(ledger: Any, frame, gate: Gate, backbone: str) -> list[Any]:
    """Record the S1.2 chapter's rows: the gate (section "S1.2 (gate)"), the bias claims of
    ``backbone`` (:func:`bias_claims`) and the encoder comparison (:func:`backbone_claim`)."""
    rows = [ledger.check(**gate.row(section="S1.2 (gate)"))]
    rows += [ledger.check(**claim) for claim in bias_claims(frame, backbone)]
    rows.append(ledger.check(**backbone_claim(frame)))
    return rows


def training_summary(profile, runs: Sequence[Any]):
    """One row per trained network: epochs, final training loss and pixel accuracy, training seconds."""
    import pandas as pd

    rows = []
    for run in runs:
        hist = training_history(profile, run)
        rows.append({"network": run.label, "epochs": len(hist), "final loss": hist[-1]["loss"],
                     "train pixel acc": hist[-1]["pixel_acc"], "seconds": sum(h["seconds"] for h in hist)})
    return pd.DataFrame(rows).set_index("network")
