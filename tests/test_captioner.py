"""The captioner, its explanation with selective NormGrad, training resume and shipping."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torchvision.models import resnet101

from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad import caption_saliency as cs
from gsutils.experiments.normgrad import captioning as cap
from gsutils.experiments.normgrad.caption_results import CaptionEvaluation, ExplainedCaptions
from gsutils.models.captioner import (
    END,
    EXPLAINED_LAYERS,
    PAD,
    Captioner,
    CaptionLogProb,
    build_encoder,
    token_log_probs,
)
from gsutils.profiles import get_profile
from gsutils.saliency.combine import combine_maps, linear_weights


def tiny(vocab=9, every=False):
    torch.manual_seed(0)
    return Captioner(vocab, depths=(1, 1, 1, 2), width=0.0625, embed_dim=8, hidden_dim=12,
                     image_every_step=every).eval()


def test_full_size_encoder_is_torchvision_resnet101():
    ours = build_encoder().state_dict()
    ref = {k: v for k, v in resnet101(weights=None).state_dict().items() if not k.startswith("fc.")}
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_encoder_checks_and_layer_names():
    with pytest.raises(ValueError, match="layer4 needs at least 2 blocks"):
        build_encoder((1, 1, 1, 1), 0.125)
    with pytest.raises(ValueError, match="width"):
        build_encoder((1, 1, 1, 2), 0.0)
    with pytest.raises(ValueError, match="last_stride"):
        build_encoder((1, 1, 1, 2), 0.125, 3)
    for stride, side in ((1, 4), (2, 2)):  # 64 px: layer3 is 4x4
        enc = build_encoder((1, 1, 1, 2), 0.0625, stride).eval()
        seen = {}
        enc.layer4.register_forward_hook(lambda m, i, o: seen.__setitem__("l4", o.shape[-1]))
        enc(torch.randn(1, 3, 64, 64))
        assert seen["l4"] == side
    names = {n for n, _ in tiny().named_modules()}
    assert set(EXPLAINED_LAYERS) <= names


@pytest.mark.parametrize("every", [False, True])
def test_forward_greedy_and_log_prob(every):
    model = tiny(every=every)
    x = torch.randn(2, 3, 32, 32)
    tokens = torch.tensor([[4, 5, 6, END], [7, END, PAD, PAD]])
    with torch.no_grad():
        logits = model(x, tokens)
        score = CaptionLogProb(model, tokens)(x)  # (2, 1)
        word = CaptionLogProb(model, tokens, word=1)(x)
    assert logits.shape == (2, 4, 9)
    manual = torch.log_softmax(logits, -1)
    expect0 = sum(float(manual[0, t, tokens[0, t]]) for t in range(4))
    expect1 = float(manual[1, 0, 7] + manual[1, 1, END])
    assert score[:, 0].tolist() == pytest.approx([expect0, expect1], rel=1e-5)
    assert word[:, 0].tolist() == pytest.approx([float(manual[0, 1, 5]), float(manual[1, 1, END])], rel=1e-5)
    assert token_log_probs(logits, tokens)[1, 2:].abs().sum() == 0  # <pad> contributes nothing
    gen = model.generate(x, 6)
    assert gen.shape[0] == 2 and gen.shape[1] <= 6
    for row in gen.tolist():  # <pad> only after <end>
        if END in row:
            assert all(t == PAD for t in row[row.index(END) + 1:])
    # greedy decoding follows the teacher-forced model: its first word is the argmax at step 0
    with torch.no_grad():
        first = model(x, gen[:, :1].clamp(min=0))[:, 0]
    first[:, :2] = -float("inf")
    assert first.argmax(1).tolist() == gen[:, 0].tolist()
    with pytest.raises(ValueError, match="word must index"):
        CaptionLogProb(model, tokens, word=4)


def test_selective_normgrad_matches_manual_gradient():
    """The maps are ||max(0, x*g)|| of the caption's log-probability at the block outputs."""
    model = tiny()
    x = torch.randn(1, 3, 64, 64)
    tokens = torch.tensor([[4, 5, END]])
    maps = cs.caption_maps(model, x, tokens)
    assert set(maps) == set(EXPLAINED_LAYERS) | {"combined"}
    # manual: layer4.0's output (the ReLU after its shortcut) and layer4's output
    acts = {}
    hooks = [model.encoder.layer4[0].register_forward_hook(lambda m, i, o: acts.__setitem__("l40", o)),
             model.encoder.layer4.register_forward_hook(lambda m, i, o: acts.__setitem__("l4", o))]
    score = CaptionLogProb(model, tokens)(x).sum()
    for h in hooks:
        h.remove()
    g40, g4 = torch.autograd.grad(score, [acts["l40"], acts["l4"]])
    raw = {"encoder.layer4.0.relu": (acts["l40"] * g40).clamp(min=0).norm(dim=1, keepdim=True),
           "encoder.layer4": (acts["l4"] * g4).clamp(min=0).norm(dim=1, keepdim=True)}
    for name, r in raw.items():
        up = torch.nn.functional.interpolate(r, size=(64, 64), mode="bilinear", align_corners=False)
        lo, hi = up.min(), up.max()
        torch.testing.assert_close(maps[name], (up - lo) / (hi - lo), rtol=1e-4, atol=1e-5)
    assert all(float(m.min()) >= 0 for m in maps.values())
    comb = combine_maps([maps[n] for n in EXPLAINED_LAYERS], linear_weights(3), mode="product", size=(64, 64))
    torch.testing.assert_close(maps["combined"], comb, rtol=1e-4, atol=1e-5)


def test_paired_interval():
    a = np.array([1.0, 2.0, 3.0, np.nan])
    r = cs.paired_interval(a, np.zeros(4))
    assert r["n"] == 3 and r["difference"] == pytest.approx(2.0)
    assert 1.0 <= r["low"] <= 2.0 <= r["high"] <= 3.0
    assert cs.paired_interval(np.ones(3), np.ones(3))["high"] == 0.0


# --------------------------------------------------------------------------------------
# training: determinism, resume, evaluation, explanation, shipping
# --------------------------------------------------------------------------------------

@pytest.fixture
def small(tmp_path, monkeypatch):
    monkeypatch.setenv("GSUTILS_CACHE", str(tmp_path / "cache"))
    prof = get_profile("quick", device="cpu", results_dir=tmp_path / "res")
    c = dataclasses.replace(prof.captioning, image_size=32, n_train=24, n_test=6, epochs=2, batch_size=8,
                            depths=(1, 1, 1, 2), width=0.0625, embed_dim=8, hidden_dim=12, n_explain=3,
                            encoder_init="random", train_encoder=True, last_stride=2)
    return dataclasses.replace(prof, captioning=c)


def test_frozen_pretrained_encoder_trains_the_decoder_only(small, monkeypatch):
    """encoder_init='classifier', train_encoder=False: the encoder keeps its starting weights."""
    torch.set_num_threads(1)
    c = dataclasses.replace(small.captioning, depths=(3, 4, 6, 3), last_stride=1, encoder_init="classifier",
                            train_encoder=False, epochs=1)
    prof = dataclasses.replace(small, captioning=c,
                               normgrad=dataclasses.replace(small.normgrad, width=0.0625, resnet_last_stride=1))
    torch.manual_seed(5)
    start = {k: v.clone() for k, v in build_encoder((3, 4, 6, 3), 0.0625, 1).state_dict().items()}
    monkeypatch.setattr(cap, "_initial_encoder", lambda profile, progress: start)
    model, vocab, history = cap.train_or_load_captioner(prof, progress=False, shipped=False)
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, start[k]), k
    assert model.encoder.layer4[0].conv2.stride == (1, 1)
    again = cap.first_step_losses(prof, vocab, 3)
    np.testing.assert_allclose(again, history[0]["first_losses"], rtol=1e-5)
    bad = dataclasses.replace(prof, captioning=dataclasses.replace(c, depths=(1, 1, 1, 2)))
    with pytest.raises(ValueError, match="section-A ResNet50"):
        cap.captioner_config(bad)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_resumes_bit_for_bit(small, monkeypatch):
    torch.set_num_threads(1)
    model, vocab, history = cap.train_or_load_captioner(small, progress=False, shipped=False)
    assert [h["epoch"] for h in history] == [1, 2] and len(history[0]["first_losses"]) == 3
    assert not cap.checkpoint_path(small).exists()  # discarded once stored
    done = _weights(model)
    # interrupt a second run after its first epoch, then run again: it resumes from the checkpoint
    other = dataclasses.replace(small, results_dir=small.results_dir.parent / "res2")
    real = cap._epoch_fn

    def failing(*args, **kwargs):
        run = real(*args, **kwargs)

        def run_epoch(epoch, state, step):
            if epoch == 1:
                raise KeyboardInterrupt
            return run(epoch, state, step)
        return run_epoch

    monkeypatch.setattr(cap, "_epoch_fn", failing)
    with pytest.raises(KeyboardInterrupt):
        cap.train_or_load_captioner(other, progress=False, shipped=False)
    assert cap.checkpoint_path(other).exists()
    monkeypatch.setattr(cap, "_epoch_fn", real)
    resumed, _, history2 = cap.train_or_load_captioner(other, progress=False, shipped=False)
    assert history2[0] == {**history[0], "seconds": history2[0]["seconds"]}
    for k, v in _weights(resumed).items():
        assert torch.equal(v, done[k]), k
    # the first logged steps re-run from scratch, rendering only the scenes they read
    assert cap.first_step_losses(small, vocab, 3) == history[0]["first_losses"]


def test_evaluate_explain_and_ship(small, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    model, vocab, _ = cap.train_or_load_captioner(small, progress=False, shipped=False)
    ev = cap.evaluate_captioner(small)
    assert isinstance(ev, CaptionEvaluation)
    assert ev.n == 6 and len(ev.captions) == 6 and set(ev.scores) == {"BLEU-4", "ROUGE-L", "CIDEr"}
    assert ev.gate_passed == (ev.mentions.f1 >= small.captioning.gate_mention_f1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.n = 7
    # the cached entry keeps the form it had as a dict, and reads back equal
    stored = Store(small.results_dir).load("captioner_eval", cap.captioner_config(small), "json")
    assert set(stored) == {"scores", "mentions", "gate", "captions", "references", "n"}
    assert CaptionEvaluation.from_json(stored) == ev and json.loads(json.dumps(ev.to_json())) == stored
    ex = cs.explain_captions(small)
    assert isinstance(ex, ExplainedCaptions) and ex.n_images == 3
    assert ex.maps.shape == (3, 4, 32, 32) and ex.entropy.shape == (3, 4)
    assert np.all(ex.maps >= 0)
    again = cs.explain_captions(small)  # from the cache
    for name, a in ex.to_arrays().items():
        np.testing.assert_array_equal(getattr(again, name), a)
    summary = cs.sharpness_summary(ex)
    assert list(summary.maps) == list(cs.map_names()) and 0 <= summary.n_named <= 3
    with pytest.raises(ValueError, match="layers"):
        cs.sharpness_summary(ex, ("encoder.layer4",))
    import matplotlib

    matplotlib.use("Agg")
    from gsutils.plots.captioning import plot_caption_training, plot_fig6, plot_sharpness

    fig = plot_fig6(ex, ev.captions, cs.map_names(), [0, 2])
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == 2 * 5 and len(fig.axes) == 2 * 5 + 1
    assert len(plot_sharpness(summary, cs.map_names()).axes) == 3
    plot_caption_training(cap.train_or_load_captioner(small, progress=False)[2])
    with pytest.raises(ValueError, match="rows"):
        plot_fig6(ex, ev.captions, cs.map_names(), [5])
    plot_fig6(ex, ev.captions, cs.map_names(), [1], maps=ex.word_maps, words=["one"])
    with pytest.raises(ValueError, match="maps"):
        plot_fig6(ex, ev.captions, cs.map_names(), [1], maps=ex.word_maps[:, :2])
    # ship it, restore it into a fresh result folder
    from gsutils.experiments.common import shipped

    monkeypatch.setattr(shipped, "SHIPPED_ROOT", tmp_path / "checkpoints")
    folder = cap.shipped_network(small).export(small.results_dir, threads=1)
    assert json.loads((folder / "config.json").read_text()) == json.loads(json.dumps(cap.captioner_config(small)))
    fresh = dataclasses.replace(small, results_dir=tmp_path / "fresh")
    assert cap.shipped_network(fresh).restore(fresh.results_dir)
    restored, _, _ = cap.train_or_load_captioner(fresh, progress=False)
    for k, v in _weights(restored).items():
        assert torch.equal(v, _weights(model)[k])
    # a shipped captioner whose config differs is ignored
    (folder / "config.json").write_text(json.dumps({"other": 1}))
    with pytest.warns(UserWarning, match="config differs"):
        again = dataclasses.replace(small, results_dir=tmp_path / "again")
        assert not cap.shipped_network(again).restore(again.results_dir)


def test_bad_profile_values():
    quick = get_profile("quick", device="cpu")
    bad = dataclasses.replace(quick, captioning=dataclasses.replace(quick.captioning, source="flickr"))
    with pytest.raises(ValueError, match="'scenes' or 'coco'"):
        cap.captioner_config(bad)
    coco = dataclasses.replace(quick, captioning=dataclasses.replace(quick.captioning, source="coco"))
    with pytest.raises(FileNotFoundError, match="data_root"):
        cap.load_split(coco, "test")
    with pytest.raises(TypeError, match="Profile"):
        cap.captioner_config(object())
    frozen_random = dataclasses.replace(quick, captioning=dataclasses.replace(
        quick.captioning, encoder_init="random", train_encoder=False))
    with pytest.raises(ValueError, match="random encoder"):
        cap.captioner_config(frozen_random)
