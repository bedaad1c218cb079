"""Cascading weight randomisation of the NormGrad classifiers (Rebuffi et al., 2020, Sec. E, Fig. 5).

For a fixed sample of (test scene, present class) pairs, the classifier is
re-initialised from the top down, one block at a time
(:data:`gsutils.saliency.randomize.RANDOMIZATION_BLOCKS`), and at every stage
linear approximation and selective NormGrad are computed, plainly and as
meta-saliency (:mod:`gsutils.saliency.meta`, one step of size
``profile.layers.meta_lr``), at the input and at the last block. Each stage's
map is compared with the trained model's map of the same kind (plain with
plain, meta with meta) by the Spearman rank correlation (the statistic), as
in Adebayo et al.'s sanity checks, and scored in the pointing game.

Two rankings are kept. The *signed* one ranks the maps' values as they are
(what the chapter's claims use, and Quantus's ``MPRT`` with ``abs=False``);
the *absolute-value* one ranks ``|map|``, the variant Adebayo et al. also
report, which ignores a sign flip. They differ only for maps that take both
signs (linear approximation); selective NormGrad's maps are non-negative, so
its two rankings coincide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad import classifier_training as ct
from gsutils.experiments.normgrad.normgrad_data import STAND_IN, NormGradData
from gsutils.metrics.pointing import hit_region, is_hit
from gsutils.models.classifiers import CANDIDATE_LAYERS
from gsutils.profiles import Profile
from gsutils.saliency.extract_aggregate import extract_aggregate
from gsutils.saliency.meta import meta_saliency
from gsutils.saliency.randomize import RANDOMIZATION_BLOCKS, cascading_randomization, spearman_rows

VERSION = 3  # 2: maps keyed by (kind, method, layer) tuples; 3: the absolute-value ranking too
#: the methods of Fig. 5
RANDOM_METHODS: tuple[str, ...] = ("linear_approx", "selective_normgrad")
#: how many of the sampled pairs keep their maps for the figure
FIGURE_PAIRS = 2


#: a map kind: ``("plain" | "meta", method, layer)``
MapKey = tuple[str, str, str]


@dataclass(frozen=True, eq=False)
class RandomisationRun:
    """Fig. 5 for one network: the maps of a sample of ``P`` pairs as its blocks are randomised from the top.

    Every tensor is indexed by stage first (``"original"``, then the block
    names). Stored (``.pt``) as :meth:`as_dict` and read back with
    :meth:`from_dict`. Compared by identity (it holds tensors).
    """

    #: the network
    arch: str
    #: ``"original"``, then the randomised blocks, top down
    stages: tuple[str, ...]
    #: per map kind: ``(stages, P)`` float64 Spearman correlation with the original map (signed ranking)
    spearman: dict[MapKey, torch.Tensor]
    #: the same for the maps' absolute values
    spearman_abs: dict[MapKey, torch.Tensor]
    #: per map kind: ``(stages, P)`` bool whether the map's maximum hits the object
    hits: dict[MapKey, torch.Tensor]
    #: per map kind: ``(stages, FIGURE_PAIRS, S, S)`` float16 the maps of the first pairs
    figure_maps: dict[MapKey, torch.Tensor]
    #: ``(image index, class)`` of each sampled pair
    pairs: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(str(s) for s in self.stages))
        object.__setattr__(self, "pairs", tuple((int(i), int(c)) for i, c in self.pairs))
        for name in ("spearman", "spearman_abs", "hits", "figure_maps"):
            object.__setattr__(self, name, {tuple(k): v for k, v in getattr(self, name).items()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RandomisationRun:
        """From the stored form: one key per field."""
        return cls(arch=str(d["arch"]), stages=d["stages"], spearman=d["spearman"], spearman_abs=d["spearman_abs"],
                   hits=d["hits"], figure_maps=d["figure_maps"], pairs=d["pairs"])

    def as_dict(self) -> dict[str, Any]:
        """The stored form: the fields by name, ``stages`` and ``pairs`` as lists."""
        return {"arch": self.arch, "stages": list(self.stages), "spearman": dict(self.spearman),
                "spearman_abs": dict(self.spearman_abs), "hits": dict(self.hits),
                "figure_maps": dict(self.figure_maps), "pairs": list(self.pairs)}


def random_layers(arch: str) -> tuple[str, str]:
    """The layers whose maps are compared: the input and the last block."""
    return ("input", CANDIDATE_LAYERS[arch][-1])


def sample_pairs(profile: Profile, n: int, data: NormGradData = STAND_IN) -> list[Any]:
    """``n`` (test scene, class) pairs drawn without replacement with the profile's seed, in scene order."""
    pairs = [p for p in data.test(profile).pairs() if not p.skip]
    rng = np.random.default_rng([int(profile.seed), 5])
    pick = np.sort(rng.choice(len(pairs), size=min(n, len(pairs)), replace=False))
    return [pairs[i] for i in pick]


def randomisation_config(profile: Profile, arch: str, data: NormGradData = STAND_IN) -> dict[str, Any]:
    ct.check_profile_arch(profile, arch)
    classifier = ct.classifier_config(profile, arch) if not data.is_voc else {
        "arch": arch, **data.key(), "side": int(profile.normgrad.image_size)}
    return {"version": VERSION, "classifier": classifier,
            "blocks": [[n, list(p)] for n, p in RANDOMIZATION_BLOCKS[arch]],
            "layers": list(random_layers(arch)), "methods": list(RANDOM_METHODS),
            "pairs": int(profile.layers.random_pairs), "meta_lr": float(profile.layers.meta_lr),
            "tolerance": data.tolerance(profile), "seed": int(profile.seed)}


def _maps(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, layers: list[str],
          meta_lr: float) -> dict[tuple[str, str, str], torch.Tensor]:
    """``{("plain" | "meta", method, layer): (P, 1, S, S)}`` on the CPU."""
    out = {}
    plain = extract_aggregate(model, x, target, layers, list(RANDOM_METHODS))
    meta = meta_saliency(model, x, target, layers, list(RANDOM_METHODS), lr=meta_lr, positive=True)
    for (method, layer), m in plain.items():
        out["plain", method, layer] = m.cpu()
    for (method, layer), m in meta.items():
        out["meta", method, layer] = m.cpu()
    return out


def randomisation_run(profile: Profile, arch: str, *, progress: bool = False,
                      data: NormGradData = STAND_IN) -> RandomisationRun:
    """Fig. 5 for ``arch`` (cached); ``data``: the stand-in (default) or a VOC directory and checkpoint.

    Returns
    -------
    RandomisationRun
        ``stages`` (``"original"`` then the block names); ``spearman``:
        ``{key: (stages, P) array}`` per key ``("plain" | "meta", method,
        layer)``, the signed ranking; ``spearman_abs``: the same for the
        absolute values of the maps; ``hits``: the same keys, pointing hits
        ``(stages, P)``; ``figure_maps``: the maps of the first
        :data:`FIGURE_PAIRS` pairs, ``{key: (stages, FIGURE_PAIRS, S, S)}``;
        ``pairs``: ``(image index, class)`` of the sample.
    """
    from tqdm.auto import tqdm

    def compute() -> dict[str, Any]:
        model = data.model(profile, arch, progress=progress)
        device = next(model.parameters()).device
        scenes = data.test(profile)
        pairs = sample_pairs(profile, int(profile.layers.random_pairs), data)
        x = scenes.images[torch.tensor([p.index for p in pairs])].to(device)  # (P, 3, S, S)
        target = torch.tensor([p.class_id for p in pairs], device=device)  # (P,)
        gts = [scenes.gt_mask(p.index, p.class_id) for p in pairs]
        regions = [hit_region(g, data.tolerance(profile)) for g in gts]
        layers = list(random_layers(arch))
        lr = float(profile.layers.meta_lr)
        stages = ["original"]
        original = _maps(model, x, target, layers, lr)
        per_stage = [original]
        blocks = RANDOMIZATION_BLOCKS[arch]
        for name, randomised in tqdm(cascading_randomization(model, blocks, seed=int(profile.seed)),
                                     total=len(blocks), desc=f"randomise {arch}", disable=not progress, leave=False):
            stages.append(name)
            per_stage.append(_maps(randomised.eval(), x, target, layers, lr))
        spearman, spearman_abs, hits, figure = {}, {}, {}, {}
        for key in original:
            spearman[key] = torch.from_numpy(
                np.stack([spearman_rows(original[key], s[key]) for s in per_stage]))  # (stages, P)
            spearman_abs[key] = torch.from_numpy(
                np.stack([spearman_rows(original[key].abs(), s[key].abs()) for s in per_stage]))  # (stages, P)
            hits[key] = torch.tensor([[is_hit(s[key][i], g, region=r) for i, (g, r) in enumerate(zip(gts, regions))]
                                      for s in per_stage])  # (stages, P) bool
            figure[key] = torch.stack([s[key][:FIGURE_PAIRS, 0] for s in per_stage]).half()  # (stages, F, S, S)
        return RandomisationRun(arch=arch, stages=stages, spearman=spearman, spearman_abs=spearman_abs,
                                hits=hits, figure_maps=figure,
                                pairs=[(int(p.index), int(p.class_id)) for p in pairs]).as_dict()

    return RandomisationRun.from_dict(Store(profile.results_dir).get_or_compute(
        "normgrad_randomisation", randomisation_config(profile, arch, data), compute, fmt="pt"))


def randomisation_curves(run: RandomisationRun, *, absolute: bool = False):
    """Mean Spearman correlation with the original map per stage (rows: stage; columns: map kind).

    ``absolute``: rank the maps' absolute values instead of their signed values.
    """
    import pandas as pd

    by_kind = run.spearman_abs if absolute else run.spearman
    return pd.DataFrame({k: np.nanmean(np.asarray(v), axis=1) for k, v in by_kind.items()},
                        index=list(run.stages))


def ranking_comparison(run: RandomisationRun, tol: float = 1e-9):
    """The signed and absolute-value curves side by side, for the map kinds where they disagree.

    Returns
    -------
    (pandas.DataFrame, list)
        The curves (columns ``(kind, method, layer, "signed" | "absolute")``) of the map kinds
        whose two curves differ by more than ``tol`` at some stage, and the map kinds whose
        curves coincide.
    """
    import pandas as pd

    signed, absolute = randomisation_curves(run), randomisation_curves(run, absolute=True)
    differ = [k for k in signed.columns
              if np.nanmax(np.abs(signed[k].to_numpy() - absolute[k].to_numpy()), initial=0.0) > tol]
    same = [k for k in signed.columns if k not in differ]
    frame = pd.DataFrame({(*k, variant): c[k] for k in differ
                          for variant, c in (("signed", signed), ("absolute", absolute))}, index=signed.index)
    return frame, same


def randomisation_hits(run: RandomisationRun):
    """Share of sampled pairs whose map points at the object (%), per stage and map kind."""
    import pandas as pd

    return pd.DataFrame({k: 100 * np.asarray(v).astype(float).mean(axis=1) for k, v in run.hits.items()},
                        index=list(run.stages))


__all__ = [
    "RANDOM_METHODS",
    "RandomisationRun",
    "random_layers",
    "sample_pairs",
    "randomisation_config",
    "randomisation_run",
    "randomisation_curves",
    "ranking_comparison",
    "randomisation_hits",
]
