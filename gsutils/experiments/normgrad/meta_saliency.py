"""Meta-saliency over training (Rebuffi et al., 2020, Sec. D: Fig. 2, 3 and 4).

* :func:`meta_training_run` (Fig. 2 and 3): for the classifier after every
  training epoch (the snapshots :mod:`gsutils.experiments.normgrad.classifier_training`
  keeps where it trains a network), NormGrad and selective NormGrad maps of
  ``profile.layers.meta_images`` training scenes and as many test
  (validation) scenes, each for its first object's class, plainly and as
  meta-saliency (:func:`gsutils.saliency.meta.meta_saliency`, one descent
  step of size ``profile.layers.meta_lr``). Fig. 2 is the mean Spearman
  correlation between the meta and the plain map per epoch and split; Fig. 3
  the correlation of each epoch's validation meta-maps with the final
  epoch's.
* :func:`meta_examples` (Fig. 4): plain and meta maps of test scenes for a
  class they contain (positive: descent) and one they do not (negative:
  ascent), with the final network.

Maps are taken at the input and at the last block. The results are typed:
:class:`MetaTrainingRun` (cached in the result store as a ``.pt`` of
:meth:`MetaTrainingRun.as_dict`, the form of the dict it replaces, so cached
entries stay valid), :class:`MetaExamples` and :class:`TrainTestMap`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gsutils.data.scenes import DIGIT_CLASSES
from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad import classifier_training as ct
from gsutils.experiments.normgrad.classifier_snapshots import classifier_snapshot
from gsutils.experiments.normgrad.normgrad_data import STAND_IN, NormGradData, probe_train_split
from gsutils.models.classifiers import CANDIDATE_LAYERS
from gsutils.profiles import Profile
from gsutils.saliency.extract_aggregate import extract_aggregate
from gsutils.saliency.meta import meta_saliency
from gsutils.saliency.randomize import spearman_rows

VERSION = 2  # 2: maps keyed by (method, layer) tuples
#: the methods of Fig. 2 and 3
META_METHODS: tuple[str, ...] = ("normgrad", "selective_normgrad")
SPLITS = ("train", "validation")

#: a map: ``(method, layer)``
MapKey = tuple[str, str]


@dataclass(frozen=True, eq=False)
class MetaTrainingRun:
    """Fig. 2 and 3 for one network: meta-saliency maps over its training epochs (``E`` epochs, ``N`` images).

    Stored (``.pt``) as :meth:`as_dict` and read back with :meth:`from_dict`.
    Compared by identity (it holds tensors).
    """

    #: the network
    arch: str
    #: the epochs, ``1, ..., E``
    epochs: tuple[int, ...]
    #: per split (:data:`SPLITS`), per map: ``(E, N)`` Spearman of the meta map with the plain map
    meta_vs_plain: dict[str, dict[MapKey, torch.Tensor]]
    #: per map: ``(E, N)`` Spearman of each epoch's validation meta map with the final epoch's
    to_final: dict[MapKey, torch.Tensor]

    def __post_init__(self) -> None:
        object.__setattr__(self, "epochs", tuple(int(e) for e in self.epochs))
        # the key objects are kept as they are: the stored pickle shares them between the dicts
        object.__setattr__(self, "meta_vs_plain", {s: {tuple(k): v for k, v in d.items()}
                                                   for s, d in self.meta_vs_plain.items()})
        object.__setattr__(self, "to_final", {tuple(k): v for k, v in self.to_final.items()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetaTrainingRun:
        """From the stored form: one key per field."""
        return cls(arch=str(d["arch"]), epochs=d["epochs"], meta_vs_plain=d["meta_vs_plain"], to_final=d["to_final"])

    def as_dict(self) -> dict[str, Any]:
        """The stored form: the fields by name, ``epochs`` as a list."""
        return {"arch": self.arch, "epochs": list(self.epochs),
                "meta_vs_plain": {s: dict(d) for s, d in self.meta_vs_plain.items()}, "to_final": dict(self.to_final)}


@dataclass(frozen=True, eq=False)
class MetaExamples:
    """Fig. 4: plain and meta maps of ``n`` test scenes for a present and an absent class (side ``S``).

    Compared by identity (it holds tensors).
    """

    #: ``(n, 3, S, S)`` the scenes, RGB in ``[0, 1]``
    rgb: torch.Tensor
    #: per scene: the name of the class explained positively (its first present class)
    present: tuple[str, ...]
    #: per scene: the name of the class explained negatively (the first absent one)
    absent: tuple[str, ...]
    #: per ``("plain" | "meta", "positive" | "negative", method, layer)``: ``(n, S, S)`` maps
    maps: dict[tuple[str, str, str, str], torch.Tensor]

    def __post_init__(self) -> None:
        object.__setattr__(self, "present", tuple(str(c) for c in self.present))
        object.__setattr__(self, "absent", tuple(str(c) for c in self.absent))
        if not len(self.present) == len(self.absent) == len(self.rgb):
            raise ValueError(f"present ({len(self.present)}) and absent ({len(self.absent)}) need one class "
                             f"per scene ({len(self.rgb)})")

    @property
    def n_images(self) -> int:
        """The number of scenes ``n``."""
        return len(self.rgb)


@dataclass(frozen=True)
class TrainTestMap:
    """A classifier's mAP on training scenes and on the test scenes."""

    #: mAP on the first training scenes
    train: float
    #: mAP on the test scenes
    test: float


def meta_layers(arch: str) -> tuple[str, str]:
    """The input and the last block."""
    return ("input", CANDIDATE_LAYERS[arch][-1])


def _first_class(labels: torch.Tensor) -> torch.Tensor:
    """The first present class of each image ``(N, C)`` multi-hot -> ``(N,)``."""
    return labels.float().argmax(dim=1)


def _images(profile: Profile) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    n = int(profile.layers.meta_images)
    xtr, ytr = probe_train_split(profile, n)
    te = ct.test_scenes(profile)
    return {"train": (xtr, _first_class(ytr)), "validation": (te.images[:n], _first_class(te.labels[:n]))}


def _maps(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, arch: str, lr: float):
    layers = list(meta_layers(arch))
    plain = extract_aggregate(model, x, t, layers, list(META_METHODS))
    meta = meta_saliency(model, x, t, layers, list(META_METHODS), lr=lr, positive=True)
    return ({k: v.cpu() for k, v in plain.items()}, {k: v.cpu() for k, v in meta.items()})


def meta_training_config(profile: Profile, arch: str) -> dict[str, Any]:
    ct.check_profile_arch(profile, arch)
    return {"version": VERSION, "classifier": ct.classifier_config(profile, arch), "methods": list(META_METHODS),
            "layers": list(meta_layers(arch)), "images": int(profile.layers.meta_images),
            "meta_lr": float(profile.layers.meta_lr)}


def meta_training_run(profile: Profile, arch: str, *, progress: bool = False,
                      data: NormGradData = STAND_IN) -> MetaTrainingRun | None:
    """Fig. 2 and 3 for ``arch`` (cached); ``None`` when the epoch snapshots are not available.

    Snapshots exist where the classifier was trained by this code (not where
    it was restored from the shipped networks): run
    ``python -m gsutils.experiments.normgrad.classifier_training --profile <p> --retrain``
    to make them.

    Returns
    -------
    MetaTrainingRun or None
        Cached as :meth:`MetaTrainingRun.as_dict`.
    """
    if data.is_voc:  # a published checkpoint comes without the network's states during training
        return None
    store = Store(profile.results_dir)
    config = meta_training_config(profile, arch)
    if store.exists("normgrad_meta_training", config, "pt"):
        return MetaTrainingRun.from_dict(store.load("normgrad_meta_training", config, "pt"))
    epochs = int(profile.normgrad.epochs)
    ct.train_or_load_classifier(profile, arch, progress=progress)
    snaps = [classifier_snapshot(profile, arch, e) for e in range(1, epochs + 1)]
    if any(s is None for s in snaps):
        return None

    def compute() -> dict[str, Any]:
        data = _images(profile)
        lr = float(profile.layers.meta_lr)
        vs: dict[str, dict[str, list[np.ndarray]]] = {s: {} for s in SPLITS}
        metas: dict[str, list[torch.Tensor]] = {}
        for model in snaps:
            device = next(model.parameters()).device
            for split, (x, t) in data.items():
                plain, meta = _maps(model, x.to(device), t.to(device), arch, lr)
                for k in plain:
                    vs[split].setdefault(k, []).append(spearman_rows(meta[k], plain[k]))
                    if split == "validation":
                        metas.setdefault(k, []).append(meta[k])
        to_final = {k: torch.from_numpy(np.stack([spearman_rows(m, v[-1]) for m in v])) for k, v in metas.items()}
        return MetaTrainingRun(
            arch=arch, epochs=range(1, epochs + 1),
            meta_vs_plain={s: {k: torch.from_numpy(np.stack(v)) for k, v in d.items()} for s, d in vs.items()},
            to_final=to_final)

    return MetaTrainingRun.from_dict(store.get_or_compute("normgrad_meta_training", config,
                                                          lambda: compute().as_dict(), fmt="pt"))


def meta_examples(profile: Profile, arch: str, n: int = 2, *, progress: bool = False,
                  data: NormGradData = STAND_IN) -> MetaExamples:
    """Fig. 4: plain and meta maps of ``n`` test scenes for a present and an absent class.

    The absent class is the lowest-numbered class the scene does not contain.
    """
    ct.check_profile_arch(profile, arch)
    model = data.model(profile, arch, progress=progress)
    device = next(model.parameters()).device
    scenes = data.test(profile)
    x = scenes.images[:n].to(device)
    present = _first_class(scenes.labels[:n])
    absent = (scenes.labels[:n] < 0.5).float().argmax(dim=1)
    layers = list(meta_layers(arch))
    lr = float(profile.layers.meta_lr)
    maps: dict[tuple[str, str, str, str], torch.Tensor] = {}
    for kind, t, positive in (("positive", present, True), ("negative", absent, False)):
        plain = extract_aggregate(model, x, t.to(device), layers, list(META_METHODS))
        meta = meta_saliency(model, x, t.to(device), layers, list(META_METHODS), lr=lr, positive=positive)
        for (m, l), v in plain.items():
            maps["plain", kind, m, l] = v[:, 0].cpu()
        for (m, l), v in meta.items():
            maps["meta", kind, m, l] = v[:, 0].cpu()
    names = scenes.class_names
    return MetaExamples(rgb=scenes.rgb(slice(0, n)), present=[names[int(c)] for c in present],
                        absent=[names[int(c)] for c in absent], maps=maps)


def train_test_map(profile: Profile, arch: str, n: int = 200) -> TrainTestMap:
    """The final classifier's mAP on the first ``n`` training scenes and on the test scenes.

    A measure of overfitting: meta-saliency's train/validation difference
    (Fig. 2) presumes the model has learned its training images better.
    """
    from gsutils.data.scenes import SceneSet
    from gsutils.experiments.normgrad.classifier_training import evaluate_classifier

    model = ct.train_or_load_classifier(profile, arch, progress=False)
    x, y = probe_train_split(profile, n)
    train = SceneSet(x, y, tuple(() for _ in range(len(x))), tuple(str(i) for i in range(len(x))), DIGIT_CLASSES)
    return TrainTestMap(train=float(evaluate_classifier(model, train)["mAP"]),
                        test=float(evaluate_classifier(model, ct.test_scenes(profile))["mAP"]))


def meta_curves(run: MetaTrainingRun):
    """Fig. 2 table: mean Spearman(meta, plain) per epoch (rows) and (split, map) (columns)."""
    import pandas as pd

    cols = {(s, *k): np.nanmean(np.asarray(v), axis=1) for s, d in run.meta_vs_plain.items() for k, v in d.items()}
    return pd.DataFrame(cols, index=pd.Index(list(run.epochs), name="epoch"))


def to_final_curves(run: MetaTrainingRun):
    """Fig. 3 table: mean Spearman of each epoch's validation meta map with the final one."""
    import pandas as pd

    return pd.DataFrame({k: np.nanmean(np.asarray(v), axis=1) for k, v in run.to_final.items()},
                        index=pd.Index(list(run.epochs), name="epoch"))


__all__ = [
    "META_METHODS",
    "MetaExamples",
    "MetaTrainingRun",
    "TrainTestMap",
    "meta_layers",
    "meta_training_config",
    "meta_training_run",
    "meta_examples",
    "train_test_map",
    "meta_curves",
    "to_final_curves",
]
