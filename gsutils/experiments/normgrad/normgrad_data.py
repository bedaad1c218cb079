"""Where NormGrad sections C, D and E take their classifier and scenes from.

By default the stand-in: the profile's multi-digit scenes and the classifier
this project trains on them (:mod:`gsutils.experiments.normgrad.classifier_training`).
With a VOC-format directory and a VOC-trained checkpoint (e.g. TorchRay's
``vgg16_voc-b050e8c3.pth.tar``), the same analyses run on real images:

* the test scenes are VOC's ``test`` image set, the probes of the accuracy
  weighting train on the first ``n`` images of ``trainval``;
* every image is resized to ``profile.normgrad.image_size`` squared and its
  boxes mapped with it (:func:`gsutils.data.scenes.load_voc_split`), so the
  scenes batch like the stand-in's. Section A's VOC path keeps the aspect
  ratio and scores maps at the original size (TorchRay's protocol); C, D and E
  compare maps and combinations of the same network on the same inputs, for
  which one square size is enough;
* the pointing tolerance is the papers' 15 px scaled with the side,
  ``round(15 * side / 500)``, as the stand-in profiles do;
* published checkpoints are not gated (as in section A): their test mAP is
  reported, not required.

:func:`normgrad_data` builds the description from a page's ``voc_root`` and
``checkpoint_dir`` parameters (:func:`torchray_checkpoint` finds the
checkpoint); :meth:`NormGradData.key` enters the result store's keys, so
stand-in and VOC results never mix. :func:`probe_train_split` is the
stand-in's share of training scenes the layer probes of section C learn from.

:func:`open_classifiers` is what a NormGrad chapter (A, C, D, E) opens after
its ledger: per network the data, the classifier's test mAP
(:func:`classifier_test_map`, cached) and the gate of the depth claims
(:func:`classifier_gate`), as one :class:`NormGradClassifiers`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gsutils.claims import Gate
from gsutils.data.scenes import DIGIT_CLASSES, SceneSet, load_voc_split
from gsutils.data.voc import VOC_CLASSES
from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad.classifier_training import (check_profile_arch, classifier_config,
                                                              evaluate_classifier, gate, no_gate, scenes_root,
                                                              test_scenes, train_or_load_classifier)
from gsutils.io import atomic_write_text
from gsutils.models.classifiers import IMAGENET_NORMALIZATION
from gsutils.profiles import Profile

__all__ = ["NormGradData", "STAND_IN", "normgrad_data", "classifier_gate", "probe_train_split",
           "torchray_checkpoint", "classifier_test_map", "NormGradClassifiers", "open_classifiers"]

#: the papers' pointing tolerance on VOC's ~500 px images
VOC_TOLERANCE_PX = 15
#: the side VOC's tolerance refers to
VOC_SIDE_PX = 500


def probe_train_split(profile: Profile, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training scenes: normalised images ``(n, 3, S, S)`` and labels ``(n, 10)``."""
    root = scenes_root(profile)
    split = "probe_train"
    ids = (root / "ImageSets" / "Main" / "train.txt").read_text().split()[:n]
    # a VOC image set holding the first n training ids, written once beside the others
    path = root / "ImageSets" / "Main" / f"{split}_{n}.txt"
    if not path.is_file() or path.read_text().split() != ids:
        atomic_write_text(path, "\n".join(ids) + "\n")
    s = load_voc_split(root, f"{split}_{n}", DIGIT_CLASSES, normalization=IMAGENET_NORMALIZATION)
    return s.images, s.labels


def torchray_checkpoint(checkpoint_dir: str | os.PathLike, arch: str, dataset: str = "voc") -> Path:
    """The TorchRay checkpoint of ``arch`` for ``dataset`` in a folder (``<arch>_<dataset>*.pth*``)."""
    folder = Path(checkpoint_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint_dir {str(folder)!r} is not a folder")
    if dataset not in ("voc", "coco"):
        raise ValueError(f"dataset must be 'voc' or 'coco', got {dataset!r}")
    found = sorted(folder.glob(f"{arch}_{dataset}*.pth*"))
    found = [f for f in found if not f.name.endswith(".sha256")]
    if not found:
        raise FileNotFoundError(
            f"no {arch}_{dataset}*.pth* in {str(folder)!r} (TorchRay's files are named like "
            f"vgg16_voc-b050e8c3.pth.tar); present: {sorted(p.name for p in folder.iterdir())}")
    return found[0]


@dataclass(frozen=True)
class NormGradData:
    """The stand-in (``voc_root is None``) or a VOC directory with a VOC-trained checkpoint."""

    voc_root: str | None = None
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if (self.voc_root is None) != (self.checkpoint is None):
            raise ValueError("a VOC directory needs the checkpoint of a VOC-trained classifier and vice versa; "
                             f"got voc_root={self.voc_root!r}, checkpoint={self.checkpoint!r}")
        if self.voc_root is not None:
            root = Path(self.voc_root).expanduser()
            if not (root / "ImageSets" / "Main").is_dir():
                raise FileNotFoundError(f"voc_root {str(root)!r} has no ImageSets/Main; give the folder holding "
                                        "Annotations/, JPEGImages/ and ImageSets/ (e.g. .../VOCdevkit/VOC2007)")
            if not Path(self.checkpoint).expanduser().is_file():
                raise FileNotFoundError(f"checkpoint {self.checkpoint!r} is not a file")

    @property
    def is_voc(self) -> bool:
        return self.voc_root is not None

    def label(self) -> str:
        return "stand-in" if not self.is_voc else f"VOC at {self.voc_root}"

    def key(self) -> dict[str, Any]:
        """What enters the result store's keys (nothing for the stand-in, so its keys stay as they were)."""
        if not self.is_voc:
            return {}
        ck = Path(self.checkpoint).expanduser().resolve()
        return {"voc_root": str(Path(self.voc_root).expanduser().resolve()), "checkpoint": str(ck),
                "checkpoint_bytes": ck.stat().st_size}

    def tolerance(self, profile: Profile) -> int:
        if not self.is_voc:
            return int(profile.normgrad.tolerance)
        return max(1, round(VOC_TOLERANCE_PX * int(profile.normgrad.image_size) / VOC_SIDE_PX))

    def class_names(self) -> tuple[str, ...]:
        return tuple(VOC_CLASSES) if self.is_voc else DIGIT_CLASSES

    def model(self, profile: Profile, arch: str, *, progress: bool = False) -> nn.Module:
        """The classifier in eval mode on the profile's device."""
        if not self.is_voc:
            return train_or_load_classifier(profile, arch, progress=progress)
        from gsutils.models.classifiers import build_classifier  # looked up here: tests narrow it

        model = build_classifier(arch, len(VOC_CLASSES), checkpoint=self.checkpoint)
        return model.to(torch.device(profile.device)).eval()

    def test(self, profile: Profile) -> SceneSet:
        """The test scenes, normalised as the classifier expects."""
        if not self.is_voc:
            return test_scenes(profile)
        return self._split(profile, "test")

    def probe_train(self, profile: Profile, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` training scenes: normalised images ``(n, 3, S, S)`` and multi-hot labels."""
        if not self.is_voc:
            return probe_train_split(profile, n)
        s = self._split(profile, "trainval")
        return s.images[:n], s.labels[:n]

    def _split(self, profile: Profile, split: str) -> SceneSet:
        return load_voc_split(Path(self.voc_root).expanduser(), split, VOC_CLASSES,
                              normalization=IMAGENET_NORMALIZATION, side=int(profile.normgrad.image_size))


#: the default: the profile's stand-in
STAND_IN = NormGradData()


def normgrad_data(arch: str, voc_root: str = "", checkpoint_dir: str = "") -> NormGradData:
    """From a page's parameters: empty ``voc_root`` is the stand-in; else ``arch``'s TorchRay checkpoint in ``checkpoint_dir``."""
    if not voc_root:
        return STAND_IN
    if not checkpoint_dir:
        raise ValueError(f"voc_root={voc_root!r} was given without checkpoint_dir, the folder holding "
                         "TorchRay's VOC checkpoints (vgg16_voc-*.pth.tar, resnet50_voc-*.pth.tar)")
    return NormGradData(str(voc_root), str(torchray_checkpoint(checkpoint_dir, arch, "voc")))


def classifier_gate(profile: Profile, test_maps: dict[str, float], data: dict[str, NormGradData]) -> Gate:
    """The gate of the depth claims: the stand-in classifiers' test mAP; published VOC checkpoints are not gated."""
    ours = {a: m for a, m in test_maps.items() if not data[a].is_voc}
    if not ours:
        return no_gate("published VOC checkpoints: no gate (test mAP "
                       + ", ".join(f"{a} {m:.3f}" for a, m in test_maps.items()) + ")", test_maps)
    return gate(profile, ours)


#: the result store's kind of :func:`classifier_test_map`
TEST_MAP_KIND = "normgrad_classifier_test_map"
TEST_MAP_VERSION = 1


def classifier_test_map_config(profile: Profile, arch: str, data: NormGradData = STAND_IN) -> dict[str, Any]:
    """Everything that determines :func:`classifier_test_map`: the classifier (with its scenes) or the VOC run."""
    check_profile_arch(profile, arch)
    classifier = (classifier_config(profile, arch) if not data.is_voc
                  else {"arch": arch, **data.key(), "side": int(profile.normgrad.image_size)})
    return {"version": TEST_MAP_VERSION, "classifier": classifier}


def classifier_test_map(profile: Profile, arch: str, data: NormGradData = STAND_IN) -> float:
    """The mAP of ``arch``'s classifier on ``data``'s test scenes (cached), the number the gate reads.

    The classifier is the one :meth:`NormGradData.model` gives (the stand-in's
    restored from the shipped network, or trained when none matches; else the
    VOC checkpoint), the scenes :meth:`NormGradData.test`'s: on the stand-in the
    same evaluation the pointing game and the layer weights record beside
    their results.
    """
    def compute() -> dict[str, Any]:
        model = data.model(profile, arch, progress=False)
        return {"arch": arch, "test_map": evaluate_classifier(model, data.test(profile))["mAP"],
                "data": data.label()}

    config = classifier_test_map_config(profile, arch, data)
    record = Store(profile.results_dir).get_or_compute(TEST_MAP_KIND, config, compute)
    return float(record["test_map"])


@dataclass(frozen=True)
class NormGradClassifiers:
    """The classifiers a NormGrad chapter explains, as :func:`open_classifiers` opens them."""

    #: the networks, in the profile's order
    archs: tuple[str, ...]
    #: per network: the stand-in or the VOC directory with its checkpoint
    data: dict[str, NormGradData] = field(repr=False)
    #: per network: the classifier's test mAP (:func:`classifier_test_map`)
    test_maps: dict[str, float]
    #: the gate of the depth claims (:func:`classifier_gate`)
    gate: Gate

    def pointing_args(self, arch: str) -> dict[str, Any]:
        """Keyword arguments of section A's ``pointing_game_run`` for ``arch``: ``{}`` on the stand-in."""
        d = self.data[arch]
        return {"voc_root": d.voc_root, "checkpoint": d.checkpoint} if d.is_voc else {}


def open_classifiers(profile: Profile, voc_root: str = "", checkpoint_dir: str = "") -> NormGradClassifiers:
    """A NormGrad chapter's classifiers from its parameters: the data, the test mAPs and the gate.

    Empty ``voc_root`` (the default): the stand-in's scenes and the shipped
    classifiers (restored on first use), gated on their test mAP
    (``profile.normgrad.gate_map``). Otherwise each network's TorchRay VOC
    checkpoint in ``checkpoint_dir`` with VOC's test images; published
    checkpoints are not gated. The test mAPs are cached, so a chapter after
    the first only reads them.
    """
    archs = tuple(profile.normgrad.archs)
    data = {arch: normgrad_data(arch, voc_root, checkpoint_dir) for arch in archs}
    maps = {arch: classifier_test_map(profile, arch, data[arch]) for arch in archs}
    return NormGradClassifiers(archs=archs, data=data, test_maps=maps, gate=classifier_gate(profile, maps, data))
