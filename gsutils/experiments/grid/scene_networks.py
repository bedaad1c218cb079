"""Every DeepLabv3+ of the S2 (street scenes) and S3 (COCO) chapters, and their command line.

:func:`scene_networks` trains (or loads, or restores from the shipped
networks) the street-scene network of :mod:`gsutils.experiments.grid.street_context`
and the COCO networks of :mod:`gsutils.experiments.grid.coco_context`, each through
:func:`gsutils.experiments.grid.deeplab_training.train_deeplab`; :func:`main` is
``python -m gsutils scenes --profile quick [--export]``, which also copies
them to ``checkpoints/<profile>/``.
"""

from __future__ import annotations

from pathlib import Path

from gsutils.cli import parse_with_profile
from gsutils.cli_commands import command_parser
from gsutils.experiments.common.shipped import ShippedNetwork
from gsutils.experiments.grid import coco_context, street_context
from gsutils.experiments.grid.deeplab_training import model_dir, train_deeplab
from gsutils.profiles import Profile

__all__ = ["scene_networks", "main"]


def scene_networks(profile: Profile, *, progress: bool = True) -> list[Path]:
    """Train (or load) every DeepLab of the S2 and S3 chapters; their result folders."""
    data = street_context.street_data(profile, progress=progress)
    street_context.street_network(profile, data, progress=progress)
    out = [model_dir(profile, street_context.street_recipe(profile), data.key)]
    coco = coco_context.coco_data(profile)
    for recipe in coco_context.coco_recipes(profile, coco):
        train_deeplab(profile, recipe, coco.train_x, coco.train_y, data_key=coco.key, progress=progress)
        out.append(model_dir(profile, recipe, coco.key))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m gsutils scenes --profile quick [--export]``: train (or load) the S2/S3 DeepLabs."""
    ap = command_parser("scenes")
    a, profile = parse_with_profile(ap, argv)
    for folder in scene_networks(profile):
        exported = ShippedNetwork.trained("deeplab", profile, folder).export(profile.results_dir) if a.export else None
        print(folder, "->", exported or "(not exported)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
