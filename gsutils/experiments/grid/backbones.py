"""The backbone comparison of Grid Saliency S1.5 (Fig. S8, S9, S10).

The supplement repeats S1.3/S1.4 with three U-Net encoders (VGG16,
MobileNetV2, ResNet18) on the *weakly* biased networks only. This module:

* derives the comparison's profile (:func:`backbone_profile`): the profile's
  recipe and saliency settings with the sub-grid and schedule of
  ``profile.backbone_cmp`` (at quick: reduced smp U-Nets of the three
  families, N per seed and weak bias on digit 2 with textures 0 and 1 x seeds 0 and 1,
  16 epochs);
* lists its networks (:func:`backbone_runs`: per backbone the unbiased N per
  seed, then weak bias x bias digit x texture x seed), trains and evaluates
  them through the shared segmentation runners
  (:func:`gsutils.experiments.grid.segmentation.run_grid`, locally or on Dask);
* explains the weak-bias networks with VG/SG/IG/grid
  (:func:`gsutils.experiments.grid.context_saliency.run_context_saliency`, cached)
  and aggregates CBD (biased digit vs the others) and CBL per method and
  backbone (:func:`saliency_table`);
* judges the section's claims (:func:`backbone_claims`) behind the gate of
  ``profile.train.gate_digit_miou`` on *every* backbone's N.

Command line (e.g. on a GPU machine or a Dask cluster)::

    python -m gsutils.experiments.grid.backbones --profile gpu --executor dask --workers 4
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from gsutils.claims import Gate
from gsutils.data.toy import BiasConfig
from gsutils.experiments.grid.bias_results import saliency_network_gate
from gsutils.experiments.grid.context_claims import record
from gsutils.experiments.grid.context_results import METHODS
from gsutils.experiments.grid.segmentation import SegIoU, SegRun, evaluate_iou, run_grid, training_steps
from gsutils.profiles import Profile

__all__ = ["backbone_profile", "run_profile", "recipe_groups", "backbone_runs", "train_and_evaluate", "saliency_results",
           "miou_table", "saliency_table", "cbl_table", "backbone_gate", "record_backbones", "backbone_claims",
           "CBD_MARGIN", "DROP_MARGIN"]

#: "picks up the bias": the bias digit's IoU drops by at least this against N's
DROP_MARGIN = 0.05
#: a method "detects" the bias when its mean CBD on the biased digit exceeds the other digits' by this
CBD_MARGIN = 0.05
#: "VGG localises slightly better": VGG's grid CBL at least this above MN's and RN's
CBL_MARGIN = 0.0


def backbone_profile(profile: Profile, backbone: str | None = None) -> Profile:
    """``profile`` with the backbone comparison's sub-grid, schedule and saliency images.

    The returned profile's ``grid`` holds the comparison's bias digits,
    textures, seeds and backbones and only the weak strength; ``train.epochs``
    and ``saliency.images_per_digit`` are replaced where
    ``profile.backbone_cmp`` sets them, and so are the data (``toy``) and recipe
    (``train``) when it sets those. With ``backbone``, the recipe is that backbone's
    own where ``backbone_cmp.family_train`` gives one (use it for that backbone's
    networks: :func:`run_profile`). Everything else (results folder, gate) is the profile's.
    """
    if not isinstance(profile, Profile):
        raise TypeError(f"profile must be a gsutils.profiles.Profile (from get_profile), got {type(profile).__name__}")
    b, g = profile.backbone_cmp, profile.grid
    grid = dataclasses.replace(
        g,
        bias_digits=tuple(b.bias_digits if b.bias_digits is not None else g.bias_digits),
        bias_textures=tuple(b.bias_textures if b.bias_textures is not None else g.bias_textures),
        seeds=tuple(b.seeds if b.seeds is not None else g.seeds),
        strengths=("weak",),
        backbones=tuple(b.backbones),
    )
    train = profile.train if b.train is None else b.train
    train = train if b.epochs is None else dataclasses.replace(train, epochs=b.epochs)
    own = dict(b.family_train)
    if backbone is not None:
        if backbone not in b.backbones:
            raise ValueError(f"backbone {backbone!r} is not compared at this profile; choose from {b.backbones}")
        train = own.get(backbone, train)
    toy = profile.toy if b.toy is None else b.toy
    sal = profile.saliency if b.images_per_digit is None else dataclasses.replace(
        profile.saliency, images_per_digit=b.images_per_digit)
    return dataclasses.replace(profile, grid=grid, train=train, toy=toy, saliency=sal)


def run_profile(profile: Profile, run: SegRun) -> Profile:
    """The profile ``run`` (one of :func:`backbone_runs`) trains and is explained under: the
    comparison's, with its backbone's own recipe where it has one, and the network's own where
    ``backbone_cmp.network_train`` names its label."""
    p = backbone_profile(profile, run.backbone)
    own = dict(profile.backbone_cmp.network_train)
    return dataclasses.replace(p, train=own[run.label]) if run.label in own else p


def recipe_groups(profile: Profile, runs: Sequence[SegRun] | None = None) -> list[tuple[Profile, list[SegRun]]]:
    """``runs`` (default: every network of the comparison) grouped by the profile each trains under
    (:func:`run_profile`), in run order: one group per family, and one more per network with a
    recipe of its own."""
    runs = backbone_runs(profile) if runs is None else list(runs)
    groups: list[tuple[Profile, list[SegRun]]] = []
    for run in runs:
        p = run_profile(profile, run)
        for q, mine in groups:
            if q == p:
                mine.append(run)
                break
        else:
            groups.append((p, [run]))
    return groups


def recipe_lines(profile: Profile) -> list[str]:
    """One line per backbone family's training recipe (epochs, steps, batch, forward precision),
    then one per network whose recipe differs from its family's, for the page to print."""
    n_train = backbone_profile(profile).toy.n_train

    def line(name: str, t: Any) -> str:
        return (f"{name}: {t.epochs} epochs ({training_steps(n_train, t):,} steps of {t.batch_size}), forward pass in "
                f"{t.autocast or 'float32'}")

    lines = [line(bb, backbone_profile(profile, bb).train) for bb in backbone_profile(profile).grid.backbones]
    for run in backbone_runs(profile):
        own = run_profile(profile, run).train
        if own != backbone_profile(profile, run.backbone).train:
            lines.append(line(f"{run.label} only", own))
    return lines


def backbone_runs(profile: Profile, *, biased_only: bool = False) -> list[SegRun]:
    """The comparison's networks: per backbone, N per seed then weak bias x digit x texture x seed.

    ``profile`` is either the user's profile or :func:`backbone_profile`'s (same result).
    """
    p = backbone_profile(profile) if profile.grid.strengths != ("weak",) else profile
    g = p.grid
    runs = []
    for bb in g.backbones:
        if not biased_only:
            runs += [SegRun(BiasConfig(strength="none"), bb, s) for s in g.seeds]
        for d in g.bias_digits:
            for t in g.bias_textures:
                for s in g.seeds:
                    runs.append(SegRun(BiasConfig(strength="weak", digit=d, texture=t, probability=1.0), bb, s))
    return runs


def train_and_evaluate(profile: Profile, *, executor: str = "local", address: str | None = None,
                       workers: int = 2, progress: bool = True) -> list[SegIoU]:
    """Train (or load, or restore the shipped) networks and their unbiased-test IoU, in run order."""
    runs = backbone_runs(profile)
    done = {}
    for p, mine in recipe_groups(profile, runs):  # one grid per recipe
        res = run_grid(p, mine, executor=executor, address=address, progress=progress, n_workers=workers)
        done.update(zip(mine, res))
    return [done[r] for r in runs]


def iou_results(profile: Profile) -> list[SegIoU]:
    """The cached IoU results of every network (trained or restored where missing)."""
    return [evaluate_iou(run_profile(profile, run), run) for run in backbone_runs(profile)]


def saliency_results(profile: Profile, *, progress: bool = True):
    """:class:`ContextSaliencyResults` per backbone, ``{backbone: results}`` (cached runs)."""
    from gsutils.experiments.grid.context_results import ContextSaliencyResults
    from gsutils.experiments.grid.context_saliency import run_context_saliency

    p = backbone_profile(profile)
    out = {}
    runs = backbone_runs(p, biased_only=True)
    it = runs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(runs, desc="context saliency", unit="net")
    res = {run: run_context_saliency(run_profile(profile, run), run) for run in it}
    for bb in p.grid.backbones:
        mine = [r for r in runs if r.backbone == bb]
        out[bb] = ContextSaliencyResults(runs=mine, results=[res[r] for r in mine],
                                         bias_digits=p.grid.bias_digits, textures=p.grid.bias_textures,
                                         strengths=("weak",), methods=METHODS)
    return out


# ------------------------------------------------------------------------------------- tables


def miou_table(results: Sequence[SegIoU]):
    """Fig. S9 a/b: per backbone, N's and the weak networks' mIoU and bias-digit IoU (mean, std).

    Rows: backbone x network (``N`` first, then ``weak``); columns: ``miou``,
    ``miou_std``, ``bias_digit_iou``, ``bias_digit_iou_std``, ``n``
    (networks). The std is over bias textures, digits and seeds (missing for one network: no spread).
    """
    import pandas as pd

    rows = []
    for res in results:
        bias = res.run.bias
        rows.append({"backbone": res.run.backbone, "network": "N" if bias.strength == "none" else bias.strength,
                     "bias_digit": bias.digit, "miou": res.digit_miou, "iou": res.iou})
    frame = pd.DataFrame(rows)
    # N's bias-digit IoU is read on the digits the weak networks are biased on
    digits = sorted({int(d) for d in frame.loc[frame.network != "N", "bias_digit"].dropna()})
    def bias_iou(r):
        ds = digits if r["network"] == "N" else [int(r["bias_digit"])]
        return float(np.mean([r["iou"][d] for d in ds])) if ds else np.nan
    frame["bias_digit_iou"] = frame.apply(bias_iou, axis=1)
    g = frame.groupby(["backbone", "network"], sort=False)
    out = pd.DataFrame({
        "miou": g["miou"].mean(), "miou_std": g["miou"].std(ddof=0),
        "bias_digit_iou": g["bias_digit_iou"].mean(), "bias_digit_iou_std": g["bias_digit_iou"].std(ddof=0),
        "n": g["miou"].count(),
    })
    out.loc[out["n"] < 2, ["miou_std", "bias_digit_iou_std"]] = np.nan
    return out


def _spread(values: Any) -> float:
    """The std of the finite ``values``, or NaN (shown as missing) when fewer than two: one
    network has no spread, and a 0 would read as "all networks agree"."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    return float(v.std()) if v.size > 1 else float("nan")


def saliency_table(per_backbone: dict[str, Any]):
    """Fig. S8: per backbone x method, mean and std of CBD on the bias digit and on the other digits.

    The std is over the networks (bias textures x digits x seeds) of each
    backbone; ``gap`` is biased minus other.
    """
    import pandas as pd

    rows = []
    for bb, res in per_backbone.items():
        for m in METHODS:
            on = [res.bias_digit_cbd("weak", m, bias_digit=True)]
            per_net_on, per_net_off = [], []
            for run, r in zip(res.runs, res.results):
                sel = r["digits"] == run.bias.digit
                v = np.asarray(r["cbd"])[METHODS.index(m)]
                per_net_on.append(float(v[sel].mean()) if sel.any() else np.nan)
                per_net_off.append(float(v[~sel].mean()) if (~sel).any() else np.nan)
            rows.append({"backbone": bb, "method": m,
                         "cbd_bias_digit": on[0], "cbd_bias_digit_std": _spread(per_net_on),
                         "cbd_other": res.bias_digit_cbd("weak", m, bias_digit=False),
                         "cbd_other_std": _spread(per_net_off)})
    out = pd.DataFrame(rows).set_index(["backbone", "method"])
    out["gap"] = out["cbd_bias_digit"] - out["cbd_other"]
    return out


def cbl_table(per_backbone: dict[str, Any]):
    """Fig. S10: per backbone x method, mean CBL on the biased images of the bias digit, with its
    std over bias digits (and textures, seeds), the chance level, and the empty-map rate."""
    import pandas as pd

    rows = []
    for bb, res in per_backbone.items():
        for m in METHODS:
            cells = res.cbl_matrix("weak", m)  # (textures, bias digits)
            per_digit = np.nanmean(cells, axis=0)  # (bias digits,)
            rows.append({"backbone": bb, "method": m, "cbl": res.mean_cbl("weak", m),
                         "cbl_std": _spread(per_digit if len(per_digit) > 1 else cells),
                         "cbl_excl_empty": res.mean_cbl("weak", m, empty="exclude"),
                         "chance": res.mean_chance("weak"),
                         "empty_rate": res.empty_rate("weak", m, bias_digit=True),
                         "n_images": res.n_cbl_images("weak", m)})
    return pd.DataFrame(rows).set_index(["backbone", "method"])


# ------------------------------------------------------------------------------------- claims


def backbone_gate(profile: Profile, miou: Any) -> Gate:
    """The gate, fixed before measuring: *every* backbone's N reaches ``train.gate_digit_miou``.

    The S1.2 gate's row and notes (:func:`gsutils.experiments.grid.bias_results.saliency_network_gate`)
    on the lowest N's mean digit IoU; ``detail``: each backbone's N.
    """
    threshold = profile.train.gate_digit_miou
    n_rows = miou.xs("N", level="network")
    per = {bb: float(v) for bb, v in n_rows["miou"].items()}
    # every backbone passes exactly when the lowest does
    return saliency_network_gate(min(per.values()), threshold,
                                 f"lowest mean digit IoU of N over the backbones ({int(n_rows['n'].sum())} network(s))",
                                 per)


def record_backbones(ledger: Any, gate: Gate, miou: Any, cbd: Any, cbl: Any) -> list[Any]:
    """Record the S1.5 chapter's rows: the gate (section "S1.5 (gate)"), then :func:`backbone_claims`
    under it (every verdict "not measured" below the gate)."""
    return record(ledger, backbone_claims(miou, cbd, cbl), gate, section="S1.5")


#: the paper's name of each encoder family, by the key the S1.5 claims use
_FAMILY_KEYS = {"VGG16": "vgg16", "MobileNetV2": "mobilenet_v2", "ResNet18": "resnet18"}


def _family(bb: str) -> str:
    """``"vgg16"``, ``"mobilenet_v2"`` or ``"resnet18"`` for any size of the three families
    (``small_resnet18_fs`` -> ``"resnet18"``); an unknown backbone is its own family."""
    from gsutils.models.smp_unet import FAMILY

    return _FAMILY_KEYS.get(FAMILY.get(bb, ""), bb)


def backbone_claims(miou: Any, cbd: Any, cbl: Any) -> list[dict[str, Any]]:
    """The S1.5 claims as keyword dicts for :meth:`gsutils.claims.Ledger.check`, judged on the measurements.

    Record them with :func:`record_backbones` and :func:`backbone_gate`, which turns every
    verdict into "not measured" below the gate.
    """
    bbs = list(dict.fromkeys(miou.index.get_level_values(0)))
    fam = {_family(b): b for b in bbs}
    drop = {bb: float(miou.loc[(bb, "N"), "bias_digit_iou"] - miou.loc[(bb, "weak"), "bias_digit_iou"])
            for bb in bbs}
    base = {bb: float(miou.loc[(bb, "N"), "miou"]) for bb in bbs}
    claims = [dict(
        id="s15_every_backbone_picks_up_bias", section="S1.5 / Fig. S9",
        claim="every backbone picks up the weak bias: its bias-digit IoU drops against N's",
        measured=drop, passed=bool(all(v >= DROP_MARGIN for v in drop.values())),
        criterion=f"IoU_N(bias digit) - IoU_weak(bias digit) >= {DROP_MARGIN} for every backbone",
        reported="a drop on the diagonal for all three")]
    if "vgg16" in fam:
        v = fam["vgg16"]
        best = all(base[v] >= base[b] for b in bbs)
        smallest = all(drop[v] <= drop[b] for b in bbs)
        claims.append(dict(
            id="s15_vgg_best_base_smallest_drop", section="S1.5 / Fig. S9",
            claim="VGG16 has the best base mIoU (N) and the smallest drop under weak bias",
            measured={"base_miou": base, "drop": drop}, passed=bool(best and smallest),
            criterion="VGG's N digit mIoU is the highest and its bias-digit drop the smallest of the backbones",
            reported="VGG16 best and most robust"))
    gaps = {f"{bb}/{m}": float(cbd.loc[(bb, m), "gap"]) for bb in bbs for m in ("ig", "grid")}
    claims.append(dict(
        id="s15_ig_grid_detect_on_every_backbone", section="S1.5 / Fig. S8",
        claim="IG and grid saliency detect the bias on every backbone (CBD higher on the biased digit)",
        measured=gaps, passed=bool(all(v >= CBD_MARGIN for v in gaps.values())),
        criterion=f"CBD(bias digit) - CBD(other digits) >= {CBD_MARGIN} for IG and grid on every backbone",
        reported="yes, on all three"))
    lead = {bb: float(cbl.loc[(bb, "grid"), "cbl"] - max(cbl.loc[(bb, m), "cbl"] for m in ("vg", "sg", "ig")))
            for bb in bbs}
    claims.append(dict(
        id="s15_grid_cbl_best_on_every_backbone", section="S1.5 / Fig. S10",
        claim="grid saliency's CBL is above VG's, SG's and IG's on every backbone",
        measured=lead, passed=bool(all(v > 0 for v in lead.values())),
        criterion="CBL(grid) - max(CBL(VG), CBL(SG), CBL(IG)) > 0 for every backbone (empty maps as chance)",
        reported="grid far above the gradient methods"))
    if {"vgg16", "mobilenet_v2", "resnet18"} <= set(fam):
        g = {b: float(cbl.loc[(b, "grid"), "cbl"]) for b in bbs}
        v = fam["vgg16"]
        ok = all(g[v] >= g[fam[o]] + CBL_MARGIN for o in ("mobilenet_v2", "resnet18"))
        claims.append(dict(
            id="s15_grid_localises_best_with_vgg", section="S1.5 / Fig. S10",
            claim="grid saliency localises the bias slightly better with VGG16 than with MobileNetV2 and ResNet18",
            measured=g, passed=bool(ok), criterion="grid CBL of VGG >= grid CBL of MN and of RN",
            reported="slightly better with VGG"))
    return claims


def main(argv: Sequence[str] | None = None) -> int:
    """Train, evaluate and explain the comparison's networks (e.g. on a GPU or a Dask cluster)."""
    from gsutils.cli import parse_with_profile
    from gsutils.cli_commands import command_parser
    from gsutils.experiments.common.executor import executor_or_exit

    ap = command_parser("backbones", prog="python -m gsutils.experiments.grid.backbones")
    a, prof = parse_with_profile(ap, argv)
    with executor_or_exit(ap, a) as (executor, address, workers):
        for res in train_and_evaluate(prof, executor=executor, address=address, workers=workers):
            print(f"{res.run.backbone} {res.run.bias.strength} t{res.run.bias.texture}: "
                  f"digit mIoU {res.digit_miou:.3f}")
    if not a.train_only:
        saliency_results(prof)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
