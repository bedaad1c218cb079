"""Networks trained by this project's own code and committed to the repository.

Where a profile's networks cannot be trained inside its time budget (the quick
profile's bias grid: eleven U-Nets that need a longer schedule than a CPU book
build allows to pass the quality gate), the project ships them under
``checkpoints/<profile>/<key>/``, where ``key`` is the hash of the network's
:func:`gsutils.experiments.segmentation.train_config`. Each folder holds what a
finished training run writes to ``results/<profile>/models/<key>/``:

* ``model.pt`` and ``model.pt.sha256`` (the weights, float32, and their checksum),
* ``config.json`` (the full training config the key hashes),
* ``history.json`` (per-epoch loss, accuracy, seconds, and the first steps' losses).

:func:`restore` copies a shipped network into the results folder when, and
only when, its config equals the run's config exactly and its checksum
verifies; anything else is ignored with a warning and the network is trained.
``tests/test_shipped.py`` re-runs the first training steps from the same
initialisation and compares the logged losses bit for bit.

Training snapshots (the weights after each epoch, for the meta-saliency
curves of NormGrad D) ship at half precision, one file per epoch
(``snapshot-epoch<e>.pt``, :func:`pack_half` / :func:`unpack_half`): a
quarter of the size of the float32 weights, which the pages say where they
use them.

Retrain instead of restoring (for instance after changing the recipe)::

    python -m gsutils.experiments.shipped --profile quick --retrain

and export freshly trained networks to ``checkpoints/`` with ``--export``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Sequence
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


def restore(profile: Profile, run: Any) -> bool:
    """Copy ``run``'s shipped network into its model folder; ``True`` when it did.

    Restores only a complete folder whose ``config.json`` equals the run's
    training config and whose weights match their checksum.
    """
    from gsutils.experiments.segmentation import model_dir, train_config

    out = model_dir(profile, run)
    src = shipped_dir(profile, out.name)
    if not verified_shipped(src, train_config(profile, run), run.label):
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
#: results folder gets the same float16-rounded weights (:func:`export` restores them there), so
#: the network every page evaluates and explains is the shipped one, on any machine.
HALF_PRECISION_BACKBONES = ("small", "small_vgg16", "small_mobilenet_v2", "small_resnet18")


def half_model_bytes(data: bytes) -> bytes:
    """A :func:`gsutils.models.unet.save_unet`-format checkpoint with its floating-point weights
    stored as float16 (refused when a value exceeds float16's range)."""
    import io

    import torch

    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if obj.get("stored_precision") == "float16":
        return data
    state = {}
    for name, t in obj["state_dict"].items():
        if t.is_floating_point():
            if bool((t.abs() > torch.finfo(torch.float16).max).any()):
                raise ValueError(f"{name} exceeds float16's range; ship it at float32")
            t = t.to(torch.float16)
        state[name] = t.contiguous()
    buf = io.BytesIO()
    torch.save({**obj, "state_dict": state, "stored_precision": "float16"}, buf)
    return buf.getvalue()


def export(profile: Profile, runs: Sequence[Any]) -> list[Path]:
    """Copy the finished networks of ``runs`` from the results folder to ``checkpoints/``.

    Also writes each network's ``provenance.json`` (:func:`machine` of this machine, which
    trained it, one training thread) into its folder, and ``PROVENANCE.json`` beside them when
    there is none yet (the machine of the networks without their own file).
    Networks of :data:`HALF_PRECISION_BACKBONES` ship at float16, and their copy in the
    results folder is replaced by the shipped one (so that this machine, too, evaluates
    exactly what a fresh checkout restores).
    """
    from gsutils.experiments.segmentation import model_dir
    from gsutils.io import write_checked

    root = SHIPPED_ROOT / profile.name
    root.mkdir(parents=True, exist_ok=True)
    here = json.dumps({**machine(), "threads": 1}, indent=1) + "\n"
    if not (root / "PROVENANCE.json").is_file():
        (root / "PROVENANCE.json").write_text(here)
    written = []
    for run in runs:
        src = model_dir(profile, run)
        if not (src / "model.pt").is_file():
            raise FileNotFoundError(f"{run.label} is not trained ({src / 'model.pt'} is missing); train it first")
        dst = shipped_dir(profile, src.name)
        data = read_checked(src / "model.pt")
        if run.backbone in HALF_PRECISION_BACKBONES:
            data = half_model_bytes(data)
        if (dst / "model.pt").is_file() and read_checked(dst / "model.pt") == data:
            written.append(dst)  # already shipped (restored here, or exported before): left as it is
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            if f == "model.pt.sha256":
                continue
            if f == "model.pt":
                write_checked(dst / f, data)
                if run.backbone in HALF_PRECISION_BACKBONES:
                    write_checked(src / f, data)
            else:
                shutil.copyfile(src / f, dst / f)
        (dst / "provenance.json").write_text(here)
        written.append(dst)
    return written


def remove_unused(profile: Profile, keep: Sequence[Path], backbones: Sequence[str]) -> list[Path]:
    """Delete shipped U-Net folders of ``backbones`` under ``checkpoints/<profile>/`` that are not in
    ``keep`` (networks of an earlier recipe that no config of the profile restores any more)."""
    keep = {Path(k).resolve() for k in keep}
    removed = []
    for conf in sorted((SHIPPED_ROOT / profile.name).glob("*/config.json")):
        folder = conf.parent
        cfg = json.loads(conf.read_text())
        if cfg.get("what") == "unet" and cfg.get("backbone") in backbones and folder.resolve() not in keep:
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def manifest(profile: Profile, runs: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per run: label, key, whether a network is shipped, its sha256 and size."""
    from gsutils.experiments.segmentation import model_dir

    rows = []
    for run in runs:
        key = model_dir(profile, run).name
        src = shipped_dir(profile, key) / "model.pt"
        rows.append({
            "network": run.label, "key": key, "shipped": src.is_file(),
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gsutils shipped --profile quick [--grid backbones] [--retrain] [--export]``."""
    from gsutils.cli import Parser, add_profile_arguments, parse_with_profile
    from gsutils.experiments.segmentation import grid_runs, model_dir, train_unet

    ap = Parser(prog="python -m gsutils shipped",
                description="Retrain, export or list the shipped U-Nets of a profile.")
    add_profile_arguments(ap)
    ap.add_argument("--grid", choices=("bias", "backbones"), default="bias",
                    help="the S1.2 bias grid (default) or the S1.5 backbone comparison")
    ap.add_argument("--retrain", action="store_true",
                    help="train every network of the grid from scratch into the results folder")
    ap.add_argument("--export", action="store_true", help="copy the trained networks to checkpoints/")
    ap.add_argument("--only", nargs="+", metavar="LABEL", default=None,
                    help="restrict --retrain and --export to these networks, by label (e.g. small/strong-d2-t3/s0)")
    a, prof = parse_with_profile(ap, argv)
    if a.grid == "backbones":
        from gsutils.experiments.backbones import backbone_profile, backbone_runs

        prof = backbone_profile(prof)
        runs = backbone_runs(prof)
    else:
        runs = grid_runs(prof)
    if a.only is not None:
        labels = [r.label for r in runs]
        unknown = [x for x in a.only if x not in labels]
        if unknown:
            ap.error(f"--only: no network labelled {', '.join(unknown)} in this grid; choose from {', '.join(labels)}")
    if a.retrain:
        for run in runs:
            if a.only is not None and run.label not in a.only:
                continue
            if not (model_dir(prof, run) / "model.pt").is_file():
                train_unet(prof, run)
    if a.export:
        written = export(prof, runs if a.only is None else [r for r in runs if r.label in a.only])
        for path in written:
            print(f"exported {path}")
        if a.only is None:  # the grid's earlier networks (of this and of earlier backbones) go
            from gsutils.models.smp_unet import SLIM_BACKBONES

            old = {r.backbone for r in runs} | ({"tiny"} if a.grid == "bias" else set(SLIM_BACKBONES))
            for path in remove_unused(prof, written, sorted(old)):
                print(f"removed {path} (no config of the profile restores it)")
    for row in manifest(prof, runs):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
