"""One seeded, resumable, checkpointing epoch loop for every trainer.

Every network the book trains (the toy U-Nets, the NormGrad classifiers, the
captioner, the DeepLabs) goes through :func:`fit`. A trainer supplies

* ``fresh()``: a freshly initialised :class:`TrainState` (model, optimizer,
  optional scheduler), seeded by the trainer so that it is the same every call;
* ``run_epoch(epoch, state, step)``: one epoch of optimisation (``epoch``
  counts from 0). It draws its own data and randomness from seeds derived
  from ``epoch`` (see :func:`mix_seed`), calls ``step(loss)`` after every
  batch (progress bar), and returns the epoch's metrics as a dict.

:func:`fit` does the rest: after each epoch it appends
``{"epoch": e, **metrics, "seconds": ...}`` to the history and writes a
checkpoint (weights, optimizer and scheduler state, history) atomically, with
a checksum. Called again after an interruption, it resumes after the last
finished epoch; because every epoch re-derives its randomness from its
number, the resumed run ends bit for bit where an uninterrupted one does. A
checkpoint that cannot be read is moved aside (``<name>.corrupt-<time>``,
never deleted) with a warning, and training starts over.
"""

from __future__ import annotations

import io
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gsutils.models.precision import AUTOCAST_DTYPES, native_bf16
from gsutils.io import config_key, quarantine, read_checked, write_checked

__all__ = ["TrainState", "fit", "mix_seed", "deterministic", "discard_checkpoint", "lr_at", "make_optimizer",
           "make_scheduler", "recipe_autocast", "OPTIMIZERS", "SCHEDULES", "AUTOCAST_DTYPES"]

StepFn = Callable[[float], None]
EpochFn = Callable[[int, "TrainState", StepFn], dict[str, Any]]


@dataclass
class TrainState:
    """What a checkpoint holds besides the history: the model and its optimizer (and scheduler)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any | None = None


def mix_seed(*ints: int) -> int:
    """A 63-bit seed from integers, stable across runs and platforms (e.g. ``mix_seed(seed, 2, epoch)``)."""
    return int(config_key({"ints": list(ints)}), 16) & ((1 << 63) - 1)


class deterministic:
    """Turn on deterministic algorithms (warn-only) for a block, restoring the previous setting."""

    def __enter__(self) -> None:
        self.prev = torch.are_deterministic_algorithms_enabled()
        self.prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)

    def __exit__(self, *exc: Any) -> None:
        torch.use_deterministic_algorithms(self.prev, warn_only=self.prev_warn)


def _checkpoint_bytes(state: TrainState, epoch: int, history: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    torch.save(
        {
            "epoch": epoch,
            "model": {k: v.detach().cpu() for k, v in state.model.state_dict().items()},
            "optimizer": state.optimizer.state_dict(),
            "scheduler": None if state.scheduler is None else state.scheduler.state_dict(),
            "history": json.dumps(history),
        },
        buf,
    )
    return buf.getvalue()


def _resume(checkpoint: Path, state: TrainState, map_location: torch.device) -> tuple[int, list[dict[str, Any]]]:
    saved = torch.load(io.BytesIO(read_checked(checkpoint)), map_location=map_location, weights_only=True)
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    if state.scheduler is not None:
        if saved.get("scheduler") is None:
            raise ValueError("the checkpoint has no scheduler state but the run uses a scheduler")
        state.scheduler.load_state_dict(saved["scheduler"])
    return int(saved["epoch"]), json.loads(saved["history"])


def discard_checkpoint(checkpoint: str | Path) -> None:
    """Delete a finished run's epoch checkpoint and its checksum file."""
    checkpoint = Path(checkpoint)
    for p in (checkpoint, checkpoint.with_name(checkpoint.name + ".sha256")):
        p.unlink(missing_ok=True)


def fit(
    *,
    fresh: Callable[[], TrainState],
    run_epoch: EpochFn,
    epochs: int,
    steps_per_epoch: int,
    checkpoint: str | Path,
    desc: str = "train",
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, Any], TrainState], None] | None = None,
) -> tuple[TrainState, list[dict[str, Any]]]:
    """Train for ``epochs`` epochs, resuming from ``checkpoint`` when it exists.

    Parameters
    ----------
    fresh:
        Returns a freshly initialised :class:`TrainState` (called once, and
        again if the checkpoint is unreadable).
    run_epoch:
        ``run_epoch(epoch, state, step) -> metrics``: one epoch (``epoch`` from 0).
    epochs, steps_per_epoch:
        Total epochs; optimisation steps per epoch (for the progress bar).
    checkpoint:
        The per-epoch checkpoint file (written atomically with a checksum).
    on_epoch_end:
        ``on_epoch_end(epoch, record, state)`` after the epoch's checkpoint is
        written (``epoch`` from 1); it may raise to stop training.

    Returns
    -------
    (state, history)
        The trained state (model left in train mode) and one record per epoch.
        The checkpoint is kept; call :func:`discard_checkpoint` once the final
        model is stored.
    """
    from tqdm.auto import tqdm

    if epochs < 0 or steps_per_epoch < 1:
        raise ValueError(f"need epochs >= 0 and steps_per_epoch >= 1, got {epochs} and {steps_per_epoch}")
    checkpoint = Path(checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    state = fresh()
    start, history = 0, []
    if checkpoint.exists():
        try:
            device = next(state.model.parameters()).device
            start, history = _resume(checkpoint, state, device)
        except Exception as err:  # corrupt, truncated or from another layout: moved aside, start over
            moved = quarantine(checkpoint)
            warnings.warn(f"unreadable checkpoint {checkpoint} moved aside to {moved.name}; "
                          f"training starts over: {err}", stacklevel=2)
            state, start, history = fresh(), 0, []
    if start >= epochs:
        return state, history

    bar = tqdm(total=epochs * steps_per_epoch, initial=start * steps_per_epoch, desc=desc,
               disable=not progress, leave=False)
    current = {"epoch": start + 1}

    def step(loss: float) -> None:
        bar.update(1)
        bar.set_postfix(epoch=current["epoch"], loss=f"{loss:.3f}")

    try:
        for epoch in range(start, epochs):
            current["epoch"] = epoch + 1
            state.model.train()
            t0 = time.perf_counter()
            metrics = run_epoch(epoch, state, step)
            record = {"epoch": epoch + 1, **metrics, "seconds": time.perf_counter() - t0}
            history.append(record)
            write_checked(checkpoint, _checkpoint_bytes(state, epoch + 1, history))
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, record, state)
    finally:
        bar.close()
    return state, history


# ---------------------------------------------------------------------------------- recipes


def lr_at(epoch: int, epochs: int, lr: float, lr_late: float, late_fraction: float) -> float:
    """Learning rate of 0-based ``epoch``: ``lr_late`` for the last ``round(late_fraction * epochs)``."""
    n_late = int(math.floor(late_fraction * epochs + 0.5))
    return lr_late if epoch >= epochs - n_late else lr


OPTIMIZERS = ("rmsprop", "adamw")
SCHEDULES = ("step", "onecycle")


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """``"rmsprop"``: the paper's, with the Keras defaults of the authors' stack (rho 0.9,
    epsilon 1e-7); ``"adamw"``: weight decay 1e-4 (the quick profile's)."""
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def make_scheduler(rec: dict[str, Any], opt: torch.optim.Optimizer, steps_per_epoch: int):
    """The per-step scheduler of a ``"onecycle"`` recipe (15 % warm-up), else ``None``."""
    if rec["schedule"] == "step":
        return None
    if rec["schedule"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=rec["lr"], pct_start=0.15,
                                                   total_steps=rec["epochs"] * steps_per_epoch)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {rec['schedule']!r}")


#: the recipes' reduced precisions for the forward pass of training (``rec["autocast"]``)


def recipe_autocast(rec: dict[str, Any], device: torch.device, dtype: torch.dtype | None = None):
    """The recipe's autocast context for a training forward pass: enabled when ``rec`` names an
    ``"autocast"`` precision and the step is not run at an explicit ``dtype`` (e.g. float64)."""
    name = rec.get("autocast")
    if name is not None and name not in AUTOCAST_DTYPES:
        raise ValueError(f"recipe autocast must be one of {sorted(AUTOCAST_DTYPES)} or None, got {name!r}")
    if name is not None and dtype is None and not native_bf16(device):
        # the recipe (and the trained network's identity) keeps its precision; say what it costs here
        warnings.warn(f"this {device.type.upper()} has no native {name}: the recipe's {name} forward pass "
                      "runs much slower than float32 here (15-20x measured on an AVX2-only CPU); "
                      "`python -m gsutils shipped` restores the trained networks instead", stacklevel=2)
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES.get(name, torch.bfloat16),
                          enabled=name is not None and dtype is None)
