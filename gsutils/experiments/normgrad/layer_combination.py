"""Combining saliency maps of several layers (Rebuffi et al., 2020, Sec. C: Table 3 and Fig. 1).

Linear approximation and selective NormGrad are computed at the candidate
layers of each classifier (VGG16 ``features.3/8/15/22/29``, ResNet50
``layer1..4``), each map min-max normalised and combined as a weighted sum or
a weighted product (:mod:`gsutils.saliency.combine`). Four weightings, all
computed here (none is typed in):

* **accuracy**: how well a layer's features classify the image. A linear
  probe (multi-label logistic regression on the layer's globally
  average-pooled, standardised activations, L2 penalty
  ``profile.layers.probe_l2``, full-batch L-BFGS) is fitted on the first
  ``profile.layers.probe_train_scenes`` training scenes and measured on the
  held-out test scenes; the weight is the probe's test mAP.
* **feature spread**: the paper describes it as how spread out a layer's
  features are between classes. We measure it on the same held-out pooled
  features as the share of their variance that a class's presence explains,
  averaged over classes: for class ``c``, ``p_c (1 - p_c)`` times the squared
  distance between the mean feature of the scenes with ``c`` and of those
  without it (``p_c``: the share of scenes with ``c``; this is the
  between-group variance of a two-group split), divided by the total
  variance (trace of the covariance). It lies in ``[0, 1]``, is 0 when the
  pooled features do not depend on the labels, and does not change when the
  features are rescaled.
* **linear**: ``1, 2, ..., L`` with depth; **uniform**: equal.

:func:`layer_weights` measures the first two; :func:`combination_run` plays
the pointing game with every single layer and every combination on the same
(test scene, class) pairs as Sec. A; :func:`table3` gives each
combination's gain over the best single layer (all pairs and the difficult
subset).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad.classifier_training import (  # noqa: F401  (gate re-exported)
    check_profile_arch,
    gate,
    classifier_config,
    evaluate_classifier,
)
from gsutils.experiments.normgrad.normgrad_data import STAND_IN, NormGradData
from gsutils.experiments.normgrad.pointing_results import CombinationRun, LayerWeights, PointingHits
from gsutils.experiments.normgrad.pointing_runs import (game_accuracy, num_classes, paired_bootstrap,
                                                        pointing_accuracies, stand_in_hits)
from gsutils.metrics.pointing import SUBSETS, hit_region, is_hit
from gsutils.models.classifiers import CANDIDATE_LAYERS
from gsutils.profiles import Profile
from gsutils.saliency.combine import MODES, combine_maps, linear_weights, uniform_weights
from gsutils.saliency.extract_aggregate import extract_aggregate

#: bump when what these runs compute changes
VERSION = 3  # 3: hits keyed by tuples, (method, layer) and (method, mode, weighting)
#: the methods of Table 3
COMBO_METHODS: tuple[str, ...] = ("linear_approx", "selective_normgrad")
#: the weightings of Table 3, in its order
WEIGHTINGS: tuple[str, ...] = LayerWeights.WEIGHTINGS


def combo_layers(arch: str) -> tuple[str, ...]:
    """The layers that are combined: the candidate layers without the input."""
    return tuple(layer for layer in CANDIDATE_LAYERS[arch] if layer != "input")


@torch.no_grad()
def pooled_features(model: nn.Module, images: torch.Tensor, layers: tuple[str, ...],
                    batch_size: int = 64) -> dict[str, np.ndarray]:
    """``{layer: (N, C_l)}`` globally average-pooled activations of ``images`` ``(N, 3, S, S)``."""
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"unknown layer(s) {missing}; the model has e.g. {list(modules)[1:8]}")
    store: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    device = next(model.parameters()).device

    def hook(name: str):
        return lambda _m, _i, out: store[name].append(out.detach().mean(dim=(2, 3)).cpu().double())

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    try:
        model.eval()
        for i in range(0, len(images), batch_size):
            model(images[i:i + batch_size].to(device))
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(v).numpy() for name, v in store.items()}  # each (N, C_l)


def probe_map(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
              l2: float = 1e-3, iterations: int = 200) -> float:
    """Test mAP of a multi-label logistic-regression probe fitted on ``(train_x, train_y)``.

    Features are standardised with the training split's mean and standard
    deviation; the loss is the mean binary cross-entropy plus ``l2 * ||W||^2``
    (bias not penalised), minimised by full-batch L-BFGS in float64 from zero.
    """
    from gsutils.metrics.multilabel import average_precision

    xtr = torch.as_tensor(train_x, dtype=torch.float64)
    xte = torch.as_tensor(test_x, dtype=torch.float64)
    ytr = torch.as_tensor(train_y, dtype=torch.float64)
    if xtr.ndim != 2 or xtr.shape[0] != ytr.shape[0]:
        raise ValueError(f"train_x must be (N, D) with one row per label row, got {tuple(xtr.shape)} "
                         f"and labels {tuple(ytr.shape)}")
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-8)
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    w = torch.zeros(xtr.shape[1], ytr.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(ytr.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xtr @ w + b, ytr) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        scores = xte @ w + b  # (N_test, C)
    return float(np.nanmean(average_precision(scores, torch.as_tensor(test_y))))


def feature_spread(features: np.ndarray, labels: np.ndarray) -> float:
    """The share of the pooled features' variance a class explains, mean over classes (module docstring).

    ``mean_c p_c (1 - p_c) ||mean(f | c) - mean(f | not c)||^2 / trace(cov(f))``
    over the classes present in some but not all scenes.
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if f.ndim != 2 or y.ndim != 2 or f.shape[0] != y.shape[0]:
        raise ValueError(f"features (N, D) and labels (N, C) must have the same N, got {f.shape} and {y.shape}")
    total = float(f.var(axis=0).sum())
    if total <= 0:
        return 0.0
    shares = []
    for c in range(y.shape[1]):
        p = float(y[:, c].mean())
        if 0 < p < 1:
            d = f[y[:, c]].mean(0) - f[~y[:, c]].mean(0)
            shares.append(p * (1 - p) * float(d @ d) / total)
    if not shares:
        raise ValueError("no class is present in some but not all scenes: the spread is undefined")
    return float(np.mean(shares))


def weights_config(profile: Profile, arch: str, data: NormGradData = STAND_IN) -> dict[str, Any]:
    check_profile_arch(profile, arch)
    la = profile.layers
    classifier = classifier_config(profile, arch) if not data.is_voc else {"arch": arch, **data.key(),
                                                                           "side": int(profile.normgrad.image_size)}
    return {"version": VERSION, "classifier": classifier, "layers": list(combo_layers(arch)),
            "probe_train_scenes": int(la.probe_train_scenes), "probe_l2": float(la.probe_l2)}


def layer_weights(profile: Profile, arch: str, *, progress: bool = False,
                  data: NormGradData = STAND_IN) -> LayerWeights:
    """Fig. 1: the four weightings of ``arch``'s combined layers (cached).

    Returns
    -------
    LayerWeights
        ``layers``; ``accuracy`` (each probe's test mAP), ``spread``,
        ``linear``, ``uniform`` (raw, one per layer); ``test_map`` (the
        classifier's own); ``n_probe_train``, ``n_probe_test``; ``data``.
        Stored as :meth:`LayerWeights.as_dict`.
    """
    def compute() -> dict[str, Any]:
        model = data.model(profile, arch, progress=progress)
        layers = combo_layers(arch)
        xtr, ytr = data.probe_train(profile, int(profile.layers.probe_train_scenes))
        te = data.test(profile)
        ftr = pooled_features(model, xtr, layers)
        fte = pooled_features(model, te.images, layers)
        acc = [probe_map(ftr[l], ytr.numpy(), fte[l], te.labels.numpy(), float(profile.layers.probe_l2))
               for l in layers]
        spread = [feature_spread(fte[l], te.labels.numpy()) for l in layers]
        n = len(layers)
        return LayerWeights(arch=arch, layers=layers, accuracy=acc, spread=spread,
                            linear=linear_weights(n).tolist(), uniform=uniform_weights(n).tolist(),
                            test_map=evaluate_classifier(model, te)["mAP"], n_probe_train=int(xtr.shape[0]),
                            n_probe_test=len(te), data=data.label()).as_dict()

    return LayerWeights.from_dict(Store(profile.results_dir).get_or_compute(
        "normgrad_layer_weights", weights_config(profile, arch, data), compute))


def combo_key(method: str, mode: str, weighting: str) -> tuple[str, str, str]:
    """The hits key of a combination: ``(method, mode, weighting)`` (a single layer's is ``(method, layer)``)."""
    return (method, mode, weighting)


def score_combinations(model: nn.Module, arch: str, x: torch.Tensor, target: torch.Tensor,
                       gts: list[torch.Tensor], tolerance: int,
                       weights: dict[str, list[float]]) -> dict[tuple[str, ...], list[bool]]:
    """Pointing hits of every single layer and every combination for a batch of pairs.

    ``x`` ``(B, 3, S, S)``, ``target`` ``(B,)``, ``gts`` ``B`` masks ``(S, S)``;
    ``weights``: ``{weighting: one raw weight per combined layer}``.
    Returns ``{(method, layer) | (method, mode, weighting): [bool] * B}``.
    """
    import torch.nn.functional as F

    layers = combo_layers(arch)
    size = tuple(gts[0].shape)
    maps = extract_aggregate(model, x, target, list(layers), list(COMBO_METHODS), resize=False)
    regions = [hit_region(g, tolerance) for g in gts]
    out: dict[tuple[str, ...], list[bool]] = {}

    def score(key: tuple[str, ...], m: torch.Tensor) -> None:
        m = m.cpu()
        out[key] = [is_hit(m[i], g, region=r) for i, (g, r) in enumerate(zip(gts, regions))]

    for method in COMBO_METHODS:
        for layer in layers:
            m = F.interpolate(maps[method, layer], size=size, mode="bilinear", align_corners=False)
            score((method, layer), m)
        per_layer = [maps[method, layer] for layer in layers]
        for mode in MODES:
            for weighting, w in weights.items():
                score(combo_key(method, mode, weighting), combine_maps(per_layer, w, mode, size=size))
    return out


def combination_config(profile: Profile, arch: str, data: NormGradData = STAND_IN) -> dict[str, Any]:
    return {**weights_config(profile, arch, data), "tolerance": data.tolerance(profile),
            "methods": list(COMBO_METHODS), "weightings": list(WEIGHTINGS), "modes": list(MODES)}


def combination_run(profile: Profile, arch: str, *, progress: bool = False,
                    data: NormGradData = STAND_IN) -> CombinationRun:
    """The pointing game of single layers and of every combination (Table 3), cached.

    Same (test scene, class) pairs as :func:`gsutils.experiments.normgrad.pointing_runs.pointing_game_run`
    (VOC-difficult-only pairs left out). Returns a :class:`CombinationRun`, which
    :func:`gsutils.experiments.normgrad.pointing_runs.pointing_accuracies` and
    :func:`paired_bootstrap` accept, with its ``weights`` (:func:`layer_weights`);
    stored as :meth:`CombinationRun.as_dict`.
    """

    def compute() -> dict[str, Any]:
        w = layer_weights(profile, arch, progress=progress, data=data)
        weights = {k: list(w.weighting(k)) for k in WEIGHTINGS}
        _, _, pairs, hits = stand_in_hits(
            profile, arch, lambda m, x, t, g, tol: score_combinations(m, arch, x, t, g, tol, weights),
            "combinations", progress, data)
        return CombinationRun(arch=arch, layers=combo_layers(arch), image_index=[p.index for p in pairs],
                              class_id=[p.class_id for p in pairs], difficult=[bool(p.difficult) for p in pairs],
                              hits=hits, weights=w, test_map=w.test_map).as_dict()

    return CombinationRun.from_dict(Store(profile.results_dir).get_or_compute(
        "normgrad_layer_combination", combination_config(profile, arch, data), compute))


def _accuracy(run: PointingHits, key: tuple[str, ...], subset: str) -> float:
    return 100 * game_accuracy(run.hits[key], run.class_id, run.difficult, subset, num_classes(run))


def single_layer_table(run: PointingHits):
    """Pointing accuracy (%) of each method at each combined layer (rows: method; columns: subset, layer)."""
    single = {k: v for k, v in run.hits.items() if len(k) == 2}
    return pointing_accuracies(dataclasses.replace(run, hits=single))


def table3(run: PointingHits, *, bootstrap: int = 0, seed: int = 0):
    """Table 3 for one architecture: each combination's accuracy gain over the best single layer.

    The best single layer is chosen per method and subset. With ``bootstrap > 0``
    the table also holds the 95 % paired bootstrap interval of the gain on all
    pairs (test scenes resampled ``bootstrap`` times).

    Returns
    -------
    pandas.DataFrame
        One row per (method, mode, weighting); columns ``gain all``,
        ``gain difficult`` (percentage points), ``combined all`` / ``combined difficult``
        (%), ``best layer all`` and, with the bootstrap, ``low`` / ``high``.
    """
    import pandas as pd

    single = single_layer_table(run)
    rows = []
    for method in COMBO_METHODS:
        for mode in MODES:
            for weighting in WEIGHTINGS:
                key = combo_key(method, mode, weighting)
                row: dict[str, Any] = {"method": method, "mode": mode, "weighting": weighting}
                for subset in SUBSETS:
                    on = single.loc[method, subset]
                    best = on.index[int(np.argmax(on.to_numpy()))]
                    comb = _accuracy(run, key, subset)
                    row[f"combined {subset}"] = comb
                    row[f"gain {subset}"] = comb - float(on[best])
                    row[f"best layer {subset}"] = best
                if bootstrap:
                    best = row["best layer all"]
                    d = paired_bootstrap(run, key, (method, best), "all", n_boot=bootstrap, seed=seed)
                    row["low"], row["high"] = d["low"], d["high"]
                rows.append(row)
    return pd.DataFrame(rows).set_index(["method", "mode", "weighting"])


def depth_trend(values: Any) -> float:
    """Spearman rank correlation of per-layer values with depth (shallow to deep)."""
    from scipy.stats import spearmanr

    v = np.asarray(values, dtype=float)
    return float(spearmanr(np.arange(len(v)), v).statistic)


def positive_gains(tables: dict[str, Any]) -> dict[str, int]:
    """Per weighting, how many Table 3 cells (network x method x mode x subset) have a gain above 0."""
    out = {}
    for w in WEIGHTINGS:
        out[w] = sum(int((t.xs(w, level="weighting")[[f"gain {s}" for s in SUBSETS]] > 0).to_numpy().sum())
                     for t in tables.values())
    return out


def main(argv: Any = None) -> None:
    """``python -m gsutils layers``: compute (or load) sections C, D and E for the profile's networks."""
    from gsutils.cli import parse_with_profile
    from gsutils.cli_commands import command_parser
    from gsutils.experiments.normgrad.meta_saliency import meta_training_run
    from gsutils.experiments.normgrad.randomisation import randomisation_curves, randomisation_run

    parser = command_parser("layers")
    args, profile = parse_with_profile(parser, argv)
    for arch in args.arch:
        w = layer_weights(profile, arch, progress=True)
        print(f"{arch}: test mAP {w.test_map:.3f}; probe mAP per layer "
              + ", ".join(f"{l} {v:.3f}" for l, v in zip(w.layers, w.accuracy)))
        t = table3(combination_run(profile, arch, progress=True))
        best = t["gain all"].idxmax()
        print(f"{arch}: best combination {best} gains {t.loc[best, 'gain all']:.1f} points (all pairs)")
        curves = randomisation_curves(randomisation_run(profile, arch, progress=True))
        print(f"{arch}: Spearman at the last randomisation stage: "
              + ", ".join(f"{k} {v:.2f}" for k, v in curves.iloc[-1].items()))
        meta = meta_training_run(profile, arch, progress=True)
        print(f"{arch}: meta-saliency over training " + ("computed" if meta is not None
                                                          else "not available (no epoch snapshots)"))


__all__ = [
    "COMBO_METHODS",
    "WEIGHTINGS",
    "combo_layers",
    "pooled_features",
    "probe_map",
    "feature_spread",
    "layer_weights",
    "combo_key",
    "score_combinations",
    "combination_run",
    "single_layer_table",
    "table3",
    "gate",
    "depth_trend",
    "positive_gains",
]


if __name__ == "__main__":
    main()
