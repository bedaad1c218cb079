"""The 25 procedural textures of the quick profile's texture bank, generated with numpy.

Each generator maps a seeded ``numpy.random.Generator`` and a side ``n`` to an
``(n, n)`` float texture in ``[0, 1]``: wood grain, weaves, lattices, tiles,
dots, scales, noise at several scales, bricks and more. Their order in
:data:`PROCEDURAL` is the bank's order; :mod:`gsutils.data.textures` builds
the bank from them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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
PROCEDURAL: tuple[tuple[str, Callable[[np.random.Generator, int], np.ndarray]], ...] = (
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
