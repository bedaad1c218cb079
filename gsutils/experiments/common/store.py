"""A content-addressed result store: runs keyed by a hash of their config.

``Store(root).get_or_compute(kind, config, compute)`` returns the cached
result of ``compute()`` for that config, computing and writing it (atomically:
temp file, fsync, rename) when it is missing. Every file is written with a
``.sha256`` sidecar; a file whose bytes no longer match, or that fails to
load, is reported as corrupt, moved aside (``<name>.corrupt-<UTC time>``) and
recomputed, never used and never deleted. A file whose sidecar alone is
missing (e.g. copied without it) is kept when it decodes and matches its
config: the sidecar is rewritten, with a warning.

The file primitives (atomic writes, checksums, :func:`config_key`) live in
:mod:`gsutils.io`; they are re-exported here for older callers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# The file primitives live in the bottom layer, gsutils.io; they are re-exported
# here for the callers that import them from the store.
from gsutils.io import (
    CorruptEntry,
    MissingChecksum,
    atomic_write_bytes,
    atomic_write_text,
    canonical_config,
    config_key,
    file_mode,
    load_checked,
    quarantine,
    read_checked,
    sha256_hex,
    write_checked,
)
from gsutils.io import sha256_hex as _digest  # noqa: F401  (the name older callers import)

__all__ = [
    "CorruptEntry",
    "MissingChecksum",
    "Store",
    "atomic_write_bytes",
    "atomic_write_text",
    "canonical_config",
    "config_key",
    "decode",
    "encode",
    "file_mode",
    "load_checked",
    "quarantine",
    "read_checked",
    "sha256_hex",
    "write_checked",
]


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


_MISSING = object()


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
                          json.dumps(canonical_config(config), indent=1, sort_keys=True))
        return write_checked(path, encode(result, fmt))

    def get_or_compute(
        self,
        kind: str,
        config: Mapping[str, Any],
        compute: Callable[[], Any],
        fmt: str = "json",
    ) -> Any:
        """The cached result for ``config``, computing (and saving) it if needed.

        See :func:`load_checked`: a corrupt or unreadable entry (or one whose
        stored config differs) is moved aside with a warning and recomputed;
        an entry that only lacks its checksum sidecar is kept.
        """
        path = self.path(kind, config, fmt)
        conf_file = path.with_suffix(".config.json")

        def matches_config(_value: Any) -> None:
            if conf_file.exists() and json.loads(conf_file.read_text()) != canonical_config(config):
                raise CorruptEntry(f"its stored config {conf_file.name} differs from the config asked for")

        cached = load_checked(path, lambda data: decode(data, fmt), validate=matches_config,
                              what="cache entry", missing=_MISSING)
        if cached is not _MISSING:
            return cached
        result = compute()
        self.save(kind, config, result, fmt)
        return decode(read_checked(path), fmt) if fmt != "pt" else result
