"""A content-addressed result store: runs keyed by a hash of their config.

``Store(root).get_or_compute(kind, config, compute)`` returns the cached
result of ``compute()`` for that config, computing and writing it (atomically:
temp file, fsync, rename) when it is missing. Every file is written with a
``.sha256`` sidecar; a file whose bytes no longer match, or that fails to
load, is reported as corrupt, moved aside (``<name>.corrupt-<UTC time>``) and
recomputed, never used and never deleted. A file whose sidecar alone is
missing (e.g. copied without it) is kept when it decodes and matches its
config: the sidecar is rewritten, with a warning.

Files are written with mode ``0o666 & ~umask`` (0644 under the usual umask),
like any file ``open()`` creates, not the 0600 of a bare temp file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
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


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (and restore at once)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a newly created file gets: ``0o666 & ~umask``."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename.

    The final file has mode :func:`file_mode` (``mkstemp`` creates it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        if not hasattr(os, "fchmod"):  # pragma: no cover - Windows
            os.chmod(tmp, file_mode())
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


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_checked(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` and its ``.sha256`` sidecar."""
    path = Path(path)
    atomic_write_bytes(path, data)
    atomic_write_text(_sidecar(path), _digest(data))
    return path


def read_checked(path: str | Path) -> bytes:
    """Read a file written by :func:`write_checked`; ``CorruptEntry`` if it does not match.

    A missing sidecar raises :class:`MissingChecksum` (a ``CorruptEntry``).
    """
    path = Path(path)
    if not path.exists():
        raise CorruptEntry(f"{path}: file missing")
    side = _sidecar(path)
    if not side.exists():
        raise MissingChecksum(f"{path}: checksum sidecar {side.name} missing")
    data = path.read_bytes()
    if _digest(data) != side.read_text().strip():
        raise CorruptEntry(f"{path}: checksum mismatch (truncated or modified file)")
    return data


class CorruptEntry(RuntimeError):
    """A cached file that is truncated, modified or unreadable."""


class MissingChecksum(CorruptEntry):
    """A cached file whose ``.sha256`` sidecar is missing (the file itself may be fine)."""


def quarantine(path: str | Path) -> Path:
    """Move a corrupt file (and its sidecar) aside as ``<name>.corrupt-<UTC time>``; never deletes.

    Returns the new path of the file.
    """
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while dest.exists():
        dest = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, dest)
    if _sidecar(path).exists():
        os.replace(_sidecar(path), _sidecar(dest))
    return dest


def load_checked(
    path: str | Path,
    decode_fn: Callable[[bytes], Any],
    *,
    validate: Callable[[Any], None] | None = None,
    what: str = "cache entry",
    missing: Any = None,
) -> Any:
    """The decoded content of a :func:`write_checked` file, or ``missing`` to recompute it.

    * no file: ``missing``;
    * checksum matches, decodes and passes ``validate``: the value;
    * sidecar missing, but the file decodes and passes ``validate``: the
      value; the sidecar is rewritten, with a warning;
    * anything else (checksum mismatch, undecodable, ``validate`` raises):
      the file is moved aside with :func:`quarantine`, with a warning naming
      the new path, and ``missing`` is returned.

    ``validate(value)`` raises (any exception) when the value does not match
    what the caller expects (e.g. its config).
    """
    path = Path(path)
    if not path.exists():
        return missing
    missing_sidecar = False
    try:
        try:
            data = read_checked(path)
        except MissingChecksum:
            missing_sidecar = True
            data = path.read_bytes()
        value = decode_fn(data)
        if validate is not None:
            validate(value)
    except Exception as err:  # mismatch, truncated, undecodable or not matching its config
        moved = quarantine(path)
        warnings.warn(f"recomputing corrupt {what} {path} (moved aside to {moved.name}): {err}",
                      stacklevel=3)
        return missing
    if missing_sidecar:
        atomic_write_text(_sidecar(path), _digest(data))
        warnings.warn(f"{what} {path} had no checksum sidecar; it loads and matches its config, "
                      "so it is kept and the sidecar rewritten", stacklevel=3)
    return value


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

        See :func:`load_checked`: a corrupt or unreadable entry (or one whose
        stored config differs) is moved aside with a warning and recomputed;
        an entry that only lacks its checksum sidecar is kept.
        """
        path = self.path(kind, config, fmt)
        conf_file = path.with_suffix(".config.json")

        def matches_config(_value: Any) -> None:
            if conf_file.exists() and json.loads(conf_file.read_text()) != _canonical(config):
                raise CorruptEntry(f"its stored config {conf_file.name} differs from the config asked for")

        cached = load_checked(path, lambda data: decode(data, fmt), validate=matches_config,
                              what="cache entry", missing=_MISSING)
        if cached is not _MISSING:
            return cached
        result = compute()
        self.save(kind, config, result, fmt)
        return decode(read_checked(path), fmt) if fmt != "pt" else result
