"""Training and evaluating the DeepLabv3+ networks of the S2 / S3 chapters.

:func:`train_deeplab` trains a :func:`gsutils.models.deeplab.deeplab` network
on in-memory images and label maps through the shared loop
(:func:`gsutils.experiments.common.training.fit`: seeded, resumable, a checkpoint per
epoch) with pixel-wise cross entropy (ignore index 255), AdamW (weight decay
1e-4) and one learning-rate cycle, batches drawn from a permutation seeded by
``(seed, epoch)`` and random horizontal flips from the same seed. The final
weights are stored under ``<results>/scenes/<key>/model.pt`` (checksummed),
keyed by a hash of everything that determines them, and loaded when present; a
network shipped for the same config is restored instead of trained
(:func:`shipped_network`).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gsutils.experiments.common.shipped import ShippedNetwork
from gsutils.experiments.common.training import TrainState, discard_checkpoint, fit, mix_seed
from gsutils.io import config_key, read_checked, write_checked
from gsutils.models.deeplab import DeepLab, deeplab
from gsutils.profiles import Profile, check_profile

__all__ = ["DeepLabRecipe", "confusion", "first_step_losses", "iou_table", "model_dir", "predict", "shipped_network",
           "train_config", "train_deeplab"]

IGNORE = 255
VERSION = 1
#: losses of the first steps logged in the history (a shipped network's first steps are re-run by a test)
FIRST_STEPS = 4


@dataclass(frozen=True)
class DeepLabRecipe:
    """Everything that determines a trained DeepLab besides its data."""

    encoder: str
    classes: int
    decoder_channels: int
    epochs: int
    batch_size: int
    lr: float
    seed: int


def model_dir(profile: Profile, recipe: DeepLabRecipe, data_key: str) -> Path:
    key = config_key(train_config(recipe, data_key))
    return Path(profile.results_dir) / "scenes" / f"deeplab-{recipe.encoder}-{key[:16]}"


def predict(model: DeepLab, images: Tensor, batch_size: int = 16) -> Tensor:
    """Arg-max labels ``(N, H, W)`` int64 of ``images`` ``(N, 3, H, W)`` (eval mode, no grad)."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            out.append(model(images[s:s + batch_size].to(dev)).argmax(1).cpu())
    return torch.cat(out)


def confusion(pred: Tensor, gt: Tensor, classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = ground truth, columns = prediction (ignored pixels left out)."""
    valid = gt != IGNORE
    idx = gt[valid].long() * classes + pred[valid].long()
    return torch.bincount(idx, minlength=classes * classes).reshape(classes, classes).numpy()


def iou_table(conf: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Per-class IoU of the classes present in the ground truth (``conf`` rows), by name."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    present = conf.sum(1) > 0
    return {names[k]: float(inter[k] / union[k]) for k in range(len(names)) if present[k]}


def train_config(recipe: DeepLabRecipe, data_key: str) -> dict:
    """What a trained DeepLab's ``config.json`` holds (its folder's key hashes it)."""
    return {"recipe": asdict(recipe), "data": data_key, "version": VERSION}


def shipped_network(profile: Profile, recipe: DeepLabRecipe, data_key: str) -> ShippedNetwork:
    """The network shipped for ``recipe`` on ``data_key``: ``checkpoints/<profile>/<model_dir name>/``,
    restored into :func:`model_dir` (:class:`gsutils.experiments.common.shipped.ShippedNetwork`)."""
    return ShippedNetwork("deeplab", profile.name, train_config(recipe, data_key),
                          model_dir(profile, recipe, data_key).name)


def _recipe(recipe: DeepLabRecipe, images: Tensor, labels: Tensor, device: torch.device):
    """``fresh``, ``run_epoch`` (for :func:`fit`) and the steps per epoch of ``recipe`` on these data."""
    n = len(images)
    steps = n // recipe.batch_size  # the last partial batch is dropped: ASPP's pooling branch needs >= 2

    def fresh() -> TrainState:
        torch.manual_seed(mix_seed(recipe.seed, 13, 0))
        net = deeplab(recipe.encoder, recipe.classes, decoder_channels=recipe.decoder_channels).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps)
        return TrainState(net, opt, sched)

    def run_epoch(epoch: int, state: TrainState, step, limit: int | None = None) -> dict:
        g = torch.Generator().manual_seed(mix_seed(recipe.seed, 13, epoch + 1))
        order = torch.randperm(n, generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        total, first = 0.0, []
        for b in range(steps if limit is None else min(limit, steps)):
            idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
            x, y = images[idx].clone(), labels[idx].clone()
            f = flips[idx]
            x[f], y[f] = x[f].flip(-1), y[f].flip(-1)
            loss = F.cross_entropy(state.model(x.to(device)), y.to(device), ignore_index=IGNORE)
            state.optimizer.zero_grad()
            loss.backward()
            state.optimizer.step()
            state.scheduler.step()
            total += loss.item()
            if epoch == 0 and b < FIRST_STEPS:
                first.append(loss.item())
            step(loss.item())
        return {"loss": total / steps, **({"first_losses": first} if epoch == 0 else {})}

    return fresh, run_epoch, steps


def first_step_losses(recipe: DeepLabRecipe, images: Tensor, labels: Tensor, n: int = FIRST_STEPS,
                      device: str = "cpu") -> list[float]:
    """The losses of the first ``n`` training steps from the recipe's initialisation (as logged)."""
    fresh, run_epoch, _ = _recipe(recipe, images, labels, torch.device(device))
    state = fresh()
    state.model.train()
    return run_epoch(0, state, lambda _loss: None, limit=n)["first_losses"]


def train_deeplab(profile: Profile, recipe: DeepLabRecipe, images: Tensor, labels: Tensor, *,
                  data_key: str, progress: bool = True) -> tuple[DeepLab, list[dict]]:
    """Train (or load) the DeepLab of ``recipe`` on ``images`` ``(N, 3, H, W)`` / ``labels`` ``(N, H, W)``.

    Returns the model in eval mode on ``profile.device`` and the training history.
    """
    check_profile(profile)
    if images.ndim != 4 or labels.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"images (N, 3, H, W) and labels (N, H, W) must match, got "
                         f"{tuple(images.shape)} and {tuple(labels.shape)}")
    if len(images) < 2 * recipe.batch_size:
        raise ValueError(f"need at least {2 * recipe.batch_size} training images for batch size "
                         f"{recipe.batch_size}, got {len(images)}")
    device = torch.device(profile.device)
    folder = model_dir(profile, recipe, data_key)
    final = folder / "model.pt"
    model = deeplab(recipe.encoder, recipe.classes, decoder_channels=recipe.decoder_channels).to(device)
    config = train_config(recipe, data_key)
    if not final.exists():
        shipped_network(profile, recipe, data_key).restore(profile.results_dir)
    if final.exists():
        saved = torch.load(io.BytesIO(read_checked(final)), map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        return model.eval(), json.loads(saved["history"])

    fresh, run_epoch, steps = _recipe(recipe, images, labels, device)
    state, history = fit(fresh=fresh, run_epoch=run_epoch, epochs=recipe.epochs, steps_per_epoch=steps,
                         checkpoint=folder / "checkpoint.pt", desc=f"DeepLab {recipe.encoder}",
                         progress=progress)
    buf = io.BytesIO()
    torch.save({"model": {k: v.cpu() for k, v in state.model.state_dict().items()},
                "history": json.dumps(history), "recipe": asdict(recipe), "data": data_key}, buf)
    write_checked(final, buf.getvalue())
    (folder / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    (folder / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    discard_checkpoint(folder / "checkpoint.pt")
    return state.model.eval(), history
