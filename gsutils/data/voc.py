"""PASCAL VOC detection format: a reader and a writer.

The reader takes a VOC directory (the folder holding ``Annotations/``,
``JPEGImages/`` and ``ImageSets/Main/``, e.g. ``<data_root>/VOCdevkit/VOC2007``)
and yields, per image, the RGB image in ``[0, 1]``, the multi-hot class vector
and every object's box with its ``difficult`` flag. Annotations are parsed
with :meth:`torchvision.datasets.VOCDetection.parse_voc_xml`, so
:meth:`VOCDataset.annotation` returns exactly the dictionary torchvision's
``VOCDetection`` (and TorchRay's pointing-game benchmark) sees.

The writer produces the same layout; the multi-digit stand-in
(:mod:`gsutils.data.scenes`) is written with it and read back with the reader.

Coordinates: VOC's XML stores 1-based pixel indices with both ends inclusive;
:class:`VOCObject` holds 0-based inclusive boxes (XML value minus one).
"""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import VOCDetection

from gsutils.data.boxes import boxes_to_mask
from gsutils.io import atomic_write_bytes, atomic_write_text

#: The 20 PASCAL VOC classes in their standard order.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


@dataclass(frozen=True)
class VOCObject:
    """One annotated object; ``box`` is ``(xmin, ymin, xmax, ymax)``, 0-based, inclusive."""

    name: str
    class_id: int
    box: tuple[int, int, int, int]
    difficult: bool = False


@dataclass
class VOCSample:
    """One image of a VOC-format dataset.

    Attributes
    ----------
    image_id:
        The file stem (``"000001"``).
    image:
        ``(3, H, W)`` float32 RGB in ``[0, 1]``.
    labels:
        ``(C,)`` float32 multi-hot vector: 1 for every class with at least one
        object (difficult or not).
    objects:
        Every annotated object.
    """

    image_id: str
    image: torch.Tensor
    labels: torch.Tensor
    objects: tuple[VOCObject, ...]

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.image.shape[1]), int(self.image.shape[2])

    def present_classes(self) -> list[int]:
        return sorted({o.class_id for o in self.objects})

    def class_boxes(self, class_id: int) -> torch.Tensor:
        """``(K, 4)`` int64 boxes of ``class_id`` (0-based inclusive)."""
        boxes = [o.box for o in self.objects if o.class_id == class_id]
        return torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4)

    def class_difficult(self, class_id: int) -> torch.Tensor:
        """``(K,)`` bool VOC-difficult flags of ``class_id``'s boxes."""
        return torch.tensor([o.difficult for o in self.objects if o.class_id == class_id], dtype=torch.bool)

    def gt_mask(self, class_id: int) -> torch.Tensor:
        """``(H, W)`` bool union of ``class_id``'s boxes (the pointing-game ground truth)."""
        h, w = self.size
        return boxes_to_mask(self.class_boxes(class_id), h, w)


def parse_voc_annotation(path: str | os.PathLike) -> dict[str, Any]:
    """Parse one VOC XML file into torchvision's ``VOCDetection`` target dictionary.

    A missing file raises ``FileNotFoundError``, one that is not well-formed
    XML (a truncated download) ``ValueError``; both name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VOC annotation {str(path)!r} does not exist")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"VOC annotation {str(path)!r} is not valid XML ({err}); it may be truncated: "
                         "download or extract the data set again") from err
    return VOCDetection.parse_voc_xml(root)


def objects_from_annotation(annotation: dict[str, Any], class_names: Sequence[str]) -> tuple[VOCObject, ...]:
    """Objects of a parsed annotation; unknown class names raise ``ValueError``."""
    index = {n: i for i, n in enumerate(class_names)}
    objs = annotation["annotation"].get("object", [])
    if isinstance(objs, dict):
        objs = [objs]
    out = []
    for obj in objs:
        name = obj["name"]
        if name not in index:
            raise ValueError(f"object name {name!r} is not one of the class_names {tuple(class_names)}")
        bb = obj["bndbox"]
        # 1-based inclusive in the XML (sometimes written as floats) -> 0-based inclusive
        box = tuple(int(float(bb[k])) - 1 for k in ("xmin", "ymin", "xmax", "ymax"))
        out.append(VOCObject(name, index[name], box, bool(int(obj.get("difficult", "0") or 0))))
    return tuple(out)


def load_rgb(path: str | os.PathLike) -> torch.Tensor:
    """``(3, H, W)`` float32 RGB in ``[0, 1]`` from an image file."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)


class VOCDataset(torch.utils.data.Dataset):
    """A PASCAL VOC-format detection set read from disk.

    Parameters
    ----------
    root:
        The VOC directory holding ``Annotations``, ``JPEGImages`` and
        ``ImageSets/Main`` (for VOC 2007: ``<data_root>/VOCdevkit/VOC2007``).
    image_set:
        Name of the list in ``ImageSets/Main`` (``"test"``, ``"trainval"`` ...).
    class_names:
        Class names in label order (default: the 20 VOC classes).
    """

    def __init__(self, root: str | os.PathLike, image_set: str = "test",
                 class_names: Sequence[str] = VOC_CLASSES) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"VOC root {str(self.root)!r} is not a directory; pass the folder holding "
                "Annotations/, JPEGImages/ and ImageSets/Main/ (e.g. <data_root>/VOCdevkit/VOC2007)"
            )
        split = self.root / "ImageSets" / "Main" / f"{image_set}.txt"
        if not split.is_file():
            avail = sorted(p.stem for p in (self.root / "ImageSets" / "Main").glob("*.txt")
                           if "_" not in p.stem)
            raise FileNotFoundError(f"image_set {image_set!r}: {str(split)!r} does not exist; "
                                    f"available image sets: {avail}")
        if len(set(class_names)) != len(class_names) or not class_names:
            raise ValueError(f"class_names must be distinct and non-empty, got {class_names!r}")
        self.image_set = image_set
        self.class_names = tuple(class_names)
        self.ids = [line.strip().split()[0] for line in split.read_text().splitlines() if line.strip()]

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.root / "JPEGImages" / f"{self.ids[i]}.jpg"

    def annotation(self, i: int) -> dict[str, Any]:
        """The target dictionary exactly as torchvision's ``VOCDetection`` returns it."""
        return parse_voc_annotation(self.root / "Annotations" / f"{self.ids[i]}.xml")

    def __getitem__(self, i: int) -> VOCSample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        i = i % len(self)
        objects = objects_from_annotation(self.annotation(i), self.class_names)
        labels = torch.zeros(len(self.class_names), dtype=torch.float32)
        for o in objects:
            labels[o.class_id] = 1.0
        return VOCSample(self.ids[i], load_rgb(self.image_path(i)), labels, objects)


# --------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------

def annotation_xml(image_id: str, height: int, width: int, objects: Sequence[VOCObject],
                   folder: str = "VOC", database: str = "") -> bytes:
    """A VOC annotation file for one image (boxes written 1-based, inclusive)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = database or folder
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for o in objects:
        x0, y0, x1, y1 = o.box
        if not (0 <= x0 <= x1 < width and 0 <= y0 <= y1 < height):
            raise ValueError(f"object box {o.box} does not fit a {height}x{width} image")
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = o.name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(int(o.difficult))
        bb = ET.SubElement(obj, "bndbox")
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), (x0, y0, x1, y1)):
            ET.SubElement(bb, k).text = str(v + 1)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8")


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of a ``(H, W, 3)`` uint8 image (4:4:4, deterministic for a given libjpeg)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def write_voc_image(root: str | os.PathLike, image_id: str, image: np.ndarray,
                    objects: Sequence[VOCObject], *, object_masks: np.ndarray | None = None,
                    quality: int = 95, folder: str = "VOC", atomic: bool = True) -> None:
    """Write one image, its annotation and (optionally) its ``SegmentationObject`` PNG.

    Parameters
    ----------
    root:
        VOC directory (created if needed).
    image:
        ``(H, W, 3)`` uint8 RGB, stored as ``JPEGImages/<image_id>.jpg``.
    objects:
        The objects, in the order of ``object_masks``' indices.
    object_masks:
        Optional ``(H, W)`` uint8 map: 0 background, ``k`` for the ``k``-th
        object (1-based), as in VOC's ``SegmentationObject`` (no 255 borders).
    atomic:
        Write each file atomically (temp file, fsync, rename). Pass ``False``
        when the whole folder is written to a temporary location first.
    """
    root = Path(root)

    def put(path: Path, data: bytes) -> None:
        if atomic:
            atomic_write_bytes(path, data)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    h, w = image.shape[:2]
    put(root / "JPEGImages" / f"{image_id}.jpg", encode_jpeg(image, quality))
    put(root / "Annotations" / f"{image_id}.xml", annotation_xml(image_id, h, w, objects, folder=folder))
    if object_masks is not None:
        if object_masks.shape != (h, w) or object_masks.dtype != np.uint8:
            raise ValueError(f"object_masks must be ({h}, {w}) uint8, got {object_masks.shape} {object_masks.dtype}")
        buf = io.BytesIO()
        Image.fromarray(object_masks, mode="L").save(buf, format="PNG")
        put(root / "SegmentationObject" / f"{image_id}.png", buf.getvalue())


def write_image_set(root: str | os.PathLike, name: str, ids: Sequence[str]) -> Path:
    """Write ``ImageSets/Main/<name>.txt`` (one id a line)."""
    return atomic_write_text(Path(root) / "ImageSets" / "Main" / f"{name}.txt",
                             "".join(f"{i}\n" for i in ids))


def read_object_masks(root: str | os.PathLike, image_id: str) -> np.ndarray:
    """The ``(H, W)`` uint8 ``SegmentationObject`` map of an image (0 = background)."""
    path = Path(root) / "SegmentationObject" / f"{image_id}.png"
    if not path.is_file():
        raise FileNotFoundError(f"no object segmentation {str(path)!r}")
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.uint8).copy()


__all__ = [
    "VOC_CLASSES",
    "VOCObject",
    "VOCSample",
    "VOCDataset",
    "parse_voc_annotation",
    "objects_from_annotation",
    "load_rgb",
    "annotation_xml",
    "encode_jpeg",
    "write_voc_image",
    "write_image_set",
    "read_object_masks",
]
