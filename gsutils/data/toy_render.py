"""Rendering of the toy data: digit upsampling and the vectorised and per-image renderers.

Used by :mod:`gsutils.data.toy`, which draws every random choice first
(:class:`RenderParams`) and then renders blocks of :data:`BLOCK` images here
from a :class:`TextureStack`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from gsutils.data.toy_config import BACKGROUND, ToyConfig


@dataclass(frozen=True)
class TextureStack:
    """The bank as one array of ``T`` 8-bit textures cropped to a common ``(sh, sw)``.

    Rendering works on 8-bit texture values (the authors' PNG textures are
    8-bit; the procedural ones are rounded to the nearest of 256 levels) and
    converts to float32 ``value / 255`` at the end: a quarter of the memory
    traffic, and the whole stack fits in a CPU cache.
    """

    tex: np.ndarray  # (T, sh, sw) uint8
    bias: tuple[int, ...]

    @property
    def sh(self) -> int:
        return int(self.tex.shape[1])

    @property
    def sw(self) -> int:
        return int(self.tex.shape[2])


@dataclass
class RenderParams:
    """Every random choice of ``n`` samples (drawn by :func:`gsutils.data.toy.sample_params`)."""

    digit_index: np.ndarray  # (n,) index into the split's digits
    digits: np.ndarray  # (n,) int64 class
    fg_tex: np.ndarray  # (n,) texture id of the digit
    fg_y: np.ndarray  # (n,) crop corner
    fg_x: np.ndarray
    bg_tex: np.ndarray  # (n, parts) texture id of each background part
    bg_y: np.ndarray  # (n, parts)
    bg_x: np.ndarray
    bias_tex: int  # texture id of the (marked) bias texture
    is_biased: np.ndarray  # (n,) bool: some part holds the bias texture
    part: np.ndarray  # (n,) the part that holds the bias texture, -1 when none

    @property
    def bias_parts(self) -> np.ndarray:
        """``(n, parts)`` bool: the parts filled with the bias texture."""
        return self.bg_tex == self.bias_tex


@functools.lru_cache(maxsize=8)
def upsample_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Bilinear resampling matrix ``(size_out, size_in)``, float32.

    Half-pixel centres with clamped edges (``align_corners=False``): output
    pixel ``i`` samples the input at ``(i + 0.5) * size_in / size_out - 0.5``.
    """
    src = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)  # (out,)
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    w1 = src - i0
    a = np.zeros((size_out, size_in), dtype=np.float64)
    np.add.at(a, (np.arange(size_out), i0), 1.0 - w1)
    np.add.at(a, (np.arange(size_out), i1), w1)
    a = a.astype(np.float32)
    a.setflags(write=False)
    return a


def upsample_digits(images: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinearly upsample digits ``(N, 28, 28)`` to float32 ``(N, R, R)`` (same value range).

    For binary inputs at 28 -> 64 every interpolation weight is a multiple of
    1/32, so every product and partial sum is exact in float32: the result (and
    the masks) do not depend on the BLAS, the CPU or the summation order.
    """
    n, h, _ = images.shape
    a = upsample_matrix(h, resolution)  # (R, 28)
    x = images.astype(np.float32)  # (N, 28, 28)
    rows = (x.reshape(n * h, h) @ a.T).reshape(n, h, resolution)  # (N, 28, R): columns resampled
    return np.matmul(a, rows)  # (N, R, R): rows resampled


def binarize_digits(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST digits rounded to 0/1 (``round(x / 255)``: ``x >= 128``), float32, same shape."""
    return (images >= 128).astype(np.float32)


#: threshold on the upsampled binary digit (the authors: ``>= 0.5``)
DIGIT_THRESHOLD = np.float32(0.5)


# --------------------------------------------------------------------------- rendering

#: images rendered together (small enough that the temporaries stay in cache)
BLOCK = 64


def _part_shapes(res: int, parts: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """How a ``(m, R, R)`` block is viewed per part.

    Returns the image view ``(R, 2, R/2)`` (halves: columns ``[0, R/2)`` are
    part 0) or ``(2, R/2, 2, R/2)`` (quadrants: part ``2 * (row >= R/2) +
    (col >= R/2)``), the shape a per-part value ``(m, parts)`` takes to
    broadcast against it, and the crop size of one part.
    """
    h = res // 2
    if parts == 2:
        return (res, 2, h), (1, 2, 1), (res, h)
    return (2, h, 2, h), (2, 1, 2, 1), (h, h)


def _render_full(p: RenderParams, sl: slice, digit_images: np.ndarray, st: TextureStack, rr: int,
                 parts: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(m, rr, rr)`` and bool digit masks ``(m, rr, rr)`` of samples ``sl`` at the render side."""
    m = sl.stop - sl.start
    _, _, crop = _part_shapes(rr, parts)
    mask = upsample_digits(binarize_digits(digit_images[p.digit_index[sl]]), rr) >= DIGIT_THRESHOLD  # (m, rr, rr)
    # textures: one crop per background part and one for the digit, gathered (as uint8) from
    # sliding-window views of the texture stack
    win_bg = np.lib.stride_tricks.sliding_window_view(st.tex, crop, axis=(1, 2))  # (T, sh-c+1, sw-c+1, *crop)
    bg = win_bg[p.bg_tex[sl], p.bg_y[sl], p.bg_x[sl]]  # (m, parts, *crop)
    if parts == 2:
        comp = bg.transpose(0, 2, 1, 3).reshape(m, rr, rr)  # (m, rr, rr): [left | right]
    else:
        comp = bg.reshape(m, 2, 2, rr // 2, rr // 2).transpose(0, 1, 3, 2, 4).reshape(m, rr, rr)
    win_fg = np.lib.stride_tricks.sliding_window_view(st.tex, (rr, rr), axis=(1, 2))
    fg = win_fg[p.fg_tex[sl], p.fg_y[sl], p.fg_x[sl]]  # (m, rr, rr) fresh copy
    # digit over background, bitwise: comp ^= (comp ^ fg) & (0xFF where mask)
    sel = mask.view(np.uint8) * np.uint8(255)  # (m, rr, rr)
    fg ^= comp
    fg &= sel
    comp ^= fg
    return comp, mask


def _area_down(img: np.ndarray, mask: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-downsample uint8 images and bool masks ``(m, R*f, R*f)`` by ``f``.

    Returns float32 images ``(m, R, R)`` in ``[0, 1]`` (the exact block mean of
    the 8-bit values / 255) and masks true where at least half the block is.
    """
    m, big, _ = img.shape
    r = big // f
    s = img.reshape(m, r, f, r, f).sum(axis=(2, 4), dtype=np.int32)  # (m, R, R) exact
    cnt = mask.reshape(m, r, f, r, f).sum(axis=(2, 4), dtype=np.int32)  # (m, R, R)
    return (s / np.float32(255 * f * f)).astype(np.float32), 2 * cnt >= f * f


def render_block(p: RenderParams, sl: slice, digit_images: np.ndarray, st: TextureStack, config: ToyConfig,
                  out: dict[str, np.ndarray]) -> None:
    """Render samples ``sl`` of ``p`` into the output arrays (vectorised over the block)."""
    m = sl.stop - sl.start
    res, rr, parts = config.resolution, config.render_side, config.n_parts
    comp, mask_full = _render_full(p, sl, digit_images, st, rr, parts)
    if rr == res:
        np.divide(comp, np.float32(255), out=out["images"][sl, 0], dtype=np.float32)  # (m, R, R) in [0, 1]
        mask = mask_full
    else:
        out["images"][sl, 0], mask = _area_down(comp, mask_full, rr // res)
    out["digit_mask"][sl] = mask
    bg_mask = out["background_mask"][sl]
    np.logical_not(mask, out=bg_mask)
    # labels: digit where mask else BACKGROUND, by uint8 modular arithmetic (mask * (d - 10) + 10)
    lab = out["labels"][sl]  # (m, R, R)
    step = ((p.digits[sl] - BACKGROUND) % 256).astype(np.uint8)[:, None, None]  # (m, 1, 1)
    np.multiply(mask.view(np.uint8), step, out=lab)
    lab += np.uint8(BACKGROUND)
    # biased mask: the background pixels of every part that holds the bias texture
    view, per_part, _ = _part_shapes(res, parts)
    has = p.bias_parts[sl].reshape((m,) + per_part)  # (m, *per_part)
    np.logical_and(bg_mask.reshape((m,) + view), has, out=out["biased_mask"][sl].reshape((m,) + view))


def output_arrays(n: int, res: int) -> dict[str, np.ndarray]:
    """Zeroed arrays of ``n`` samples at side ``res``: images, labels and the three masks."""
    return {
        "images": np.zeros((n, 1, res, res), dtype=np.float32),
        "labels": np.zeros((n, res, res), dtype=np.uint8),
        "digit_mask": np.zeros((n, res, res), dtype=bool),
        "background_mask": np.zeros((n, res, res), dtype=bool),
        "biased_mask": np.zeros((n, res, res), dtype=bool),
    }


def render_loop(p: RenderParams, digit_images: np.ndarray, st: TextureStack, config: ToyConfig) -> dict[str, np.ndarray]:
    """A straightforward per-image implementation of the renderer (reference and speed baseline).

    Produces the same arrays as the vectorised path, one image at a time.
    """
    import torch

    n, res, rr, parts = len(p.digits), config.resolution, config.render_side, config.n_parts
    f = rr // res
    out = output_arrays(n, res)

    def boxes(side: int) -> list[tuple[slice, slice]]:
        h = side // 2
        if parts == 2:
            return [(slice(None), slice(0, h)), (slice(None), slice(h, side))]
        return [(slice(r * h, (r + 1) * h), slice(c * h, (c + 1) * h)) for r in (0, 1) for c in (0, 1)]

    for i in range(n):
        binary = (digit_images[p.digit_index[i]] >= 128).astype(np.float32)
        x = torch.from_numpy(binary)[None, None]  # (1, 1, 28, 28)
        up = torch.nn.functional.interpolate(x, size=(rr, rr), mode="bilinear", align_corners=False)
        mask = up[0, 0].numpy() >= 0.5  # (rr, rr)
        img = np.empty((rr, rr), dtype=np.uint8)
        for k, (rs, cs) in enumerate(boxes(rr)):
            ph, pw = (rr if parts == 2 else rr // 2), rr // 2
            y, xx = p.bg_y[i, k], p.bg_x[i, k]
            img[rs, cs] = st.tex[p.bg_tex[i, k], y:y + ph, xx:xx + pw]
        fg = st.tex[p.fg_tex[i], p.fg_y[i]:p.fg_y[i] + rr, p.fg_x[i]:p.fg_x[i] + rr]
        img[mask] = fg[mask]
        if f > 1:  # area downsampling, block by block
            small = np.empty((res, res), dtype=np.float32)
            small_mask = np.empty((res, res), dtype=bool)
            for r in range(res):
                for c in range(res):
                    block = img[r * f:(r + 1) * f, c * f:(c + 1) * f]
                    small[r, c] = np.float32(int(block.sum())) / np.float32(255 * f * f)
                    small_mask[r, c] = 2 * int(mask[r * f:(r + 1) * f, c * f:(c + 1) * f].sum()) >= f * f
            out["images"][i, 0], mask = small, small_mask
        else:
            out["images"][i, 0] = img / np.float32(255)
        out["labels"][i] = np.where(mask, p.digits[i], BACKGROUND)
        out["digit_mask"][i] = mask
        out["background_mask"][i] = ~mask
        for k, (rs, cs) in enumerate(boxes(res)):
            if p.bg_tex[i, k] == p.bias_tex:
                out["biased_mask"][i][rs, cs] = ~mask[rs, cs]
    return out
