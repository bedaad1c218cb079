"""Multi-label classifiers on the multi-digit stand-in (NormGrad Sec. A): training and loading.

:func:`train_or_load_classifier` returns a VGG16 or ResNet50
(:func:`gsutils.models.classifiers.build_classifier`, width from the profile)
trained for multi-label classification of the digit scenes
(:mod:`gsutils.data.scenes`), the stand-in for the VOC07 models of Rebuffi et
al. (2020). Training: Adam, binary cross-entropy on the 10 logits, a constant
learning rate divided by ten for the last epoch, no augmentation, through the
shared loop :func:`gsutils.experiments.common.training.fit` (seeded, resumable, one
checkpoint per epoch). To train from scratch at a small budget, VGG16 is
trained with a BatchNorm after every convolution that is folded into the
convolution afterwards (:func:`gsutils.models.classifiers.fold_vgg_batchnorm`:
the stored network is a plain VGG16), and ResNet50 starts with
zero-initialised residual branches; ``profile.normgrad.resnet_last_stride = 1``
removes the stride of ResNet50's ``layer4`` (its first bottleneck's 3x3 and
shortcut convolutions), so that its last block stays a 7x7 map on 112 px
scenes (module names and weights' shapes are unchanged).

The result is cached under ``<results_dir>/normgrad_classifier/<key>.pt``
(key: a hash of :func:`classifier_config`); the deployed network after every
epoch is kept beside it (``normgrad_classifier_snapshots``) for the analyses
over training (meta-saliency, Sec. D). Runs are deterministic: initialisation,
shuffling and dropout draw from seeds derived from the profile's seed, in a
forked RNG state that leaves the caller's untouched.

**Shipped networks.** Where a profile's classifiers take longer to train than
a book build may spend (the quick profile: about 20 CPU minutes), the
networks this code trained are committed under
``checkpoints/<profile>/normgrad_classifier-<key>/`` (:func:`shipped_network`,
a :class:`gsutils.experiments.common.shipped.ShippedNetwork`; restored only when the
config equals the run's exactly and the checksum verifies), with their epoch
snapshots at float16, which :func:`restore_shipped` and :func:`export_shipped`
add; ``tests/test_classifier_shipped.py`` re-runs the first training steps and
compares the logged losses. Retrain and export::

    python -m gsutils.experiments.normgrad.classifier_training --profile quick --retrain --export

:func:`evaluate_classifier` measures a classifier's mean average precision
(:func:`gsutils.metrics.multilabel.average_precision`). The pointing game on
these classifiers is :mod:`gsutils.experiments.normgrad.pointing_runs`.
"""

from __future__ import annotations

import copy
import io
import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gsutils.claims import Gate
from gsutils.data.scenes import DIGIT_CLASSES, SceneSet, load_voc_split, scene_config, write_scenes
from gsutils.data.voc import VOCDataset
from gsutils.experiments.common.shipped import ShippedNetwork, pack_half, unpack_half
from gsutils.experiments.common.store import Store
from gsutils.experiments.common.training import TrainState, discard_checkpoint, fit, mix_seed
from gsutils.io import config_key, read_checked, write_checked
from gsutils.metrics.multilabel import average_precision
from gsutils.models.classifiers import (
    ARCHS,
    add_vgg_batchnorm,
    build_classifier,
    fold_vgg_batchnorm,
    input_normalization,
    normalize_images,
)
from gsutils.profiles import Profile, check_profile

NUM_CLASSES = len(DIGIT_CLASSES)
KIND = "normgrad_classifier"
SNAPSHOT_KIND = "normgrad_classifier_snapshots"
#: bump when the training recipe changes
RECIPE_VERSION = 5
#: the epoch snapshots of a shipped network, one file per epoch (float16, see
#: :func:`gsutils.experiments.common.shipped.pack_half`)
SHIPPED_SNAPSHOTS = "snapshot-epoch{epoch}.pt"


def check_profile_arch(profile: Profile, arch: str) -> None:
    """Raise when ``profile`` is not a Profile or ``arch`` is not one of :data:`ARCHS`."""
    check_profile(profile)
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def classifier_config(profile: Profile, arch: str) -> dict[str, Any]:
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
        "resnet_last_stride": int(ng.resnet_last_stride) if arch == "resnet50" else None,
        "seed": int(profile.seed),
        "scenes": scene_config(profile).key(),
    }


def scenes_root(profile: Profile, *, progress: bool = False) -> Path:
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


def _lr_at(epoch: int, epochs: int, lr: float) -> float:
    """``lr``, then ``lr / 10`` for the last epoch (when there are at least three)."""
    return lr / 10 if epochs >= 3 and epoch == epochs - 1 else lr


def checkpoint_path(profile: Profile, arch: str) -> Path:
    """The per-epoch checkpoint of an unfinished training run."""
    return Path(profile.results_dir) / KIND / f"{config_key(classifier_config(profile, arch))}.partial.pt"


def set_last_stride(model: nn.Module, stride: int) -> nn.Module:
    """ResNet: set the stride of ``layer4``'s first bottleneck (3x3 conv and shortcut) in place.

    ``stride=1`` keeps ``layer4`` at the resolution of ``layer3`` (1/16 of the
    image instead of 1/32); parameter shapes and module names do not change.
    """
    if stride not in (1, 2):
        raise ValueError(f"resnet_last_stride must be 1 or 2, got {stride!r}")
    block = model.layer4[0]
    block.conv2.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)
    return model


def deployed_model(cfg: dict[str, Any]) -> nn.Module:
    """An untrained network of ``cfg`` as deployed (plain VGG16, or the ResNet50 with its stride)."""
    model = build_classifier(cfg["arch"], NUM_CLASSES, cfg["width"], vgg_pool=cfg["vgg_pool"] or 7)
    if cfg["arch"] == "resnet50":
        set_last_stride(model, int(cfg.get("resnet_last_stride") or 2))
    return model


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
    else:
        set_last_stride(model, int(cfg.get("resnet_last_stride") or 2))
    return model.to(device)


def _final_state(model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """The state dict of the deployed network (VGG16's BatchNorms folded)."""
    if arch == "vgg16":
        model = fold_vgg_batchnorm(copy.deepcopy(model).cpu())
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


#: training steps whose losses the history keeps (the shipped-network test re-runs them)
FIRST_STEPS = 8


def _fresh(cfg: dict[str, Any], device: torch.device) -> TrainState:
    torch.manual_seed(mix_seed(cfg["seed"], 1))
    model = _training_model(cfg, device)
    return TrainState(model, torch.optim.Adam(model.parameters(), lr=cfg["lr"]))


def epoch_order(cfg: dict[str, Any], n: int, epoch: int) -> torch.Tensor:
    """The ``(n,)`` order in which epoch ``epoch`` visits the training scenes."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(cfg["seed"], 2, epoch)))


def train_steps(cfg: dict[str, Any], x8: torch.Tensor, y: torch.Tensor, state: TrainState, epoch: int,
                step: Any = None, max_steps: int | None = None, rows: torch.Tensor | None = None) -> dict[str, Any]:
    """One epoch (or its first ``max_steps`` steps) of training; returns the epoch's metrics.

    ``x8`` ``(N, 3, S, S)`` uint8 images and ``y`` ``(N, C)`` labels of the
    training split. The order of the epoch and its dropout draw from seeds
    derived from ``(seed, epoch)``. ``rows`` (optional, ``(N_total,)``) maps
    a scene's index in the split to its row of ``x8``/``y`` when they hold
    only some scenes of a split of ``N_total``.
    """
    model, opt = state.model, state.optimizer
    device = next(model.parameters()).device
    norm = input_normalization(model)
    lr = _lr_at(epoch, cfg["epochs"], cfg["lr"])
    for group in opt.param_groups:
        group["lr"] = lr
    n, bs = (x8.shape[0] if rows is None else rows.shape[0]), cfg["batch_size"]
    order = epoch_order(cfg, n, epoch)
    if rows is not None:
        order = rows[order]
    torch.manual_seed(mix_seed(cfg["seed"], 3, epoch))  # dropout of this epoch
    loss_fn = nn.BCEWithLogitsLoss()
    loss_sum, correct, seen, losses = 0.0, 0, 0, []
    for k, i in enumerate(range(0, n, bs)):
        if max_steps is not None and k >= max_steps:
            break
        idx = order[i:i + bs]  # (B,)
        xb = normalize_images(x8[idx].to(device).float() / 255.0, norm)  # (B, 3, S, S)
        yb = y[idx].to(device)  # (B, C)
        logits = model(xb)  # (B, C)
        loss = loss_fn(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if k < FIRST_STEPS:
            losses.append(value)
        loss_sum += value * len(idx)
        seen += len(idx)
        correct += int(((logits.detach() > 0).float() == yb).all(1).sum())
        if step is not None:
            step(value)
    return {"lr": lr, "loss": loss_sum / seen, "exact_match": correct / seen, "first_losses": losses}


def first_step_losses(profile: Profile, arch: str, steps: int = FIRST_STEPS) -> list[float]:
    """Re-run the first ``steps`` training steps of ``arch`` from its initialisation; their losses.

    Only the scenes those steps visit are rendered (and written and read back
    through JPEG, as the scene set is), so this is quick; the shipped-network
    test compares the result with the logged ``first_losses``.
    """
    import tempfile

    from gsutils.data.mnist import load_digits
    from gsutils.data.scenes import scene_item_rng, render_scene
    from gsutils.data.textures import texture_bank
    from gsutils.data.voc import write_image_set, write_voc_image

    cfg = classifier_config(profile, arch)
    sc = scene_config(profile)
    need = epoch_order(cfg, sc.n_train, 0)[:steps * cfg["batch_size"]].sort().values  # (steps*B,)
    digits, labels = load_digits(sc.digits_source, "train", sc.data_root)
    bank = texture_bank(sc.textures_source, sc.data_root)
    with tempfile.TemporaryDirectory() as tmp:
        ids = []
        for i in need.tolist():
            scene = render_scene(scene_item_rng(sc.seed, "train", i), digits, labels, bank.textures, sc.image_size)
            ids.append(f"train_{i:06d}")
            write_voc_image(tmp, ids[-1], scene.image, scene.objects, folder="DigitScenes", atomic=False)
        write_image_set(tmp, "train", ids)
        x8, y = _load_uint8(Path(tmp), "train", False)
    rows = torch.full((sc.n_train,), -1, dtype=torch.long)
    rows[need] = torch.arange(len(need))
    device = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):
        state = _fresh(cfg, device)
        metrics = train_steps(cfg, x8, y, state, 0, max_steps=steps, rows=rows)
    return metrics["first_losses"]


def _train(profile: Profile, arch: str, progress: bool) -> dict[str, Any]:
    """Train (resuming from the last epoch checkpoint) and return the final result dict."""
    cfg = classifier_config(profile, arch)
    device = torch.device(profile.device)
    devices = [device] if device.type == "cuda" else []
    data: dict[str, torch.Tensor] = {}
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    store = Store(profile.results_dir)

    def run_epoch(epoch: int, state: TrainState, step: Any) -> dict[str, Any]:
        if not data:
            data["x"], data["y"] = _load_uint8(scenes_root(profile, progress=progress), "train", progress)
        return train_steps(cfg, data["x"], data["y"], state, epoch, step)

    def on_epoch_end(epoch: int, record: dict[str, Any], state: TrainState) -> None:
        snapshots[epoch] = _final_state(state.model, arch)
        store.save(SNAPSHOT_KIND, {**cfg, "epoch": epoch}, {"state_dict": snapshots[epoch]}, fmt="pt")

    steps = math.ceil(int(profile.normgrad.n_train_scenes) / cfg["batch_size"])
    with torch.random.fork_rng(devices=devices):
        state, history = fit(fresh=lambda: _fresh(cfg, device), run_epoch=run_epoch, epochs=cfg["epochs"],
                             steps_per_epoch=steps, checkpoint=checkpoint_path(profile, arch),
                             desc=f"train {arch}", progress=progress, on_epoch_end=on_epoch_end)
    return {"state_dict": _final_state(state.model, arch), "history": json.dumps(history)}


def shipped_network(profile: Profile, arch: str) -> ShippedNetwork:
    """The shipped classifier of ``arch``: ``checkpoints/<profile>/normgrad_classifier-<key>/``."""
    return ShippedNetwork.of(KIND, profile, classifier_config(profile, arch))


def restore_snapshots(store: Store, src: Path, cfg: dict[str, Any], final: dict[str, torch.Tensor]) -> None:
    """The final epoch's snapshot from ``final`` (float32), and the shipped earlier ones (marked float16).

    The earlier epochs are restored all or none: a missing or corrupt file
    leaves them absent, with a warning.
    """
    store.save(SNAPSHOT_KIND, {**cfg, "epoch": cfg["epochs"]}, {"state_dict": final, "precision": "float32"},
               fmt="pt")
    files = [src / SHIPPED_SNAPSHOTS.format(epoch=e) for e in range(1, cfg["epochs"])]
    if not any(f.is_file() for f in files):
        return
    states: dict[int, dict[str, torch.Tensor]] = {}
    try:
        for f in files:
            states.update(unpack_half(read_checked(f)))
    except Exception as err:  # missing, checksum mismatch, unreadable: the snapshots stay absent
        warnings.warn(f"ignoring the shipped snapshots in {src}: {err} (`git checkout -- {src}` restores them)",
                      stacklevel=3)
        return
    for epoch, st in states.items():
        store.save(SNAPSHOT_KIND, {**cfg, "epoch": epoch}, {"state_dict": st, "precision": "float16"}, fmt="pt")


def restore_shipped(profile: Profile, arch: str) -> bool:
    """Put the shipped network of ``arch`` and its epoch snapshots into the result store; ``True``
    when it did (:meth:`ShippedNetwork.restore <gsutils.experiments.common.shipped.ShippedNetwork.restore>`,
    the snapshots first so that a restored network always has them)."""
    net = shipped_network(profile, arch)
    if not net.verify():
        return False
    state = torch.load(io.BytesIO(read_checked(net.path / "model.pt")), map_location="cpu", weights_only=True)
    restore_snapshots(Store(profile.results_dir), net.path, net.config, state)
    return net.restore(profile.results_dir)


def export_shipped(profile: Profile, arch: str) -> Path:
    """Copy the trained network of ``arch`` and its epoch snapshots (float16) from the result store
    to ``checkpoints/<profile>/`` (:meth:`ShippedNetwork.export
    <gsutils.experiments.common.shipped.ShippedNetwork.export>`); the folder."""
    cfg = classifier_config(profile, arch)
    store = Store(profile.results_dir)
    if not store.exists(KIND, cfg, "pt"):
        raise FileNotFoundError(f"{arch} is not trained for profile {profile.name!r}; train it first")
    dst = shipped_network(profile, arch).export(profile.results_dir)
    snaps = {e: store.load(SNAPSHOT_KIND, {**cfg, "epoch": e}, "pt")["state_dict"] for e in range(1, cfg["epochs"])
             if store.exists(SNAPSHOT_KIND, {**cfg, "epoch": e}, "pt")}
    if len(snaps) == cfg["epochs"] - 1:  # all but the final epoch, which is model.pt
        for e, state in snaps.items():
            write_checked(dst / SHIPPED_SNAPSHOTS.format(epoch=e), pack_half({e: state}))
    return dst


def train_or_load_classifier(profile: Profile, arch: str, *, progress: bool = True) -> nn.Module:
    """The profile's trained classifier for ``arch`` (``"vgg16"`` or ``"resnet50"``).

    Loaded from the result store when it exists, else restored from the
    shipped networks (``checkpoints/<profile>/``) when one matches, else
    trained (resuming from the last epoch checkpoint if a run was
    interrupted) and stored.

    Returns
    -------
    torch.nn.Module
        In eval mode, on ``profile.device``, with ``normalization`` set (see
        :func:`gsutils.models.classifiers.build_classifier`).
    """
    check_profile_arch(profile, arch)
    cfg = classifier_config(profile, arch)
    store = Store(profile.results_dir)
    if not store.exists(KIND, cfg, "pt"):
        restore_shipped(profile, arch)
    result = store.get_or_compute(KIND, cfg, lambda: _train(profile, arch, progress), fmt="pt")
    discard_checkpoint(checkpoint_path(profile, arch))
    model = deployed_model(cfg)
    model.load_state_dict(result["state_dict"])
    return model.to(torch.device(profile.device)).eval()


def classifier_history(profile: Profile, arch: str) -> list[dict[str, Any]]:
    """Per-epoch loss, exact-match accuracy, learning rate and seconds of a trained classifier."""
    cfg = classifier_config(profile, arch)
    store = Store(profile.results_dir)
    if not store.exists(KIND, cfg, "pt"):
        raise FileNotFoundError(f"no trained {arch} for this profile in {store.root}; "
                                "call train_or_load_classifier first")
    return json.loads(store.load(KIND, cfg, "pt")["history"])


def test_scenes(profile: Profile) -> SceneSet:
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


def gate(profile: Profile, maps: dict[str, float]) -> Gate:
    """The depth claims' gate: every classifier's test mAP at least ``profile.normgrad.gate_map``.

    ``detail``: each classifier's test mAP; ``note``: the gate's numbers, which every claim under
    it carries in its note.
    """
    threshold = float(profile.normgrad.gate_map)
    return Gate(what="lowest test mAP of the classifiers", measured=min(maps.values(), default=None), threshold=threshold,
                passed=all(v >= threshold for v in maps.values()), detail=dict(maps),
                note=f"gate (test mAP >= {threshold:.2f}): " + ", ".join(f"{a} {m:.3f}" for a, m in maps.items()))


def no_gate(note: str, maps: dict[str, float] | None = None) -> Gate:
    """No gate applies (published checkpoints): every claim is judged; ``note`` says why."""
    return Gate(what="published checkpoints", measured=None, threshold=None, passed=True,
                detail=dict(maps or {}), note=note)


def main(argv: Sequence[str] | None = None) -> None:
    """The command line; a user error is one line on stderr with exit status 2."""
    from gsutils.cli import parse_with_profile
    from gsutils.cli_commands import command_parser

    parser = command_parser("pointing")
    args, profile = parse_with_profile(parser, argv)
    scenes = test_scenes(profile)
    for arch in args.arch:
        if args.retrain:
            cfg = classifier_config(profile, arch)
            Store(profile.results_dir).get_or_compute(KIND, cfg, lambda: _train(profile, arch, True), fmt="pt")
        model = train_or_load_classifier(profile, arch)
        print(f"{arch}: test mAP {evaluate_classifier(model, scenes)['mAP']:.3f}")
        if args.export:
            print(f"exported {export_shipped(profile, arch)}")


if __name__ == "__main__":
    main()
