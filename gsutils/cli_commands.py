"""The arguments of every ``python -m gsutils <command>``, defined without importing torch.

The runners of the commands (``gsutils.experiments.grid.*``,
``gsutils.experiments.normgrad.*``, ``gsutils.book``) import torch,
matplotlib or Dask when they are imported, which takes seconds.
``python -m gsutils`` parses a command's arguments with
:func:`command_parser` first, so ``--help`` and a usage error are answered
before any of that is imported. Each runner's ``main`` builds its parser
here too (``command_parser(command, prog=...)``) and adds only its checks
after parsing, so every argument of every command is defined once, in this
module; ``tests/test_cli_fast_help.py`` checks that each runner does.

This module imports only :mod:`gsutils.cli` (and through it
:mod:`gsutils.profiles`). The few names it needs from heavy modules are
copied here (:data:`UNET_BACKBONES`, :data:`CLASSIFIER_ARCHS`,
:data:`OTHER_DIGIT_DIVISOR`); ``tests/test_cli_fast_help.py`` checks that
they equal the originals.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gsutils.cli import Parser, add_profile_arguments, grid_parser

#: :data:`gsutils.models.unet.BACKBONES`, the encoders ``train --backbones`` accepts
UNET_BACKBONES: tuple[str, ...] = ("tiny", "small", "vgg16", "mobilenet_v2", "resnet18",
                                   "slim_vgg16", "slim_mobilenet_v2", "slim_resnet18",
                                   "small_vgg16", "small_mobilenet_v2", "small_resnet18",
                                   "small_mobilenet_v2_fs", "small_resnet18_fs")
#: :data:`gsutils.models.classifiers.ARCHS`, the NormGrad stand-in classifiers
CLASSIFIER_ARCHS: tuple[str, ...] = ("vgg16", "resnet50")
#: :data:`gsutils.experiments.grid.context_saliency.OTHER_DIGIT_DIVISOR`: each digit other than the
#: bias digit gets ``--images // OTHER_DIGIT_DIVISOR`` images
OTHER_DIGIT_DIVISOR = 4


def _train(prog: str) -> argparse.ArgumentParser:
    ap = grid_parser(prog, "Train and evaluate the S1.2 bias grid.")
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--backbones", nargs="*", default=None, choices=UNET_BACKBONES,
                    help="default: the profile's grid backbones")
    return ap


def _saliency(prog: str) -> argparse.ArgumentParser:
    ap = Parser(prog=prog, description="Compute the biased networks' context saliency (S1.3, S1.4) for a profile.")
    add_profile_arguments(ap)
    ap.add_argument("--networks", nargs="+", default=None, metavar="NETWORK",
                    help="the networks to explain: labels such as small/strong-d2-t0/s0, or indices into "
                         "the profile's biased networks (default: all; a bad one lists them)")
    ap.add_argument("--images", type=int, default=None, metavar="N",
                    help="test images of the bias digit explained per network (each other digit gets "
                         f"N // {OTHER_DIGIT_DIVISOR}, at least 1; default: the profile's images_per_digit)")
    return ap


def _pointing(prog: str) -> argparse.ArgumentParser:
    ap = Parser(prog=prog, description="Train the NormGrad stand-in classifiers")
    add_profile_arguments(ap)
    ap.add_argument("--arch", nargs="+", default=list(CLASSIFIER_ARCHS), choices=CLASSIFIER_ARCHS)
    ap.add_argument("--retrain", action="store_true",
                    help="train even when a shipped network matches (it is not restored)")
    ap.add_argument("--export", action="store_true", help="copy the trained networks to checkpoints/<profile>/")
    return ap


def _layers(prog: str) -> argparse.ArgumentParser:
    ap = Parser(prog=prog, description="NormGrad sections C, D and E: layer combination, meta-saliency, "
                                       "randomisation")
    add_profile_arguments(ap)
    ap.add_argument("--arch", nargs="+", default=list(CLASSIFIER_ARCHS), choices=CLASSIFIER_ARCHS)
    return ap


def _shipped(prog: str) -> argparse.ArgumentParser:
    ap = Parser(prog=prog, description="Retrain, export or list the shipped U-Nets of a profile.")
    add_profile_arguments(ap)
    ap.add_argument("--grid", choices=("bias", "backbones"), default="bias",
                    help="the S1.2 bias grid (default) or the S1.5 backbone comparison")
    ap.add_argument("--retrain", action="store_true",
                    help="train every network of the grid from scratch into the results folder")
    ap.add_argument("--export", action="store_true", help="copy the trained networks to checkpoints/")
    ap.add_argument("--only", nargs="+", metavar="LABEL", default=None,
                    help="restrict --retrain and --export to these networks, by label (e.g. small/strong-d2-t3/s0)")
    return ap


def _backbones(prog: str) -> argparse.ArgumentParser:
    ap = grid_parser(prog, "S1.5: train, evaluate and explain the backbone comparison's networks.")
    ap.add_argument("--train-only", action="store_true", help="train and evaluate, skip the saliency")
    return ap


def _sweeps(prog: str) -> argparse.ArgumentParser:
    return grid_parser(prog, "S1.6: sweep grid saliency's lambda, lr, momentum, initial mask and grey value.",
                       executor=None, workers=None)


def _captioning(prog: str) -> argparse.ArgumentParser:
    ap = Parser(prog=prog, description="Train, evaluate and explain the NormGrad supplement-F captioner")
    add_profile_arguments(ap)
    ap.add_argument("--retrain", action="store_true", help="train instead of restoring a shipped captioner")
    ap.add_argument("--export", action="store_true", help="copy the trained captioner to checkpoints/")
    return ap


def _scenes(prog: str) -> argparse.ArgumentParser:
    ap = Parser(prog=prog, description="train (or load) the S2/S3 DeepLabs; --export copies them to checkpoints/")
    add_profile_arguments(ap)
    ap.add_argument("--export", action="store_true", help="copy the trained networks to checkpoints/<profile>")
    return ap


def _book(prog: str) -> argparse.ArgumentParser:
    ap = Parser(prog=prog, description="The book executor: jupytext sources -> papermill -> executed notebooks "
                                       "-> Jupyter Book.")
    add_profile_arguments(ap, data_root_default="")
    ap.add_argument("--only", nargs="+", metavar="CHAPTER",
                    help="chapter ids such as grid_saliency/01_toy_dataset (the report is re-run too)")
    ap.add_argument("--force", action="store_true", help="re-execute even if unchanged")
    ap.add_argument("--no-build", action="store_true", help="execute only")
    ap.add_argument("--build-only", action="store_true", help="build the book from executed notebooks")
    ap.add_argument("--strict", action="store_true", help="build with -W -n --keep-going")
    ap.add_argument("--no-report", action="store_true",
                    help="with --only: do not re-run the reproduction report")
    ap.add_argument("--jobs", type=int, default=1,
                    help="run the book's parts (chains of dependent chapters) in up to JOBS "
                         "parallel processes, each kernel limited to one thread")
    return ap


#: command -> the builder of its parser, ``builder(prog)`` (``gsutils.__main__.DELEGATED`` names the
#: module whose ``main`` runs the command and builds its parser with :func:`command_parser`)
PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {
    "train": _train,
    "saliency": _saliency,
    "pointing": _pointing,
    "layers": _layers,
    "shipped": _shipped,
    "backbones": _backbones,
    "sweeps": _sweeps,
    "captioning": _captioning,
    "scenes": _scenes,
    "book": _book,
}


def command_parser(command: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``python -m gsutils <command>`` (its usage names ``prog``, by default that command line).

    The one definition of the command's arguments: ``python -m gsutils`` parses
    with it before importing the runner, and the runner's ``main`` parses with
    it (``prog`` naming the runner's module, which ``python -m gsutils``
    renames through :func:`gsutils.cli.command_prog`).
    """
    if command not in PARSERS:
        raise ValueError(f"no command {command!r}; the commands with a runner module are {', '.join(PARSERS)}")
    return PARSERS[command](prog or f"python -m gsutils {command}")
