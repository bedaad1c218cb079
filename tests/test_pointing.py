"""Tests of the pointing game (gsutils.metrics.pointing).

The hit rule is checked by hand at the tolerance's boundary, and against
TorchRay's ``PointingGame`` (the reference implementation the papers' numbers
come from) on random masks and points; the VOC box masks against TorchRay's
``voc_as_mask``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from gsutils.data.boxes import boxes_to_mask, is_difficult_pair
from gsutils.metrics.pointing import (
    PointingGame,
    hit_region,
    is_hit,
    map_argmax_point,
    pointing_accuracy,
)


def _box_mask(h: int, w: int, box: tuple[int, int, int, int]) -> torch.Tensor:
    return boxes_to_mask([box], h, w)


def test_hit_rule_is_strict_at_the_tolerance():
    gt = torch.zeros(60, 60, dtype=torch.bool)
    gt[30, 30] = True  # one pixel at (x=30, y=30)
    game = PointingGame(num_classes=1, tolerance=15)
    assert game.add((30, 30), gt, 0) == 1
    assert game.add((30 + 14, 30 + 5), gt, 0) == 1    # 14^2 + 5^2 = 221 < 225
    assert game.add((30 + 9, 30 + 12), gt, 0) == -1   # 9^2 + 12^2 = 225, not < 225
    assert game.add((30, 30 + 15), gt, 0) == -1
    assert game.add((30 - 14, 30), gt, 0) == 1
    hits, misses = game.counts("all")
    assert hits.tolist() == [3] and misses.tolist() == [2]


def test_hit_region_matches_brute_force():
    rng = np.random.default_rng(0)
    gt = torch.from_numpy(rng.random((23, 31)) > 0.97)
    gt[5, 7] = True
    region = hit_region(gt, 4)
    ys, xs = np.nonzero(gt.numpy())
    yy, xx = np.indices(gt.shape)
    d2 = ((yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2).min(-1)
    assert torch.equal(region, torch.from_numpy(d2 < 16))


def test_map_argmax_point_first_maximum_on_ties():
    m = torch.zeros(1, 8, 10)
    m[0, 3, 7] = 2.0
    m[0, 5, 1] = 2.0
    assert map_argmax_point(m) == (7, 3)  # row 3 comes before row 5
    assert map_argmax_point(torch.zeros(4, 4)) == (0, 0)


def _torchray_game():
    from torchray.benchmark.pointing_game import PointingGame as TRPointingGame

    return TRPointingGame


@pytest.mark.parametrize("tolerance", [1, 3, 15])
def test_agrees_with_torchray_pointing_game(tolerance):
    TRPointingGame = _torchray_game()
    rng = np.random.default_rng(tolerance)
    num_classes, h, w = 5, 40, 52
    ours = PointingGame(num_classes, tolerance=tolerance)
    ref = TRPointingGame(num_classes, tolerance=tolerance)
    for k in range(150):
        c = k % num_classes  # every class gets pairs: the two means are then comparable
        gt = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(int(rng.integers(1, 3))):
            x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
            x1, y1 = int(rng.integers(x0, min(w, x0 + 12))), int(rng.integers(y0, min(h, y0 + 12)))
            gt |= _box_mask(h, w, (x0, y0, x1, y1))
        saliency = torch.from_numpy(rng.random((h, w))).float()
        point = map_argmax_point(saliency)
        got = ours.add(saliency, gt, c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.meshgrid indexing warning inside TorchRay
            expected = ref.evaluate(gt, point)
        ref.aggregate(expected, c)
        assert got == expected
    hits, misses = ours.counts("all")
    assert hits.tolist() == ref.hits.long().tolist()
    assert misses.tolist() == ref.misses.long().tolist()
    np.testing.assert_allclose(ours.class_accuracies("all"), ref.class_accuracies.numpy())
    assert ours.accuracy("all") == pytest.approx(float(ref.accuracy))
    assert 0 < ours.accuracy() < 1  # both outcomes occurred: the comparison was not vacuous


def test_voc_box_mask_matches_torchray():
    from torchray.benchmark.datasets import voc_as_mask

    label = {"annotation": {"size": {"width": "30", "height": "20"}, "object": [
        {"name": "dog", "bndbox": {"xmin": "3", "ymin": "4", "xmax": "10", "ymax": "12"}, "difficult": "0"},
        {"name": "dog", "bndbox": {"xmin": "25", "ymin": "1", "xmax": "30", "ymax": "20"}, "difficult": "1"},
        {"name": "cat", "bndbox": {"xmin": "1", "ymin": "1", "xmax": "5", "ymax": "5"}, "difficult": "0"},
    ]}}
    # VOC's XML is 1-based and inclusive; boxes_to_mask takes 0-based inclusive boxes
    ours = boxes_to_mask([(2, 3, 9, 11), (24, 0, 29, 19)], 20, 30)
    assert torch.equal(ours, voc_as_mask(label, 11))  # "dog" is VOC class 11


def test_mean_over_classes_skips_classes_without_pairs():
    gt = _box_mask(20, 20, (0, 0, 4, 4))
    game = PointingGame(num_classes=3, tolerance=2)
    game.add((1, 1), gt, 0)   # hit
    game.add((15, 15), gt, 0)  # miss
    game.add((2, 2), gt, 2)   # hit
    acc = game.class_accuracies()
    assert acc[0] == 0.5 and np.isnan(acc[1]) and acc[2] == 1.0
    assert game.accuracy() == pytest.approx(0.75)  # TorchRay would average in a 0 for class 1
    assert np.isnan(game.accuracy("difficult"))


def test_difficult_subset_and_skipped_pairs():
    small = _box_mask(40, 40, (0, 0, 9, 9))     # 100 / 1600 of the image
    large = _box_mask(40, 40, (0, 0, 29, 29))   # 900 / 1600 >= 1/4
    assert is_difficult_pair(small, n_classes_present=2)
    assert not is_difficult_pair(small, n_classes_present=1)
    assert not is_difficult_pair(large, n_classes_present=3)
    game = PointingGame(num_classes=2, tolerance=3)
    game.add((5, 5), small, 0, difficult=True)
    game.add((35, 35), large, 1, difficult=False)
    assert game.add((5, 5), small, 1, skip=True) == 0
    assert game.n_pairs("all") == 2 and game.n_pairs("difficult") == 1
    assert game.skipped == 1
    assert game.accuracy("difficult") == 1.0
    assert game.accuracy("all") == pytest.approx(0.5)


def test_the_ground_truth_geometry_is_also_the_pointing_games():
    """Box and mask geometry lives in ``gsutils.data.boxes`` (the datasets use it); the pointing game re-exports it."""
    from gsutils.data import boxes
    from gsutils.metrics import pointing

    for name in ("boxes_to_mask", "is_difficult_pair", "DIFFICULT_AREA_FRACTION"):
        assert getattr(pointing, name) is getattr(boxes, name) and name in pointing.__all__


def test_pointing_accuracy_convenience():
    gts = torch.stack([_box_mask(16, 16, (0, 0, 3, 3)), _box_mask(16, 16, (10, 10, 15, 15))])
    maps = torch.zeros(2, 1, 16, 16)
    maps[0, 0, 1, 1] = 1.0   # inside box 0
    maps[1, 0, 0, 0] = 1.0   # far from box 1
    out = pointing_accuracy(maps, gts, [0, 1], num_classes=2, difficult=[True, False], tolerance=2)
    assert out["all"] == pytest.approx(0.5)
    assert out["difficult"] == 1.0


def test_bad_inputs_raise_clear_errors():
    gt = _box_mask(10, 10, (1, 1, 3, 3))
    game = PointingGame(num_classes=2)
    with pytest.raises(ValueError, match="empty"):
        game.add((1, 1), torch.zeros(10, 10, dtype=torch.bool), 0)
    with pytest.raises(ValueError, match="size"):
        game.add(torch.rand(12, 10), gt, 0)
    with pytest.raises(ValueError, match="class_id"):
        game.add((1, 1), gt, 2)
    with pytest.raises(ValueError, match="outside"):
        game.add((10, 3), gt, 0)
    with pytest.raises(TypeError, match="map_or_point"):
        game.add("corner", gt, 0)
    with pytest.raises(ValueError, match="tolerance"):
        PointingGame(2, tolerance=0)
    with pytest.raises(ValueError, match="tolerance"):
        PointingGame(2, tolerance=2.5)
    with pytest.raises(ValueError, match="num_classes"):
        PointingGame(0)
    with pytest.raises(ValueError, match="NaN"):
        map_argmax_point(torch.full((3, 3), float("nan")))
    with pytest.raises(ValueError, match="subset"):
        game.accuracy("easy")
    with pytest.raises(ValueError, match="xmax < xmin"):
        boxes_to_mask([(5, 1, 2, 3)], 10, 10)


def test_record_many_counts_as_record_and_is_hit_scores_as_add():
    rng = np.random.default_rng(3)
    hits = rng.random(200) < 0.6
    cls = rng.integers(0, 4, 200)
    dif = rng.random(200) < 0.3
    one, many = PointingGame(5), PointingGame(5)
    for h, c, d in zip(hits, cls, dif):
        one.record(bool(h), int(c), difficult=bool(d))
    many.record_many(hits, cls, dif)
    many.record_many([], [], [])
    for s in ("all", "difficult"):
        assert [a.tolist() for a in one.counts(s)] == [a.tolist() for a in many.counts(s)]
        assert one.accuracy(s) == many.accuracy(s)
    with pytest.raises(ValueError, match="class_ids"):
        many.record_many([True], [5])
    with pytest.raises(ValueError, match="same length"):
        many.record_many([True, False], [0])
    gt = _box_mask(20, 20, (2, 2, 5, 5))
    game = PointingGame(1, tolerance=3)
    for point in [(0, 0), (7, 7), (8, 3), (12, 12)]:
        assert game.add(point, gt, 0) == (1 if is_hit(point, gt, 3) else -1)
    saliency = torch.zeros(20, 20)
    saliency[6, 7] = 1.0
    assert is_hit(saliency, gt, 3) and is_hit(saliency, gt, region=hit_region(gt, 3))
    assert not is_hit(saliency, gt, 1)


def _run_record(class_id, hits, difficult, image_index):
    from gsutils.experiments.normgrad.pointing_results import PointingRun

    return PointingRun(arch="resnet50", layers=["input"], image_index=image_index, class_id=class_id,
                       difficult=difficult, hits=hits, tolerance=15, image_size=None, n_skipped=0, data="made up")


def test_hits_keys_survive_the_json_store():
    import gsutils.experiments.normgrad.pointing_runs as runs

    hits = {("gradient", "features.29"): [True], runs.CENTER: [False], ("linear_approx", "product", "accuracy"): [True]}
    assert runs.decode_hits(runs.encode_hits(hits)) == hits
    assert runs.encode_hits(hits) == {"gradient|features.29": [True], "center": [False],
                                      "linear_approx|product|accuracy": [True]}


def test_run_summaries_take_voc_class_ids():
    import gsutils.experiments.normgrad.pointing_runs as runs

    # VOC's 20 classes: ids past the stand-in's 10 are counted, not rejected or dropped
    run = _run_record([11, 7, 15, 11], {("gradient", "input"): [True, True, False, False],
                                        runs.CENTER: [False, True, True, True]},
                      [True, False, False, False], [0, 0, 1, 2])
    acc = runs.pointing_accuracies(run)
    assert acc.loc["gradient", ("all", "input")] == pytest.approx(100 * (0.5 + 1 + 0) / 3)
    assert acc.loc["gradient", ("difficult", "input")] == 100.0
    assert runs.center_accuracy(run) == {"all": pytest.approx(100 * (0.5 + 1 + 1) / 3), "difficult": 0.0}
    boot = runs.paired_bootstrap(run, ("gradient", "input"), runs.CENTER, n_boot=50)
    assert boot["difference"] == pytest.approx(-100 / 3)
    assert boot["low"] <= boot["high"]
    with pytest.raises(ValueError, match="subset"):
        runs.paired_bootstrap(run, ("gradient", "input"), runs.CENTER, subset="easy")


# ----------------------------------------------------------------------------- experiment runs


def _tiny_profile(tmp_path):
    import dataclasses

    from gsutils.profiles import get_profile

    p = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    ng = dataclasses.replace(p.normgrad, width=0.125, image_size=32, n_train_scenes=16, n_test_scenes=6,
                             epochs=1, batch_size=8, tolerance=2)
    return dataclasses.replace(p, normgrad=ng)


@pytest.mark.slow
def test_pointing_game_run_on_the_stand_in(tmp_path, results_env, monkeypatch):
    import gsutils.experiments.normgrad.classifier_training as training
    import gsutils.experiments.normgrad.pointing_runs as clf
    from gsutils.saliency.extract_aggregate import METHODS

    profile = _tiny_profile(tmp_path)
    run = clf.pointing_game_run(profile, "resnet50", progress=False)
    assert isinstance(run, clf.PointingRun) and run.data == "stand-in" and 0 <= run.test_map <= 1
    n = run.n_pairs
    assert n > 0 and len(run.class_id) == len(run.difficult) == n
    assert len(run.hits) == 9 * 5 + 4 + 1  # 9 methods x 5 layers, normgrad_conv x 4, center
    assert all(len(v) == n for v in run.hits.values())
    scenes = training.test_scenes(profile)
    centre = [bool(hit_region(scenes.gt_mask(i, c), 2)[16, 16])
              for i, c in zip(run.image_index, run.class_id)]
    assert list(run.hits[clf.CENTER]) == centre
    acc = clf.pointing_accuracies(run)
    assert list(acc.index) == list(METHODS)
    assert np.isnan(acc.loc["normgrad_conv", ("all", "input")])
    assert list(acc["all"].columns) == ["input", "layer1", "layer2", "layer3", "layer4"]
    best = clf.best_layers(run)
    assert set(best["best layer"]) <= {"input", "layer1", "layer2", "layer3", "layer4"}
    boot = clf.paired_bootstrap(run, ("gradient", "input"), ("gradient", "input"))
    assert boot == {"difference": 0.0, "low": 0.0, "high": 0.0}
    monkeypatch.setattr(clf, "_pointing_compute", lambda *a, **k: pytest.fail("recomputed a cached run"))
    assert clf.pointing_game_run(profile, "resnet50", progress=False) == run


@pytest.mark.slow
def test_pointing_game_run_on_a_voc_directory(tmp_path, monkeypatch):
    import gsutils.experiments.normgrad.pointing_runs as clf
    from gsutils.models.classifiers import build_classifier
    from tests.voc_fixtures import write_dog_and_cat_split

    voc = tmp_path / "VOCdevkit" / "VOC2007"
    dog, cat = write_dog_and_cat_split(voc, cat_box=(30, 5, 50, 35), lone_cat_box=(0, 0, 35, 47))
    ckdir = tmp_path / "ckpt"
    ckdir.mkdir()
    torch.manual_seed(0)
    torch.save(build_classifier("resnet50", 20, 0.125).state_dict(), ckdir / "resnet50_voc-0000.pth.tar")
    # the real checkpoints are full width; a narrow one keeps the test fast
    monkeypatch.setattr(clf, "build_classifier",
                        lambda arch, n, checkpoint=None, **kw: build_classifier(arch, n, 0.125, checkpoint))
    profile = _tiny_profile(tmp_path)
    args = clf.pointing_data_args("resnet50", str(voc), str(ckdir))
    assert args["checkpoint"].name == "resnet50_voc-0000.pth.tar"
    run = clf.pointing_game_run(profile, "resnet50", progress=False, **args)
    assert run.tolerance == 15 and run.n_skipped == 1  # image 1's cat: all boxes difficult
    assert run.image_index == (0, 1) and run.class_id == (dog, cat)
    assert run.test_map is None and run.image_size is None and run.data.startswith("VOC test at")
    # the dog covers 9x28 of 40x56 pixels (< 1/4) and a cat is present: difficult
    assert run.difficult == (True, False)
    # centres (28, 20) and (18, 24): 18 px right of the dog's box (tolerance 15); inside the cat's
    assert run.hits[clf.CENTER] == (False, True)
    assert clf.pointing_data_args("resnet50") == {}
    with pytest.raises(ValueError, match="checkpoint_dir"):
        clf.pointing_data_args("resnet50", str(voc), "")
    with pytest.raises(FileNotFoundError, match="vgg16_voc"):
        clf.pointing_data_args("vgg16", str(voc), str(ckdir))
