"""Multi-label classifiers on the multi-digit stand-in (NormGrad Sec. A): training and loading.

:func:`train_or_load_classifier` returns a VGG16 or ResNet50
(:func:`gsutils.models.classifiers.build_classifier`, width from the profile)
trained for multi-label classification of the digit scenes
(:mod:`gsutils.data.scenes`), the stand-in for the VOC07 models of Rebuffi et
al. (2020). Training: Adam, binary cross-entropy on the 10 logits, a constant
learning rate divided by ten for the last epoch, no augmentation. To train
from scratch at a small budget, VGG16 is trained with a BatchNorm after every
convolution that is folded into the convolution afterwards
(:func:`gsutils.models.classifiers.fold_vgg_batchnorm`: the stored network is
a plain VGG16), and ResNet50 starts with zero-initialised residual branches.
The result is cached under ``<results_dir>/normgrad_classifier/<key>.pt``
(key: a hash of :func:`classifier_config`); a checkpoint is written after
every epoch (atomic, checksummed) and training resumes from it when
interrupted. Runs are deterministic: initialisation, shuffling and dropout
draw from seeds derived from the profile's seed, in a forked RNG state that
leaves the caller's untouched.

:func:`evaluate_classifier` measures a classifier's mean average precision
(:func:`gsutils.metrics.multilabel.average_precision`). The pointing game on
these classifiers is :mod:`gsutils.experiments.pointing_runs`.

From the command line::

    python -m gsutils pointing --profile gpu --arch vgg16 resnet50
"""

from __future__ import annotations

import copy
import io
import json
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gsutils.data.scenes import DIGIT_CLASSES, SceneSet, load_voc_split, scene_config, write_scenes
from gsutils.data.voc import VOCDataset
from gsutils.experiments.store import Store
from gsutils.io import config_key, quarantine, read_checked, write_checked
from gsutils.metrics.multilabel import average_precision
from gsutils.models.classifiers import (
    ARCHS,
    add_vgg_batchnorm,
    build_classifier,
    fold_vgg_batchnorm,
    input_normalization,
    normalize_images,
)

NUM_CLASSES = len(DIGIT_CLASSES)
KIND = "normgrad_classifier"
#: bump when the training recipe changes
RECIPE_VERSION = 4


def _mix(*ints: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms)."""
    return int(config_key({"ints": list(ints)}), 16) & ((1 << 63) - 1)


def check_profile_arch(profile: Any, arch: str) -> None:
    """Raise when ``profile`` is not a Profile or ``arch`` is not one of :data:`ARCHS`."""
    if not hasattr(profile, "normgrad") or not hasattr(profile, "results_dir"):
        raise TypeError(f"profile must be a gsutils.profiles.Profile, got {type(profile).__name__}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def classifier_config(profile: Any, arch: str) -> dict[str, Any]:
    """Everything that determines a trained classifier (its cache key is a hash of this)."""
    check_profile_arch(profile, arch)
    ng = profile.normgrad
    return {
        "recipe": RECIPE_VERSION,
        "arch": arch,
        "width": float(ng.width),
        "epochs": int(ng.epochs),
        "batch_size": int(ng.batch_size),
        "lr": float(ng.lr),
        "vgg_pool": int(ng.vgg_pool) if arch == "vgg16" else None,
        "dropout": float(ng.dropout) if arch == "vgg16" else None,
        "seed": int(profile.seed),
        "scenes": scene_config(profile).key(),
    }


def scenes_root(profile: Any, *, progress: bool = False) -> Path:
    """The profile's scene set in VOC format, generated on first use."""
    return write_scenes(scene_config(profile), progress=progress)


def _load_uint8(root: Path, split: str, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 3, S, S)`` uint8 images and ``(N, C)`` float labels of a VOC split."""
    from tqdm.auto import tqdm

    ds = VOCDataset(root, split, DIGIT_CLASSES)
    first = ds[0]
    x = torch.empty((len(ds),) + tuple(first.image.shape), dtype=torch.uint8)  # (N, 3, S, S)
    y = torch.empty(len(ds), NUM_CLASSES)  # (N, C)
    for i in tqdm(range(len(ds)), desc=f"read {split}", disable=not progress, leave=False):
        s = first if i == 0 else ds[i]
        x[i] = (s.image * 255).round().to(torch.uint8)  # exact: images were read from uint8
        y[i] = s.labels
    return x, y


def _checkpoint_bytes(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, history: list) -> bytes:
    buf = io.BytesIO()
    torch.save({"epoch": epoch,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "history": json.dumps(history)}, buf)
    return buf.getvalue()


def _lr_at(epoch: int, epochs: int, lr: float) -> float:
    """``lr``, then ``lr / 10`` for the last epoch (when there are at least three)."""
    return lr / 10 if epochs >= 3 and epoch == epochs - 1 else lr


def checkpoint_path(profile: Any, arch: str) -> Path:
    """The per-epoch checkpoint of an unfinished training run."""
    return Path(profile.results_dir) / KIND / f"{config_key(classifier_config(profile, arch))}.partial.pt"


def _training_model(cfg: dict[str, Any], device: torch.device) -> nn.Module:
    """The network as trained: VGG16 with BatchNorms (folded later), ResNet50 zero-init residuals."""
    arch = cfg["arch"]
    model = build_classifier(arch, NUM_CLASSES, cfg["width"], vgg_pool=cfg["vgg_pool"] or 7,
                             zero_init_residual=(arch == "resnet50"))
    if arch == "vgg16":
        add_vgg_batchnorm(model)
        for m in model.classifier:
            if isinstance(m, nn.Dropout):
                m.p = cfg["dropout"]
    return model.to(device)


def _final_state(model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """The state dict of the deployed network (VGG16's BatchNorms folded)."""
    if arch == "vgg16":
        model = fold_vgg_batchnorm(copy.deepcopy(model).cpu())
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _train(profile: Any, arch: str, progress: bool) -> dict[str, Any]:
    """Train (resuming from the last epoch checkpoint) and return the final result dict."""
    from tqdm.auto import tqdm

    cfg = classifier_config(profile, arch)
    device = torch.device(profile.device)
    ckpt = checkpoint_path(profile, arch)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_mix(cfg["seed"], 1))
        model = _training_model(cfg, device)
        norm = input_normalization(model)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        start, history = 0, []
        if ckpt.exists():
            try:
                state = torch.load(io.BytesIO(read_checked(ckpt)), map_location=device, weights_only=True)
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                start, history = int(state["epoch"]), json.loads(state["history"])
            except Exception as err:  # corrupt or stale: moved aside (not lost), start over
                moved = quarantine(ckpt)
                warnings.warn(f"unreadable checkpoint {ckpt} moved aside to {moved.name}; "
                              f"training starts over: {err}", stacklevel=2)
                torch.manual_seed(_mix(cfg["seed"], 1))
                model = _training_model(cfg, device)
                opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
                start, history = 0, []
        if start < cfg["epochs"]:
            x8, y = _load_uint8(scenes_root(profile, progress=progress), "train", progress)
            n, bs = x8.shape[0], cfg["batch_size"]
            steps = math.ceil(n / bs)
            loss_fn = nn.BCEWithLogitsLoss()
            bar = tqdm(total=cfg["epochs"] * steps, initial=start * steps, desc=f"train {arch}",
                       disable=not progress, leave=False)
            for epoch in range(start, cfg["epochs"]):
                lr = _lr_at(epoch, cfg["epochs"], cfg["lr"])
                for group in opt.param_groups:
                    group["lr"] = lr
                order = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(cfg["seed"], 2, epoch)))
                torch.manual_seed(_mix(cfg["seed"], 3, epoch))  # dropout of this epoch
                model.train()
                t0, loss_sum, correct = time.perf_counter(), 0.0, 0
                for i in range(0, n, bs):
                    idx = order[i:i + bs]  # (B,)
                    xb = normalize_images(x8[idx].to(device).float() / 255.0, norm)  # (B, 3, S, S)
                    yb = y[idx].to(device)  # (B, C)
                    logits = model(xb)  # (B, C)
                    loss = loss_fn(logits, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss_sum += float(loss.detach()) * len(idx)
                    correct += int(((logits.detach() > 0).float() == yb).all(1).sum())
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.3f}")
                history.append({"epoch": epoch + 1, "lr": lr, "loss": loss_sum / n,
                                "exact_match": correct / n, "seconds": time.perf_counter() - t0})
                write_checked(ckpt, _checkpoint_bytes(model, opt, epoch + 1, history))
            bar.close()
    return {"state_dict": _final_state(model, arch), "history": json.dumps(history)}


def train_or_load_classifier(profile: Any, arch: str, *, progress: bool = True) -> nn.Module:
    """The profile's trained classifier for ``arch`` (``"vgg16"`` or ``"resnet50"``).

    Loaded from the result store when it exists, else trained (resuming from
    the last epoch checkpoint if a run was interrupted) and stored.

    Returns
    -------
    torch.nn.Module
        In eval mode, on ``profile.device``, with ``normalization`` set (see
        :func:`gsutils.models.classifiers.build_classifier`).
    """
    check_profile_arch(profile, arch)
    cfg = classifier_config(profile, arch)
    store = Store(profile.results_dir)
    result = store.get_or_compute(KIND, cfg, lambda: _train(profile, arch, progress), fmt="pt")
    ckpt = checkpoint_path(profile, arch)
    for p in (ckpt, ckpt.with_name(ckpt.name + ".sha256")):
        p.unlink(missing_ok=True)
    model = build_classifier(arch, NUM_CLASSES, cfg["width"], vgg_pool=cfg["vgg_pool"] or 7)
    model.load_state_dict(result["state_dict"])
    return model.to(torch.device(profile.device)).eval()


def classifier_history(profile: Any, arch: str) -> list[dict[str, Any]]:
    """Per-epoch loss, exact-match accuracy, learning rate and seconds of a trained classifier."""
    cfg = classifier_config(profile, arch)
    store = Store(profile.results_dir)
    if not store.exists(KIND, cfg, "pt"):
        raise FileNotFoundError(f"no trained {arch} for this profile in {store.root}; "
                                "call train_or_load_classifier first")
    return json.loads(store.load(KIND, cfg, "pt")["history"])


def test_scenes(profile: Any) -> SceneSet:
    """The profile's test scenes, normalised as the trained classifiers expect.

    Returns a :class:`gsutils.data.scenes.SceneSet` with ``images``
    ``(N, 3, S, S)`` float32, ``labels`` ``(N, 10)``, per-image objects (boxes
    and VOC-difficult flags) and the ``SegmentationObject`` maps.
    """
    from gsutils.models.classifiers import IMAGENET_NORMALIZATION

    return load_voc_split(scenes_root(profile), "test", DIGIT_CLASSES,
                          normalization=IMAGENET_NORMALIZATION, with_masks=True)


@torch.no_grad()
def predict_scores(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``(N, C)`` logits of ``images`` ``(N, 3, S, S)`` (already normalised), on the model's device."""
    device = next(model.parameters()).device
    out = [model(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out)  # (N, C)


def evaluate_classifier(model: nn.Module, scenes: SceneSet) -> dict[str, Any]:
    """Mean average precision and per-class AP of ``model`` on ``scenes``."""
    scores = predict_scores(model, scenes.images)
    ap = average_precision(scores, scenes.labels)
    return {"mAP": float(np.nanmean(ap)), "ap": [float(a) for a in ap]}


def main(argv: Sequence[str] | None = None) -> None:
    """The command line; a user error is one line on stderr with exit status 2."""
    from gsutils.cli import Parser, add_profile_arguments, profile_or_exit

    parser = Parser(prog="python -m gsutils.experiments.classification",
                    description="Train the NormGrad stand-in classifiers")
    add_profile_arguments(parser)
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    args = parser.parse_args(argv)
    profile = profile_or_exit(parser, args.profile, device=args.device, seed=args.seed,
                              data_root=args.data_root)
    scenes = test_scenes(profile)
    for arch in args.arch:
        model = train_or_load_classifier(profile, arch)
        print(f"{arch}: test mAP {evaluate_classifier(model, scenes)['mAP']:.3f}")
