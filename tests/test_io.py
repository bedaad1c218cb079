"""Tests of gsutils.io, the bottom layer: config keys that never change, and the
result store's re-exports of the file primitives (atomic writes and checksums
are exercised in test_defects.py and test_backbone.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gsutils import io as gio


def test_config_key_is_pinned():
    # cache keys and shipped checkpoints depend on these exact bytes: never change them
    assert gio.config_key({"a": 1, "b": [1.5, "x"], "c": None}) == "fc829ae825088cb1"


def test_config_key_canonicalises_order_containers_and_numpy():
    @dataclass
    class Cfg:
        a: int
        b: tuple

    base = gio.config_key({"a": 1, "b": [1.5, "x"]})
    assert gio.config_key({"b": (1.5, "x"), "a": 1}) == base
    assert gio.config_key({"a": np.int64(1), "b": [np.float64(1.5), "x"]}) == base
    assert gio.config_key(Cfg(a=1, b=(1.5, "x"))) == base
    assert gio.config_key({"p": Path("/x/y")}) == gio.config_key({"p": "/x/y"})
    with pytest.raises(TypeError, match="JSON-like"):
        gio.config_key({"a": object()})


def test_the_store_re_exports_the_primitives():
    from gsutils.experiments.common import store

    for name in ("config_key", "atomic_write_bytes", "atomic_write_text", "write_checked", "read_checked",
                 "load_checked", "quarantine", "file_mode", "CorruptEntry", "MissingChecksum"):
        assert getattr(store, name) is getattr(gio, name), name


def test_checked_round_trip_and_sidecar(tmp_path):
    path = gio.write_checked(tmp_path / "a" / "x.bin", b"abc")
    assert gio.sidecar_path(path).read_text() == gio.sha256_hex(b"abc")
    assert gio.read_checked(path) == b"abc"
    path.write_bytes(b"abd")
    with pytest.raises(gio.CorruptEntry, match="checksum mismatch"):
        gio.read_checked(path)
