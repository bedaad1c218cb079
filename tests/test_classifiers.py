"""Tests of the classifiers (gsutils.models.classifiers) and their training
(gsutils.experiments.normgrad.classifier_training): torchvision's module names at every
width, BatchNorm folding, TorchRay-format checkpoints, average precision
(gsutils.metrics.multilabel), and a tiny end-to-end training run that is
cached, deterministic and resumable.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet50, vgg16

import gsutils.experiments.normgrad.classifier_training as clf
from gsutils.metrics.multilabel import average_precision
from gsutils.models.classifiers import (
    CAFFE_NORMALIZATION,
    CANDIDATE_LAYERS,
    IMAGENET_NORMALIZATION,
    _caffe_patch,
    add_vgg_batchnorm,
    build_classifier,
    fold_vgg_batchnorm,
    normalize_images,
)
from gsutils.profiles import get_profile


def _names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_modules()]


def _torchvision_names(arch: str) -> list[str]:
    with torch.device("meta"):  # no memory and no initialisation cost for the full-size networks
        return _names(vgg16(weights=None) if arch == "vgg16" else resnet50(weights=None))


@pytest.mark.parametrize("width", [1.0, 0.125])
def test_module_names_are_torchvisions(width):
    with torch.device("meta"):  # no memory and no initialisation cost for the full-size networks
        assert _names(build_classifier("vgg16", 20, width)) == _names(vgg16(weights=None))
        assert _names(build_classifier("resnet50", 20, width)) == _names(resnet50(weights=None))


def test_narrow_models_scale_channels_and_run():
    vgg = build_classifier("vgg16", 10, 0.125, vgg_pool=1)
    assert [m.out_channels for m in vgg.features if isinstance(m, nn.Conv2d)][::3] == [8, 16, 32, 64, 64]
    assert vgg.classifier[0].in_features == 64 and vgg.classifier[6].out_features == 10
    res = build_classifier("resnet50", 10, 0.125)
    assert res.layer4[2].conv3.out_channels == 256 and res.fc.in_features == 256
    x = torch.rand(2, 3, 64, 64)
    for model in (vgg, res):
        assert model.eval()(x).shape == (2, 10)
    for arch, layers in CANDIDATE_LAYERS.items():
        model = vgg if arch == "vgg16" else res
        assert set(layers) <= set(_names(model)) | {"input"}


def test_full_width_is_torchvision_shapes():
    with torch.device("meta"):
        ours = build_classifier("resnet50", 80).state_dict()
        ref = resnet50(weights=None, num_classes=80).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}


def test_zero_init_residual_and_normalization():
    res = build_classifier("resnet50", 10, 0.125, zero_init_residual=True)
    assert all(float(b.bn3.weight.detach().abs().sum()) == 0 for b in res.modules() if hasattr(b, "bn3"))
    assert res.normalization == IMAGENET_NORMALIZATION
    x = torch.rand(2, 3, 4, 4)
    y = normalize_images(x, IMAGENET_NORMALIZATION)
    assert torch.allclose(y[:, 1], (x[:, 1] - 0.456) / 0.224)
    z = normalize_images(x, CAFFE_NORMALIZATION)
    assert torch.allclose(z[:, 0], x[:, 0] * 255 - 123.68)


def test_fold_vgg_batchnorm_keeps_the_function():
    torch.manual_seed(0)
    model = add_vgg_batchnorm(build_classifier("vgg16", 5, 0.125, vgg_pool=1)).double()
    model.train()
    for _ in range(3):  # give the BatchNorms non-trivial running statistics
        model(torch.rand(4, 3, 32, 32, dtype=torch.float64))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 2.0)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    model.eval()
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    before = model(x)
    fold_vgg_batchnorm(model)
    assert _names(model) == _torchvision_names("vgg16")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(model(x), before, rtol=1e-10, atol=1e-10)


def _to_caffe_layout(arch: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of the loader's conversion: what TorchRay's converted checkpoints hold."""
    out = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        if arch == "vgg16":
            if k == "features.0.weight":
                v = v[:, [2, 1, 0]]
            k = k.replace("classifier.3.", "classifier.2.").replace("classifier.6.", "classifier.4.")
            if k == "classifier.0.weight":
                v = v.reshape(v.shape[0], -1, 1, 1)  # conv-shaped
        else:
            if k == "conv1.weight":
                v = v[:, [2, 1, 0]]
            part = "0" if re.search(r"running_(mean|var)$", k) else "1"
            k = re.sub(r"(bn\d)\.", rf"\1.{part}.", k)
            k = re.sub(r"(downsample\.1)\.", rf"\1.{part}.", k)
        out[k] = v.clone()
    return out


@pytest.mark.parametrize("arch", ["vgg16", "resnet50"])
def test_loads_torchray_caffe_checkpoints(arch, tmp_path):
    torch.manual_seed(1)
    ref = build_classifier(arch, 20, 0.25, vgg_pool=1)
    _caffe_patch(arch, ref)  # the Caffe definition the checkpoints come from
    for p in ref.parameters():
        nn.init.normal_(p, 0, 0.05)
    state = _to_caffe_layout(arch, ref.state_dict())
    assert any(re.search(r"bn\d\.[01]\.", k) for k in state) or arch == "vgg16"
    path = tmp_path / f"{arch}_voc.pth.tar"
    torch.save(state, path)
    model = build_classifier(arch, 20, 0.25, checkpoint=path, vgg_pool=1)
    assert model.normalization == CAFFE_NORMALIZATION
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x), ref.eval()(x))
    # the RGB <-> BGR swap really happened: the first conv's input channels are reversed
    first = "features.0.weight" if arch == "vgg16" else "conv1.weight"
    assert torch.equal(model.state_dict()[first], state[first][:, [2, 1, 0]])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_classifier("vgg16", 20, checkpoint=tmp_path / "missing.pth")
    other = build_classifier("resnet50", 10, 0.125)
    path = tmp_path / "r.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError, match=r"shape mismatches: fc.bias: checkpoint \(10,\) vs model \(20,\)"):
        build_classifier("resnet50", 20, 0.125, checkpoint=path)
    with pytest.raises(ValueError, match="missing keys"):
        build_classifier("vgg16", 10, 0.125, checkpoint=path)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="could not be read"):
        build_classifier("resnet50", 10, 0.125, checkpoint=tmp_path / "junk.pt")


def test_bad_arguments():
    with pytest.raises(ValueError, match="arch must be one of"):
        build_classifier("alexnet", 10)
    with pytest.raises(ValueError, match="width"):
        build_classifier("vgg16", 10, width=0)
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier("vgg16", 0)
    with pytest.raises(ValueError, match="vgg_pool"):
        build_classifier("vgg16", 10, 0.5, vgg_pool=0)
    with pytest.raises(TypeError, match="floating-point"):
        normalize_images(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), IMAGENET_NORMALIZATION)


def test_average_precision_matches_sklearn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    labels = rng.random((60, 4)) < 0.3
    labels[0] = True
    scores = np.round(rng.random((60, 4)) + labels * 0.4, 1)  # rounding makes ties
    ours = average_precision(scores, labels)
    ref = [average_precision_score(labels[:, c], scores[:, c]) for c in range(4)]
    np.testing.assert_allclose(ours, ref)
    assert np.isnan(average_precision(scores[:, :1], np.zeros((60, 1)))[0])


# ----------------------------------------------------------------------------- training


def _tiny_profile(tmp_path, **over):
    p = get_profile("quick", device="cpu", results_dir=tmp_path / "results")
    ng = dataclasses.replace(p.normgrad, width=0.125, image_size=32, n_train_scenes=24, n_test_scenes=6,
                             epochs=2, batch_size=8, **over)
    return dataclasses.replace(p, normgrad=ng)


@pytest.mark.slow
def test_training_is_cached_deterministic_and_resumable(tmp_path, monkeypatch, results_env):
    profile = _tiny_profile(tmp_path / "a")
    model = clf.train_or_load_classifier(profile, "vgg16", progress=False)
    assert not model.training
    assert _names(model) == _torchvision_names("vgg16")
    history = clf.classifier_history(profile, "vgg16")
    assert [h["epoch"] for h in history] == [1, 2]
    assert not clf.checkpoint_path(profile, "vgg16").exists()  # removed once finished

    # interrupted after the first epoch's checkpoint, then resumed: the same weights
    other = _tiny_profile(tmp_path / "b")
    from gsutils.experiments.common import training as loop  # the shared loop writes the epoch checkpoints

    real_write = loop.write_checked
    calls = {"n": 0}

    def crash_after_first(path, data):
        real_write(path, data)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(loop, "write_checked", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        clf.train_or_load_classifier(other, "vgg16", progress=False)
    monkeypatch.setattr(loop, "write_checked", real_write)
    assert clf.checkpoint_path(other, "vgg16").exists()
    resumed = clf.train_or_load_classifier(other, "vgg16", progress=False)
    for (k, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k

    # cached: a second call loads without training
    monkeypatch.setattr(clf, "_train", lambda *a, **k: pytest.fail("retrained a cached model"))
    again = clf.train_or_load_classifier(profile, "vgg16", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


@pytest.mark.slow
def test_resnet_training_and_test_scenes(tmp_path, results_env):
    profile = _tiny_profile(tmp_path)
    model = clf.train_or_load_classifier(profile, "resnet50", progress=False)
    assert _names(model) == _torchvision_names("resnet50")
    scenes = clf.test_scenes(profile)
    assert scenes.images.shape == (6, 3, 32, 32) and scenes.labels.shape == (6, 10)
    assert scenes.normalization == IMAGENET_NORMALIZATION
    assert scenes.object_maps is not None and scenes.object_maps.shape == (6, 32, 32)
    out = clf.evaluate_classifier(model, scenes)
    assert 0.0 <= out["mAP"] <= 1.0 and len(out["ap"]) == 10


def test_bad_profile_and_arch(tmp_path):
    with pytest.raises(ValueError, match="arch must be one of"):
        clf.classifier_config(_tiny_profile(tmp_path), "alexnet")
    with pytest.raises(TypeError, match="Profile"):
        clf.classifier_config(object(), "vgg16")
