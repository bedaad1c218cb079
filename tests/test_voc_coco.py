"""Tests of the VOC and COCO loaders on small fixtures written in those exact formats.

The VOC fixture is a hand-written ``VOCdevkit/VOC2007`` tree (XML typed out
here, not produced by the project's writer), so the reader is checked against
the format itself and against torchvision's ``VOCDetection``; the writer is
checked by a round trip. The COCO fixture is an ``instances`` json with
polygon and RLE (crowd) annotations, read with pycocotools.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gsutils.data.coco import COCODataset
from gsutils.data.voc import (
    VOC_CLASSES,
    VOCDataset,
    VOCObject,
    parse_voc_annotation,
    read_object_masks,
    write_image_set,
    write_voc_image,
)

XML_1 = """<annotation>
  <folder>VOC2007</folder>
  <filename>000001.jpg</filename>
  <size><width>40</width><height>30</height><depth>3</depth></size>
  <segmented>0</segmented>
  <object>
    <name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
    <bndbox><xmin>3</xmin><ymin>5</ymin><xmax>20</xmax><ymax>25</ymax></bndbox>
  </object>
  <object>
    <name>person</name><pose>Left</pose><truncated>0</truncated><difficult>1</difficult>
    <bndbox><xmin>30</xmin><ymin>1</ymin><xmax>40</xmax><ymax>30</ymax></bndbox>
  </object>
  <object>
    <name>dog</name><pose>Left</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>22.0</xmin><ymin>2</ymin><xmax>28</xmax><ymax>9</ymax></bndbox>
  </object>
</annotation>
"""

XML_2 = """<annotation>
  <filename>000002.jpg</filename>
  <size><width>40</width><height>30</height><depth>3</depth></size>
  <object>
    <name>cat</name><difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>40</xmax><ymax>30</ymax></bndbox>
  </object>
</annotation>
"""


@pytest.fixture
def voc_root(tmp_path):
    """A two-image ``VOCdevkit/VOC2007`` tree."""
    root = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, xml in (("000001", XML_1), ("000002", XML_2)):
        (root / "Annotations" / f"{name}.xml").write_text(xml)
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{name}.jpg", quality=95)
    (root / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n")
    return root


def test_voc_reader_boxes_labels_and_difficult(voc_root):
    ds = VOCDataset(voc_root, "test")
    assert len(ds) == 2
    s = ds[0]
    assert s.image_id == "000001"
    assert s.image.shape == (3, 30, 40) and s.image.dtype == torch.float32
    assert 0.0 <= float(s.image.min()) and float(s.image.max()) <= 1.0
    dog, person = VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")
    assert s.labels.nonzero().flatten().tolist() == sorted([dog, person])
    assert s.class_boxes(dog).tolist() == [[2, 4, 19, 24], [21, 1, 27, 8]]  # 0-based inclusive
    assert s.class_difficult(dog).tolist() == [False, False]
    assert s.class_difficult(person).tolist() == [True]
    mask = s.gt_mask(dog)
    assert mask.shape == (30, 40)
    assert int(mask.sum()) == 18 * 21 + 7 * 8  # two disjoint boxes
    assert ds[1].objects == (VOCObject("cat", VOC_CLASSES.index("cat"), (0, 0, 39, 29), False),)


def test_voc_annotation_is_torchvisions(voc_root):
    from torchvision.datasets import VOCDetection

    tv = VOCDetection(str(voc_root.parent.parent), year="2007", image_set="test")
    ours = VOCDataset(voc_root, "test")
    for i in range(len(ours)):
        assert ours.annotation(i) == tv[i][1]
        img = np.asarray(tv[i][0], dtype=np.float32) / 255.0  # (H, W, 3)
        np.testing.assert_array_equal(ours[i].image.permute(1, 2, 0).numpy(), img)


def test_voc_gt_matches_torchray_voc_as_mask(voc_root):
    from torchray.benchmark.datasets import voc_as_mask

    ds = VOCDataset(voc_root, "test")
    label = ds.annotation(0)
    for obj in label["annotation"]["object"]:  # TorchRay's int() cannot read "22.0"
        obj["bndbox"] = {k: str(int(float(v))) for k, v in obj["bndbox"].items()}
    for c in ds[0].present_classes():
        assert torch.equal(ds[0].gt_mask(c), voc_as_mask(label, c))


def test_voc_writer_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    objs = (VOCObject("two", 2, (0, 3, 10, 20), False), VOCObject("seven", 7, (12, 0, 31, 23), True))
    omap = np.zeros((24, 32), np.uint8)
    omap[3:21, 0:11] = 1
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    write_voc_image(tmp_path, "a", img, objs, object_masks=omap)
    write_image_set(tmp_path, "test", ["a"])
    s = VOCDataset(tmp_path, "test", names)[0]
    assert s.objects == objs
    assert s.labels.nonzero().flatten().tolist() == [2, 7]
    ann = parse_voc_annotation(tmp_path / "Annotations" / "a.xml")["annotation"]
    assert ann["size"] == {"width": "32", "height": "24", "depth": "3"}
    assert ann["object"][0]["bndbox"] == {"xmin": "1", "ymin": "4", "xmax": "11", "ymax": "21"}
    np.testing.assert_array_equal(read_object_masks(tmp_path, "a"), omap)
    back = (s.image.permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(back - img).mean() < 12  # JPEG q95 of uniform noise: lossy but close
    with pytest.raises(ValueError, match="does not fit"):
        write_voc_image(tmp_path, "b", img, (VOCObject("two", 2, (0, 0, 32, 5), False),))


def test_voc_bad_inputs(voc_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        VOCDataset(tmp_path / "missing", "test")
    with pytest.raises(FileNotFoundError, match="available image sets: \\['test'\\]"):
        VOCDataset(voc_root, "trainval")
    with pytest.raises(ValueError, match="not one of the class_names"):
        VOCDataset(voc_root, "test", class_names=("cat", "person"))[0]
    with pytest.raises(IndexError):
        VOCDataset(voc_root, "test")[2]


# ----------------------------------------------------------------------------- COCO


def _polygon_mask(poly: list[float], h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
    return mask_utils.decode(rle).astype(bool)


@pytest.fixture
def coco_fixture(tmp_path):
    """Three images (one unannotated), categories 1 and 18 and 44, polygons and a crowd RLE."""
    from pycocotools import mask as mask_utils

    images_dir = tmp_path / "val2014"
    images_dir.mkdir()
    h, w = 20, 30
    rng = np.random.default_rng(2)
    images = []
    for i, name in enumerate(["COCO_val2014_000000000001.jpg", "COCO_val2014_000000000002.jpg",
                              "COCO_val2014_000000000003.jpg"], start=1):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images_dir / name)
        images.append({"id": i, "file_name": name, "height": h, "width": w})
    crowd = np.zeros((h, w), np.uint8, order="F")
    crowd[12:18, 20:28] = 1
    crowd_rle = mask_utils.encode(np.asfortranarray(crowd))
    crowd_rle["counts"] = crowd_rle["counts"].decode()
    anns = [
        {"id": 1, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 1.0, "bbox": [1, 1, 8, 8],
         "segmentation": [[1, 1, 9, 1, 9, 9, 1, 9]]},
        {"id": 2, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 1.0, "bbox": [15, 2, 5, 5],
         "segmentation": [[15, 2, 20, 2, 20, 7, 15, 7]]},
        {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 48.0, "bbox": [20, 12, 8, 6],
         "segmentation": crowd_rle},
        {"id": 4, "image_id": 2, "category_id": 44, "iscrowd": 0, "area": 1.0, "bbox": [0, 0, 29, 19],
         "segmentation": [[0, 0, 29, 0, 29, 19, 0, 19]]},
    ]
    cats = [{"id": 44, "name": "bottle", "supercategory": "kitchen"},
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 18, "name": "dog", "supercategory": "animal"}]
    ann_file = tmp_path / "instances_val2014.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return images_dir, ann_file, crowd.astype(bool)


def test_coco_labels_and_union_masks(coco_fixture):
    images_dir, ann_file, crowd = coco_fixture
    ds = COCODataset(images_dir, ann_file)
    assert ds.class_names == ("person", "dog", "bottle")  # sorted by category id: 1, 18, 44
    assert len(ds) == 2  # the unannotated image is left out
    s = ds[0]
    assert s.image_id == 1 and s.image.shape == (3, 20, 30)
    assert s.labels.tolist() == [1.0, 1.0, 0.0]
    assert s.present_classes() == [0, 1]
    dog = _polygon_mask([1, 1, 9, 1, 9, 9, 1, 9], 20, 30) | _polygon_mask([15, 2, 20, 2, 20, 7, 15, 7], 20, 30)
    np.testing.assert_array_equal(s.gt_mask(1).numpy(), dog)
    np.testing.assert_array_equal(s.gt_mask(0).numpy(), crowd)
    with pytest.raises(ValueError, match="not present"):
        s.gt_mask(2)
    assert ds[1].present_classes() == [2]
    assert len(COCODataset(images_dir, ann_file, skip_empty=False)) == 3


def test_coco_masks_match_torchray(coco_fixture):
    from torchray.benchmark.datasets import coco_as_mask
    from torchvision.datasets import CocoDetection

    images_dir, ann_file, _ = coco_fixture
    tv = CocoDetection(str(images_dir), str(ann_file))
    ours = COCODataset(images_dir, ann_file)
    # TorchRay indexes COCO's 80 categories; map our contiguous ids to theirs via the category id
    from torchray.benchmark import datasets as trd

    label = tv[0][1]
    for c in ours[0].present_classes():
        cat_id = ours.cat_ids[c]
        tr_index = trd._COCO_CLASS_TO_INDEX[cat_id]
        assert torch.equal(ours[0].gt_mask(c), coco_as_mask(tv, label, tr_index))


def test_coco_bad_inputs(coco_fixture, tmp_path):
    images_dir, ann_file, _ = coco_fixture
    with pytest.raises(FileNotFoundError, match="annotation_file"):
        COCODataset(images_dir, tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="image_dir"):
        COCODataset(tmp_path / "nope", ann_file)


def test_a_real_voc_split_of_mixed_sizes_loads_at_one_side(tmp_path):
    from gsutils.data.scenes import load_voc_split, resized_objects
    from gsutils.data.voc import VOC_CLASSES, VOCObject
    from tests.voc_fixtures import write_dog_and_cat_split

    voc = tmp_path / "VOC2007"
    dog, cat = write_dog_and_cat_split(voc, cat_box=(30, 5, 55, 39), lone_cat_box=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="one size"):
        load_voc_split(voc, "test", VOC_CLASSES)
    s = load_voc_split(voc, "test", VOC_CLASSES, side=32)
    assert s.images.shape == (2, 3, 32, 32) and s.image_size == (32, 32)
    assert float(s.images.min()) >= 0 and float(s.images.max()) <= 1
    # boxes cover the scaled pixels: the dog's x in [2, 11) * 32/56, y in [3, 31) * 32/40
    assert s.objects[0][0].box == (1, 2, 6, 24)
    assert s.objects[0][1].box == (17, 4, 31, 31) and s.objects[0][1].difficult
    assert s.objects[1][0].box == (0, 0, 0, 0)  # a one-pixel object keeps a pixel
    assert s.gt_mask(0, dog).sum() == 6 * 23
    assert resized_objects([VOCObject("dog", dog, (0, 0, 55, 39))], (40, 56), 32)[0].box == (0, 0, 31, 31)
    with pytest.raises(ValueError, match="side"):
        load_voc_split(voc, "test", VOC_CLASSES, side=3)
