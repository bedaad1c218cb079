"""MS COCO instances as semantic label maps, and a COCO-format stand-in (Grid Saliency S3).

:class:`COCOSemantic` reads an instances JSON and its images with pycocotools
and paints each image's instance masks (``COCO.annToMask``) of the chosen
categories into one label map: 0 = background, ``k`` = the ``k``-th chosen
category; larger instances are painted first, so smaller ones stay visible.

:func:`write_coco_standin` writes a small set in COCO's own format
(``images/<split>/*.png`` + ``annotations/instances_<split>.json`` with polygon
segmentations) whose objects *depend on their context*: boats on water, trains
on rails, TVs indoors. The three object kinds are drawn from one shared
appearance distribution (a box with a row of windows or panels, random
colours), so what tells a boat from a train or a TV is mostly the scene
around it. It is read back through :class:`COCOSemantic`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from gsutils.data.coco import open_coco
from gsutils.data.standin import StandinConfig
from gsutils.io import atomic_directory, atomic_write_text
from gsutils.paths import cache_root

__all__ = ["STANDIN_CATEGORIES", "COCOSemantic", "COCOStandinConfig", "coco_standin_root", "write_coco_standin"]

#: the stand-in's categories with COCO's ids (boat 9, train 7, tv 72)
STANDIN_CATEGORIES: tuple[tuple[int, str], ...] = ((9, "boat"), (7, "train"), (72, "tv"))
FORMAT_VERSION = 1


class COCOSemantic(torch.utils.data.Dataset):
    """Semantic label maps from a COCO instances file.

    Parameters
    ----------
    image_dir, annotation_file:
        The images' folder and the instances JSON.
    categories:
        Category names, in class order (class ``k + 1`` is ``categories[k]``);
        one string is one category.
    size:
        Optional ``(H, W)`` to resize to (image: area, labels: nearest).
    """

    def __init__(self, image_dir: str | os.PathLike, annotation_file: str | os.PathLike,
                 categories: Sequence[str], *, size: tuple[int, int] | None = None) -> None:
        if isinstance(categories, str):
            categories = (categories,)  # "person" is one category, not six letters
        self.image_dir, self.coco = open_coco(image_dir, annotation_file)
        by_name = {c["name"]: c["id"] for c in self.coco.loadCats(self.coco.getCatIds())}
        missing = [c for c in categories if c not in by_name]
        if missing:
            raise ValueError(f"{Path(annotation_file).name} has no category {missing}; its categories are "
                             f"{sorted(by_name)}. Choose categories the file defines")
        if not categories:
            raise ValueError("categories must name at least one category")
        self.categories = tuple(categories)
        self.class_names = ("background", *self.categories)
        self.cat_to_class = {by_name[c]: k + 1 for k, c in enumerate(self.categories)}
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.ids = sorted(self.coco.getImgIds())

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image (3, H, W) float32 in [0, 1], label (H, W) int64)``."""
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        info = self.coco.loadImgs(self.ids[i])[0]
        rgb = np.asarray(Image.open(self.image_dir / info["file_name"]).convert("RGB"), dtype=np.float32) / 255
        h, w = int(info["height"]), int(info["width"])
        if rgb.shape[:2] != (h, w):
            raise ValueError(f"image {info['file_name']!r} is {rgb.shape[:2]} but the annotation says {(h, w)}")
        label = np.zeros((h, w), dtype=np.int64)
        anns = [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=info["id"]))
                if a["category_id"] in self.cat_to_class]
        for ann in sorted(anns, key=lambda a: -a["area"]):  # large first: small instances stay visible
            label[self.coco.annToMask(ann).astype(bool)] = self.cat_to_class[ann["category_id"]]
        image, lab = torch.from_numpy(rgb).permute(2, 0, 1), torch.from_numpy(label)
        if self.size is not None and self.size != (h, w):
            image = F.interpolate(image[None], size=self.size, mode="area")[0]
            lab = F.interpolate(lab[None, None].float(), size=self.size, mode="nearest")[0, 0].long()
        return image, lab

    def arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self[i] for i in range(len(self))]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])


# --------------------------------------------------------------------------- the stand-in


@dataclass(frozen=True)
class COCOStandinConfig(StandinConfig):
    """Everything that determines the COCO-format stand-in (square images of side ``size``)."""

    n_train: int = 480
    n_val: int = 60
    size: int = 64

    FORMAT: ClassVar[int] = FORMAT_VERSION


def _jit(rng: np.random.Generator, base, s: float = 15.0) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(base, float) + rng.normal(0, s, 3), 0, 255))


def _object(rng: np.random.Generator, draw: ImageDraw.ImageDraw, x0: float, y0: float, x1: float,
            y1: float) -> list[float]:
    """The shared appearance: a box with a row of windows/panels; returns its polygon (COCO format)."""
    body = _jit(rng, rng.integers(40, 220, 3), 0)
    draw.rectangle([x0, y0, x1, y1], fill=body)
    k = int(rng.integers(1, 5))
    wy0, wy1 = y0 + 0.2 * (y1 - y0), y0 + 0.55 * (y1 - y0)
    win = _jit(rng, (170, 200, 230), 25)
    for j in range(k):
        a = x0 + (j + 0.2) * (x1 - x0) / k
        draw.rectangle([a, wy0, a + 0.6 * (x1 - x0) / k, wy1], fill=win)
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def render_coco_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """One scene: ``(S, S, 3)`` uint8 and its objects as ``(category id, polygon)``."""
    img = Image.new("RGB", (size, size))
    d = ImageDraw.Draw(img)
    kind = int(rng.integers(3))  # 0 harbour (boats), 1 railway (trains), 2 living room (TVs)
    horizon = size * rng.uniform(0.35, 0.5)
    objs = []
    if kind == 0:
        d.rectangle([0, 0, size, horizon], fill=_jit(rng, (150, 190, 230)))
        d.rectangle([0, horizon, size, size], fill=_jit(rng, (30, 80, 140)))
        for y in np.arange(horizon + 2, size, 4.0):  # waves
            for x in np.arange(rng.uniform(0, 6), size, 9.0):
                d.line([x, y, x + 4, y], fill=_jit(rng, (90, 140, 200), 10))
    elif kind == 1:
        d.rectangle([0, 0, size, horizon], fill=_jit(rng, (160, 190, 220)))
        d.rectangle([0, horizon, size, size], fill=_jit(rng, (90, 120, 60)))
    else:
        d.rectangle([0, 0, size, horizon + 0.2 * size], fill=_jit(rng, (210, 190, 160)))
        d.rectangle([0, horizon + 0.2 * size, size, size], fill=_jit(rng, (120, 80, 50)))
        for x in np.arange(rng.uniform(0, 10), size, 14.0):  # wall paper stripes
            d.line([x, 0, x, horizon + 0.2 * size], fill=_jit(rng, (190, 170, 140), 8))
    for _ in range(int(rng.integers(1, 3))):
        w = size * rng.uniform(0.2, 0.45)
        h = w * rng.uniform(0.3, 0.6)
        x0 = rng.uniform(0, size - w)
        if kind == 0:
            base = rng.uniform(horizon + h, size - 1)
            objs.append((9, _object(rng, d, x0, base - h, x0 + w, base)))
        elif kind == 1:
            base = rng.uniform(horizon + h, size - 3)
            for dy in (1.0, 3.0):  # rails and sleepers under the train, across the frame
                d.line([0, base + dy, size, base + dy], fill=(70, 70, 70), width=1)
            for x in np.arange(0, size, 4.0):
                d.line([x, base, x, base + 4], fill=(100, 70, 40))
            objs.append((7, _object(rng, d, x0, base - h, x0 + w, base)))
        else:
            base = rng.uniform(horizon + 0.25 * size, size - 6)
            d.rectangle([x0 - 3, base, x0 + w + 3, base + 5], fill=_jit(rng, (80, 50, 30)))  # a stand
            objs.append((72, _object(rng, d, x0, base - h, x0 + w, base)))
    a = np.asarray(img, dtype=np.float64) + rng.normal(0, 5, (size, size, 3))
    return np.clip(np.round(a), 0, 255).astype(np.uint8), objs


def coco_standin_root(config: COCOStandinConfig) -> Path:
    return cache_root() / "coco_standin" / config.key()


def write_coco_standin(config: COCOStandinConfig, *, root: str | os.PathLike | None = None) -> Path:
    """Write the stand-in in COCO's format (once; atomically renamed into place) and return its root."""
    final = Path(root) if root is not None else coco_standin_root(config)
    if (final / "standin.json").is_file():
        return final
    with atomic_directory(final) as tmp:
        cats = [{"id": i, "name": n, "supercategory": "standin"} for i, n in STANDIN_CATEGORIES]
        for s, (split, n) in enumerate((("train", config.n_train), ("val", config.n_val))):
            (tmp / "images" / split).mkdir(parents=True)
            images, anns = [], []
            for i in range(n):
                image, objs = render_coco_scene(np.random.default_rng([config.seed, 7, s, i]), config.size)
                name = f"{split}_{i:06d}.png"
                Image.fromarray(image).save(tmp / "images" / split / name)
                images.append({"id": i + 1, "file_name": name, "height": config.size, "width": config.size})
                for cat, poly in objs:
                    xs, ys = poly[0::2], poly[1::2]
                    anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "iscrowd": 0,
                                 "segmentation": [[round(v, 2) for v in poly]],
                                 "area": float((max(xs) - min(xs)) * (max(ys) - min(ys))),
                                 "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]})
            (tmp / "annotations").mkdir(exist_ok=True)
            (tmp / "annotations" / f"instances_{split}.json").write_text(
                json.dumps({"images": images, "annotations": anns, "categories": cats}))
        atomic_write_text(tmp / "standin.json", json.dumps({"key": config.key(), "config": asdict(config)}))
    return final
