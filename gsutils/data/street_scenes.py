"""A procedural street-scene stand-in for Cityscapes, written in Cityscapes' own layout.

Cityscapes cannot be downloaded here, so the S2 chapter runs on generated
scenes that carry the context relations Hoyer et al. (2019, S2) report, and
that are read back through the same native-format loader
(:class:`gsutils.data.cityscapes.CityscapesScenes`) a real Cityscapes root uses.

Each scene is a list of labelled polygons (a ``gtFine_polygons.json``), drawn
back to front, so occlusion follows depth:

* sky, buildings up to a horizon, trees (vegetation), a sidewalk band and a
  road with lane markings;
* **riders** sitting on **bicycles** or **motorcycles** on the road. A rider's
  silhouette and colours are drawn from exactly the same distribution as a
  person's: only the two-wheeler below tells a rider from a person, so a
  network can only segment riders correctly by looking at that context;
* **persons** on the sidewalk (sometimes crossing the road), sometimes in
  **groups** of 2-4 that overlap (a third of the groups annotated as one
  ``persongroup`` polygon, as Cityscapes does when instances cannot be told
  apart), parked bicycles on the sidewalk without riders;
* **cars** on the road, **poles** on the sidewalk carrying **traffic signs**;
* instances scale with depth (nearer = lower in the image = larger), so both
  large and small instances occur.

The polygons are rasterised with cityscapesscripts (labelIds, instanceIds);
the RGB image is painted from the same polygons with per-instance colours,
painted details that carry no label (lane markings, windows, faces, wheels)
and pixel noise. The same seed and config give the same files bit for bit.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gsutils.data.cityscapes import rasterize_polygons
from gsutils.data.standin import StandinConfig
from gsutils.io import atomic_directory, atomic_write_text
from gsutils.paths import cache_root

__all__ = ["CITY", "MOTORCYCLE_SHARE", "StreetConfig", "render_street_scene", "street_root", "write_street_scenes"]

FORMAT_VERSION = 2
#: the "city" the stand-in's frames belong to (Cityscapes names files <city>_<seq>_<frame>)
CITY = "standin"
SPLITS = ("train", "val")
#: the chance that a rider of the stand-in sits on a motorcycle rather than a bicycle
MOTORCYCLE_SHARE = 0.3

_SKY = (120, 160, 210)
_ROAD = (80, 80, 84)
_SIDEWALK = (170, 140, 150)
_CLOTHES = np.array([(200, 40, 40), (40, 60, 170), (30, 30, 30), (220, 200, 60), (60, 140, 60),
                     (150, 80, 160), (230, 230, 230), (200, 120, 40)], dtype=np.float64)
_CARS = np.array([(180, 30, 30), (30, 60, 150), (210, 210, 215), (20, 20, 25), (90, 90, 100),
                  (40, 110, 60)], dtype=np.float64)


@dataclass(frozen=True)
class StreetConfig(StandinConfig):
    """Everything that determines a stand-in set (the split sizes and seed of :class:`StandinConfig`)."""

    height: int = 64
    width: int = 128

    FORMAT: ClassVar[int] = FORMAT_VERSION

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.height < 32 or self.width < 32:
            raise ValueError(f"height and width must be at least 32 px, got {self.height}x{self.width}")


# --------------------------------------------------------------------------- shapes


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 12) -> list[list[float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [[float(cx + rx * np.cos(a)), float(cy + ry * np.sin(a))] for a in t]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _silhouette(cx: float, foot: float, h: float) -> list[list[float]]:
    """A standing human outline (head, shoulders, legs apart), ``h`` tall, feet at ``foot``."""
    w = 0.32 * h
    top = foot - h
    pts = [(0.0, 0.0), (0.12, 0.0), (0.16, 0.05), (0.16, 0.14), (0.10, 0.18), (0.5, 0.22),
           (0.5, 0.55), (0.36, 0.56), (0.40, 1.0), (0.16, 1.0), (0.0, 0.62)]
    right = [[cx + dx * w, top + dy * h] for dx, dy in pts]
    left = [[cx - dx * w, top + dy * h] for dx, dy in reversed(pts[1:-1])]
    return right + left


def _two_wheeler(cx: float, ground: float, length: float, motor: bool) -> list[list[float]]:
    """Outline of a bicycle (a low 'stadium' between its wheels) or a motorcycle (with a body)."""
    r = 0.22 * length
    xl, xr, yc = cx - length / 2 + r, cx + length / 2 - r, ground - r
    right = [[xr + r * np.cos(a), yc + r * np.sin(a)] for a in np.linspace(-np.pi / 2, np.pi / 2, 7)]
    left = [[xl + r * np.cos(a), yc + r * np.sin(a)] for a in np.linspace(np.pi / 2, 1.5 * np.pi, 7)]
    bump = ([[xl + 0.1 * length, yc - 1.8 * r], [xr - 0.05 * length, yc - 1.8 * r]] if motor else
            [[cx - 0.08 * length, yc - 1.4 * r], [cx + 0.12 * length, yc - 1.4 * r]])
    return [[float(x), float(y)] for x, y in right + left + bump]


def _car(cx: float, ground: float, length: float) -> list[list[float]]:
    h = 0.42 * length
    x0, x1 = cx - length / 2, cx + length / 2
    return [[x0, ground - 0.1 * h], [x0, ground - 0.55 * h], [x0 + 0.22 * length, ground - 0.6 * h],
            [x0 + 0.32 * length, ground - h], [x1 - 0.25 * length, ground - h],
            [x1 - 0.12 * length, ground - 0.6 * h], [x1, ground - 0.5 * h], [x1, ground - 0.1 * h],
            [x1 - 0.1 * length, ground], [x0 + 0.1 * length, ground]]


# --------------------------------------------------------------------------- scenes


@dataclass
class _Obj:
    label: str
    polygon: list[list[float]]
    color: tuple[int, int, int]
    depth: float
    detail: str = ""  # what to paint on top: "face", "wheels", "windows", "car"


def _jitter(rng: np.random.Generator, base, amount: float = 18.0) -> tuple[int, int, int]:
    c = np.asarray(base, dtype=np.float64) + rng.normal(0, amount, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _person_color(rng: np.random.Generator) -> tuple[int, int, int]:
    return _jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 20)


def scene_objects(rng: np.random.Generator, h: int, w: int) -> list[_Obj]:
    """The polygons of one scene, back to front (the order they are drawn and annotated in)."""
    horizon = h * rng.uniform(0.42, 0.5)
    curb = horizon + h * rng.uniform(0.1, 0.14)
    objs = [_Obj("sky", _rect(0, 0, w, h), _jitter(rng, _SKY, 10), -3)]
    x = rng.uniform(-10, 0)
    while x < w:  # a row of buildings
        bw = rng.uniform(0.15, 0.35) * w
        top = rng.uniform(0.05, 0.35) * h
        objs.append(_Obj("building", _rect(x, top, x + bw, horizon + 1), _jitter(rng, (130, 115, 100), 25),
                         -2, "windows"))
        x += bw
    for _ in range(int(rng.integers(1, 4))):  # trees
        cx, r = rng.uniform(0, w), rng.uniform(0.06, 0.12) * h
        objs.append(_Obj("vegetation", _ellipse(cx, horizon - 1.2 * r, 1.3 * r, 1.4 * r),
                         _jitter(rng, (60, 120, 50), 15), -1.5))
    objs.append(_Obj("sidewalk", _rect(0, horizon, w, curb + 1), _jitter(rng, _SIDEWALK, 10), -1))
    objs.append(_Obj("road", _rect(0, curb, w, h), _jitter(rng, _ROAD, 8), -1, "markings"))

    def scale(foot: float) -> float:  # perspective: nearer (lower) objects are larger
        return 0.55 + 0.9 * (foot - horizon) / (h - horizon)

    things: list[_Obj] = []
    person_h = 0.34 * h
    for _ in range(int(rng.integers(1, 3))):  # riders on two-wheelers, on the road
        foot = rng.uniform(curb + 0.1 * h, h - 1)
        s, cx = scale(foot), rng.uniform(0.08, 0.92) * w
        motor = bool(rng.random() < MOTORCYCLE_SHARE)
        length = 0.95 * person_h * s * (1.2 if motor else 1.0)
        wheel_color = _jitter(rng, (200, 60, 40), 40) if motor else _jitter(rng, (40, 40, 45), 8)
        things.append(_Obj("motorcycle" if motor else "bicycle", _two_wheeler(cx, foot, length, motor),
                           wheel_color, foot, "wheels"))
        things.append(_Obj("rider", _silhouette(cx + rng.normal(0, 0.04) * length, foot - 0.3 * length,
                                               0.85 * person_h * s), _person_color(rng), foot + 0.01, "face"))
    n_persons = int(rng.integers(2, 6))
    for _ in range(n_persons):  # persons, mostly on the sidewalk, some crossing the road
        on_road = rng.random() < 0.25
        foot = rng.uniform(curb + 0.05 * h, h - 1) if on_road else rng.uniform(horizon + 2, curb)
        s, cx = scale(foot), rng.uniform(0.05, 0.95) * w
        k = int(rng.integers(2, 5)) if rng.random() < 0.3 else 1  # a group
        if k > 1 and rng.random() < 1 / 3:
            hull = _silhouette(cx, foot, person_h * s)
            span = 0.22 * person_h * s * (k - 1)
            poly = [[p[0] + (span if p[0] > cx else 0), p[1]] for p in hull]
            things.append(_Obj("persongroup", poly, _person_color(rng), foot, "face"))
            continue
        for j in range(k):
            fj = foot + rng.uniform(-1.5, 1.5)
            things.append(_Obj("person", _silhouette(cx + j * 0.22 * person_h * s, fj, person_h * s),
                               _person_color(rng), fj, "face"))
    for _ in range(int(rng.integers(1, 4))):  # cars on the road
        foot = rng.uniform(curb + 0.08 * h, h + 2)
        s = scale(min(foot, h))
        things.append(_Obj("car", _car(rng.uniform(0, w), foot, 1.5 * person_h * s),
                           _jitter(rng, _CARS[rng.integers(len(_CARS))], 15), foot, "car"))
    for _ in range(int(rng.integers(1, 3))):  # poles carrying traffic signs, on the sidewalk
        foot = rng.uniform(horizon + 1, curb)
        s, cx = scale(foot), rng.uniform(0.03, 0.97) * w
        ph, pw = 1.5 * person_h * s, max(1.2, 0.04 * person_h * s)
        things.append(_Obj("pole", _rect(cx - pw, foot - ph, cx + pw, foot), _jitter(rng, (120, 120, 125), 10),
                           foot))
        r = 0.2 * person_h * s
        kind = int(rng.integers(3))
        sign = (_ellipse(cx, foot - ph, r, r, 8) if kind == 0 else
                [[cx - r, foot - ph - r], [cx + r, foot - ph - r], [cx, foot - ph + r]] if kind == 1 else
                _rect(cx - r, foot - ph - r, cx + r, foot - ph + r))
        things.append(_Obj("traffic sign", sign, _jitter(rng, [(200, 30, 30), (30, 70, 190), (230, 190, 30)][kind], 15),
                           foot + 0.001))
    if rng.random() < 0.4:  # a parked bicycle on the sidewalk, no rider
        foot = rng.uniform(horizon + 2, curb)
        s = scale(foot)
        things.append(_Obj("bicycle", _two_wheeler(rng.uniform(0.1, 0.9) * w, foot, 0.95 * person_h * s, False),
                           _jitter(rng, (40, 40, 45), 8), foot, "wheels"))
    things.sort(key=lambda o: o.depth)
    return objs + things


def _paint(rng: np.random.Generator, objs: list[_Obj], h: int, w: int) -> np.ndarray:
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    for o in objs:
        poly = [tuple(p) for p in o.polygon]
        draw.polygon(poly, fill=o.color)
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        if o.detail == "markings":
            y = (y0 + y1) / 2
            for x in np.arange(rng.uniform(-8, 0), w, 12.0):
                draw.rectangle([x, y, x + 6, y + 1], fill=(235, 235, 235))
        elif o.detail == "windows":
            for yy in np.arange(y0 + 3, y1 - 3, 5.0):
                for xx in np.arange(x0 + 2, x1 - 2, 5.0):
                    draw.rectangle([xx, yy, xx + 1, yy + 1], fill=(60, 70, 90))
        elif o.detail == "face":
            hh = y1 - y0
            cx = (poly[0][0] + poly[-1][0]) / 2
            r = 0.09 * hh
            draw.ellipse([cx - r, y0, cx + r, y0 + 2 * r], fill=_jitter(rng, (225, 185, 150), 12))
        elif o.detail == "wheels":
            r = (y1 - y0) * 0.45 if (y1 - y0) < 0.5 * (x1 - x0) else 0.22 * (x1 - x0)
            for cx in (x0 + r, x1 - r):
                draw.ellipse([cx - r, y1 - 2 * r, cx + r, y1], outline=(15, 15, 15), width=1)
        elif o.detail == "car":
            draw.rectangle([x0 + 0.35 * (x1 - x0), y0 + 1, x1 - 0.3 * (x1 - x0), y0 + 0.35 * (y1 - y0)],
                           fill=(140, 170, 200))
            r = 0.1 * (x1 - x0)
            for cx in (x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0)):
                draw.ellipse([cx - r, y1 - 2 * r, cx + r, y1], fill=(15, 15, 15))
    a = np.asarray(img, dtype=np.float64) + rng.normal(0, 6.0, (h, w, 3))
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def render_street_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, dict]:
    """One scene: ``(H, W, 3)`` uint8 RGB and its Cityscapes polygon annotation (a dict)."""
    objs = scene_objects(rng, height, width)
    image = _paint(rng, objs, height, width)
    ann = {"imgHeight": height, "imgWidth": width,
           "objects": [{"label": o.label, "polygon": [[round(float(x), 2), round(float(y), 2)] for x, y in o.polygon]}
                       for o in objs]}
    return image, ann


# --------------------------------------------------------------------------- writing


def street_root(config: StreetConfig) -> Path:
    """Where a stand-in set lives: ``<cache_root>/street_scenes/<key>`` (a Cityscapes root)."""
    return cache_root() / "street_scenes" / config.key()


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG") if mode else Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_frame(root: Path, split: str, name: str, image: np.ndarray, ann: dict) -> None:
    """Write one frame in Cityscapes' layout (image, polygons, labelIds, instanceIds, color)."""
    from cityscapesscripts.helpers.labels import id2label

    city = name.split("_")[0]
    img_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    label_ids, inst = rasterize_polygons(ann, source=name)
    color = np.zeros((*label_ids.shape, 3), dtype=np.uint8)
    for lid in np.unique(label_ids):
        color[label_ids == lid] = id2label[int(lid)].color
    (img_dir / f"{name}_leftImg8bit.png").write_bytes(_png(image))
    (gt_dir / f"{name}_gtFine_polygons.json").write_text(json.dumps(ann, indent=1))
    (gt_dir / f"{name}_gtFine_labelIds.png").write_bytes(_png(label_ids))
    (gt_dir / f"{name}_gtFine_instanceIds.png").write_bytes(_png(inst.astype(np.uint16)))
    (gt_dir / f"{name}_gtFine_color.png").write_bytes(_png(color))


def _is_complete(root: Path, config: StreetConfig) -> bool:
    try:
        return json.loads((root / "standin.json").read_text()).get("key") == config.key()
    except (OSError, ValueError):
        return False


def write_street_scenes(config: StreetConfig, *, root: str | os.PathLike | None = None,
                        progress: bool = True) -> Path:
    """Generate the stand-in in Cityscapes' layout (once) and return its root.

    Written to a temporary folder beside the final one and renamed into place
    when complete, so an interrupted run never leaves a partial set. Frames are
    named ``standin_<split index>_<frame:06d>``; scene ``i`` of a split is drawn
    from the generator seeded with ``(seed, split, i)``.
    """
    from tqdm.auto import tqdm

    final = Path(root) if root is not None else street_root(config)
    if _is_complete(final, config):
        return final
    with atomic_directory(final) as tmp:
        for s, (split, n) in enumerate((("train", config.n_train), ("val", config.n_val))):
            (tmp / "leftImg8bit" / split).mkdir(parents=True, exist_ok=True)
            (tmp / "gtFine" / split).mkdir(parents=True, exist_ok=True)
            for i in tqdm(range(n), desc=f"street scenes {split}", disable=not progress, leave=False):
                rng = np.random.default_rng([config.seed, s, i])
                image, ann = render_street_scene(rng, config.height, config.width)
                write_frame(tmp, split, f"{CITY}_{s:06d}_{i:06d}", image, ann)
        atomic_write_text(tmp / "standin.json", json.dumps({"key": config.key(), "config": asdict(config),
                                                            "format": FORMAT_VERSION}, indent=1))
    return final
