"""The shipped U-Nets of the Grid Saliency grids: retrain, export and list them.

The S1.2 bias grid's U-Nets and the S1.5 backbone comparison's ship under
``checkpoints/<profile>/<key>/`` (:class:`gsutils.experiments.common.shipped.ShippedNetwork`
of kind ``"unet"``, :func:`gsutils.experiments.grid.segmentation.shipped_network`), ``key``
being the name of the network's model folder (:func:`gsutils.experiments.grid.segmentation.model_dir`).
This module sits above the runners that list and train them
(:mod:`gsutils.experiments.grid.segmentation`, :mod:`gsutils.experiments.grid.backbones`):

* :func:`export` copies finished networks from the results folder to
  ``checkpoints/`` (:meth:`gsutils.experiments.common.shipped.ShippedNetwork.export`: at float16
  for :data:`~gsutils.experiments.common.shipped.HALF_PRECISION_BACKBONES`, with the machine
  that trained them);
* :func:`manifest` lists a grid's networks: key, whether shipped, sha256, size;
* :func:`main` is the command line::

    python -m gsutils shipped --profile quick [--grid backbones] [--retrain] [--export] [--only LABEL ...]

  ``--retrain`` trains every network of the grid (or those of ``--only``)
  that the results folder lacks, from scratch; ``--export`` copies them to
  ``checkpoints/`` and, without ``--only``, removes the shipped U-Nets that no
  config of the profile restores any more.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gsutils.experiments.common import shipped
from gsutils.experiments.grid.seg_runs import SegRun
from gsutils.experiments.grid.segmentation import grid_runs, model_dir, shipped_network, train_unet
from gsutils.profiles import Profile

__all__ = ["export", "remove_unused", "manifest", "grid_manifest", "main"]


def export(profile: Profile, runs: Sequence[SegRun]) -> list[Path]:
    """Copy the finished networks of ``runs`` from the results folder to ``checkpoints/``.

    :meth:`~gsutils.experiments.common.shipped.ShippedNetwork.export` of each (one
    training thread): networks of :data:`~gsutils.experiments.common.shipped.HALF_PRECISION_BACKBONES`
    ship at float16 and their copy in the results folder is replaced by the shipped one; each
    folder gets the ``provenance.json`` of this machine, and ``PROVENANCE.json`` is written
    beside them when there is none yet. A network whose shipped weights are already these is
    left as it is. Raises ``FileNotFoundError`` (naming the network) for one not trained yet.
    """
    written = []
    for run in runs:
        if not (model_dir(profile, run) / "model.pt").is_file():
            raise FileNotFoundError(f"{run.label} is not trained ({model_dir(profile, run) / 'model.pt'} is "
                                    "missing); train it first")
        written.append(shipped_network(profile, run).export(profile.results_dir, threads=1))
    return written


def remove_unused(profile: Profile, keep: Sequence[Path], backbones: Sequence[str]) -> list[Path]:
    """Delete shipped U-Net folders of ``backbones`` under ``checkpoints/<profile>/`` that are not in
    ``keep`` (networks of an earlier recipe that no config of the profile restores any more)."""
    keep = {Path(k).resolve() for k in keep}
    removed = []
    for net in shipped.shipped_networks(profile.name):
        if (net.kind == "unet" and net.config.get("what") == "unet" and net.config.get("backbone") in backbones
                and net.path.resolve() not in keep):
            shutil.rmtree(net.path)
            removed.append(net.path)
    return removed


def manifest(profile: Profile, runs: Sequence[SegRun]) -> list[dict[str, Any]]:
    """One row per run: label, key, whether a network is shipped, its sha256 and size
    (:func:`gsutils.experiments.common.shipped.manifest` of the U-Nets)."""
    return shipped.manifest(profile, runs, network=shipped_network)


def grid_manifest(profile: Profile, grid: str = "bias") -> list[dict[str, Any]]:
    """:func:`manifest` of every network of ``grid`` (``"bias"`` or ``"backbones"``), each under the
    profile it trains with."""
    return [row for p, runs in _groups(profile, grid) for row in manifest(p, runs)]


def _groups(profile: Profile, grid: str) -> list[tuple[Profile, list[SegRun]]]:
    """The networks of ``grid`` (``"bias"`` or ``"backbones"``), grouped by the profile they train
    under (the backbone comparison gives a family, or one network, its own recipe where the profile
    says so)."""
    if grid == "backbones":
        from gsutils.experiments.grid.backbones import recipe_groups

        return recipe_groups(profile)
    return [(profile, grid_runs(profile))]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gsutils shipped --profile quick [--grid backbones] [--retrain] [--export] [--only LABEL ...]``."""
    from gsutils.cli import parse_with_profile
    from gsutils.cli_commands import command_parser

    ap = command_parser("shipped", prog="python -m gsutils.experiments.grid.shipped_unets")
    a, prof = parse_with_profile(ap, argv)
    groups = _groups(prof, a.grid)
    if a.only is not None:
        labels = [r.label for _, runs in groups for r in runs]
        unknown = [x for x in a.only if x not in labels]
        if unknown:
            ap.error(f"--only: no network labelled {', '.join(unknown)} in this grid; choose from {', '.join(labels)}")
    chosen = [(p, [r for r in runs if a.only is None or r.label in a.only]) for p, runs in groups]
    if a.retrain:
        for p, runs in chosen:
            for run in runs:
                if not (model_dir(p, run) / "model.pt").is_file():
                    train_unet(p, run)
    if a.export:
        written = [path for p, runs in chosen for path in export(p, runs)]
        for path in written:
            print(f"exported {path}")
        if a.only is None:  # the grid's earlier networks (of this and of earlier backbones) go
            from gsutils.models.smp_unet import SLIM_BACKBONES

            old = {r.backbone for _, runs in groups for r in runs}
            old |= {"tiny"} if a.grid == "bias" else set(SLIM_BACKBONES)
            for path in remove_unused(groups[0][0], written, sorted(old)):
                print(f"removed {path} (no config of the profile restores it)")
    for row in grid_manifest(prof, a.grid):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
