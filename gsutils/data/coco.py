"""MS COCO 2014 instances (pycocotools) for the pointing game.

Per image: the RGB image in ``[0, 1]``, the multi-hot vector over the
dataset's categories (contiguous indices in increasing category-id order,
which for COCO's 80 categories is the standard order), and, per present
class, the union of its instance masks (``COCO.annToMask``, crowd regions
included), which is the pointing-game ground truth on COCO.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsutils.data.voc import load_rgb


@dataclass
class COCOSample:
    """One COCO image.

    Attributes
    ----------
    image_id:
        COCO's integer image id.
    file_name:
        The image's file name.
    image:
        ``(3, H, W)`` float32 RGB in ``[0, 1]``.
    labels:
        ``(C,)`` float32 multi-hot vector.
    class_ids:
        ``(K,)`` int64 indices of the present classes (increasing).
    masks:
        ``(K, H, W)`` bool: per present class, the union of its instance masks.
    """

    image_id: int
    file_name: str
    image: torch.Tensor
    labels: torch.Tensor
    class_ids: torch.Tensor
    masks: torch.Tensor

    def present_classes(self) -> list[int]:
        return [int(c) for c in self.class_ids]

    def gt_mask(self, class_id: int) -> torch.Tensor:
        """``(H, W)`` bool union of ``class_id``'s instance masks."""
        hit = (self.class_ids == class_id).nonzero()
        if len(hit) == 0:
            raise ValueError(f"class_id {class_id} is not present in image {self.image_id} "
                             f"(present: {self.present_classes()})")
        return self.masks[int(hit[0, 0])]


def open_coco(image_dir: str | os.PathLike, annotation_file: str | os.PathLike):
    """``(image folder, pycocotools.coco.COCO)`` of a COCO instances file, each checked to exist.

    Raises
    ------
    FileNotFoundError
        A missing folder or file.
    ValueError
        An annotation file that is not JSON (naming the file).
    """
    from pycocotools.coco import COCO

    folder = Path(image_dir).expanduser()
    annotation_file = Path(annotation_file).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"image_dir {str(folder)!r} is not a directory")
    if not annotation_file.is_file():
        raise FileNotFoundError(f"annotation_file {str(annotation_file)!r} does not exist")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(annotation_file))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"annotation_file {str(annotation_file)!r} is not valid JSON ({err}); it may be "
                         "truncated: download or extract it again") from err
    return folder, coco


class COCODataset(torch.utils.data.Dataset):
    """COCO instance annotations read with pycocotools.

    Parameters
    ----------
    image_dir:
        Folder of the images (e.g. ``<data_root>/coco/val2014``).
    annotation_file:
        The instances json (e.g. ``<data_root>/coco/annotations/instances_val2014.json``).
    skip_empty:
        Leave out images without annotations (they have no class to point at).
    """

    def __init__(self, image_dir: str | os.PathLike, annotation_file: str | os.PathLike,
                 skip_empty: bool = True) -> None:
        self.image_dir, self.coco = open_coco(image_dir, annotation_file)
        cat_ids = sorted(self.coco.getCatIds())
        if not cat_ids:
            raise ValueError(f"annotation_file {str(annotation_file)!r} defines no categories")
        unknown = sorted({a["category_id"] for a in self.coco.anns.values()} - set(cat_ids))
        if unknown:
            first = next(a for a in self.coco.anns.values() if a["category_id"] == unknown[0])
            raise ValueError(f"annotation_file {str(annotation_file)!r}: annotation {first.get('id')} has "
                             f"category_id {unknown[0]}, which its 'categories' do not define (undefined "
                             f"ids: {unknown}); add the category to 'categories' or drop "
                             "those annotations")
        self.cat_ids = tuple(cat_ids)
        self.cat_to_index = {c: i for i, c in enumerate(cat_ids)}
        self.class_names = tuple(self.coco.loadCats(c)[0]["name"] for c in cat_ids)
        ids = sorted(self.coco.getImgIds())
        if skip_empty:
            ids = [i for i in ids if self.coco.getAnnIds(imgIds=i)]
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> COCOSample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        image_id = self.ids[i % len(self)]
        info = self.coco.loadImgs(image_id)[0]
        image = load_rgb(self.image_dir / info["file_name"])  # (3, H, W)
        h, w = int(info["height"]), int(info["width"])
        if tuple(image.shape[1:]) != (h, w):
            raise ValueError(f"image {info['file_name']!r} is {tuple(image.shape[1:])} but the "
                             f"annotation says {(h, w)}")
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id))
        union: dict[int, np.ndarray] = {}
        for ann in anns:
            c = self.cat_to_index[ann["category_id"]]
            m = self.coco.annToMask(ann).astype(bool)  # (H, W)
            union[c] = union[c] | m if c in union else m
        present = sorted(union)
        labels = torch.zeros(len(self.cat_ids), dtype=torch.float32)
        labels[present] = 1.0
        masks = (torch.from_numpy(np.stack([union[c] for c in present])) if present
                 else torch.zeros(0, h, w, dtype=torch.bool))  # (K, H, W)
        return COCOSample(int(image_id), info["file_name"], image, labels,
                          torch.tensor(present, dtype=torch.int64), masks)


__all__ = ["COCOSample", "COCODataset"]
