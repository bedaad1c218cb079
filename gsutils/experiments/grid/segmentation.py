"""Train and evaluate the segmentation networks of Grid Saliency S1.2.

The recipe (Hoyer et al., 2019, S1.2): a U-Net trained with pixel-wise
multi-class cross entropy and RMSprop, batch size 100, learning rate
:math:`10^{-3}` for the first 80 % of the epochs and :math:`10^{-4}` for the
last 20 % (40 + 10 of 50 epochs in the paper). Every size is read from the
profile (``profile.toy``, ``profile.train``, ``profile.grid``).

One network of the experiment grid is a :class:`SegRun` (bias, backbone,
dataset seed). :func:`train_or_load` trains it or loads it from
``<results_dir>/models/<key>/model.pt``, where ``key`` is a hash of everything
that determines the weights (data config, recipe, backbone, seed). Training
writes a checkpoint after every epoch (atomically, with a checksum) and an
interrupted run resumes after its last finished epoch; the result is bit for
bit that of an uninterrupted run on CPU. A finished model is never retrained;
a corrupt one (checksum mismatch) is reported, moved aside and retrained; a
network the project ships for the exact config (:mod:`gsutils.experiments.common.shipped`)
is restored instead of trained.

:func:`evaluate_iou` gives the per-class IoU on the *unbiased* test set (a
:class:`~gsutils.experiments.grid.seg_runs.SegIoU`), and
:func:`run_grid` does both for a list of runs, locally or on a Dask cluster
(see :mod:`gsutils.experiments.common.executor`).

Command line (e.g. on a GPU machine)::

    python -m gsutils.experiments.grid.segmentation --profile gpu --executor dask
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gsutils.data.toy import BACKGROUND, BiasConfig, ToyData, make_toy_dataset, toy_config
from gsutils.experiments.common.shipped import ShippedNetwork
from gsutils.experiments.common.store import Store
from gsutils.experiments.common.training import (
    OPTIMIZERS,
    SCHEDULES,
    TrainState,
    deterministic,
    discard_checkpoint,
    fit,
    lr_at,
    make_optimizer,
    make_scheduler,
    mix_seed,
    recipe_autocast,
)
from gsutils.experiments.grid.seg_runs import SegIoU, SegRun, grid_runs
from gsutils.io import CorruptEntry, config_key, load_checked, write_checked
from gsutils.metrics.segmentation import ConfusionMeter, mean_iou
from gsutils.models.smp_unet import architecture_config
from gsutils.models.unet import HAND_WIDTHS, TINY_WIDTHS, UNet, build_unet, load_checkpoint_into
from gsutils.profiles import Profile, check_profile

#: classes of the toy data: digits 0-9 and the background
NUM_CLASSES = BACKGROUND + 1
#: bump when the training code changes in a way that changes the weights
TRAIN_VERSION = 3
#: training runs in the channels-last memory format: on CPU (oneDNN) the tiny U-Net's
#: training step is about 1.2x faster than in the default layout (benchmarks/train_throughput.py)
MEMORY_FORMAT = torch.channels_last
#: the first training steps whose exact losses the history keeps (to check a shipped network)
FIRST_STEPS = 8


class EpochInterrupt(RuntimeError):
    """Raised by an ``on_epoch_end`` callback to stop training (used by the tests)."""


# ----------------------------------------------------------------------------------------------
# configs and data


def run_toy_config(profile: Profile, bias: BiasConfig, seed: int):
    cfg = toy_config(profile, bias)
    if dataclasses.is_dataclass(cfg) and "seed" in {f.name for f in dataclasses.fields(cfg)}:
        cfg = dataclasses.replace(cfg, seed=seed)
    return cfg


def train_config(profile: Profile, run: SegRun) -> dict[str, Any]:
    """Everything that determines a network's weights (hashed into its cache key)."""
    check_profile(profile)
    t = profile.train
    return {
        "what": "unet",
        "version": TRAIN_VERSION,
        "backbone": run.backbone,
        # the tiny encoder's widths and the smp U-Nets' specs are module constants: hash them so a
        # change retrains
        "tiny_widths": list(TINY_WIDTHS) if run.backbone == "tiny" else None,
        **({"widths": list(HAND_WIDTHS[run.backbone])} if run.backbone == "small" else {}),
        **({} if run.backbone in HAND_WIDTHS else {"architecture": architecture_config(run.backbone)}),
        "num_classes": NUM_CLASSES,
        "in_channels": 1,
        "seed": run.seed,
        "data": dataclasses.asdict(run_toy_config(profile, run.bias, run.seed)),
        "n_train": profile.toy.n_train,
        "recipe": {
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "lr": t.lr,
            "lr_late": t.lr_late,
            "late_fraction": t.late_fraction,
            "optimizer": t.optimizer,
            "schedule": t.schedule,
            "loss": "cross_entropy",
            "data": "fresh_per_epoch",
            "memory_format": str(MEMORY_FORMAT),
            # only where it differs from plain cross entropy, so that the keys of networks
            # trained without it stay what they were
            **({} if t.background_weight == 1.0 else {"background_weight": float(t.background_weight)}),
            **({} if t.autocast is None else {"autocast": t.autocast}),
        },
    }


def model_dir(profile: Profile, run: SegRun) -> Path:
    """``<results_dir>/models/<key>``: the network's checkpoint, weights and history."""
    return Path(profile.results_dir) / "models" / config_key(train_config(profile, run))


def shipped_network(profile: Profile, run: SegRun) -> ShippedNetwork:
    """The network the project ships for ``run`` (restored into :func:`model_dir`)."""
    return ShippedNetwork("unet", profile.name, train_config(profile, run), model_dir(profile, run).name)


def _data_tensors(data: ToyData) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(data.images, dtype=np.float32))  # (N, 1, H, W)
    y = torch.from_numpy(np.ascontiguousarray(data.labels)).long()  # (N, H, W)
    return x, y


# ----------------------------------------------------------------------------------------------
# training


def _load_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _fresh_state(profile: Profile, run: SegRun, rec: dict[str, Any], device: torch.device,
                 dtype: torch.dtype | None = None):
    """A freshly initialised network (seeded by the run), its optimizer and scheduler.

    ``dtype`` (e.g. float64) converts the initial weights after they are drawn in float32."""
    net = build_unet(run.backbone, NUM_CLASSES, 1, seed=mix_seed(run.seed, 1))
    if dtype is not None:
        net = net.to(dtype)
    net = net.to(device=device, memory_format=MEMORY_FORMAT)
    opt = make_optimizer(rec["optimizer"], net.parameters(), rec["lr"])
    return net, opt, make_scheduler(rec, opt, math.ceil(profile.toy.n_train / rec["batch_size"]))


def seg_loss(rec: dict[str, Any]) -> nn.Module:
    """The recipe's pixel-wise cross entropy (the background class weighted as the recipe says)."""
    weight = None
    if "background_weight" in rec:
        weight = torch.ones(NUM_CLASSES)
        weight[BACKGROUND] = float(rec["background_weight"])
    return nn.CrossEntropyLoss(weight=weight)


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, sched, loss_fn: nn.Module,
                xb: torch.Tensor, yb: torch.Tensor, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on images ``xb`` ``(B, 1, H, W)`` and labels ``yb`` ``(B, H, W)``,
    the forward pass inside ``autocast`` (:func:`gsutils.experiments.common.training.recipe_autocast`)."""
    with autocast:
        logits = model(xb.contiguous(memory_format=MEMORY_FORMAT))  # (B, 11, H, W)
    loss = loss_fn(logits.float() if logits.dtype == torch.bfloat16 else logits, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    return logits, loss


def training_steps(n_train: int, train: Any) -> int:
    """Optimiser steps of a recipe (``TrainSettings``): epochs x batches of a fresh draw of
    ``n_train`` images (the last batch of an epoch may be short)."""
    return train.epochs * math.ceil(n_train / train.batch_size)


def first_step_losses(profile: Profile, run: SegRun, n_steps: int = FIRST_STEPS,
                      dtype: torch.dtype | None = None) -> list[str]:
    """The losses (float hex) of ``run``'s first ``n_steps`` training steps, from its initialisation.

    ``dtype=None``: what :func:`train_unet` logs as ``first_step_losses``; ``torch.float64``: the
    float64 trace it logs too, which :mod:`gsutils.experiments.common.provenance` compares across CPUs.
    """
    rec = train_config(profile, run)["recipe"]
    device = torch.device(profile.device)
    model, opt, sched = _fresh_state(profile, run, rec, device, dtype=dtype)
    bs = rec["batch_size"]
    # the stream is prefix-stable: the first n_steps batches of epoch 0, without rendering the rest
    n = min(n_steps * bs, profile.toy.n_train)
    x_all, y_all = _data_tensors(make_toy_dataset(run_toy_config(profile, run.bias, run.seed), "train", n, epoch=0))
    if dtype is not None:
        x_all = x_all.to(dtype)
    out, loss_fn = [], seg_loss(rec).to(device=device, dtype=dtype or torch.float32)
    model.train()
    ac = recipe_autocast(rec, device, dtype)
    with deterministic():
        for i in range(0, n, bs):
            _, loss = _train_step(model, opt, sched, loss_fn, x_all[i:i + bs].to(device), y_all[i:i + bs].to(device),
                                  autocast=ac)
            out.append(float(loss.detach()).hex())
    return out


def train_unet(
    profile: Profile,
    run: SegRun,
    *,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> UNet:
    """Train (or resume training) ``run``'s network and write ``model.pt``.

    Prefer :func:`train_or_load`, which returns a finished model without
    retraining. The epoch loop is :func:`gsutils.experiments.common.training.fit`:
    after each epoch a checkpoint (weights, optimizer and scheduler state,
    history) is written atomically to ``checkpoint.pt`` in :func:`model_dir`,
    and the next call resumes after the last finished epoch.

    Parameters
    ----------
    on_epoch_end:
        Called as ``on_epoch_end(epoch, record)`` after the epoch's checkpoint
        is written (``epoch`` counts from 1). It may raise to stop training.
    """
    cfg = train_config(profile, run)
    rec = cfg["recipe"]
    out = model_dir(profile, run)
    device = torch.device(profile.device)
    toy_cfg, n, bs = run_toy_config(profile, run.bias, run.seed), profile.toy.n_train, rec["batch_size"]
    loss_fn = seg_loss(rec).to(device)
    ac = recipe_autocast(rec, device)

    def fresh() -> TrainState:
        return TrainState(*_fresh_state(profile, run, rec, device))

    def run_epoch(epoch: int, state: TrainState, step: Callable[[float], None]) -> dict[str, Any]:
        model, opt, sched = state.model, state.optimizer, state.scheduler
        if sched is None:
            lr = lr_at(epoch, rec["epochs"], rec["lr"], rec["lr_late"], rec["late_fraction"])
            for group in opt.param_groups:
                group["lr"] = lr
        # a fresh draw of the training stream every epoch (new digit order, crops, pairings)
        x_all, y_all = _data_tensors(make_toy_dataset(toy_cfg, "train", n, epoch=epoch))
        loss_sum, correct, seen = 0.0, 0, 0
        lr_first, first_losses = opt.param_groups[0]["lr"], []
        for i in range(0, n, bs):
            yb = y_all[i:i + bs].to(device)  # (B, H, W)
            logits, loss = _train_step(model, opt, sched, loss_fn, x_all[i:i + bs].to(device), yb, autocast=ac)
            value = float(loss.detach())
            loss_sum += value * len(yb)
            if epoch == 0 and len(first_losses) < FIRST_STEPS:
                first_losses.append(value.hex())
            correct += int((logits.detach().argmax(1) == yb).sum())
            seen += len(yb)
            step(value)
        record: dict[str, Any] = {
            "lr": lr_first,
            "loss": loss_sum / seen,
            "pixel_acc": correct / (seen * y_all.shape[1] * y_all.shape[2]),
        }
        if first_losses:  # the exact losses of the first steps, as float hex (see tests/test_shipped.py)
            record["first_step_losses"] = first_losses
        if epoch == 0:  # the same steps in float64: the trace the provenance tests compare on any CPU
            record["first_step_losses_float64"] = first_step_losses(profile, run, FIRST_STEPS, torch.float64)
        return record

    ckpt = out / "checkpoint.pt"
    with deterministic():
        state, history = fit(
            fresh=fresh, run_epoch=run_epoch, epochs=rec["epochs"],
            steps_per_epoch=math.ceil(n / bs), checkpoint=ckpt, desc=f"train {run.label}",
            progress=progress,
            on_epoch_end=None if on_epoch_end is None else (lambda e, r, _s: on_epoch_end(e, r)),
        )
    model = state.model.eval()
    _save_final(out, model, cfg, history)
    discard_checkpoint(ckpt)
    return model


def _save_final(out: Path, model: UNet, cfg: dict, history: list) -> None:
    from gsutils.io import atomic_write_text

    buf = io.BytesIO()
    torch.save({"format": "gsutils.unet/1", "arch": model.arch,
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}}, buf)
    atomic_write_text(out / "config.json", json.dumps(cfg, indent=1, sort_keys=True, default=str))
    atomic_write_text(out / "history.json", json.dumps(history, indent=1))
    write_checked(out / "model.pt", buf.getvalue())


def load_trained(profile: Profile, run: SegRun) -> UNet | None:
    """The finished network of ``run`` (eval mode, on ``profile.device``), or ``None``.

    A file that loads into the run's architecture and whose ``config.json``
    matches :func:`train_config` is kept, even without its checksum sidecar
    (rewritten, with a warning). A corrupt one (checksum mismatch, truncated,
    another config) is moved aside as ``model.pt.corrupt-<time>`` with a
    warning, never deleted, and ``None`` is returned so that it is retrained.
    """
    path = model_dir(profile, run) / "model.pt"
    expected = json.loads(json.dumps(train_config(profile, run), default=str))

    def decode(data: bytes) -> UNet:
        model = build_unet(run.backbone, NUM_CLASSES, 1)
        load_checkpoint_into(model, _load_bytes(data))
        return model

    def matches_config(_model: UNet) -> None:
        conf = path.with_name("config.json")
        if conf.exists() and json.loads(conf.read_text()) != expected:
            raise CorruptEntry(f"{conf} differs from the run's training config")

    model = load_checked(path, decode, validate=matches_config, what=f"model of {run.label}")
    return None if model is None else model.to(torch.device(profile.device)).eval()


def train_or_load(
    profile: Profile,
    run: SegRun,
    *,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    shipped: bool = True,
) -> UNet:
    """The trained network of ``run``: loaded when cached, else trained (resuming if interrupted).

    Returns the model in eval mode on ``profile.device``. The cache key is a
    hash of :func:`train_config`; a finished model is never retrained. With
    ``shipped`` (the default), the network shipped for this config is restored instead.
    """
    if not isinstance(run, SegRun):
        raise TypeError(f"run must be a SegRun, got {type(run).__name__}")
    model = load_trained(profile, run)
    if model is not None:
        return model
    if shipped and shipped_network(profile, run).restore(profile.results_dir):
        model = load_trained(profile, run)
        if model is not None:
            return model
    train_unet(profile, run, progress=progress, on_epoch_end=on_epoch_end)
    model = load_trained(profile, run)
    assert model is not None
    return model


def training_history(profile: Profile, run: SegRun) -> list[dict]:
    """Per-epoch loss, pixel accuracy, learning rate and seconds of a trained run."""
    path = model_dir(profile, run) / "history.json"
    if not path.exists():
        raise FileNotFoundError(f"no training history for {run.label} at {path}; train it first")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------
# evaluation


def test_config(profile: Profile) -> dict[str, Any]:
    """The unbiased test set every network is evaluated on (the profile's seed)."""
    return {
        "data": dataclasses.asdict(run_toy_config(profile, BiasConfig(strength="none"), profile.seed)),
        "n_test": profile.toy.n_test,
    }


def unbiased_test_set(profile: Profile) -> ToyData:
    """``profile.toy.n_test`` unbiased test images (the same for every network)."""
    return make_toy_dataset(run_toy_config(profile, BiasConfig(strength="none"), profile.seed), split="test",
                            n=profile.toy.n_test, progress=False)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor | np.ndarray, batch_size: int = 100) -> torch.Tensor:
    """Class maps ``(N, H, W)`` (int64, CPU) of ``images`` ``(N, 1, H, W)``, in batches."""
    x_all = torch.as_tensor(images)
    device = next(model.parameters()).device
    outs = []
    for i in range(0, x_all.shape[0], batch_size):
        xb = x_all[i:i + batch_size].to(device)  # (B, 1, H, W)
        outs.append(model(xb).argmax(1).cpu())  # (B, H, W)
    return torch.cat(outs)  # (N, H, W)


def evaluate_iou(profile: Profile, run: SegRun, *, progress: bool = False) -> SegIoU:
    """Per-class IoU, mIoU and pixel accuracy of ``run``'s network on the unbiased test set.

    Cached in the result store (kind ``"seg_iou"``) as :meth:`SegIoU.as_dict`.
    """
    if not isinstance(run, SegRun):
        raise TypeError(f"run must be a SegRun, got {type(run).__name__}")
    key = config_key(train_config(profile, run))
    conf = {"what": "unbiased_test_iou", "model": key, "test": test_config(profile)}

    def compute() -> dict[str, Any]:
        model = train_or_load(profile, run, progress=progress)
        data = unbiased_test_set(profile)
        x, y = _data_tensors(data)  # (N, 1, H, W), (N, H, W)
        meter = ConfusionMeter(NUM_CLASSES)
        meter.update(predict(model, x), y)
        iou = meter.iou()  # (11,)
        c = meter.conf.numpy()
        return SegIoU(run=run, iou=tuple(None if not np.isfinite(v) else float(v) for v in iou),
                      miou=mean_iou(iou), digit_miou=mean_iou(iou[:BACKGROUND]),
                      pixel_acc=float(np.trace(c) / c.sum()), n_test=int(x.shape[0]), key=key).as_dict()

    return SegIoU.from_dict(Store(profile.results_dir).get_or_compute("seg_iou", conf, compute))


def run_one(profile: Profile, run: SegRun, progress: bool = False) -> SegIoU:
    """Train (or load) one network and evaluate it; the grid executors call this."""
    train_or_load(profile, run, progress=progress)
    return evaluate_iou(profile, run)


def run_grid(
    profile: Profile,
    runs: Sequence[SegRun],
    executor: str = "local",
    address: str | None = None,
    progress: bool = True,
    n_workers: int = 2,
) -> list[SegIoU]:
    """Train and evaluate every run: its :func:`evaluate_iou`, in the order of ``runs``.

    Parameters
    ----------
    executor:
        ``"local"`` (one after the other, in this process) or ``"dask"``
        (Dask distributed; see :func:`gsutils.experiments.common.executor.run_dask`).
    address:
        A Dask scheduler address (``"tcp://host:8786"``); without it a
        ``LocalCluster`` with ``n_workers`` single-threaded workers is started.

    Each run writes its own files (model, IoU), so a crash loses at most the
    runs in flight and re-running skips what is done.
    """
    from gsutils.experiments.common.executor import run_dask, run_local

    runs = list(runs)
    for r in runs:
        if not isinstance(r, SegRun):
            raise TypeError(f"runs must hold SegRun objects, got {type(r).__name__}")
    if executor == "local":
        if address is not None:
            raise ValueError("address is only used with executor='dask'")
        return run_local(run_one, profile, runs, progress=progress)
    if executor == "dask":
        return run_dask(run_one, profile, runs, address=address, progress=progress, n_workers=n_workers)
    raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}")


# ----------------------------------------------------------------------------------------------
# command line


def main(argv: Sequence[str] | None = None) -> None:
    """The command line; a user error is one line on stderr with exit status 2."""
    from gsutils.cli import parse_with_profile
    from gsutils.cli_commands import command_parser
    from gsutils.experiments.common.executor import executor_or_exit

    ap = command_parser("train", prog="python -m gsutils.experiments.grid.segmentation")
    a, cfg = parse_with_profile(ap, argv)
    runs = grid_runs(cfg, a.backbones or cfg.grid.backbones)
    with executor_or_exit(ap, a) as (executor, address, workers):
        for res in run_grid(cfg, runs, executor=executor, address=address, n_workers=workers):
            print(json.dumps({"run": res.run.as_dict(), "miou": round(res.miou, 4),
                              "iou": [None if v is None else round(v, 4) for v in res.iou]}))


if __name__ == "__main__":
    main()
