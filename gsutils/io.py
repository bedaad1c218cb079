"""Files that are never half written, checksummed files, and config keys.

The bottom layer of :mod:`gsutils`: everything else may import it and it
imports nothing of ours.

* :func:`atomic_write_bytes` / :func:`atomic_write_text`: a temp file in the
  same folder, fsync, rename; the file gets mode ``0o666 & ~umask``
  (:func:`file_mode`, 0644 under the usual umask) like any file ``open()``
  creates, not the 0600 of a bare temp file.
* :func:`write_checked` / :func:`read_checked`: the same with a ``.sha256``
  sidecar; :func:`load_checked` decodes such a file or moves a corrupt one
  aside (:func:`quarantine`, ``<name>.corrupt-<UTC time>``; never deleted).
* :func:`config_key`: a stable 16-hex-digit hash of a JSON-like config. Cache
  keys and shipped checkpoints depend on its exact value: it must never
  change (``tests/test_io.py`` pins it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CorruptEntry",
    "MissingChecksum",
    "atomic_write_bytes",
    "atomic_write_text",
    "canonical_config",
    "config_key",
    "file_mode",
    "load_checked",
    "quarantine",
    "read_checked",
    "sha256_hex",
    "sidecar_path",
    "write_checked",
]


# --------------------------------------------------------------------------- config keys


def canonical_config(obj: Any) -> Any:
    """``obj`` as plain JSON values: dataclasses as dicts, mappings sorted by key, paths as text.

    Raises
    ------
    TypeError
        A value that is not JSON-like (the message names it).
    """
    if is_dataclass(obj) and not isinstance(obj, type):
        return canonical_config(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): canonical_config(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical_config(v) for v in obj]
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
    blob = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- atomic writes


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
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode())


# --------------------------------------------------------------------------- checksummed files


class CorruptEntry(RuntimeError):
    """A cached file that is truncated, modified or unreadable."""


class MissingChecksum(CorruptEntry):
    """A cached file whose ``.sha256`` sidecar is missing (the file itself may be fine)."""


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as 64 hex digits (what a ``.sha256`` sidecar holds)."""
    return hashlib.sha256(data).hexdigest()


def sidecar_path(path: str | Path) -> Path:
    """The checksum sidecar of ``path``: ``<name>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_checked(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` and its ``.sha256`` sidecar."""
    path = Path(path)
    atomic_write_bytes(path, data)
    atomic_write_text(sidecar_path(path), sha256_hex(data))
    return path


def read_checked(path: str | Path) -> bytes:
    """Read a file written by :func:`write_checked`; ``CorruptEntry`` if it does not match.

    A missing sidecar raises :class:`MissingChecksum` (a ``CorruptEntry``).
    """
    path = Path(path)
    if not path.exists():
        raise CorruptEntry(f"{path}: file missing")
    side = sidecar_path(path)
    if not side.exists():
        raise MissingChecksum(f"{path}: checksum sidecar {side.name} missing")
    data = path.read_bytes()
    if sha256_hex(data) != side.read_text().strip():
        raise CorruptEntry(f"{path}: checksum mismatch (truncated or modified file)")
    return data


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
    if sidecar_path(path).exists():
        os.replace(sidecar_path(path), sidecar_path(dest))
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
        atomic_write_text(sidecar_path(path), sha256_hex(data))
        warnings.warn(f"{what} {path} had no checksum sidecar; it loads and matches its config, "
                      "so it is kept and the sidecar rewritten", stacklevel=3)
    return value


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then move it to ``final`` in one rename.

    Yields the temporary directory. When the block ends without an error, an
    existing ``final`` (an incomplete or stale copy) is removed and the new one
    renamed into place; on an error the temporary directory is removed and
    ``final`` is left as it was. Readers never see a half-written directory.
    """
    import shutil

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=final.name + ".tmp"))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
