"""The classifiers' states after each training epoch (NormGrad D, Fig. 2 and 3).

Training (:mod:`gsutils.experiments.normgrad.classifier_training`) stores the deployed
network after every epoch in the result store (``normgrad_classifier_snapshots``,
float32). A shipped network carries its snapshots at half precision
(``snapshot-epoch<e>.pt``, :func:`gsutils.experiments.common.shipped.pack_half`);
restoring it (:func:`gsutils.experiments.normgrad.classifier_training.restore_snapshots`)
puts them into the store beside the restored network, marked ``"float16"``,
and the final epoch's as the float32 network. This module reads them back.
"""

from __future__ import annotations

import torch
from torch import nn

from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad.classifier_training import SNAPSHOT_KIND, classifier_config, deployed_model
from gsutils.profiles import Profile

__all__ = ["classifier_snapshot", "snapshot_precision"]


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
