"""The logged first training steps of the shipped Grid Saliency networks, to re-run.

The S1.2 bias grid's U-Nets (``"unet"``), the S1.5 backbone comparison's
(``"slim"``) and the S2/S3 DeepLabv3+ networks (``"deeplab"``), each as a
:class:`gsutils.experiments.common.provenance.ShippedTrace` that
:func:`gsutils.experiments.common.provenance.check` compares. The NormGrad
networks' traces are :mod:`gsutils.experiments.normgrad.shipped_traces`.
"""

from __future__ import annotations

import json

from gsutils.experiments.common.provenance import ShippedTrace, as_floats, one_thread
from gsutils.models.smp_unet import FULL_STEM_BACKBONES, SLIM_BACKBONES, SMALL_BACKBONES, SMP_BACKBONES

#: the kinds of network this module traces (``which`` of :func:`shipped_traces`)
WHICH = ("unet", "slim", "deeplab")

#: backbones whose float64 traces are checked as ``"smp-float64"`` (segmentation-models-pytorch U-Nets)
SMP_KINDS = SMP_BACKBONES + SLIM_BACKBONES + SMALL_BACKBONES + FULL_STEM_BACKBONES


def _unet_traces(profile, runs, float64: bool) -> list[ShippedTrace]:
    import torch

    from gsutils.experiments.grid import segmentation as seg

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
            one_thread(lambda n, run=run, dtype=dtype: seg.first_step_losses(profile, run, n, dtype))))
    return out


def shipped_traces(profile, which: str = "all") -> list[ShippedTrace]:
    """The shipped Grid Saliency networks of ``profile`` (``which``: ``"all"`` or one of
    :data:`WHICH`; another kind gives none), each with its logged first steps."""
    from gsutils.experiments.grid import segmentation as seg

    out: list[ShippedTrace] = []
    if which in ("all", "unet"):
        out += _unet_traces(profile, seg.grid_runs(profile), float64=True)
    if which in ("all", "slim"):
        from gsutils.experiments.grid.backbones import recipe_groups

        for bp, runs in recipe_groups(profile):  # a family, or a network, may have a recipe of its own
            out += _unet_traces(bp, runs, float64=False)
    if which in ("all", "deeplab"):
        out += _deeplab_traces(profile)
    return out


def _deeplab_traces(profile) -> list[ShippedTrace]:
    from gsutils.experiments.common.shipped import shipped_networks
    from gsutils.experiments.grid import coco_context, street_context
    from gsutils.experiments.grid.deeplab_training import DeepLabRecipe, first_step_losses

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
                                one_thread(rerun)))
    return out
