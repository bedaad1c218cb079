"""Cityscapes in its native on-disk format.

The layout (Cordts et al., 2016), as the official archives unpack::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json

Files are listed and read with torchvision's :class:`~torchvision.datasets.Cityscapes`;
the label table (ids, trainIds, names, colours) and the rasterisation of the
polygon files are cityscapesscripts' (``helpers.labels``,
``preparation.json2labelImg``, ``preparation.json2instanceImg``). Samples come
out in the 19 *train* classes (``trainId`` 0..18, 255 = ignored), the classes
networks are trained and evaluated on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE",
    "TRAIN_CLASSES",
    "CityscapesSample",
    "CityscapesScenes",
    "class_colors",
    "id_to_train_id",
    "rasterize_polygons",
    "validate_polygons",
]

#: trainId of pixels that are not evaluated
IGNORE = 255


def _labels() -> list[Any]:
    from cityscapesscripts.helpers.labels import labels

    return list(labels)


def _train_labels() -> list[Any]:
    out = sorted((lab for lab in _labels() if 0 <= lab.trainId < IGNORE), key=lambda lab: lab.trainId)
    return out


#: the 19 train classes' names, indexed by trainId
TRAIN_CLASSES: tuple[str, ...] = tuple(lab.name for lab in _train_labels())


def class_colors() -> np.ndarray:
    """``(19, 3)`` uint8: the official colour of each train class."""
    return np.array([lab.color for lab in _train_labels()], dtype=np.uint8)


def _id_lut() -> np.ndarray:
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for lab in _labels():
        if 0 <= lab.id < 256:
            lut[lab.id] = lab.trainId if 0 <= lab.trainId < IGNORE else IGNORE
    return lut


def id_to_train_id(label_ids: np.ndarray) -> np.ndarray:
    """Map a ``labelIds`` image to trainIds (unknown and ignored ids -> 255)."""
    a = np.asarray(label_ids)
    if a.dtype.kind not in "iu":
        raise TypeError(f"label_ids must be an integer array, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"label_ids must lie in [0, 255] (Cityscapes labelIds), got "
                         f"[{a.min()}, {a.max()}]")
    return _id_lut()[a.astype(np.int64)]


def validate_polygons(annotation: dict[str, Any], source: str = "<polygon json>") -> None:
    """Check a ``gtFine_polygons.json`` dict: size, objects, and every label known.

    Raises
    ------
    ValueError
        A missing key, or a label that is not in cityscapesscripts' table
        (``<class>group`` counts as ``<class>``), naming the file and the label.
    """
    from cityscapesscripts.helpers.labels import name2label

    for key in ("imgHeight", "imgWidth", "objects"):
        if key not in annotation:
            raise ValueError(f"{source}: a Cityscapes polygon file needs the key {key!r}; "
                             f"found {sorted(annotation)}")
    for i, obj in enumerate(annotation["objects"]):
        label = obj.get("label")
        name = label[: -len("group")] if (label not in name2label and str(label).endswith("group")) else label
        if name not in name2label:
            known = ", ".join(sorted(n for n in name2label if n))
            raise ValueError(
                f"{source}: object {i} has the label {label!r}, which is not a Cityscapes label. "
                f"Use one of cityscapesscripts' labels ({known}), optionally with the suffix "
                "'group', or fix the annotation")
        poly = obj.get("polygon")
        if not isinstance(poly, list) or len(poly) < 3:
            raise ValueError(f"{source}: object {i} ({label!r}) needs a 'polygon' of at least 3 "
                             f"[x, y] points, got {poly!r}")


def rasterize_polygons(annotation: dict[str, Any], source: str = "<polygon json>") -> tuple[np.ndarray, np.ndarray]:
    """Rasterise a polygon annotation with cityscapesscripts.

    Returns ``(label_ids, instance_ids)``: ``(H, W)`` uint8 labelIds and
    ``(H, W)`` int32 instanceIds (``id * 1000 + k`` for classes with instances,
    the plain id for groups and stuff), exactly as ``json2labelImg`` and
    ``json2instanceImg`` write them.
    """
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import createLabelImage

    validate_polygons(annotation, source)
    ann = Annotation()
    ann.fromJsonText(json.dumps(annotation))
    label = np.asarray(createLabelImage(ann, "ids"), dtype=np.uint8)
    inst = np.asarray(createInstanceImage(ann, "ids"), dtype=np.int32)
    return label, inst


@dataclass
class CityscapesSample:
    """One Cityscapes frame.

    Attributes
    ----------
    name:
        ``<city>_<seq>_<frame>``.
    image:
        ``(3, H, W)`` float32 RGB in ``[0, 1]``.
    label:
        ``(H, W)`` int64 trainIds (255 = ignored).
    instance:
        ``(H, W)`` int64 instanceIds (as stored; 0 where unlabelled).
    """

    name: str
    image: torch.Tensor
    label: torch.Tensor
    instance: torch.Tensor


class CityscapesScenes(torch.utils.data.Dataset):
    """A split of a Cityscapes-format folder, read with torchvision's ``Cityscapes``.

    Parameters
    ----------
    root:
        The folder holding ``leftImg8bit/`` and ``gtFine/``.
    split:
        ``"train"``, ``"val"`` or ``"test"``.
    size:
        Optional ``(H, W)`` to resize to (image: area/bilinear, labels: nearest).
    from_polygons:
        Rasterise the labels from ``*_gtFine_polygons.json`` (checking every
        label) instead of reading ``*_labelIds.png``/``*_instanceIds.png``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *,
                 size: tuple[int, int] | None = None, from_polygons: bool = False) -> None:
        from torchvision.datasets import Cityscapes

        self.root = Path(root).expanduser()
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        for sub in ("leftImg8bit", "gtFine"):
            folder = self.root / sub / split
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"the Cityscapes split folder {folder} is missing; the root must hold "
                    f"leftImg8bit/{split}/<city>/ and gtFine/{split}/<city>/ as the official "
                    "archives (leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip) unpack")
        self.split = split
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.from_polygons = from_polygons
        targets = ["polygon"] if from_polygons else ["semantic", "instance"]
        self._ds = Cityscapes(str(self.root), split=split, mode="fine", target_type=targets)
        order = np.argsort(self._ds.images)  # torchvision lists in directory order; sort by name
        self._ds.images = [self._ds.images[i] for i in order]
        self._ds.targets = [self._ds.targets[i] for i in order]
        if not self._ds.images:
            raise FileNotFoundError(f"no *_leftImg8bit.png under {self.root / 'leftImg8bit' / split}")
        for paths in self._ds.targets:
            for p in paths:
                if not os.path.isfile(p):
                    raise FileNotFoundError(
                        f"the annotation {p} is missing (each *_leftImg8bit.png needs its gtFine "
                        "files); pass from_polygons=True to rasterise from the polygon files")

    def __len__(self) -> int:
        return len(self._ds.images)

    def name(self, i: int) -> str:
        return Path(self._ds.images[i]).name.split("_leftImg8bit")[0]

    def __getitem__(self, i: int) -> CityscapesSample:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} frames")
        img, target = self._ds[i]
        image = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        if self.from_polygons:
            poly = target  # torchvision returns a lone target type unwrapped
            label_ids, inst = rasterize_polygons(poly, source=self._ds.targets[i][0])
        else:
            sem, ins = target
            label_ids, inst = np.asarray(sem), np.asarray(ins)
        label = torch.from_numpy(id_to_train_id(label_ids).astype(np.int64))
        instance = torch.from_numpy(inst.astype(np.int64))
        if label.shape != image.shape[1:]:
            raise ValueError(f"{self.name(i)}: labels {tuple(label.shape)} and image "
                             f"{tuple(image.shape[1:])} differ in size")
        if self.size is not None and self.size != tuple(image.shape[1:]):
            image = F.interpolate(image[None], size=self.size, mode="area")[0]
            label = F.interpolate(label[None, None].float(), size=self.size, mode="nearest")[0, 0].long()
            instance = F.interpolate(instance[None, None].double(), size=self.size,
                                     mode="nearest")[0, 0].long()
        return CityscapesSample(self.name(i), image, label, instance)

    def arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All frames stacked: images ``(N, 3, H, W)`` and trainId labels ``(N, H, W)``."""
        samples = [self[i] for i in range(len(self))]
        return torch.stack([s.image for s in samples]), torch.stack([s.label for s in samples])
