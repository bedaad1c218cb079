"""Provenance of the shipped networks, checkable on any x86-64 CPU.

Every shipped network's training log keeps the losses of its first training
steps. Re-running those steps from the same config, data and initialisation
shows that the network was trained by this code from this config; the tests do
it for every shipped network: the traces (:class:`ShippedTrace`) of each paper's
networks come from :func:`gsutils.experiments.grid.shipped_traces.shipped_traces` (the
U-Nets and DeepLabs) and :func:`gsutils.experiments.normgrad.shipped_traces.shipped_traces`
(the classifiers and the captioner).

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
    from gsutils.experiments.common.shipped import machine

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


def one_thread(fn: Callable[[int], list]) -> Callable[[int], list[float]]:
    """``fn`` run on :func:`rerun_threads` threads, its losses as floats."""
    def run(n: int) -> list[float]:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(rerun_threads())
        try:
            return as_floats(fn(n))
        finally:
            torch.set_num_threads(threads)
    return run
