"""NormGrad sections C, D and E on a VOC-format directory with a VOC-trained checkpoint.

A fixture in VOC's layout (images of different sizes, ``trainval`` and
``test`` image sets) and a narrow ResNet50 checkpoint saved as TorchRay names
its files stand in for VOC2007 and the published networks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gsutils.data.voc import VOC_CLASSES, VOCObject, write_image_set, write_voc_image
from gsutils.experiments.normgrad.normgrad_data import STAND_IN, NormGradData, classifier_gate, normgrad_data
from gsutils.profiles import get_profile


@pytest.fixture
def voc(tmp_path, monkeypatch):
    import gsutils.models.classifiers as classifiers

    rng = np.random.default_rng(0)
    root = tmp_path / "VOCdevkit" / "VOC2007"
    dog, cat, car = (VOC_CLASSES.index(c) for c in ("dog", "cat", "car"))
    shapes = [(40, 56), (48, 36), (44, 44), (36, 60), (52, 40), (40, 40)]
    ids = []
    for i, (h, w) in enumerate(shapes):
        objs = [VOCObject("dog", dog, (1, 2, w // 3, h - 3), False),
                VOCObject("cat" if i % 2 else "car", cat if i % 2 else car, (w // 2, h // 4, w - 2, h - 2), i == 3)]
        ids.append(f"{i + 1:06d}")
        write_voc_image(root, ids[-1], rng.integers(0, 256, (h, w, 3), dtype=np.uint8), objs)
    write_image_set(root, "trainval", ids[:4])
    write_image_set(root, "test", ids[2:])
    ckdir = tmp_path / "ckpt"
    ckdir.mkdir()
    build = classifiers.build_classifier
    torch.manual_seed(0)
    torch.save(build("resnet50", 20, 0.0625).state_dict(), ckdir / "resnet50_voc-0000.pth.tar")
    # the real checkpoints are full width; a narrow one keeps the test fast
    monkeypatch.setattr(classifiers, "build_classifier",
                        lambda arch, n, width=1.0, checkpoint=None, **kw: build(arch, n, 0.0625, checkpoint))
    p = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    p = dataclasses.replace(p, normgrad=dataclasses.replace(p.normgrad, image_size=32),
                            layers=dataclasses.replace(p.layers, probe_train_scenes=4, random_pairs=3))
    return p, root, ckdir


def test_a_page_s_parameters_choose_the_data(voc):
    _, root, ckdir = voc
    assert normgrad_data("resnet50") is STAND_IN and STAND_IN.key() == {}
    d = normgrad_data("resnet50", str(root), str(ckdir))
    assert d.is_voc and d.checkpoint.endswith("resnet50_voc-0000.pth.tar") and d.key()["checkpoint_bytes"] > 0
    with pytest.raises(ValueError, match="checkpoint_dir"):
        normgrad_data("resnet50", str(root))
    with pytest.raises(FileNotFoundError, match="ImageSets"):
        NormGradData(str(ckdir), d.checkpoint)
    with pytest.raises(ValueError, match="needs the checkpoint"):
        NormGradData(str(root), None)


@pytest.mark.slow
def test_sections_c_d_e_run_on_a_voc_directory(voc):
    from gsutils.experiments.normgrad.layer_combination import combination_run, layer_weights, table3
    from gsutils.experiments.normgrad.meta_saliency import meta_examples, meta_training_run
    from gsutils.experiments.normgrad.randomisation import randomisation_curves, randomisation_run

    profile, root, ckdir = voc
    data = normgrad_data("resnet50", str(root), str(ckdir))
    assert data.tolerance(profile) == 1  # 15 px of ~500 scaled to the 32 px side
    w = layer_weights(profile, "resnet50", data=data)
    assert w.layers == ("layer1", "layer2", "layer3", "layer4") and len(w.accuracy) == 4
    assert w.n_probe_train == 4 and w.n_probe_test == 4 and w.data.startswith("VOC at")
    run = combination_run(profile, "resnet50", data=data)
    assert run.n_pairs == 7  # 4 test images x 2 classes, one pair all-difficult
    assert run.weights == w
    t = table3(run)
    assert len(t) == 2 * 2 * 4 and np.isfinite(t["gain all"]).all()
    g = classifier_gate(profile, {"resnet50": w.test_map}, {"resnet50": data})
    assert g.passed and g.threshold is None and "no gate" in g.note and g.judge(False) is False
    r = randomisation_run(profile, "resnet50", data=data)
    assert r.stages[0] == "original" and len(r.pairs) == 3
    curves = randomisation_curves(r)
    assert np.allclose(curves.iloc[0].to_numpy(), 1.0)  # every map equals itself before randomisation
    assert meta_training_run(profile, "resnet50", data=data) is None  # no training snapshots
    ex = meta_examples(profile, "resnet50", data=data)
    assert set(ex.present) <= set(VOC_CLASSES) and ex.rgb.shape == (2, 3, 32, 32) and ex.n_images == 2
    # the stand-in's results live under other keys: nothing of the VOC run is reused for it
    from gsutils.experiments.normgrad.layer_combination import combination_config

    assert combination_config(profile, "resnet50", data) != combination_config(profile, "resnet50")


def test_a_chapter_opens_its_classifiers_on_a_voc_directory(voc, monkeypatch):
    import gsutils.experiments.normgrad.normgrad_data as nd

    profile, root, ckdir = voc
    profile = dataclasses.replace(profile, normgrad=dataclasses.replace(profile.normgrad, archs=("resnet50",)))
    clf = nd.open_classifiers(profile, str(root), str(ckdir))
    assert clf.archs == ("resnet50",) and clf.data["resnet50"].is_voc
    assert 0.0 <= clf.test_maps["resnet50"] <= 1.0
    # published checkpoints: not gated, their test mAP in the note
    g = clf.gate
    assert g.passed and g.threshold is None and "no gate" in g.note and "resnet50" in g.note
    assert clf.pointing_args("resnet50") == {"voc_root": str(root), "checkpoint": clf.data["resnet50"].checkpoint}
    # the test mAP is cached: a second chapter only reads it
    monkeypatch.setattr(nd, "evaluate_classifier", lambda *a, **k: pytest.fail("the classifier was evaluated again"))
    assert nd.open_classifiers(profile, str(root), str(ckdir)).test_maps == clf.test_maps


def test_a_chapter_opens_the_stand_in_classifiers_gated_on_their_test_map(tmp_path, monkeypatch):
    import gsutils.experiments.normgrad.normgrad_data as nd

    profile = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    maps = {"vgg16": 0.9, "resnet50": 0.7}
    monkeypatch.setattr(nd, "classifier_test_map", lambda p, arch, data: maps[arch])
    clf = nd.open_classifiers(profile)
    assert clf.archs == tuple(profile.normgrad.archs) and all(d is STAND_IN for d in clf.data.values())
    assert clf.test_maps == maps and clf.pointing_args("vgg16") == {}
    assert isinstance(clf.gate, nd.Gate) and clf.gate.threshold == profile.normgrad.gate_map
    assert clf.gate.passed == (min(maps.values()) >= profile.normgrad.gate_map)
    assert clf.gate.per == maps and "resnet50 0.700" in clf.gate.note
