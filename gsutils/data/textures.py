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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


# --------------------------------------------------------------------------- helpers


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``y, x`` as float64 ``(n, n)`` arrays."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return y, x


def _norm(a: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """Min-max rescale to ``[lo, hi]``."""
    a = a - a.min()
    m = a.max()
    return lo + (hi - lo) * (a / m if m > 0 else a)


def _filtered_noise(rng: np.random.Generator, n: int, sigma_y: float, sigma_x: float | None = None) -> np.ndarray:
    """White noise blurred by a periodic (anisotropic) Gaussian, standardised, ``(n, n)``."""
    sigma_x = sigma_y if sigma_x is None else sigma_x
    white = rng.standard_normal((n, n))
    ky = np.fft.fftfreq(n)[:, None]  # (n, 1) cycles per pixel
    kx = np.fft.fftfreq(n)[None, :]  # (1, n)
    gain = np.exp(-2 * np.pi**2 * (ky**2 * sigma_y**2 + kx**2 * sigma_x**2))  # (n, n)
    out = np.fft.ifft2(np.fft.fft2(white) * gain).real
    return (out - out.mean()) / (out.std() + 1e-12)


def _fractal_noise(rng: np.random.Generator, n: int, beta: float, lowest: float = 2.0) -> np.ndarray:
    """Periodic 1/f^beta noise (clouds), standardised, ``(n, n)``."""
    white = rng.standard_normal((n, n))
    k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]) * n  # cycles per image
    amp = 1.0 / np.maximum(k, lowest) ** beta
    amp[0, 0] = 0.0
    out = np.fft.ifft2(np.fft.fft2(white) * amp).real
    return (out - out.mean()) / (out.std() + 1e-12)


def _smoothstep(e0: float, e1: float, a: np.ndarray) -> np.ndarray:
    t = np.clip((a - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _tri(a: np.ndarray) -> np.ndarray:
    """Triangle wave with period 1 in ``[0, 1]`` (0 at integers, 1 at half-integers)."""
    return 1.0 - np.abs(2.0 * (a - np.floor(a)) - 1.0)


def _nearest_two(points: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances to the nearest and second-nearest of ``points`` (``(k, 2)`` as y, x) on an n x n torus.

    Returns ``d1, d2`` (float ``(n, n)``) and the nearest point's index ``(n, n)``.
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(np.mod(points, n), boxsize=n)
    y, x = _grid(n)
    d, i = tree.query(np.stack([y.ravel(), x.ravel()], axis=1), k=2)  # (n*n, 2)
    return d[:, 0].reshape(n, n), d[:, 1].reshape(n, n), i[:, 0].reshape(n, n)


# --------------------------------------------------------------------------- generators
# Each takes a numpy Generator and the side n and returns a float (n, n) array in [0, 1].


def _wood_grain(rng, n):
    y, x = _grid(n)
    warp = _filtered_noise(rng, n, 40, 120)  # slow bends of the grain
    knots = _filtered_noise(rng, n, 14, 30)
    phase = y / 11.0 + 1.6 * warp + 0.35 * knots
    rings = _tri(phase) ** 2.5
    fibres = _filtered_noise(rng, n, 0.6, 10)  # streaks along x
    return _norm(0.75 * rings + 0.12 * fibres)


def _plain_weave(rng, n):
    y, x = _grid(n)
    c = 8.0
    u, v = (x % c) / c, (y % c) / c
    horizontal = ((x // c + y // c) % 2) == 0
    thread = np.where(horizontal, np.sin(np.pi * v) ** 0.6 * (0.75 + 0.25 * np.sin(np.pi * u)),
                      np.sin(np.pi * u) ** 0.6 * (0.75 + 0.25 * np.sin(np.pi * v)))
    return _norm(thread + 0.08 * _filtered_noise(rng, n, 0.7))


def _basket_weave(rng, n):
    y, x = _grid(n)
    block, strand = 18.0, 6.0
    horizontal = ((x // block + y // block) % 2) == 0
    across = np.where(horizontal, (y % strand) / strand, (x % strand) / strand)
    along = np.where(horizontal, (x % block) / block, (y % block) / block)
    thread = np.sin(np.pi * across) ** 0.7 * (0.7 + 0.3 * np.sin(np.pi * along))
    return _norm(thread + 0.06 * _filtered_noise(rng, n, 0.8))


def _diagonal_lattice(rng, n):
    y, x = _grid(n)
    p = 14.0
    a = _tri((x + y) / p)
    b = _tri((x - y) / p)
    lines = np.maximum(_smoothstep(0.78, 0.95, a), _smoothstep(0.78, 0.95, b))
    return _norm(0.15 + 0.8 * lines + 0.05 * _filtered_noise(rng, n, 1.0))


def _square_grid(rng, n):
    y, x = _grid(n)
    p = 12.0
    line = np.maximum(_smoothstep(0.8, 0.93, _tri(x / p)), _smoothstep(0.8, 0.93, _tri(y / p)))
    return _norm(0.85 - 0.7 * line + 0.04 * _filtered_noise(rng, n, 1.0))


def _checker_tiles(rng, n):
    y, x = _grid(n)
    p = 16.0
    ix, iy = (x // p).astype(int), (y // p).astype(int)
    checker = ((ix + iy) % 2).astype(float)
    shade = rng.uniform(-0.08, 0.08, size=(n // int(p) + 1, n // int(p) + 1))[iy, ix]
    grout = np.maximum(_smoothstep(0.86, 0.96, _tri(x / p + 0.5)), _smoothstep(0.86, 0.96, _tri(y / p + 0.5)))
    tile = 0.2 + 0.6 * checker + shade
    return _norm(tile * (1 - grout) + 0.45 * grout + 0.03 * _filtered_noise(rng, n, 0.8))


def _polka_dots(rng, n):
    y, x = _grid(n)
    p, r = 16.0, 5.0
    d = np.hypot((x % p) - p / 2, (y % p) - p / 2)
    dots = 1 - _smoothstep(r - 1, r + 0.5, d)
    return _norm(0.1 + 0.85 * dots + 0.03 * _filtered_noise(rng, n, 1.0))


def _hex_dots(rng, n):
    y, x = _grid(n)
    p, r = 8.0, 1.8
    row = np.floor(y / p)
    xs = x + (row % 2) * p / 2
    d = np.hypot((xs % p) - p / 2, (y % p) - p / 2)
    dots = 1 - _smoothstep(r - 0.5, r + 0.7, d)
    return _norm(0.75 - 0.6 * dots + 0.05 * _filtered_noise(rng, n, 1.0))


def _fish_scales(rng, n):
    y, x = _grid(n)
    w = 16.0  # scale width
    h = 8.0  # row spacing
    r = w * 0.62
    out = np.zeros((n, n))
    filled = np.zeros((n, n), dtype=bool)
    row0 = np.floor(y / h)
    # rows are drawn top to bottom: a pixel shows the lowest scale that covers it
    for dr in (2, 1, 0):
        row = row0 - dr + 1
        cx = np.floor((x + (row % 2) * w / 2) / w) * w + w / 2 - (row % 2) * w / 2
        cy = row * h - r * 0.6
        dist = np.hypot(x - cx, y - cy)
        inside = (dist < r) & (y >= cy) & ~filled
        shade = 0.35 + 0.6 * (dist / r) ** 1.5
        rim = _smoothstep(0.85, 1.0, dist / r)
        out[inside] = (shade * (1 - 0.8 * rim))[inside]
        filled |= inside
    out[~filled] = 0.3
    return _norm(out + 0.03 * _filtered_noise(rng, n, 0.8))


def _fine_noise(rng, n):
    return _norm(np.clip(_filtered_noise(rng, n, 0.6), -3, 3))


def _medium_noise(rng, n):
    return _norm(np.clip(_filtered_noise(rng, n, 2.5), -3, 3))


def _clouds(rng, n):
    return _norm(np.clip(_fractal_noise(rng, n, 1.8, lowest=4.0), -3, 3))


def _bricks(rng, n):
    y, x = _grid(n)
    bh, bw, mortar = 10.0, 26.0, 2.0
    row = np.floor(y / bh)
    xs = x + (row % 2) * bw / 2
    col = np.floor(xs / bw)
    in_mortar = ((y % bh) < mortar) | ((xs % bw) < mortar)
    ids = (row.astype(np.int64) * 1000 + col.astype(np.int64)) % 4093
    brick_shade = rng.uniform(0.45, 0.85, size=4093)[ids]
    surface = brick_shade + 0.06 * _filtered_noise(rng, n, 1.0)
    return _norm(np.where(in_mortar, 0.12, surface))


def _herringbone(rng, n):
    y, x = _grid(n)
    col_w, plank = 12.0, 8.0
    col = np.floor(x / col_w)
    s = np.where(col % 2 == 0, 1.0, -1.0)
    along = y + s * (x % col_w)  # position along the slanted plank column
    seam = _smoothstep(0.85, 0.97, _tri(along / plank + 0.5))
    edge = _smoothstep(0.9, 0.99, _tri(x / col_w + 0.5))
    ids = (np.floor(along / plank).astype(np.int64) * 7919 + col.astype(np.int64)) % 5003
    shade = rng.uniform(0.45, 0.85, size=5003)[ids]
    return _norm(shade * (1 - np.maximum(seam, edge)) + 0.1 * np.maximum(seam, edge)
                 + 0.04 * _filtered_noise(rng, n, 0.8, 3.0))


def _corduroy(rng, n):
    y, x = _grid(n)
    ribs = np.sin(np.pi * ((y % 6.0) / 6.0)) ** 0.8
    return _norm(ribs + 0.12 * _filtered_noise(rng, n, 0.5, 6.0))


def _diagonal_stripes(rng, n):
    y, x = _grid(n)
    stripes = _smoothstep(0.4, 0.6, _tri((x - y) / 14.0))
    return _norm(0.15 + 0.7 * stripes + 0.05 * _filtered_noise(rng, n, 1.0))


def _ripples(rng, n):
    y, x = _grid(n)
    p = 128.0
    d = np.hypot((x % p) - p / 2, (y % p) - p / 2)
    return _norm(0.5 + 0.5 * np.cos(2 * np.pi * d / 7.0) + 0.1 * _filtered_noise(rng, n, 1.0))


def _zigzag(rng, n):
    y, x = _grid(n)
    phase = (y + 8.0 * _tri(x / 16.0)) / 10.0
    stripes = _smoothstep(0.35, 0.65, _tri(phase))
    return _norm(0.1 + 0.8 * stripes + 0.04 * _filtered_noise(rng, n, 1.0))


def _honeycomb(rng, n):
    y, x = _grid(n)
    w = 16.0
    h = w * np.sqrt(3) / 2  # row spacing of a hexagonal lattice
    # distances to the 12 lattice points around each pixel (4 rows x 3 columns)
    r0 = np.floor(y / h)
    dists = []
    for dr in (-1, 0, 1, 2):
        r = r0 + dr
        shift = (r % 2) * w / 2
        c0 = np.round((x - shift) / w)
        for dc in (-1, 0, 1):
            dists.append(np.hypot(x - ((c0 + dc) * w + shift), y - r * h))
    d = np.partition(np.stack(dists), 1, axis=0)  # (12, n, n), two smallest first
    d1, d2 = d[0], d[1]
    wall = 1 - _smoothstep(0.5, 2.5, d2 - d1)
    cell = 0.55 + 0.3 * (1 - d1 / (w * 0.6))
    return _norm(cell * (1 - wall) + 0.05 * wall + 0.03 * _filtered_noise(rng, n, 0.8))


def _cobbles(rng, n):
    pts = rng.uniform(0, n, size=(260, 2))
    d1, d2, idx = _nearest_two(pts, n)
    shade = rng.uniform(0.35, 0.9, size=len(pts))[idx]
    dome = shade * (1 - 0.35 * (d1 / (d1 + d2 + 1e-9)) ** 2)
    crack = 1 - _smoothstep(0.5, 3.0, d2 - d1)
    return _norm(dome * (1 - crack) + 0.05 * crack + 0.05 * _filtered_noise(rng, n, 1.0))


def _marble(rng, n):
    y, x = _grid(n)
    turb = _fractal_noise(rng, n, 1.6, lowest=3.0)
    veins = np.abs(np.sin(2 * np.pi * (x + 0.6 * y) / 90.0 + 2.2 * turb))
    return _norm(1 - veins ** 0.25 + 0.05 * _filtered_noise(rng, n, 1.0))


def _crosshatch(rng, n):
    y, x = _grid(n)
    jitter_a = 1.5 * _filtered_noise(rng, n, 6.0)
    jitter_b = 1.5 * _filtered_noise(rng, n, 6.0)
    a = _smoothstep(0.82, 0.95, _tri((x + 0.5 * y + jitter_a) / 7.0))
    b = _smoothstep(0.82, 0.95, _tri((x - 0.5 * y + jitter_b) / 9.0))
    return _norm(0.9 - 0.5 * a - 0.4 * b + 0.04 * _filtered_noise(rng, n, 0.7))


def _plus_signs(rng, n):
    y, x = _grid(n)
    p = 14.0
    u, v = np.abs((x % p) - p / 2), np.abs((y % p) - p / 2)
    arm = ((u < 1.2) & (v < 4.5)) | ((v < 1.2) & (u < 4.5))
    return _norm(0.3 + 0.6 * arm + 0.05 * _filtered_noise(rng, n, 0.8))


def _speckle(rng, n):
    base = 0.45 + 0.06 * _filtered_noise(rng, n, 0.8)
    specks = (rng.random((n, n)) < 0.025).astype(float)
    blobs = np.fft.ifft2(np.fft.fft2(specks) * np.fft.fft2(_disc_kernel(n, 1.3))).real
    return _norm(base + 0.6 * np.clip(blobs, 0, 1))


def _disc_kernel(n: int, r: float) -> np.ndarray:
    y, x = _grid(n)
    dy = np.minimum(y, n - y)
    dx = np.minimum(x, n - x)
    return (np.hypot(dy, dx) <= r).astype(float)


def _moire(rng, n):
    y, x = _grid(n)
    a = np.sin(2 * np.pi * (x * np.cos(0.1) + y * np.sin(0.1)) / 6.0)
    b = np.sin(2 * np.pi * (x * np.cos(-0.25) + y * np.sin(-0.25)) / 6.5)
    return _norm(a + b + 0.15 * _filtered_noise(rng, n, 1.0))


#: (name, generator) of the 25 procedural textures, in bank order
_PROCEDURAL: tuple[tuple[str, Callable[[np.random.Generator, int], np.ndarray]], ...] = (
    ("wood_grain", _wood_grain),
    ("plain_weave", _plain_weave),
    ("basket_weave", _basket_weave),
    ("diagonal_lattice", _diagonal_lattice),
    ("square_grid", _square_grid),
    ("checker_tiles", _checker_tiles),
    ("polka_dots", _polka_dots),
    ("hex_dots", _hex_dots),
    ("fish_scales", _fish_scales),
    ("fine_noise", _fine_noise),
    ("medium_noise", _medium_noise),
    ("clouds", _clouds),
    ("bricks", _bricks),
    ("herringbone", _herringbone),
    ("corduroy", _corduroy),
    ("diagonal_stripes", _diagonal_stripes),
    ("ripples", _ripples),
    ("zigzag", _zigzag),
    ("honeycomb", _honeycomb),
    ("cobbles", _cobbles),
    ("marble", _marble),
    ("crosshatch", _crosshatch),
    ("plus_signs", _plus_signs),
    ("speckle", _speckle),
    ("moire", _moire),
)
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
    """The procedural textures from ``<cache_root>/textures`` (keyed by this file's source), or generated."""
    import hashlib
    import io

    from gsutils.paths import cache_root

    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
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
