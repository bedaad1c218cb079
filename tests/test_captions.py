"""Captioned scenes, the COCO captions reader, vocabulary, caption scores and map sharpness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gsutils.data import captions as cap
from gsutils.data.captions import (
    CaptionObject,
    CaptionSceneConfig,
    Vocabulary,
    coco_caption_paths,
    describe,
    read_caption_scenes,
    read_coco_captions,
    tokenize,
    write_caption_scenes,
)
from gsutils.metrics.captions import caption_scores, half_max_area, mass_share, mention_f1, normalized_entropy


def obj(name, box):
    return CaptionObject(name, cap.DIGIT_CLASSES.index(name), box)


# --------------------------------------------------------------------------------------
# captions from objects
# --------------------------------------------------------------------------------------

def test_describe_one_object_and_size_threshold():
    # 100 px side: "large" from 30 px of visible height
    assert describe([obj("three", (10, 10, 20, 39))], 100) == ["a large three"]
    assert describe([obj("three", (10, 10, 20, 38))], 100) == ["a small three"]
    assert describe([], 100) == []


def test_describe_left_right_and_reverse():
    objs = [obj("seven", (60, 10, 80, 50)), obj("three", (0, 20, 10, 30))]  # the three is on the left
    assert describe(objs, 100) == ["a small three left of a large seven", "a large seven right of a small three"]


def test_describe_above_below():
    objs = [obj("two", (10, 0, 20, 40)), obj("five", (14, 60, 24, 95))]  # five below, slightly right
    assert describe(objs, 100) == ["a large two above a large five", "a large five below a large two"]


def test_describe_three_objects_chains_relations():
    objs = [obj("one", (0, 0, 9, 9)), obj("four", (40, 0, 49, 9)), obj("nine", (45, 60, 54, 69))]
    assert describe(objs, 100)[0] == "a small one left of a small four above a small nine"


def test_tokenize_and_vocabulary_round_trip():
    assert tokenize("A Dog, running.") == ["a", "dog", "running"]
    with pytest.raises(TypeError, match="string"):
        tokenize(3)
    v = Vocabulary.build(["a small three", "a large three", "a small one"], min_count=2)
    assert v.words[:4] == cap.SPECIALS
    assert v.words[4:] == ("a", "small", "three")  # by count, then alphabetically
    ids = v.encode(["a small three", "a huge one"])
    assert ids.tolist() == [[4, 5, 6, 2], [4, 3, 3, 2]]  # <unk> = 3, <end> = 2
    assert v.decode(ids[0]) == "a small three"
    assert v.encode(["a small three"], max_len=2).tolist() == [[4, 2]]


# --------------------------------------------------------------------------------------
# the stand-in on disk, in COCO captions format
# --------------------------------------------------------------------------------------

@pytest.fixture
def scene_cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path / "cache"))
    return CaptionSceneConfig(image_size=48, n_train=5, n_test=3, seed=1)


def test_caption_scenes_written_and_read_back(scene_cfg):
    root = write_caption_scenes(scene_cfg, progress=False)
    data = json.loads((root / "annotations" / "captions_test.json").read_text())
    assert {"images", "annotations"} <= set(data)
    test = read_caption_scenes(root, "test")
    assert test.images.shape == (3, 3, 48, 48) and test.images.dtype == torch.uint8
    assert test.object_maps.shape == (3, 48, 48)
    for i in range(3):
        assert list(test.captions[i]) == describe(test.objects[i], 48)
        for k, o in enumerate(test.objects[i]):  # each object's visible pixels lie in its box
            ys, xs = np.nonzero(test.object_maps[i].numpy() == k + 1)
            assert xs.min() == o.box[0] and xs.max() == o.box[2]
            assert ys.min() == o.box[1] and ys.max() == o.box[3]
        named = {o.name for o in test.objects[i]}
        assert test.object_mask(i, named).sum() == (test.object_maps[i] > 0).sum()


def test_caption_scenes_deterministic_and_per_split(scene_cfg, tmp_path, monkeypatch):
    root = write_caption_scenes(scene_cfg, ("test",), progress=False)
    assert not (root / "train").exists()  # only the split asked for
    first = (root / "annotations" / "captions_test.json").read_bytes()
    png = (root / "test" / "000002.png").read_bytes()
    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path / "other"))
    again = write_caption_scenes(scene_cfg, ("test",), progress=False)
    assert again != root
    assert (again / "annotations" / "captions_test.json").read_bytes() == first
    assert (again / "test" / "000002.png").read_bytes() == png
    with pytest.raises(ValueError, match="splits"):
        write_caption_scenes(scene_cfg, "test")


def test_scene_config_rejects_bad_values():
    with pytest.raises(ValueError, match="image_size"):
        CaptionSceneConfig(image_size=16, n_train=1, n_test=1, seed=0)
    with pytest.raises(ValueError, match="n_train"):
        CaptionSceneConfig(image_size=64, n_train=-1, n_test=1, seed=0)


# --------------------------------------------------------------------------------------
# real COCO captions: a fixture in that exact format
# --------------------------------------------------------------------------------------

@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / "data"
    (root / "coco" / "annotations").mkdir(parents=True)
    (root / "coco" / "val2014").mkdir()
    rng = np.random.default_rng(0)
    images = []
    for k, (iid, (h, w)) in enumerate([(42, (30, 50)), (7, (40, 40)), (99, (60, 20))]):
        name = f"COCO_val2014_{iid:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "coco" / "val2014" / name)
        images.append({"license": 1, "file_name": name, "coco_url": "", "height": h, "width": w,
                       "date_captured": "", "flickr_url": "", "id": iid})
    anns = [{"image_id": 42, "id": 1, "caption": "A man riding a horse."},
            {"image_id": 42, "id": 2, "caption": "Someone on a horse "},
            {"image_id": 7, "id": 3, "caption": "A cat."}]  # image 99 has no caption
    ann = {"info": {}, "licenses": [], "images": images, "annotations": anns}
    (root / "coco" / "annotations" / "captions_val2014.json").write_text(json.dumps(ann))
    return root


def test_read_real_coco_captions(coco_root):
    ann, images = coco_caption_paths(coco_root, "val")
    data = read_coco_captions(ann, images, image_size=16)
    assert data.image_ids == (7, 42)  # sorted, the uncaptioned image left out
    assert data.images.shape == (2, 3, 16, 16)
    assert data.captions[1] == ("A man riding a horse.", "Someone on a horse")
    assert data.object_maps is None
    with pytest.raises(ValueError, match="no object masks"):
        data.object_mask(0, ["cat"])
    assert read_coco_captions(ann, images, image_size=16, limit=1).image_ids == (7,)
    with pytest.raises(ValueError, match="pass image_size"):
        read_coco_captions(ann, images)  # 50x30 and 40x40 cannot be stacked


def test_coco_reader_errors_name_the_problem(coco_root, tmp_path):
    ann, images = coco_caption_paths(coco_root, "val")
    with pytest.raises(FileNotFoundError, match="captions_train2014.json"):
        coco_caption_paths(coco_root, "train")
    with pytest.raises(ValueError, match="'train' or 'val'"):
        coco_caption_paths(coco_root, "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_coco_captions(tmp_path / "nope.json", images)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="COCO captions format"):
        read_coco_captions(bad, images)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_coco_captions(bad, images)
    data = json.loads(ann.read_text())
    data["annotations"].append({"image_id": 5, "id": 9, "caption": "x"})
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"image ids \[5\]"):
        read_coco_captions(bad, images)
    (images / "COCO_val2014_000000000007.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000000000007"):
        read_coco_captions(ann, images, image_size=8)


# --------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------

def test_caption_scores_perfect_and_wrong():
    refs = {0: ["a small three left of a large seven"], 1: ["a large two above a small five"],
            2: ["a small one"]}
    perfect = caption_scores(refs, {i: r[0] for i, r in refs.items()})
    assert perfect["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["ROUGE-L"] == pytest.approx(1.0)
    wrong = caption_scores(refs, {0: "a large nine", 1: "a small eight", 2: "a large zero"})
    assert wrong["CIDEr"] < perfect["CIDEr"] and wrong["ROUGE-L"] < 1
    with pytest.raises(ValueError, match="same image ids"):
        caption_scores(refs, {0: "a"})


def test_mention_f1_closed_form():
    words = cap.DIGIT_CLASSES
    pred = [["a", "small", "three", "left", "of", "a", "small", "three"], ["a", "large", "one"]]
    true = [["three", "seven"], ["one"]]
    r = mention_f1(pred, true, words)
    # caption 0: one of two "three"s matches, the seven is missed; caption 1 exact
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3) and r["exact"] == 0.5


def test_sharpness_closed_form():
    uniform = torch.ones(1, 4, 4)
    point = torch.zeros(1, 4, 4)
    point[0, 1, 2] = 5.0
    assert float(normalized_entropy(uniform)) == pytest.approx(1.0)
    assert float(normalized_entropy(point)) == pytest.approx(0.0, abs=1e-12)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2] = True
    assert float(mass_share(uniform, mask)) == pytest.approx(0.5)
    assert float(mass_share(point, mask)) == pytest.approx(1.0)
    assert float(half_max_area(uniform)) == 1.0 and float(half_max_area(point)) == 1 / 16
    assert torch.isnan(normalized_entropy(torch.zeros(2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        mass_share(-uniform, mask)
