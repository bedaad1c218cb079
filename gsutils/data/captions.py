"""Captioned images: the captioned digit scenes, COCO-captions JSON, tokens and vocabulary.

Rebuffi et al. (2020, supplement F) explain a captioner trained on MS COCO
captions. COCO cannot be shipped, so this module generates a stand-in that
runs everywhere: scenes of the project's multi-digit stand-in
(:func:`gsutils.data.scenes.render_scene`) described by captions built from
their objects and the objects' relations, e.g.
``"a small three left of a large seven"``. The set is written **in the COCO
captions format** (``annotations/captions_<split>.json`` + image files) and
read back with :func:`read_coco_captions`, the reader real COCO uses
(``<data_root>/coco/annotations/captions_<split>2014.json`` and
``<data_root>/coco/<split>2014/``).

Caption grammar (deterministic from the annotations; ``S`` is the image side):

* each object is ``"a <size> <digit>"`` with ``<size>`` ``"large"`` when
  its visible box is at least :data:`LARGE_HEIGHT` ``* S`` tall, else ``"small"``;
* objects are listed from left to right (box centres); between two
  consecutive objects ``a``, ``b`` the relation is ``"above"`` (``b``'s
  centre lower than ``a``'s by more than it is to the right), ``"below"``
  (higher by more than to the right) or ``"left of"``;
* a second reference lists them from right to left with the inverse relations
  (``"right of"``, ``"below"``, ``"above"``); a one-object scene has one caption.

The captions JSON holds COCO's ``images`` (``id``, ``file_name``, ``height``,
``width``) and ``annotations`` (``id``, ``image_id``, ``caption``); the
stand-in adds to each image its ``objects`` (``name``, ``class_id``, COCO
``bbox`` ``[x, y, w, h]``) and writes the visible pixels of each object
(value ``k`` for the ``k``-th object, 1-based) to ``objects_<split>.npz``,
the ground truth of the saliency measurements.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gsutils.data.scenes import DIGIT_CLASSES, SceneConfig, render_scene
from gsutils.io import atomic_write_text, config_key
from gsutils.paths import cache_root

#: a visible box at least this share of the side tall is "large"
LARGE_HEIGHT = 0.3
SPLITS = ("train", "test")
#: bump when the captions or the files change, so cached sets are regenerated
FORMAT_VERSION = 1
#: special tokens (ids 0..3), as :mod:`gsutils.models.captioner` expects
SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")


@dataclass(frozen=True)
class CaptionObject:
    """One object of a captioned scene; ``box`` is ``(xmin, ymin, xmax, ymax)``, 0-based inclusive."""

    name: str
    class_id: int
    box: tuple[int, int, int, int]


def describe(objects: Sequence[CaptionObject], size: int) -> list[str]:
    """The reference captions of a scene (see the module docstring); ``[]`` for no object."""
    if not objects:
        return []
    centre = [((o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2) for o in objects]
    order = sorted(range(len(objects)), key=lambda k: (centre[k][0], centre[k][1], k))

    def phrase(k: int) -> str:
        o = objects[k]
        large = (o.box[3] - o.box[1] + 1) >= LARGE_HEIGHT * size
        return f"a {'large' if large else 'small'} {o.name}"

    def relation(a: int, b: int, reverse: bool) -> str:
        dx = abs(centre[b][0] - centre[a][0])
        dy = centre[b][1] - centre[a][1]  # > 0: b is lower in the image
        if abs(dy) > dx:
            return "above" if dy > 0 else "below"
        return "right of" if reverse else "left of"

    out = []
    for seq, reverse in ((order, False), (order[::-1], True)):
        words = [phrase(seq[0])]
        for a, b in zip(seq, seq[1:]):
            words += [relation(a, b, reverse), phrase(b)]
        out.append(" ".join(words))
    return list(dict.fromkeys(out))  # one caption when both orders read the same


# --------------------------------------------------------------------------------------
# Tokens and vocabulary
# --------------------------------------------------------------------------------------


def tokenize(caption: str) -> list[str]:
    """Lower-case words of a caption, punctuation dropped (``"A dog, running."`` -> ``[a, dog, running]``)."""
    if not isinstance(caption, str):
        raise TypeError(f"a caption must be a string, got {type(caption).__name__}")
    return re.sub(r"[^a-z0-9' ]+", " ", caption.lower()).split()


class Vocabulary:
    """Words to ids and back; ids 0..3 are ``<pad> <start> <end> <unk>``."""

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if words[:len(SPECIALS)] != list(SPECIALS):
            words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        if len(set(words)) != len(words):
            raise ValueError("vocabulary words must be unique")
        self.words = tuple(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Every word seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(w for c in captions for w in tokenize(c))
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(list(SPECIALS) + kept)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, captions: Sequence[str], max_len: int | None = None) -> torch.Tensor:
        """``(N, L)`` int64 ids, each caption followed by ``<end>`` and padded with ``<pad>``.

        Words outside the vocabulary become ``<unk>``; with ``max_len`` a caption is
        cut to ``max_len - 1`` words (plus ``<end>``).
        """
        seqs = []
        for c in captions:
            ids = [self.index.get(w, 3) for w in tokenize(c)]
            if max_len is not None:
                ids = ids[:max_len - 1]
            seqs.append(ids + [2])
        length = max(len(s) for s in seqs) if seqs else 1
        out = torch.zeros(len(seqs), length, dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, :len(s)] = torch.tensor(s)
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The words up to the first ``<end>`` (``<pad>``/``<start>`` skipped)."""
        words = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == 2:
                break
            if i not in (0, 1):
                words.append(self.words[i])
        return " ".join(words)


# --------------------------------------------------------------------------------------
# Reading the COCO captions format
# --------------------------------------------------------------------------------------


@dataclass
class CaptionSet:
    """A split of captioned images held in memory.

    Attributes
    ----------
    images:
        ``(N, 3, S, S)`` uint8 RGB.
    captions:
        Per image, its reference captions.
    image_ids:
        Per image, its id in the captions JSON.
    objects:
        Per image, its objects (the stand-in), else ``None``.
    object_maps:
        ``(N, S, S)`` uint8, value ``k`` on the visible pixels of object ``k`` (1-based), else ``None``.
    """

    images: torch.Tensor
    captions: tuple[tuple[str, ...], ...]
    image_ids: tuple[int, ...]
    objects: tuple[tuple[CaptionObject, ...], ...] | None = None
    object_maps: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def object_mask(self, index: int, names: Iterable[str]) -> torch.Tensor:
        """``(S, S)`` bool: the visible pixels of the image's objects whose name is in ``names``."""
        if self.object_maps is None or self.objects is None:
            raise ValueError("this CaptionSet has no object masks (real COCO captions carry none)")
        wanted = set(names)
        m = torch.zeros(self.object_maps.shape[1:], dtype=torch.bool)
        for k, o in enumerate(self.objects[index]):
            if o.name in wanted:
                m |= self.object_maps[index] == k + 1
        return m


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"captions file {str(path)!r} does not exist; give the path of a COCO "
                                "captions JSON such as annotations/captions_val2014.json")
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"captions file {str(path)!r} is not valid JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ValueError(f"captions file {str(path)!r} is not in the COCO captions format: it needs "
                         "top-level lists 'images' (id, file_name) and 'annotations' (image_id, caption)")
    return data


def _square(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to ``size`` (bilinear; area-like when shrinking)."""
    w, h = image.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return image.crop(box).resize((size, size), Image.BILINEAR, reducing_gap=2.0)


def read_coco_captions(captions_file: str | os.PathLike, image_dir: str | os.PathLike, *,
                       image_size: int | None = None, limit: int | None = None,
                       objects_file: str | os.PathLike | None = None) -> CaptionSet:
    """Read a COCO captions JSON and its images.

    Parameters
    ----------
    captions_file:
        ``captions_<split>.json``: ``images`` with ``id`` and ``file_name``,
        ``annotations`` with ``image_id`` and ``caption``.
    image_dir:
        The folder holding the ``file_name`` s.
    image_size:
        Centre-crop every image to a square and resize it to this side; without
        it every image must already be square and of one size.
    limit:
        Read only the first ``limit`` images (by id) that have captions.
    objects_file:
        The stand-in's ``objects_<split>.npz`` (object maps in image-id order); its
        images then also carry ``objects``.
    """
    captions_file, image_dir = Path(captions_file).expanduser(), Path(image_dir).expanduser()
    data = _load_json(captions_file)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder {str(image_dir)!r} does not exist; it must hold the "
                                f"files named in {captions_file.name}")
    caps: dict[int, list[str]] = {}
    for a in data["annotations"]:
        if not isinstance(a, dict) or "image_id" not in a or not isinstance(a.get("caption"), str):
            raise ValueError(f"{captions_file.name}: annotation {a!r} needs 'image_id' and a string 'caption'")
        caps.setdefault(int(a["image_id"]), []).append(a["caption"].strip())
    infos = {}
    for im in data["images"]:
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise ValueError(f"{captions_file.name}: image entry {im!r} needs 'id' and 'file_name'")
        infos[int(im["id"])] = im
    missing = sorted(set(caps) - set(infos))
    if missing:
        raise ValueError(f"{captions_file.name}: captions refer to image ids {missing[:5]} that "
                         "'images' does not list")
    ids = sorted(i for i in infos if i in caps)
    if limit is not None:
        ids = ids[:int(limit)]
    if not ids:
        raise ValueError(f"{captions_file.name} holds no captioned image")
    images = []
    for i in ids:
        path = image_dir / infos[i]["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"image {str(path)!r} named in {captions_file.name} does not exist")
        with Image.open(path) as im:
            im = im.convert("RGB")
            if image_size is not None:
                im = _square(im, int(image_size))
            a = np.asarray(im, dtype=np.uint8)  # (H, W, 3)
        if images and a.shape != images[0].shape:
            raise ValueError(f"image {path.name} is {a.shape[:2]}, others {images[0].shape[:2]}; "
                             "pass image_size to resize them to one size")
        images.append(a)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    objects = maps = None
    if objects_file is not None:
        objects = tuple(tuple(CaptionObject(o["name"], int(o["class_id"]),
                                            (int(o["bbox"][0]), int(o["bbox"][1]),
                                             int(o["bbox"][0] + o["bbox"][2] - 1),
                                             int(o["bbox"][1] + o["bbox"][3] - 1)))
                              for o in infos[i].get("objects", [])) for i in ids)
        with np.load(Path(objects_file).expanduser()) as z:
            all_ids, all_maps = list(z["image_ids"]), z["object_maps"]
        pos = {int(k): j for j, k in enumerate(all_ids)}
        if any(i not in pos for i in ids):
            raise ValueError(f"{objects_file}: object maps are missing for some images of {captions_file.name}")
        maps = torch.from_numpy(np.stack([all_maps[pos[i]] for i in ids]))  # (N, S, S)
    return CaptionSet(x, tuple(tuple(caps[i]) for i in ids), tuple(ids), objects, maps)


def coco_caption_paths(data_root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """``(captions JSON, image folder)`` of real COCO 2014 under ``data_root``.

    ``split`` is ``"train"`` or ``"val"``: ``<data_root>/coco/annotations/captions_<split>2014.json``
    and ``<data_root>/coco/<split>2014/``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"COCO captions split must be 'train' or 'val', got {split!r}")
    root = Path(data_root).expanduser() / "coco"
    ann = root / "annotations" / f"captions_{split}2014.json"
    if not ann.is_file():
        raise FileNotFoundError(f"COCO captions not found: {str(ann)!r} is missing; put MS COCO 2014 "
                                "under <data_root>/coco (annotations/ and train2014/, val2014/), or "
                                "run without a data root to use the generated captioned scenes")
    return ann, root / f"{split}2014"


# --------------------------------------------------------------------------------------
# The captioned-scene stand-in
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptionSceneConfig(SceneConfig):
    """Everything that determines a set of captioned scenes (the fields of :class:`SceneConfig`)."""

    def key(self) -> str:
        return config_key({"format": FORMAT_VERSION, "kind": "caption_scenes", **self.key_fields()})


def scene_rng(config: CaptionSceneConfig, split: str, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of ``split``: ``default_rng([seed, split, index, 7])``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return np.random.default_rng([config.seed, SPLITS.index(split), int(index), 7])


def caption_scene(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray,
                  textures: Sequence[np.ndarray], size: int
                  ) -> tuple[np.ndarray, tuple[CaptionObject, ...], np.ndarray, list[str]]:
    """One captioned scene: ``(image (S, S, 3) uint8, objects, object map (S, S) uint8, captions)``."""
    scene = render_scene(rng, digits, labels, textures, size)
    objs = tuple(CaptionObject(o.name, o.class_id, o.box) for o in scene.objects)
    return scene.image, objs, scene.object_map, describe(objs, size)


def caption_scene_root(config: CaptionSceneConfig) -> Path:
    """``<cache_root>/caption_scenes/<key>``."""
    return cache_root() / "caption_scenes" / config.key()


def _split_complete(root: Path, config: CaptionSceneConfig, split: str) -> bool:
    for marker in (root / "annotations" / f"complete_{split}.json", root / "caption_scenes.json"):
        try:
            if json.loads(marker.read_text()).get("key") == config.key():
                return True
        except (OSError, ValueError):
            continue
    return False


def write_caption_scenes(config: CaptionSceneConfig, splits: Sequence[str] = SPLITS, *,
                         progress: bool = True) -> Path:
    """Generate the captioned scenes of ``config`` in COCO captions format (once); return the root.

    Layout: ``<root>/annotations/captions_<split>.json``, ``<root>/<split>/<id>.png``,
    ``<root>/annotations/objects_<split>.npz``. Scene ``i`` of a split is drawn
    from :func:`scene_rng` alone; the train split uses MNIST's train digits,
    the test split its test digits. Only the ``splits`` asked for are written,
    each beside its final place first and moved in when complete (its marker
    ``annotations/complete_<split>.json`` last), so an interrupted run leaves
    no partial split.
    """
    from tqdm.auto import tqdm

    from gsutils.data.mnist import load_digits
    from gsutils.data.textures import texture_bank

    if isinstance(splits, str) or any(sp not in SPLITS for sp in splits):
        raise ValueError(f"splits must be a sequence of {SPLITS}, got {splits!r}")
    root = caption_scene_root(config)
    todo = [sp for sp in splits if not _split_complete(root, config, sp)]
    if not todo:
        return root
    bank = texture_bank(config.textures_source, config.data_root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in todo:
        n = config.n_train if split == "train" else config.n_test
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{split}-"))
        try:
            digits, labels = load_digits(config.digits_source, split, config.data_root)
            (tmp / split).mkdir()
            images, anns, maps = [], [], []
            for i in tqdm(range(n), desc=f"captioned scenes {split}", disable=not progress, leave=False):
                image, objs, object_map, captions = caption_scene(
                    scene_rng(config, split, i), digits, labels, bank.textures, config.image_size)
                name = f"{i:06d}.png"
                Image.fromarray(image).save(tmp / split / name)
                images.append({"id": i, "file_name": name, "height": config.image_size,
                               "width": config.image_size,
                               "objects": [{"name": o.name, "class_id": o.class_id,
                                            "bbox": [o.box[0], o.box[1], o.box[2] - o.box[0] + 1,
                                                     o.box[3] - o.box[1] + 1]} for o in objs]})
                for c in captions:
                    anns.append({"id": len(anns), "image_id": i, "caption": c})
                maps.append(object_map)
            np.savez_compressed(tmp / f"objects_{split}.npz", image_ids=np.arange(n),
                                object_maps=np.stack(maps) if maps else
                                np.zeros((0, config.image_size, config.image_size), np.uint8))
            if (root / split).exists():  # a stale or interrupted split
                shutil.rmtree(root / split)
            os.replace(tmp / split, root / split)
            os.replace(tmp / f"objects_{split}.npz", root / "annotations" / f"objects_{split}.npz")
            atomic_write_text(root / "annotations" / f"captions_{split}.json",
                              json.dumps({"info": {"description": "captioned digit scenes"},
                                          "images": images, "annotations": anns}))
            atomic_write_text(root / "annotations" / f"complete_{split}.json",
                              json.dumps({"key": config.key(), "config": config.__dict__,
                                          "format": FORMAT_VERSION}, indent=1))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def read_caption_scenes(root: str | os.PathLike, split: str) -> CaptionSet:
    """Read a split of :func:`write_caption_scenes`'s output (with objects and object maps)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    return read_coco_captions(root / "annotations" / f"captions_{split}.json", root / split,
                              objects_file=root / "annotations" / f"objects_{split}.npz")


__all__ = [
    "DIGIT_CLASSES", "LARGE_HEIGHT", "SPECIALS",
    "CaptionObject", "describe", "tokenize", "Vocabulary",
    "CaptionSet", "read_coco_captions", "coco_caption_paths",
    "CaptionSceneConfig", "scene_rng", "caption_scene", "caption_scene_root", "write_caption_scenes", "read_caption_scenes",
]
