"""Why a network misses the gate: how much of the digit the downsampled images can show.

At a reduced resolution the toy data are rendered at ``render_resolution`` (64)
and area-downsampled (:mod:`gsutils.data.toy`). A pixel of the small image is
labelled digit when at least half of its ``f x f`` block is digit; a *mixed*
pixel (a block that is partly digit, partly background) shows only the mean of
two textures, so whether it counts as digit can be undecidable from the image.
MNIST strokes are a few pixels wide at 64 px, so at 32 px a large share of the
digit's pixels are mixed. :func:`mixed_pixel_report` measures that share on the
unbiased test set and a network's pixel accuracy on pure and on mixed pixels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from gsutils.data.toy import BiasConfig, make_toy_dataset
from gsutils.profiles import Profile


def block_purity(config, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of the downsampled images: ``(mixed, digit)``, bool ``(n, R, R)`` each.

    ``mixed``: the pixel's render block holds both digit and background;
    ``digit``: the pixel's label is a digit (at least half of its block).
    """
    f = config.render_side // config.resolution
    full = make_toy_dataset(dataclasses.replace(config, resolution=config.render_side,
                                                render_resolution=None), split, n)
    r = config.resolution
    count = full.digit_mask.reshape(n, r, f, r, f).sum(axis=(2, 4))  # (n, R, R) digit sub-pixels
    return (count > 0) & (count < f * f), 2 * count >= f * f


def mixed_pixel_report(profile: Profile, run: Any) -> dict[str, float]:
    """:func:`mixed_pixel_accuracy` of ``run``'s trained network, cached in the result store."""
    from gsutils.experiments.common.store import Store
    from gsutils.experiments.grid.segmentation import test_config, train_config, train_or_load
    from gsutils.io import config_key

    conf = {"what": "mixed_pixel_report", "model": config_key(train_config(profile, run)),
            "test": test_config(profile)}
    return Store(profile.results_dir).get_or_compute(
        "gate_evidence", conf, lambda: mixed_pixel_accuracy(profile, train_or_load(profile, run, progress=False)))


@torch.no_grad()
def mixed_pixel_accuracy(profile: Profile, model: torch.nn.Module) -> dict[str, float]:
    """On the unbiased test set: share of digit pixels that are mixed, and ``model``'s accuracy by kind.

    Returns ``mixed_share_of_digit`` (mixed pixels among digit-labelled ones),
    ``acc_pure_digit``, ``acc_mixed_digit`` (the share of such pixels whose
    predicted class is their label), ``acc_pure_background`` and
    ``acc_mixed_background``. Where the profile renders at its own
    resolution no pixel is mixed: the share is 0 and the mixed accuracies NaN.
    """
    from gsutils.experiments.grid.segmentation import run_toy_config, predict

    cfg = run_toy_config(profile, BiasConfig(strength="none"), profile.seed)
    if cfg.render_resolution is None:  # rendered at its own side: every pixel is pure
        cfg = dataclasses.replace(cfg, render_resolution=cfg.resolution)
    n = profile.toy.n_test
    mixed, digit = block_purity(cfg, "test", n)
    data = make_toy_dataset(cfg, "test", n)
    np.testing.assert_array_equal(digit, data.digit_mask)  # the labels the network was scored on
    pred = predict(model, torch.from_numpy(data.images)).numpy()  # (n, R, R)
    ok = pred == data.labels
    out = {"mixed_share_of_digit": float(mixed[digit].mean())}
    for name, sel in (("pure_digit", ~mixed & digit), ("mixed_digit", mixed & digit),
                      ("pure_background", ~mixed & ~digit), ("mixed_background", mixed & ~digit)):
        out[f"acc_{name}"] = float(ok[sel].mean()) if sel.any() else float("nan")
    return out
