"""The native Cityscapes loader on a fixture written in the exact official layout, and the stand-in."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gsutils.data.cityscapes import (IGNORE, TRAIN_CLASSES, CityscapesScenes, class_colors, id_to_train_id,
                                     rasterize_polygons)
from gsutils.data.street_scenes import StreetConfig, render_street_scene, write_street_scenes

H, W = 32, 48
# labelIds (cityscapesscripts): road 7, building 11, person 24, rider 25, bicycle 33; trainIds 0, 2, 11, 12, 18
POLYGONS = {
    "imgHeight": H, "imgWidth": W,
    "objects": [
        {"label": "building", "polygon": [[0, 0], [47, 0], [47, 15], [0, 15]]},
        {"label": "road", "polygon": [[0, 16], [47, 16], [47, 31], [0, 31]]},
        {"label": "bicycle", "polygon": [[10, 24], [20, 24], [20, 29], [10, 29]]},
        {"label": "rider", "polygon": [[13, 14], [17, 14], [17, 25], [13, 25]]},
        {"label": "persongroup", "polygon": [[30, 10], [40, 10], [40, 25], [30, 25]]},
    ],
}


def write_fixture(root, split="val", city="aachen", name="aachen_000000_000019"):
    """One frame in the official layout: image, polygons, labelIds, instanceIds, as json2*Img write them."""
    img_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(img_dir / f"{name}_leftImg8bit.png")
    (gt_dir / f"{name}_gtFine_polygons.json").write_text(json.dumps(POLYGONS))
    label, inst = rasterize_polygons(POLYGONS)
    Image.fromarray(label).save(gt_dir / f"{name}_gtFine_labelIds.png")
    Image.fromarray(inst.astype(np.uint16)).save(gt_dir / f"{name}_gtFine_instanceIds.png")
    return rgb


def test_label_table_is_cityscapes():
    assert len(TRAIN_CLASSES) == 19
    assert TRAIN_CLASSES[0] == "road" and TRAIN_CLASSES[12] == "rider" and TRAIN_CLASSES[18] == "bicycle"
    assert tuple(class_colors()[0]) == (128, 64, 128)
    assert id_to_train_id(np.array([7, 11, 24, 25, 33, 0, 1])).tolist() == [0, 2, 11, 12, 18, IGNORE, IGNORE]


def test_rasterised_polygons_have_cityscapes_ids():
    label, inst = rasterize_polygons(POLYGONS)
    assert label[5, 5] == 11 and label[20, 2] == 7 and label[27, 11] == 33 and label[20, 15] == 25
    assert label[20, 35] == 24  # a group keeps its class
    assert inst[20, 15] == 25000 and inst[27, 11] == 33000  # first instance of rider / bicycle
    assert inst[20, 35] == 24  # groups have no instance number
    assert inst[5, 5] == 11


def test_loader_reads_native_layout(tmp_path):
    rgb = write_fixture(tmp_path)
    ds = CityscapesScenes(tmp_path, "val")
    assert len(ds) == 1 and ds.name(0) == "aachen_000000_000019"
    s = ds[0]
    assert s.image.shape == (3, H, W) and s.image.dtype == torch.float32
    assert torch.allclose(s.image, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    assert s.label[5, 5] == 2 and s.label[20, 15] == 12 and s.label[27, 11] == 18 and s.label[20, 2] == 0
    from_poly = CityscapesScenes(tmp_path, "val", from_polygons=True)[0]
    assert torch.equal(from_poly.label, s.label) and torch.equal(from_poly.instance, s.instance)
    small = CityscapesScenes(tmp_path, "val", size=(16, 24))[0]
    assert small.image.shape == (3, 16, 24) and small.label.shape == (16, 24)


def test_missing_split_folder_is_named(tmp_path):
    write_fixture(tmp_path, split="val")
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/train"):
        CityscapesScenes(tmp_path, "train")


def test_unknown_polygon_label_is_named(tmp_path):
    write_fixture(tmp_path)
    f = next((tmp_path / "gtFine" / "val").rglob("*_polygons.json"))
    bad = json.loads(f.read_text())
    bad["objects"].append({"label": "unicorn", "polygon": [[0, 0], [3, 0], [3, 3]]})
    f.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"unicorn.*not a Cityscapes label"):
        CityscapesScenes(tmp_path, "val", from_polygons=True)[0]


def test_standin_goes_through_the_same_loader_and_is_deterministic(tmp_path):
    cfg = StreetConfig(height=32, width=64, n_train=2, n_val=2, seed=3)
    a = write_street_scenes(cfg, root=tmp_path / "a", progress=False)
    b = write_street_scenes(cfg, root=tmp_path / "b", progress=False)
    for f in sorted(p.relative_to(a) for p in a.rglob("*.png")):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    ds = CityscapesScenes(a, "val")
    assert len(ds) == 2
    lab = ds[0].label
    assert {0, 10}.issubset(set(lab.unique().tolist()))  # road and sky in every scene


def test_standin_riders_sit_on_two_wheelers():
    """Every rider polygon has a bicycle or motorcycle directly below its centre (the built-in context)."""
    for i in range(20):
        _, ann = render_street_scene(np.random.default_rng([0, 0, i]), 64, 128)
        labels = [o["label"] for o in ann["objects"]]
        for k, lab in enumerate(labels):
            if lab == "rider":
                assert labels[k - 1] in ("bicycle", "motorcycle")
                below = np.array(ann["objects"][k - 1]["polygon"])
                rider = np.array(ann["objects"][k]["polygon"])
                assert below[:, 0].min() <= rider[:, 0].mean() <= below[:, 0].max()
