"""Provenance of the shipped networks, checkable on any x86-64 CPU.

Every shipped network's training log keeps the losses of its first training
steps. Re-running those steps from the same config, data and initialisation
shows that the network was trained by this code from this config; the tests do
it for every shipped network (:func:`shipped_traces`).

Bit-for-bit equality holds only on the machine kind that trained the network
(same torch, same CPU kernels): the initial weights are drawn by vectorised
kernels whose last bits differ between code paths (torch's ``default`` path
against AVX2/AVX-512), and a few training steps amplify last-bit differences of
the convolutions. So the comparison is

* exact where it can be (the same machine kind, as recorded at export, with
  no kernel set forced), and otherwise
* the first loss (step 0: initial weights, first batch, loss; no update yet)
  at a tight relative tolerance, and the later steps at a tolerance of
  :data:`MARGIN` times the largest spread measured between CPU code paths
  (``benchmarks/provenance_spread.py`` measures it; :data:`TOLERANCES` holds it).

A changed config, seed or data moves the losses by orders of magnitude more
than these tolerances; ``tests/test_provenance.py`` shows it for each kind of
network (mutation tests).

The Grid Saliency U-Nets of the quick profile are trained with bfloat16
autocast; their training log also keeps the same first steps re-run in float64
(``first_step_losses_float64``), which is what is compared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: tolerances are this many times the largest measured cross-kernel spread
MARGIN = 10.0


@dataclass(frozen=True)
class Tolerance:
    """Relative tolerances of a re-run's losses: the first step, and the later ones."""

    step0: float
    later: float


#: per kind of trace: about MARGIN x the largest relative difference measured between CPU code
#: paths (``benchmarks/provenance_spread.py``, 2026-12-02: AVX-512 on an AMD EPYC against the
#: generic path forced by ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2), and never below
#: MARGIN x the differences reported on an Intel Xeon with AMX (1.7e-5 for the slim U-Nets at
#: step 8, 5e-4 for VGG16 at step 3). Measured largest spreads, step 0 / later steps:
#: slim U-Nets 1.0e-7 / 4.0e-4 (8 steps); classifiers 3.8e-7 / 5.6e-3 (3 steps, VGG16);
#: DeepLabs 4.5e-7 / 1.6e-3 (4 steps); captioner 0 / 9e-8 (4 steps; floor 1e-4);
#: the 64 px U-Nets in float64 1.7e-10 / 4.5e-6 (8 steps; the tests compare 3); the 64 px smp
#: U-Nets of S1.5 in float64 (2026-12-02 afternoon, AVX-512 with AMX on an Intel Xeon against the
#: generic path, 2 threads) 9.5e-8 / 6.1e-4 (8 steps): their initialisation draws float32
#: normals, which the generic path rounds differently, and Adam carries that into later steps.
#: A doubled learning rate moves the later steps by 1e-2 to 6e-1 (the mutation tests), except
#: the DeepLabs' 4 logged steps, which lie in a one-cycle warm-up (a tenfold rate: 4e-2).
TOLERANCES: dict[str, Tolerance] = {
    "unet-float64": Tolerance(step0=1e-8, later=5e-5),
    "smp-float64": Tolerance(step0=1e-6, later=7e-3),
    "unet-float32": Tolerance(step0=1e-5, later=5e-3),
    "classifier": Tolerance(step0=1e-5, later=6e-2),
    "deeplab": Tolerance(step0=1e-5, later=2e-2),
    "captioner": Tolerance(step0=1e-5, later=1e-4),
}


def as_floats(values: Sequence[float | str]) -> list[float]:
    """Losses logged as floats or as float hex strings, as floats."""
    return [float.fromhex(v) if isinstance(v, str) else float(v) for v in values]


def relative_differences(logged: Sequence[float | str], rerun: Sequence[float | str]) -> list[float]:
    """``|rerun - logged| / |logged|`` per step."""
    a, b = as_floats(logged), as_floats(rerun)
    if len(a) != len(b):
        raise ValueError(f"the re-run has {len(b)} steps, the log {len(a)}")
    return [abs(y - x) / max(abs(x), 1e-30) for x, y in zip(a, b)]


def mismatches(logged: Sequence[float | str], rerun: Sequence[float | str], tol: Tolerance) -> list[str]:
    """The steps whose re-run loss is outside the tolerance, one readable line each (empty: reproduced)."""
    out = []
    for k, (d, x, y) in enumerate(zip(relative_differences(logged, rerun), as_floats(logged), as_floats(rerun))):
        limit = tol.step0 if k == 0 else tol.later
        if not d <= limit:  # also catches NaN
            out.append(f"step {k}: logged {x!r}, re-run {y!r}, relative difference {d:.2e} > {limit:.0e}")
    return out


def forced_kernels() -> bool:
    """Whether a CPU kernel set is forced through the environment (the portability run)."""
    return bool(os.environ.get("ATEN_CPU_CAPABILITY") or os.environ.get("ONEDNN_MAX_CPU_ISA"))


def same_machine_kind(trained_on: dict[str, Any] | None) -> bool:
    """Whether this process runs the torch version and CPU kernels the network was trained with."""
    from gsutils.experiments.shipped import machine

    if trained_on is None or forced_kernels():
        return False
    here = machine()
    return all(trained_on.get(k) == here[k] for k in ("torch", "cpu_capability", "cpu"))


def check(logged: Sequence[float | str], rerun: Sequence[float | str], kind: str, *,
          trained_on: dict[str, Any] | None = None, what: str = "network", exact: bool = True) -> None:
    """Raise ``AssertionError`` unless ``rerun`` reproduces ``logged``.

    Bit for bit on the machine kind ``trained_on`` (when given and not forced
    otherwise, and ``exact``: the re-run computes what training did in the same order); else
    within :data:`TOLERANCES` ``[kind]``.
    """
    if kind not in TOLERANCES:
        raise ValueError(f"kind must be one of {sorted(TOLERANCES)}, got {kind!r}")
    if len(as_floats(rerun)) != len(as_floats(logged)):
        raise AssertionError(f"{what}: the re-run has {len(rerun)} steps, the log {len(logged)}")
    if exact and same_machine_kind(trained_on) and kind not in ("unet-float64", "smp-float64"):
        if as_floats(rerun) != as_floats(logged):
            raise AssertionError(f"{what}: same machine kind as the training run, but the first steps differ: "
                                 f"{mismatches(logged, rerun, Tolerance(0.0, 0.0))[:3]}")
        return
    bad = mismatches(logged, rerun, TOLERANCES[kind])
    if bad:
        raise AssertionError(f"{what} ({kind}) does not reproduce its logged first steps: " + "; ".join(bad[:3]))


# ------------------------------------------------------------------------------------ the shipped networks


@dataclass(frozen=True)
class ShippedTrace:
    """One shipped network's logged first steps and how to re-run them."""

    name: str
    kind: str
    folder: Path
    logged: list[float]
    trained_on: dict[str, Any] | None
    #: ``rerun_steps(n)``: the first ``n`` steps re-run on one thread
    rerun_steps: Callable[[int], list[float]]
    #: whether the re-run computes exactly what training computed, in the same order (the
    #: captioner's frozen-encoder features are computed per image here, in batches when training)
    exact: bool = True

    def rerun(self, n: int | None = None) -> list[float]:
        """The first ``n`` (default: as many as logged) steps re-run here."""
        return self.rerun_steps(len(self.logged) if n is None else n)


def rerun_threads() -> int:
    """Threads of a re-run: 1 (as the networks were trained), or ``$GSUTILS_RERUN_THREADS``
    (the portability run uses 2: another reduction order)."""
    return int(os.environ.get("GSUTILS_RERUN_THREADS", "1"))


def _one_thread(fn: Callable[[int], list]) -> Callable[[int], list[float]]:
    def run(n: int) -> list[float]:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(rerun_threads())
        try:
            return as_floats(fn(n))
        finally:
            torch.set_num_threads(threads)
    return run


#: backbones whose float64 traces are checked as ``"smp-float64"`` (segmentation-models-pytorch U-Nets)
SMP_KINDS = ("small_vgg16", "small_mobilenet_v2", "small_resnet18", "vgg16", "mobilenet_v2", "resnet18",
             "slim_vgg16", "slim_mobilenet_v2", "slim_resnet18")


def _unet_traces(profile, runs, float64: bool) -> list[ShippedTrace]:
    import torch

    from gsutils.experiments import segmentation as seg

    out = []
    for run in runs:
        net = seg.shipped_network(profile, run)
        folder = net.path
        hist = json.loads((folder / "history.json").read_text()) if (folder / "history.json").is_file() else [{}]
        f64 = float64 or "first_step_losses_float64" in hist[0]  # the float64 trace when it was logged
        key = "first_step_losses_float64" if f64 else "first_step_losses"
        logged = as_floats(hist[0].get(key, []))
        dtype = torch.float64 if f64 else None
        kind = ("smp-float64" if run.backbone in SMP_KINDS else "unet-float64") if f64 else "unet-float32"
        out.append(ShippedTrace(
            run.label, kind, folder, logged, net.provenance(),
            _one_thread(lambda n, run=run, dtype=dtype: seg.first_step_losses(profile, run, n, dtype))))
    return out


def shipped_traces(profile, which: str = "all") -> list[ShippedTrace]:
    """The shipped networks of ``profile`` (``which``: ``"all"``, ``"unet"``, ``"slim"``,
    ``"classifier"``, ``"deeplab"`` or ``"captioner"``), each with its logged first steps."""
    from gsutils.experiments import segmentation as seg

    out: list[ShippedTrace] = []
    if which in ("all", "unet"):
        out += _unet_traces(profile, seg.grid_runs(profile), float64=True)
    if which in ("all", "slim"):
        from gsutils.experiments.backbones import backbone_profile, backbone_runs

        bp = backbone_profile(profile)
        out += _unet_traces(bp, backbone_runs(bp), float64=False)
    if which in ("all", "classifier"):
        from gsutils.experiments import classifier_training as ct

        for arch in profile.normgrad.archs:
            net = ct.shipped_network(profile, arch)
            hist = json.loads((net.path / "history.json").read_text())
            out.append(ShippedTrace(arch, "classifier", net.path, as_floats(hist[0]["first_losses"][:3]),
                                    net.provenance(),
                                    _one_thread(lambda n, arch=arch: ct.first_step_losses(profile, arch, n))))
    if which in ("all", "deeplab"):
        out += _deeplab_traces(profile)
    if which in ("all", "captioner"):
        from gsutils.experiments import captioning as cap
        from gsutils.experiments.store import decode
        from gsutils.io import read_checked

        net = cap.shipped_network(profile)
        folder = net.path
        hist = json.loads((folder / "history.json").read_text())

        def rerun(n: int) -> list[float]:
            vocab = cap.Vocabulary(decode(read_checked(folder / "model.pt"), "pt")["vocab"])
            return cap.first_step_losses(profile, vocab, n)
        out.append(ShippedTrace("captioner", "captioner", folder, as_floats(hist[0]["first_losses"][:4]),
                                net.provenance(),
                                _one_thread(rerun), exact=bool(profile.captioning.train_encoder)))
    return out


def _deeplab_traces(profile) -> list[ShippedTrace]:
    from gsutils.experiments import coco_context, street_context
    from gsutils.experiments.deeplab_training import DeepLabRecipe, first_step_losses
    from gsutils.experiments.shipped import shipped_networks

    out = []
    for net in shipped_networks(profile.name):
        if net.kind != "deeplab":
            continue
        cfg = net.config
        recipe = DeepLabRecipe(**cfg["recipe"])
        logged = as_floats(json.loads((net.path / "history.json").read_text())[0]["first_losses"])

        def rerun(n: int, recipe=recipe, key=cfg["data"]) -> list[float]:
            street = street_context.street_data(profile, progress=False)
            if key == street.key:
                x, y = street.train_x, street.train_y
            else:
                coco = coco_context.coco_data(profile)
                if key != coco.key:
                    raise AssertionError("a shipped DeepLab whose data the profile does not make")
                x, y = coco.train_x, coco.train_y
            return first_step_losses(recipe, x, y, n=n)
        out.append(ShippedTrace(net.folder, "deeplab", net.path, logged, net.provenance(),
                                _one_thread(rerun)))
    return out
