"""Networks trained by this project's own code and committed to the repository.

Where a profile's networks cannot be trained inside its time budget (the quick
profile's bias grid: eleven U-Nets that need a longer schedule than a CPU book
build allows to pass the quality gate; the S1.5 U-Nets, the S2/S3 DeepLabs,
the NormGrad classifiers and captioner), the project ships them under
``checkpoints/<profile>/<folder>/``. One type, :class:`ShippedNetwork`, knows
every kind of them (:data:`KINDS`): where its folder is, whether it is there,
how to restore it into a results folder and how to export a trained one. Each
folder holds:

* ``model.pt`` and ``model.pt.sha256`` (the weights and their checksum),
* ``config.json`` (the full training config; the folder's name is its hash),
* ``history.json`` (per-epoch loss, accuracy, seconds, and the first steps' losses),
* ``provenance.json``: the machine that trained it, where it is not the machine
  of the rest (``checkpoints/<profile>/PROVENANCE.json``; :meth:`ShippedNetwork.provenance`).

The kinds differ only in where a restored network goes: the U-Nets and the
DeepLabs are model folders of the results (``<results>/models/<key>/``,
``<results>/scenes/deeplab-.../``, the files copied as they are), the NormGrad
classifiers and the captioner are entries of the result store
(:class:`gsutils.experiments.common.store.Store`). A network is restored when, and
only when, its config equals the run's config exactly and its checksum
verifies; anything else is ignored with a one-line warning naming the file and
the fix, and the network is trained. ``tests/test_shipped_folders.py`` restores every
shipped folder of the quick profile and loads it into its network;
``tests/test_provenance.py`` re-runs their first training steps and compares
them with the logged losses.

This module knows folders, configs and files, not the experiments that train
them. The kind-specific code that remains: the U-Nets' grid-level export and
listing (:mod:`gsutils.experiments.grid.shipped_unets`); the classifiers' epoch
snapshots (:func:`gsutils.experiments.normgrad.classifier_training.restore_shipped`,
shipped at half precision, one file per epoch: ``snapshot-epoch<e>.pt``,
:func:`pack_half` / :func:`unpack_half`).

Retraining, exporting and listing the shipped U-Nets of the Grid Saliency
grids::

    python -m gsutils shipped --profile quick --retrain --export
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsutils.experiments.common.store import Store, decode
from gsutils.io import atomic_write_bytes, atomic_write_text, config_key, read_checked, write_checked
from gsutils.io import sha256_hex as _digest
from gsutils.paths import REPO_ROOT
from gsutils.profiles import Profile

#: where shipped networks live: ``<repo>/checkpoints/<profile>/<folder>/`` (the only definition)
SHIPPED_ROOT = REPO_ROOT / "checkpoints"
#: the files of one shipped network
FILES = ("model.pt", "model.pt.sha256", "config.json", "history.json")
#: a network's own machine, in its folder
PROVENANCE = "provenance.json"
#: the machine of the networks without their own file, in ``checkpoints/<profile>/``; the
#: captioner's first export wrote its own file under this name too, which is still read
PROFILE_PROVENANCE = "PROVENANCE.json"


@dataclass(frozen=True)
class Kind:
    """How one kind of network is shipped and restored."""

    name: str
    #: restored as a result-store entry (``Store(results).path(name, config, "pt")``); else as a
    #: model folder ``<results>/<subdir>/<folder>/`` holding :data:`FILES`
    store: bool
    subdir: str
    #: the command that retrains and exports it (``{profile}``: the profile's name)
    retrain: str


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("unet", False, "models",
         "python -m gsutils shipped --profile {profile} [--grid backbones] --retrain --export"),
    Kind("deeplab", False, "scenes", "python -m gsutils scenes --profile {profile} --export"),
    Kind("normgrad_classifier", True, "",
         "python -m gsutils.experiments.normgrad.classifier_training --profile {profile} --retrain --export"),
    Kind("captioner", True, "", "python -m gsutils captioning --profile {profile} --retrain --export"),
)}

#: backbones whose shipped ``model.pt`` holds float16 weights: the 1.3M-parameter 64 px U-Nets
#: would take 5.2 MB each at float32 (57 MB for the quick grid), 2.6 MB at float16. The
#: results folder gets the same float16-rounded weights (:meth:`ShippedNetwork.export` writes
#: them back there), so the network every page evaluates and explains is the shipped one, on
#: any machine.
HALF_PRECISION_BACKBONES = ("small", "small_vgg16", "small_mobilenet_v2", "small_resnet18", "small_mobilenet_v2_fs",
                            "small_resnet18_fs")


def _json(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(obj, default=str))


@dataclass(frozen=True)
class ShippedNetwork:
    """One shipped network: ``checkpoints/<profile_name>/<folder>/``.

    ``kind`` is a key of :data:`KINDS`; ``config`` the training config of the
    run that wants it (``None`` only to look at the folder: :meth:`restore`
    refuses then); ``folder`` the folder's name (:meth:`of` derives it for the
    result-store kinds).
    """

    kind: str
    profile_name: str
    config: Any
    folder: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def of(cls, kind: str, profile: Profile, config: Any, folder: str | None = None) -> ShippedNetwork:
        """The shipped network of ``profile`` for ``config``; ``folder`` defaults to
        ``<kind>-<config key>`` (the classifiers' and the captioner's folders)."""
        return cls(kind, profile.name, config, folder or f"{kind}-{config_key(config)}")

    @classmethod
    def trained(cls, kind: str, profile: Profile, model_folder: Path) -> ShippedNetwork:
        """The network of a finished model folder (U-Net, DeepLab), its config read from there."""
        return cls(kind, profile.name, json.loads((Path(model_folder) / "config.json").read_text()),
                   Path(model_folder).name)

    @classmethod
    def at(cls, path: Path) -> ShippedNetwork:
        """The shipped network in folder ``path`` (``.../<profile>/<folder>``), its kind told by
        the folder's name (``deeplab-``, ``normgrad_classifier-``, ``captioner-``; else a U-Net)
        and its config read from its ``config.json``."""
        path = Path(path)
        kind = next((k for k in ("deeplab", "normgrad_classifier", "captioner")
                     if path.name.startswith(k + "-")), "unet")
        return cls(kind, path.parent.name, json.loads((path / "config.json").read_text()), path.name)

    # ------------------------------------------------------------------ where and whether
    @property
    def path(self) -> Path:
        return SHIPPED_ROOT / self.profile_name / self.folder

    def exists(self) -> bool:
        """Whether the folder holds weights (complete or not: :meth:`verify` says whether usable)."""
        return (self.path / "model.pt").is_file()

    def target(self, results_dir: Path) -> Path:
        """Where :meth:`restore` puts the network in ``results_dir`` (and :meth:`export` reads it)."""
        k = KINDS[self.kind]
        if k.store:
            return Store(results_dir).path(self.kind, self.config, "pt")
        return Path(results_dir) / k.subdir / self.folder

    def _refuse(self, problem: str, fix: str | None = None) -> bool:
        if fix is None:
            retrain = KINDS[self.kind].retrain.format(profile=self.profile_name)
            rel = self.path.relative_to(REPO_ROOT) if self.path.is_relative_to(REPO_ROOT) else self.path
            fix = f"`git checkout -- {rel}` restores the committed files, `{retrain}` replaces them"
        warnings.warn(f"ignoring shipped network {self.path}: {problem}; training it instead ({fix})",
                      stacklevel=4)
        return False

    def verify(self) -> bool:
        """Whether the folder may be restored for :attr:`config`.

        ``False`` (silently) when it does not exist; ``False`` with a one-line
        warning naming the file and the fix when it lacks one of :data:`FILES`,
        its ``config.json`` differs from :attr:`config`, or its ``model.pt``
        does not match its checksum.
        """
        src = self.path
        if not src.is_dir():
            return False
        if self.config is None:
            raise ValueError(f"{self.folder}: no config to compare the shipped one with")
        missing = [f for f in FILES if not (src / f).is_file()]
        if missing:
            return self._refuse(f"{', '.join(missing)} missing")
        if json.loads((src / "config.json").read_text()) != _json(self.config):
            return self._refuse("its config differs from this run's (config.json: another recipe or data)",
                                "`--export` after training replaces it")
        try:
            read_checked(src / "model.pt")
        except Exception as err:  # checksum mismatch, missing sidecar, unreadable
            return self._refuse(str(err).replace(f"{src / 'model.pt'}: ", "model.pt: "))
        return True

    # ------------------------------------------------------------------ restore
    def restore(self, results_dir: Path) -> bool:
        """Put the shipped network into ``results_dir`` (at :meth:`target`); ``True`` when it did.

        Only after :meth:`verify`. A model folder gets the files copied
        atomically (:func:`copy_shipped`); a result-store entry is written
        from them (the classifiers' ``model.pt`` holds the bare state dict and
        ``history.json`` the history; the captioner's ``model.pt`` is the store
        entry itself).
        """
        if not self.verify():
            return False
        if not KINDS[self.kind].store:
            copy_shipped(self.path, self.target(results_dir))
            return True
        weights = read_checked(self.path / "model.pt")
        if self.kind == "captioner":
            entry = decode(weights, "pt")
        else:
            entry = {"state_dict": decode(weights, "pt"), "history": (self.path / "history.json").read_text()}
        Store(results_dir).save(self.kind, self.config, entry, fmt="pt")
        return True

    # ------------------------------------------------------------------ export
    def _trained_files(self, results_dir: Path) -> dict[str, bytes]:
        """``model.pt``, ``config.json`` and ``history.json`` of the trained network in ``results_dir``."""
        src = self.target(results_dir)
        weights = src if KINDS[self.kind].store else src / "model.pt"
        if not weights.is_file():
            raise FileNotFoundError(f"{self.folder} is not trained ({weights} is missing); train it first "
                                    f"(`{KINDS[self.kind].retrain.format(profile=self.profile_name)}`)")
        if not KINDS[self.kind].store:
            data = read_checked(src / "model.pt")
            if self.kind == "unet" and _json(self.config).get("backbone") in HALF_PRECISION_BACKBONES:
                data = half_model_bytes(data)
            return {"model.pt": data, "config.json": (src / "config.json").read_bytes(),
                    "history.json": (src / "history.json").read_bytes()}
        data = read_checked(src)
        entry = decode(data, "pt")
        if self.kind == "captioner":
            history = json.dumps(entry["history"], indent=1) + "\n"
        else:
            import torch

            buf = io.BytesIO()
            torch.save(entry["state_dict"], buf)
            data, history = buf.getvalue(), entry["history"]
        config = json.dumps(self.config, indent=1, sort_keys=True) + "\n"
        return {"model.pt": data, "config.json": config.encode(), "history.json": history.encode()}

    def export(self, results_dir: Path, *, threads: int | None = None) -> Path:
        """Copy the trained network from ``results_dir`` (:meth:`target`) to :attr:`path`; the folder.

        Every file is written atomically; ``model.pt`` with its checksum, at
        float16 for the U-Nets of :data:`HALF_PRECISION_BACKBONES` (whose copy
        in the results is then replaced by the shipped one, so that this
        machine, too, evaluates exactly what a fresh checkout restores). The
        folder's ``provenance.json`` records this machine (:func:`machine`,
        ``threads`` training threads: default torch's), and
        ``checkpoints/<profile>/PROVENANCE.json`` is written when there is none
        yet. A network whose shipped weights are already these is left as it is.
        """
        import torch

        files = self._trained_files(results_dir)
        if self.kind == "unet" and _json(self.config).get("backbone") in HALF_PRECISION_BACKBONES:
            write_checked(self.target(results_dir) / "model.pt", files["model.pt"])
        dst = self.path
        with contextlib.suppress(Exception):
            if read_checked(dst / "model.pt") == files["model.pt"]:
                return dst  # already shipped (restored here, or exported before)
        here = json.dumps({**machine(), "threads": torch.get_num_threads() if threads is None else threads},
                          indent=1) + "\n"
        if not (dst.parent / PROFILE_PROVENANCE).is_file():
            atomic_write_text(dst.parent / PROFILE_PROVENANCE, here)
        atomic_write_bytes(dst / "config.json", files["config.json"])
        atomic_write_bytes(dst / "history.json", files["history.json"])
        write_checked(dst / "model.pt", files["model.pt"])
        atomic_write_text(dst / PROVENANCE, here)
        return dst

    # ------------------------------------------------------------------ provenance
    def provenance(self) -> dict[str, Any] | None:
        """The machine that trained it: the folder's ``provenance.json`` (or, as the captioner's
        first export named it, ``PROVENANCE.json``), else ``checkpoints/<profile>/PROVENANCE.json``."""
        for path in (self.path / PROVENANCE, self.path / PROFILE_PROVENANCE, self.path.parent / PROFILE_PROVENANCE):
            if path.is_file():
                return json.loads(path.read_text())
        return None


def shipped_networks(profile_name: str) -> list[ShippedNetwork]:
    """Every shipped network of a profile (the folders with a ``config.json``), by folder name."""
    return [ShippedNetwork.at(conf.parent)
            for conf in sorted((SHIPPED_ROOT / profile_name).glob("*/config.json"))]


def copy_shipped(src: Path, out: Path, files: tuple[str, ...] = FILES) -> None:
    """Copy the shipped folder's ``files`` into ``out``: each to a ``<name>.<pid>.restoring`` temp
    file, then, when every copy succeeded, each renamed into place (two processes restoring the
    same network each rename a complete copy of their own).

    A failed copy (a full disk, a read-only folder, an interrupt) removes the
    temp files and renames nothing, then re-raises: ``out`` keeps what it held.
    """
    out.mkdir(parents=True, exist_ok=True)
    tmps = [out / f"{f}.{os.getpid()}.restoring" for f in files]
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


def half_model_bytes(data: bytes) -> bytes:
    """A :func:`gsutils.models.unet.save_unet`-format checkpoint with its floating-point weights
    stored as float16; a tensor with a value beyond float16's range (a batch-norm running variance
    can be) stays float32, and loading casts every tensor to the network's own precision."""
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


def manifest(profile: Profile, runs: Sequence[Any],
             network: Callable[[Profile, Any], ShippedNetwork]) -> list[dict[str, Any]]:
    """One row per run: label, key (its folder's name), whether a network is shipped, its sha256 and size.

    ``network(profile, run)`` gives a run's :class:`ShippedNetwork`.
    """
    rows = []
    for run in runs:
        net = network(profile, run)
        src = net.path / "model.pt"
        rows.append({
            "network": run.label, "key": net.folder, "shipped": src.is_file(),
            "sha256": _digest(src.read_bytes()) if src.is_file() else None,
            "kB": round(src.stat().st_size / 1024) if src.is_file() else None,
        })
    return rows


def pack_half(states: dict[int, dict[str, Any]]) -> bytes:
    """``{epoch: state_dict}`` as bytes, floating-point tensors stored as float16.

    Other tensors (integer buffers) are kept as they are. A float32 value
    outside float16's range would become infinite: refused with a clear error.
    """
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
    import torch

    states = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return {int(e): {k: v.float() if v.is_floating_point() else v for k, v in st.items()}
            for e, st in states.items()}
