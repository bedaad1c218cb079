"""Texture banks: the procedural bank and the PNG-folder loader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gsutils.data.textures import (
    DEFAULT_FOLDER_BIAS,
    MIN_SIZE,
    N_BIAS,
    TextureBank,
    folder_bank,
    procedural_bank,
    texture_bank,
)

#: compares floats or bytes to what the same code made elsewhere: also run with a forced CPU kernel set
pytestmark = pytest.mark.numeric

SHARED_TEXTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "textures"


def _digest(bank: TextureBank) -> str:
    h = hashlib.sha256()
    for t in bank.textures:
        h.update(np.ascontiguousarray(t).tobytes())
    return h.hexdigest()


def test_procedural_bank_shape_range_and_bias():
    bank = procedural_bank(0)
    assert len(bank) == 25 and len(bank.names) == 25 and len(set(bank.names)) == 25
    assert len(bank.bias_indices) == N_BIAS and len(set(bank.bias_indices)) == N_BIAS
    assert len(bank.regular_indices) == 20 and not set(bank.regular_indices) & set(bank.bias_indices)
    for name, t in zip(bank.names, bank.textures):
        assert t.dtype == np.float32 and t.ndim == 2 and min(t.shape) >= MIN_SIZE, name
        assert 0.0 <= t.min() and t.max() <= 1.0, name
        assert t.std() > 0.08, f"{name} is nearly flat"
        assert not t.flags.writeable


def test_procedural_bank_is_deterministic_and_seeded(results_env):
    fresh = _digest(procedural_bank(0, disk_cache=False))
    procedural_bank.cache_clear()
    assert _digest(procedural_bank(0)) == fresh  # generated, written to the (empty) cache
    assert list((results_env / "cache" / "textures").glob("procedural_seed0_*.npz"))
    procedural_bank.cache_clear()
    assert _digest(procedural_bank(0)) == fresh  # read back from the cache
    procedural_bank.cache_clear()
    # the seed changes the random details of each generator (checked on small tiles: fast)
    from gsutils.data import textures

    for name, make in textures._PROCEDURAL:
        if name in ("wood_grain", "fine_noise", "bricks", "cobbles"):
            a = make(np.random.default_rng([0, 0]), 96)
            assert not np.array_equal(a, make(np.random.default_rng([1, 0]), 96)), name
            np.testing.assert_array_equal(a, make(np.random.default_rng([0, 0]), 96))


def test_procedural_textures_are_varied():
    """No two textures look alike: their 64x64 crops differ in mean, spread or spectrum."""
    bank = procedural_bank(0)
    feats = []
    for t in bank.textures:
        crop = t[:256, :256].astype(np.float64)
        spec = np.abs(np.fft.rfft2(crop - crop.mean()))
        # radial/orientation energy profile: 4 frequency rings x 2 orientations
        ky = np.fft.fftfreq(256)[:, None]
        kx = np.fft.rfftfreq(256)[None, :]
        r = np.hypot(ky, kx)
        horiz = np.abs(kx) >= np.abs(ky)
        bands = [(r >= lo) & (r < hi) for lo, hi in ((0, 0.03), (0.03, 0.08), (0.08, 0.16), (0.16, 0.8))]
        prof = np.array([spec[b & o].sum() for b in bands for o in (horiz, ~horiz)])
        feats.append(np.concatenate([[crop.mean(), crop.std()], prof / prof.sum()]))
    feats = np.array(feats)
    d = np.abs(feats[:, None, :] - feats[None, :, :]).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.05, "two procedural textures have near-identical statistics"


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        procedural_bank(-1)


def _write_folder(root: Path, n: int = 8) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        size = (30 + 7 * i, 41 + 5 * i)  # small tiles: must be tiled up to >= 400
        arr = rng.integers(0, 256, size=size, dtype=np.uint8)
        if i == 0:
            Image.fromarray(arr).convert("P").save(root / f"t{i:02d}.png")
        elif i == 1:
            rgba = np.stack([arr, arr, arr, np.full_like(arr, 255)], -1)
            Image.fromarray(rgba, "RGBA").save(root / f"t{i:02d}.png")
        else:
            Image.fromarray(arr, "L").save(root / f"t{i:02d}.png")
    (root / "LICENSE").write_text("not an image")
    return root


def test_folder_bank_loads_a_tiny_folder(tmp_path):
    folder = _write_folder(tmp_path / "tex")
    bank = folder_bank(folder)
    assert bank.names == tuple(f"t{i:02d}" for i in range(8))
    assert bank.bias_indices == (0, 1, 2, 3, 4)  # default: first five by name when the authors' are absent
    src = np.asarray(Image.open(folder / "t05.png"))
    t = bank.textures[5]
    assert t.dtype == np.float32 and min(t.shape) >= MIN_SIZE
    h, w = src.shape
    np.testing.assert_array_equal(t[:h, :w], src / np.float32(255))  # values k/255
    np.testing.assert_array_equal(t[h:2 * h, w:2 * w], t[:h, :w])  # tiled
    chosen = folder_bank(folder, bias_names=["t07.png", "t06", "t05", "t04", "t03"])
    assert chosen.bias_indices == (7, 6, 5, 4, 3)


def test_folder_bank_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        folder_bank(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .png"):
        folder_bank(tmp_path / "empty")
    folder = _write_folder(tmp_path / "tex")
    with pytest.raises(ValueError, match="bias_names"):
        folder_bank(folder, bias_names=["t00", "t01"])
    with pytest.raises(ValueError, match="not PNG files"):
        folder_bank(folder, bias_names=["t00", "t01", "t02", "t03", "nope"])
    (folder / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(FileNotFoundError, match="broken.png"):
        folder_bank(folder)
    few = _write_folder(tmp_path / "few", n=6)
    with pytest.raises(ValueError, match="at least 7"):
        folder_bank(few)


def test_texture_bank_sources(tmp_path):
    assert texture_bank("procedural") is procedural_bank(0)
    with pytest.raises(ValueError, match="textures source"):
        texture_bank("imagenet")
    with pytest.raises(FileNotFoundError, match="data_root"):
        texture_bank("folder")
    with pytest.raises(FileNotFoundError, match="textures"):
        texture_bank("folder", data_root=tmp_path)
    _write_folder(tmp_path / "textures")
    assert len(texture_bank("folder", data_root=tmp_path)) == 8


def test_bank_validation():
    t = np.zeros((400, 400), np.float32)
    with pytest.raises(ValueError, match="bias_indices"):
        TextureBank((t,) * 8, tuple("abcdefgh"), (0, 1, 2, 3))
    with pytest.raises(ValueError, match="at least 400"):
        TextureBank((np.zeros((10, 10), np.float32),) * 8, tuple("abcdefgh"), (0, 1, 2, 3, 4))


@pytest.mark.skipif(not SHARED_TEXTURES.is_dir(), reason="../shared/data/textures is absent")
def test_authors_folder_loads():
    bank = folder_bank(SHARED_TEXTURES)
    assert len(bank) == 25
    assert tuple(bank.names[i] for i in bank.bias_indices) == DEFAULT_FOLDER_BIAS
    assert bank.names[bank.bias_indices[0]] == "f135d029"
    for t in bank.textures:
        assert min(t.shape) >= MIN_SIZE and 0 <= t.min() and t.max() <= 1
