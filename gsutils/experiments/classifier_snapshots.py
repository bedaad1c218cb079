"""The classifiers' states after each training epoch (NormGrad D, Fig. 2 and 3).

Training (:mod:`gsutils.experiments.classifier_training`) stores the deployed
network after every epoch in the result store (``normgrad_classifier_snapshots``,
float32). A shipped network carries its snapshots at half precision
(``snapshot-epoch<e>.pt``, :func:`gsutils.experiments.shipped.pack_half`);
:func:`restore_snapshots` puts them into the store beside the restored
network, marked ``"float16"``, and the final epoch's as the float32 network.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gsutils.experiments.classifier_training import (
    SHIPPED_SNAPSHOTS,
    SNAPSHOT_KIND,
    classifier_config,
    deployed_model,
)
from gsutils.experiments.store import Store
from gsutils.io import read_checked
from gsutils.profiles import Profile

__all__ = ["restore_snapshots", "classifier_snapshot", "snapshot_precision"]


def restore_snapshots(store: Store, src: Path, cfg: dict[str, Any], final: dict[str, torch.Tensor]) -> None:
    """The final epoch's snapshot from ``final`` (float32), and the shipped earlier ones (marked float16).

    The earlier epochs are restored all or none: a missing or corrupt file
    leaves them absent, with a warning.
    """
    from gsutils.experiments.shipped import unpack_half

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
        warnings.warn(f"ignoring the shipped snapshots in {src}: {err}", stacklevel=3)
        return
    for epoch, st in states.items():
        store.save(SNAPSHOT_KIND, {**cfg, "epoch": epoch}, {"state_dict": st, "precision": "float16"}, fmt="pt")


def classifier_snapshot(profile: Profile, arch: str, epoch: int) -> nn.Module | None:
    """The deployed network after ``epoch`` epochs of training, or ``None`` when it was not kept.

    Snapshots exist where the network was trained (not where it was restored
    from the shipped networks); ``epoch == epochs`` is the final network.
    """
    cfg = classifier_config(profile, arch)
    if not 1 <= epoch <= cfg["epochs"]:
        raise ValueError(f"epoch must be in 1..{cfg['epochs']}, got {epoch!r}")
    store = Store(profile.results_dir)
    if not store.exists(SNAPSHOT_KIND, {**cfg, "epoch": epoch}, "pt"):
        return None
    model = deployed_model(cfg)
    model.load_state_dict(store.load(SNAPSHOT_KIND, {**cfg, "epoch": epoch}, "pt")["state_dict"])
    return model.to(torch.device(profile.device)).eval()


def snapshot_precision(profile: Profile, arch: str) -> str | None:
    """``"float32"`` (trained here), ``"float16"`` (restored from the shipped snapshots) or ``None`` (absent).

    Judged on the first epoch's snapshot; the final epoch's is always the
    float32 network.
    """
    cfg = classifier_config(profile, arch)
    store = Store(profile.results_dir)
    if not store.exists(SNAPSHOT_KIND, {**cfg, "epoch": 1}, "pt"):
        return None
    return store.load(SNAPSHOT_KIND, {**cfg, "epoch": 1}, "pt").get("precision", "float32")
