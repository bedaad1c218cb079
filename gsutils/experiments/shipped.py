"""Networks trained by this project's own code and committed to the repository.

Where a profile's networks cannot be trained inside its time budget (the quick
profile's bias grid: eleven U-Nets that need a longer schedule than a CPU book
build allows to pass the quality gate; the S1.5 U-Nets, the S2/S3 DeepLabs,
the NormGrad classifiers and captioner), the project ships them under
``checkpoints/<profile>/<key>/``, where ``key`` is the hash of the network's
training config, the name of its folder in the results. Each folder holds what
a finished training run writes there:

* ``model.pt`` and ``model.pt.sha256`` (the weights and their checksum),
* ``config.json`` (the full training config the key hashes),
* ``history.json`` (per-epoch loss, accuracy, seconds, and the first steps' losses),
* ``provenance.json`` where it was trained on another machine than the rest
  (:func:`provenance`).

This module knows folders, configs and files, not the experiments that train
them. :func:`restore` copies a shipped folder into a model folder when, and
only when, its config equals the run's config exactly and its checksum
verifies; anything else is ignored with a warning and the network is trained
(the caller passes the folders and the config:
:func:`gsutils.experiments.segmentation.train_or_load` for the Grid Saliency
U-Nets, :mod:`gsutils.experiments.deeplab_training` for the DeepLabs).
``tests/test_shipped.py`` re-runs the first training steps from the same
initialisation and compares them with the logged losses.

Training snapshots (the weights after each epoch, for the meta-saliency
curves of NormGrad D) ship at half precision, one file per epoch
(``snapshot-epoch<e>.pt``, :func:`pack_half` / :func:`unpack_half`): a
quarter of the size of the float32 weights, which the pages say where they
use them.

Retraining, exporting and listing the shipped U-Nets of the Grid Saliency
grids is :mod:`gsutils.experiments.shipped_unets`::

    python -m gsutils shipped --profile quick --retrain --export

(``python -m gsutils.experiments.shipped`` runs the same command).
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gsutils.io import read_checked
from gsutils.io import sha256_hex as _digest
from gsutils.paths import REPO_ROOT
from gsutils.profiles import Profile

#: where shipped networks live: ``<repo>/checkpoints/<profile>/<key>/``
SHIPPED_ROOT = REPO_ROOT / "checkpoints"
#: the files of one shipped network
FILES = ("model.pt", "model.pt.sha256", "config.json", "history.json")


def shipped_dir(profile: Profile, key: str) -> Path:
    return SHIPPED_ROOT / profile.name / key


def verified_shipped(src: Path, config: Any, what: str, files: tuple[str, ...] = FILES) -> bool:
    """Whether the shipped folder ``src`` may be used for a run whose config is ``config``.

    ``False`` (silently) when the folder does not exist; ``False`` with a warning
    naming the problem when it lacks one of ``files``, its ``config.json``
    differs from ``config``, or its ``model.pt`` does not match its checksum.
    """
    if not src.is_dir():
        return False
    missing = [f for f in files if not (src / f).is_file()]
    if missing:
        warnings.warn(f"ignoring incomplete shipped network {src}: {', '.join(missing)} missing", stacklevel=3)
        return False
    if json.loads((src / "config.json").read_text()) != json.loads(json.dumps(config, default=str)):
        warnings.warn(f"ignoring shipped network {src}: its config differs from {what}'s", stacklevel=3)
        return False
    try:
        read_checked(src / "model.pt")
    except Exception as err:  # checksum mismatch, unreadable
        warnings.warn(f"ignoring shipped network {src}: {err}", stacklevel=3)
        return False
    return True


def copy_shipped(src: Path, out: Path, files: tuple[str, ...] = FILES) -> None:
    """Copy the shipped folder's ``files`` into ``out``: each to a ``<name>.restoring`` temp file,
    then, when every copy succeeded, each renamed into place.

    A failed copy (a full disk, a read-only folder, an interrupt) removes the
    temp files and renames nothing, then re-raises: ``out`` keeps what it held.
    """
    import contextlib

    out.mkdir(parents=True, exist_ok=True)
    tmps = [out / (f + ".restoring") for f in files]
    try:
        for f, tmp in zip(files, tmps):
            shutil.copyfile(src / f, tmp)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(OSError):  # the copy's error is the one to report
                tmp.unlink(missing_ok=True)
        raise
    for f, tmp in zip(files, tmps):
        tmp.replace(out / f)


def restore(src: Path, out: Path, config: Any, what: str) -> bool:
    """Copy the shipped folder ``src`` into the model folder ``out``; ``True`` when it did.

    Restores only a complete folder whose ``config.json`` equals ``config``
    (the run's training config) and whose weights match their checksum
    (:func:`verified_shipped`; ``what`` names the run in its warnings).
    """
    if not verified_shipped(src, config, what):
        return False
    copy_shipped(src, out)
    return True


def machine() -> dict[str, str]:
    """What decides floating-point results on a CPU: torch's version and kernel set, the CPU model."""
    import platform

    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu": model}


def provenance(profile: Profile, folder: Path | None = None) -> dict[str, Any] | None:
    """The machine a shipped network was trained on: its folder's ``provenance.json`` when it has
    one, else ``checkpoints/<profile>/PROVENANCE.json`` (the machine of the rest)."""
    own = None if folder is None else Path(folder) / "provenance.json"
    path = own if own is not None and own.is_file() else SHIPPED_ROOT / profile.name / "PROVENANCE.json"
    return json.loads(path.read_text()) if path.is_file() else None


#: backbones whose shipped ``model.pt`` holds float16 weights: the 1.3M-parameter 64 px U-Nets
#: would take 5.2 MB each at float32 (57 MB for the quick grid), 2.6 MB at float16. The
#: results folder gets the same float16-rounded weights
#: (:func:`gsutils.experiments.shipped_unets.export` restores them there), so the network every
#: page evaluates and explains is the shipped one, on any machine.
HALF_PRECISION_BACKBONES = ("small", "small_vgg16", "small_mobilenet_v2", "small_resnet18")


def half_model_bytes(data: bytes) -> bytes:
    """A :func:`gsutils.models.unet.save_unet`-format checkpoint with its floating-point weights
    stored as float16; a tensor with a value beyond float16's range (a batch-norm running variance
    can be) stays float32, and loading casts every tensor to the network's own precision."""
    import io

    import torch

    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if obj.get("stored_precision") == "float16":
        return data
    state = {}
    for name, t in obj["state_dict"].items():
        if t.is_floating_point():
            if bool((t.abs() > torch.finfo(torch.float16).max).any()):
                t = t.float()
            else:
                t = t.to(torch.float16)
        state[name] = t.contiguous()
    buf = io.BytesIO()
    torch.save({**obj, "state_dict": state, "stored_precision": "float16"}, buf)
    return buf.getvalue()


def manifest(profile: Profile, runs: Sequence[Any], key: Callable[[Profile, Any], str]) -> list[dict[str, Any]]:
    """One row per run: label, key, whether a network is shipped, its sha256 and size.

    ``key(profile, run)`` gives a run's key (its shipped folder's name).
    """
    rows = []
    for run in runs:
        k = key(profile, run)
        src = shipped_dir(profile, k) / "model.pt"
        rows.append({
            "network": run.label, "key": k, "shipped": src.is_file(),
            "sha256": _digest(src.read_bytes()) if src.is_file() else None,
            "kB": round(src.stat().st_size / 1024) if src.is_file() else None,
        })
    return rows


def pack_half(states: dict[int, dict[str, Any]]) -> bytes:
    """``{epoch: state_dict}`` as bytes, floating-point tensors stored as float16.

    Other tensors (integer buffers) are kept as they are. A float32 value
    outside float16's range would become infinite: refused with a clear error.
    """
    import io

    import torch

    out: dict[int, dict[str, Any]] = {}
    for epoch, state in states.items():
        packed = {}
        for name, t in state.items():
            if t.is_floating_point():
                if bool((t.abs() > torch.finfo(torch.float16).max).any()):
                    raise ValueError(f"epoch {epoch}: {name} exceeds float16's range; ship it at float32")
                t = t.to(torch.float16)
            packed[name] = t.contiguous()
        out[int(epoch)] = packed
    buf = io.BytesIO()
    torch.save(out, buf)
    return buf.getvalue()


def unpack_half(data: bytes) -> dict[int, dict[str, Any]]:
    """The inverse of :func:`pack_half`: float16 tensors come back as float32."""
    import io

    import torch

    states = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return {int(e): {k: v.float() if v.is_floating_point() else v for k, v in st.items()}
            for e, st in states.items()}
