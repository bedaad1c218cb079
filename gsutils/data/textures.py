"""Texture banks for the textured-MNIST toy data (Grid Saliency S1.1).

Hoyer et al. (2019, S1.1) fill each MNIST digit and its background with crops
of grayscale textures from a pool of 25, five of which serve as *bias
textures*. Two banks are provided:

* :func:`procedural_bank` -- 25 textures generated here with numpy
  (wood grain, weaves, lattices, tiles, dots, scales, noise at several scales,
  bricks, ...), 512x512 each, deterministic from a seed. The quick profile
  uses it, so the book is the same on every machine.
* :func:`folder_bank` -- every ``*.png`` in a folder (e.g. the authors' 25
  textures), converted to grayscale in ``[0, 1]``. Textures smaller than
  400x400 are tiled (they are seamless tiles) until both sides are at least
  400 pixels.

A :class:`TextureBank` holds the textures, their names and the indices of the
five bias textures (``bias texture k = textures[bias_indices[k]]``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsutils.data.texture_generators import PROCEDURAL as _PROCEDURAL

#: every texture is at least this many pixels on each side
MIN_SIZE = 400
#: side of the procedural textures
PROCEDURAL_SIZE = 512
#: number of bias textures in a bank
N_BIAS = 5
#: the authors' folder: default bias textures (file stems). ``f135d029`` is the
#: texture the authors' demo uses to bias digit 2; the other four were picked
#: here as bold, regular patterns unlike each other and unlike the remaining
#: twenty (linked rings, triangular tiles, fish scales, shaded cubes).
DEFAULT_FOLDER_BIAS = ("f135d029", "d553013a", "23bd4321", "68fe40a5", "feeccd96")
TEXTURE_SOURCES = ("procedural", "folder")


@dataclass(frozen=True)
class TextureBank:
    """A pool of grayscale textures.

    Attributes
    ----------
    textures:
        ``float32`` arrays ``(H, W)`` in ``[0, 1]``, each at least 400x400.
    names:
        One name per texture.
    bias_indices:
        Five indices into ``textures``: bias texture ``k`` is
        ``textures[bias_indices[k]]``.
    """

    textures: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    bias_indices: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.textures) != len(self.names):
            raise ValueError(
                f"textures and names must have the same length, got {len(self.textures)} "
                f"and {len(self.names)}"
            )
        if len(self.bias_indices) != N_BIAS:
            raise ValueError(f"bias_indices must hold {N_BIAS} indices, got {self.bias_indices!r}")
        if len(set(self.bias_indices)) != N_BIAS or not all(
            0 <= i < len(self.textures) for i in self.bias_indices
        ):
            raise ValueError(
                f"bias_indices must be {N_BIAS} distinct indices in 0..{len(self.textures) - 1}, "
                f"got {self.bias_indices!r}"
            )
        if len(self.textures) < N_BIAS + 2:
            raise ValueError(
                f"a bank needs at least {N_BIAS + 2} textures (5 bias textures and at least "
                f"two others for digit and background), got {len(self.textures)}"
            )
        for name, t in zip(self.names, self.textures):
            if t.ndim != 2 or min(t.shape) < MIN_SIZE:
                raise ValueError(
                    f"texture {name!r} must be 2-D and at least {MIN_SIZE}x{MIN_SIZE}, got shape {t.shape}"
                )

    @property
    def regular_indices(self) -> tuple[int, ...]:
        """Indices of the textures that are not bias textures (the digit/background pool)."""
        bias = set(self.bias_indices)
        return tuple(i for i in range(len(self.textures)) if i not in bias)

    def __len__(self) -> int:
        return len(self.textures)


#: the five procedural bias textures: bold, regular patterns unlike the rest of the pool
PROCEDURAL_BIAS = ("polka_dots", "bricks", "zigzag", "checker_tiles", "fish_scales")
#: mean and standard deviation each bias texture is rescaled to (affinely, then clipped to
#: [0, 1]). The means lie inside the pool's range (about 0.28-0.76) and at least 0.11 away
#: from grid saliency's candidate grey values (0, 0.25, 0.5, 0.75, 1): otherwise a constant
#: grey (for a mostly black texture: black) can stand in for the bias texture, and the
#: perturbation that deletes the context would not delete the bias. The standard deviation
#: is that of a typical pool texture.
PROCEDURAL_BIAS_STATS = ((0.38, 0.2), (0.62, 0.2), (0.36, 0.2), (0.64, 0.2), (0.39, 0.2))


def _rescaled(texture: np.ndarray, mean: float, std: float) -> np.ndarray:
    """``texture`` shifted and scaled to ``mean`` and ``std``, clipped to ``[0, 1]``."""
    t = texture.astype(np.float64)
    return np.clip(mean + (t - t.mean()) * (std / max(float(t.std()), 1e-12)), 0.0, 1.0)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    a.setflags(write=False)
    return a


def _generate_procedural(seed: int) -> tuple[np.ndarray, ...]:
    out = []
    stats = dict(zip(PROCEDURAL_BIAS, PROCEDURAL_BIAS_STATS))
    for i, (name, make) in enumerate(_PROCEDURAL):
        rng = np.random.default_rng([int(seed), i])
        t = make(rng, PROCEDURAL_SIZE)
        if name in stats:
            t = _rescaled(t, *stats[name])
        out.append(np.ascontiguousarray(t, dtype=np.float32))
    return tuple(out)


def _disk_cached(seed: int) -> tuple[np.ndarray, ...]:
    """The procedural textures from ``<cache_root>/textures`` (keyed by the generators' source), or generated."""
    import hashlib
    import io

    from gsutils.paths import cache_root

    from gsutils.data import texture_generators

    sources = Path(__file__).read_bytes() + Path(texture_generators.__file__).read_bytes()
    code = hashlib.sha256(sources).hexdigest()[:16]
    path = cache_root() / "textures" / f"procedural_seed{seed}_{code}.npz"
    names = [name for name, _ in _PROCEDURAL]
    if path.is_file():
        try:
            with np.load(path) as z:
                textures = tuple(z[name] for name in names)
            if all(t.shape == (PROCEDURAL_SIZE, PROCEDURAL_SIZE) and t.dtype == np.float32 for t in textures):
                return textures
        except (OSError, ValueError, KeyError):
            pass  # regenerated below
    textures = _generate_procedural(seed)
    buf = io.BytesIO()
    np.savez(buf, **dict(zip(names, textures)))
    try:
        from gsutils.io import atomic_write_bytes

        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # a read-only cache only costs the generation next time
    return textures


@functools.lru_cache(maxsize=8)
def procedural_bank(seed: int = 0, *, disk_cache: bool = True) -> TextureBank:
    """The 25 procedural grayscale textures (512x512, ``float32`` in ``[0, 1]``).

    Texture ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so the
    bank is the same bytes on every machine for a given ``seed``. The arrays
    are read-only (the bank is cached in memory and, unless ``disk_cache`` is
    False, under ``<cache_root>/textures`` keyed by the generator's source).

    Parameters
    ----------
    seed:
        Non-negative int; changes the random details (noise, tile shades,
        cell layouts), not the kinds of texture.
    disk_cache:
        Read/write the generated bank from/to the cache folder.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    textures = _disk_cached(int(seed)) if disk_cache else _generate_procedural(int(seed))
    names = tuple(name for name, _ in _PROCEDURAL)
    bias = tuple(names.index(b) for b in PROCEDURAL_BIAS)
    return TextureBank(tuple(_frozen(t) for t in textures), names, bias)


def _load_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                # composite transparent textures on white before going gray
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(white, rgba)
            gray = np.asarray(im.convert("L"), dtype=np.float32) / 255.0  # (h, w)
    except (UnidentifiedImageError, OSError) as err:
        raise FileNotFoundError(f"texture file {path} could not be read as an image: {err}") from err
    reps = (-(-MIN_SIZE // gray.shape[0]), -(-MIN_SIZE // gray.shape[1]))
    return np.tile(gray, reps)  # (>=400, >=400), seamless for tileable textures


def folder_bank(path: str | os.PathLike, bias_names: Sequence[str] | None = None) -> TextureBank:
    """Every ``*.png`` in ``path`` (sorted by name) as a texture bank.

    Parameters
    ----------
    path:
        A folder of PNG textures, e.g. the authors' 25 textures.
    bias_names:
        Five file names (with or without ``.png``) to use as bias textures, in
        order. ``None`` picks :data:`DEFAULT_FOLDER_BIAS` when all of them are
        present, else the first five files by name.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a folder, holds no PNG, or a PNG cannot be read.
    ValueError
        ``bias_names`` is not five names of files in the folder.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"texture folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise FileNotFoundError(f"texture folder {str(folder)!r} holds no .png files")
    stems = [p.stem for p in files]
    textures = tuple(_frozen(_load_png(p)) for p in files)  # unreadable files fail here
    if len(files) < N_BIAS + 2:
        raise ValueError(
            f"texture folder {str(folder)!r} holds {len(files)} PNG files; at least {N_BIAS + 2} are needed"
        )
    if bias_names is None:
        chosen = list(DEFAULT_FOLDER_BIAS) if set(DEFAULT_FOLDER_BIAS) <= set(stems) else stems[:N_BIAS]
    else:
        if isinstance(bias_names, str) or len(bias_names) != N_BIAS:
            raise ValueError(f"bias_names must be {N_BIAS} file names, got {bias_names!r}")
        chosen = [Path(str(b)).stem if str(b).lower().endswith(".png") else str(b) for b in bias_names]
        missing = [b for b in chosen if b not in stems]
        if missing:
            raise ValueError(
                f"bias_names {missing} are not PNG files in {str(folder)!r}; available: {stems}"
            )
    return TextureBank(textures, tuple(stems), tuple(stems.index(b) for b in chosen))


def texture_bank(source: str = "procedural", data_root: str | os.PathLike | None = None) -> TextureBank:
    """The bank named by a profile: ``"procedural"`` or ``"folder"`` (``<data_root>/textures``)."""
    if source == "procedural":
        return procedural_bank(0)
    if source == "folder":
        if data_root is None or str(data_root) == "":
            raise FileNotFoundError(
                "textures_source='folder' reads <data_root>/textures; pass data_root "
                "(the folder that holds textures/), or use textures_source='procedural'"
            )
        return folder_bank(Path(data_root).expanduser() / "textures")
    raise ValueError(f"textures source must be one of {TEXTURE_SOURCES}, got {source!r}")
