"""A content-addressed result store: runs keyed by a hash of their config.

``Store(root).get_or_compute(kind, config, compute)`` returns the cached
result of ``compute()`` for that config, computing and writing it (atomically:
temp file, fsync, rename) when it is missing. Every file is written with a
``.sha256`` sidecar; a file whose bytes no longer match, or that fails to
load, is reported as corrupt, removed and recomputed, never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np


def _canonical(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _canonical(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"config values must be JSON-like, got {type(obj).__name__}: {obj!r}")


def config_key(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit key of a JSON-like config (key order does not matter)."""
    blob = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_checked(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` and its ``.sha256`` sidecar."""
    path = Path(path)
    atomic_write_bytes(path, data)
    atomic_write_text(path.with_name(path.name + ".sha256"), _digest(data))
    return path


def read_checked(path: str | Path) -> bytes:
    """Read a file written by :func:`write_checked`; ``CorruptEntry`` if it does not match."""
    path = Path(path)
    side = path.with_name(path.name + ".sha256")
    if not path.exists() or not side.exists():
        raise CorruptEntry(f"{path}: file or checksum missing")
    data = path.read_bytes()
    if _digest(data) != side.read_text().strip():
        raise CorruptEntry(f"{path}: checksum mismatch (truncated or modified file)")
    return data


class CorruptEntry(RuntimeError):
    """A cached file that is truncated, modified or unreadable."""


def encode(obj: Any, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(_canonical_result(obj), sort_keys=True).encode()
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez_compressed(buf, **obj)
        return buf.getvalue()
    if fmt == "pt":
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()
    raise ValueError(f"fmt must be 'json', 'npz' or 'pt', got {fmt!r}")


def decode(data: bytes, fmt: str) -> Any:
    if fmt == "json":
        return json.loads(data)
    if fmt == "npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if fmt == "pt":
        import torch

        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    raise ValueError(f"fmt must be 'json', 'npz' or 'pt', got {fmt!r}")


def _canonical_result(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): _canonical_result(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical_result(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


class Store:
    """Results on disk under ``root/<kind>/<key>.<fmt>`` (plus ``.json`` config)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, config: Mapping[str, Any], fmt: str) -> Path:
        return self.root / kind / f"{config_key(config)}.{fmt}"

    def exists(self, kind: str, config: Mapping[str, Any], fmt: str = "json") -> bool:
        try:
            read_checked(self.path(kind, config, fmt))
            return True
        except CorruptEntry:
            return False

    def load(self, kind: str, config: Mapping[str, Any], fmt: str = "json") -> Any:
        return decode(read_checked(self.path(kind, config, fmt)), fmt)

    def save(self, kind: str, config: Mapping[str, Any], result: Any, fmt: str = "json") -> Path:
        path = self.path(kind, config, fmt)
        atomic_write_text(path.with_suffix(".config.json"),
                          json.dumps(_canonical(config), indent=1, sort_keys=True))
        return write_checked(path, encode(result, fmt))

    def get_or_compute(
        self,
        kind: str,
        config: Mapping[str, Any],
        compute: Callable[[], Any],
        fmt: str = "json",
    ) -> Any:
        """The cached result for ``config``, computing (and saving) it if needed.

        A corrupt or unreadable entry is reported with a warning, deleted and
        recomputed.
        """
        path = self.path(kind, config, fmt)
        if path.exists():
            try:
                return decode(read_checked(path), fmt)
            except Exception as err:  # corrupt, truncated, or undecodable
                warnings.warn(f"recomputing corrupt cache entry {path}: {err}", stacklevel=2)
                path.unlink(missing_ok=True)
        result = compute()
        self.save(kind, config, result, fmt)
        return decode(read_checked(path), fmt) if fmt != "pt" else result
