"""COCO instances -> semantic label maps, on a fixture in COCO's format, and the COCO-format stand-in."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gsutils.data.coco_semantic import (COCOSemantic, COCOStandinConfig, render_coco_scene,
                                        write_coco_standin)
from gsutils.experiments.grid.coco_context import coco_requests


def write_fixture(root):
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(root / "images" / "a.png")
    ann = {
        "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
        "categories": [{"id": 9, "name": "boat"}, {"id": 7, "name": "train"}, {"id": 1, "name": "person"}],
        "annotations": [
            # a large boat (x 0-19, y 0-9) and a small train on top of it (x 5-9, y 5-9)
            {"id": 1, "image_id": 1, "category_id": 9, "iscrowd": 0, "area": 200.0,
             "segmentation": [[0, 0, 20, 0, 20, 10, 0, 10]], "bbox": [0, 0, 20, 10]},
            {"id": 2, "image_id": 1, "category_id": 7, "iscrowd": 0, "area": 25.0,
             "segmentation": [[5, 5, 10, 5, 10, 10, 5, 10]], "bbox": [5, 5, 5, 5]},
            {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 25.0,
             "segmentation": [[25, 15, 30, 15, 30, 20, 25, 20]], "bbox": [25, 15, 5, 5]},
        ],
    }
    (root / "instances.json").write_text(json.dumps(ann))
    return root / "images", root / "instances.json"


def test_semantic_map_paints_chosen_categories_small_on_top(tmp_path):
    images, ann = write_fixture(tmp_path)
    ds = COCOSemantic(images, ann, ["boat", "train"])
    assert ds.class_names == ("background", "boat", "train")
    x, y = ds[0]
    assert x.shape == (3, 20, 30) and y.shape == (20, 30)
    assert y[2, 2] == 1 and y[7, 7] == 2  # the small train stays visible on the large boat
    assert y[17, 27] == 0  # person is not a chosen category: background
    assert set(y.unique().tolist()) == {0, 1, 2}


def test_unknown_category_is_named(tmp_path):
    images, ann = write_fixture(tmp_path)
    with pytest.raises(ValueError, match=r"no category \['tv'\].*boat"):
        COCOSemantic(images, ann, ["boat", "tv"])


def test_standin_is_coco_format_and_objects_sit_in_their_context(tmp_path):
    cfg = COCOStandinConfig(size=64, n_train=4, n_val=6, seed=1)
    a = write_coco_standin(cfg, root=tmp_path / "a")
    b = write_coco_standin(cfg, root=tmp_path / "b")
    assert (a / "annotations/instances_val.json").read_bytes() == (b / "annotations/instances_val.json").read_bytes()
    ds = COCOSemantic(a / "images" / "val", a / "annotations" / "instances_val.json", ["boat", "train", "tv"])
    assert len(ds) == 6
    for i in range(6):  # one kind of object per scene: its context decides the class
        _, y = ds[i]
        assert len(set(y.unique().tolist()) - {0}) == 1
    reqs = coco_requests(torch.stack([ds[i][1] for i in range(6)]), 6)
    assert reqs and all(m.sum() >= 0.01 * 64 * 64 for _, _, m in reqs)


def test_boats_stand_on_water():
    """Below a lone boat's bottom edge the image is the water's blue."""
    seen = 0
    for i in range(30):
        img, objs = render_coco_scene(np.random.default_rng([0, i]), 64)
        if len(objs) != 1:
            continue
        for cat, poly in objs:
            if cat == 9:
                y = int(max(poly[1::2])) + 1
                x = int((poly[0] + poly[2]) / 2)
                if y < 64:
                    r, g, bl = img[y, x].astype(int)
                    assert bl > r + 20
                    seen += 1
    assert seen > 0


def test_coco_result_stores_each_networks_arrays_under_its_index(tmp_path):
    from scene_results import coco_result

    from gsutils.experiments.common.store import Store
    from gsutils.experiments.grid.coco_context import COCOContextResult

    rng = np.random.default_rng(0)
    res = coco_result([rng.random(5), rng.random(5)], encoders=("a", "b"), miou=(0.25, 0.75),
                      cls=np.array([1, 1, 2, 3, 3]), empty=np.array([[True] * 5, [False] * 5]))
    assert res.reliance.shape == (2, 5) and res.maps.shape == (2, 5, 4, 4) and res.miou == {"a": 0.25, "b": 0.75}
    arrays = res.to_arrays()
    assert sorted(arrays) == sorted(["image", "cls", "masks"] + [f"{n}_{j}" for j in (0, 1) for n in (
        "maps", "reliance", "empty", "grey", "kept_without_context")])
    np.testing.assert_array_equal(arrays["reliance_1"], res.reliance[1])
    back = Store(tmp_path).get_or_compute("coco_context", {"t": 1}, lambda: arrays, fmt="npz")
    again = COCOContextResult.from_arrays(back, data=res.data, encoders=res.encoders, nets=res.nets, iou=res.iou)
    for name in ("image", "cls", "masks", "maps", "reliance", "empty", "grey", "kept_without_context"):
        np.testing.assert_array_equal(getattr(again, name), getattr(res, name))
    assert again.maps.dtype == np.float16 and again.empty.dtype == bool
    with pytest.raises(ValueError, match=r"3 networks: missing \['empty_2'"):
        COCOContextResult.from_arrays(back, data=res.data, encoders=("a", "b", "c"), nets={}, iou={})
