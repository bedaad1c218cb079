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

import functools
from dataclasses import dataclass

import numpy as np

from gsutils.data.mnist import SPLITS, load_digits
from gsutils.data.textures import texture_bank

from gsutils.data.toy_config import (  # noqa: F401  (re-exported: the public names of the toy data)
    SPLIT_CODE,
    BACKGROUND,
    CHUNK,
    N_CLASSES,
    PARTS,
    STRENGTHS,
    BiasConfig,
    ToyConfig,
    ToyData,
    is_int,
)
from gsutils.data.toy_render import (  # noqa: F401
    DIGIT_THRESHOLD,
    BLOCK,
    RenderParams,
    TextureStack,
    output_arrays,
    render_block,
    render_loop,
    upsample_matrix,
    binarize_digits,
    upsample_digits,
)


# --------------------------------------------------------------------------- cached inputs


@functools.lru_cache(maxsize=8)
def _digits(source: str, split: str, data_root: str | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_digits(source, split, data_root)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def quantize(texture: np.ndarray) -> np.ndarray:
    """A float texture in ``[0, 1]`` as the 8-bit values the renderer uses (uint8, same shape)."""
    return np.rint(np.clip(texture, 0.0, 1.0) * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _stack(source: str, data_root: str | None) -> TextureStack:
    bank = texture_bank(source, data_root)
    sh = min(t.shape[0] for t in bank.textures)
    sw = min(t.shape[1] for t in bank.textures)
    tex = np.stack([quantize(t[:sh, :sw]) for t in bank.textures])  # (T, sh, sw) uint8
    tex.setflags(write=False)
    return TextureStack(tex, tuple(bank.bias_indices))


def digit_order(n: int, n_available: int, split: str, seed: int, epoch: int = 0) -> np.ndarray:
    """Indices of the split's digits used for ``n`` samples (prefix-stable, int64 ``(n,)``)."""
    rounds = -(-n // n_available) if n_available else 0
    perms = [np.random.default_rng([SPLIT_CODE[split], seed, epoch, 0, r]).permutation(n_available)
             for r in range(rounds)]
    return np.concatenate(perms)[:n] if perms else np.zeros(0, dtype=np.int64)


def _pick(u: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``pool[floor(u * len(pool))]`` for uniform ``u`` in ``[0, 1)``: a uniform draw from ``pool``."""
    return pool[np.minimum((u * len(pool)).astype(np.int64), len(pool) - 1)]


def sample_params(config: ToyConfig, split: str, n: int, labels: np.ndarray, st: TextureStack,
                  epoch: int = 0) -> RenderParams:
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
        rng = np.random.default_rng([SPLIT_CODE[split], seed, epoch, 1, c])
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
    return RenderParams(
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


def render_reference(config: ToyConfig, split: str, n: int, *, epoch: int = 0) -> ToyData:
    """The same samples as :func:`make_toy_dataset`, rendered one image at a time.

    A plain loop (torch's bilinear resize, slicing, boolean assignment) kept
    as the reference the fast path is checked against and as the speed
    baseline of ``benchmarks/toy_generator.py``.
    """
    st, images, p = _prepare(config, split, n, epoch)
    out = render_loop(p, images, st, config)
    return ToyData(**out, digits=p.digits, is_biased=p.is_biased, biased_part=p.part,
                   config=config, split=split)


def _check_split_n(split: str, n: int, epoch: int = 0) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not is_int(n) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not is_int(epoch) or epoch < 0:
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
    if not is_int(workers) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    st, images, p = _prepare(config, split, n, epoch)
    res = config.resolution
    out = output_arrays(n, res)
    blocks = [slice(lo, min(lo + BLOCK, n)) for lo in range(0, n, BLOCK)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"toy {split} data", unit="img")

    def run(sl: slice) -> None:
        render_block(p, sl, images, st, config, out)
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


def toy_dataset_nbytes(n: int, resolution: int, n_parts: int = 2, *, compress: bool = True) -> int:
    """An estimate of the peak memory, in bytes, of generating ``n`` samples and saving them.

    :func:`make_toy_dataset` holds the output arrays, 8 bytes per pixel and
    sample (float32 image, uint8 labels, three bool masks), and the random
    draws, about ``64 * (n_parts + 3)`` bytes per sample; :meth:`ToyData.save`
    then builds the file in memory, counted as the arrays' size once more
    (twice without compression). Rendering works in blocks and adds little.
    """
    arrays = 8 * int(resolution) ** 2
    return int(n) * (arrays * (2 if compress else 3) + 64 * (int(n_parts) + 3))


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
