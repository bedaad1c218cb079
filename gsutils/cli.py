"""What every command line of the project shares: one-line user errors, profiles.

A user error (a bad option value, an unwritable output file, an unknown
profile or device) is reported as one line on stderr,
``<prog>: error: <message>``, with exit status 2, the convention of
:mod:`argparse`, and never as a traceback. :class:`Parser` makes argparse's
own errors one line too (the usage is left to ``--help``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

#: profiles sized for a GPU: running one on the CPU is allowed but worth a warning
GPU_PROFILES = ("gpu", "paper")


def one_line(message: object) -> str:
    """``message`` with its lines joined (an error report is one line)."""
    return " ".join(str(message).split())


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``prog: error: message (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def fail(parser: argparse.ArgumentParser, message: object) -> NoReturn:
    """Report a user error in one line on stderr and exit with status 2."""
    parser.exit(2, f"{parser.prog}: error: {one_line(message)}\n")


def warn(parser: argparse.ArgumentParser, message: object) -> None:
    """A one-line warning on stderr."""
    print(f"{parser.prog}: warning: {one_line(message)}", file=sys.stderr, flush=True)


def cpu_fallback_message(profile: str, requested: str, resolved: str) -> str | None:
    """The warning for a GPU-sized profile that ``device="auto"`` resolved to the CPU, or ``None``."""
    if profile in GPU_PROFILES and requested == "auto" and resolved == "cpu":
        return (f"profile {profile!r} is sized for a GPU but none is visible: falling back to "
                "the CPU (much slower; pass --device cpu to silence this, or --profile quick)")
    return None


def add_profile_arguments(parser: argparse.ArgumentParser, *, data_root_default: str | None = None) -> None:
    """The arguments every profile-driven command shares: ``--profile``, ``--device``, ``--seed``, ``--data-root``.

    Resolve them with :func:`profile_or_exit`.
    """
    from gsutils.profiles import PROFILE_NAMES

    parser.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=data_root_default)


def resolve_profile(name: str, **kwargs: Any):
    """:func:`gsutils.profiles.get_profile`, where a ``data_root`` that is given must be a folder.

    Raises
    ------
    ValueError, TypeError
        A bad profile name, device, seed or data root (one-line messages).
    """
    from pathlib import Path

    from gsutils.profiles import get_profile

    root = kwargs.get("data_root")
    if root and not Path(root).expanduser().is_dir():
        raise ValueError(f"--data-root {str(root)!r} is not a folder")
    return get_profile(name, **kwargs)


def profile_or_exit(parser: argparse.ArgumentParser, name: str, **kwargs: Any):
    """:func:`resolve_profile`, with its errors as a one-line user error.

    A ``data_root`` that is given must be an existing folder. Warns (one line)
    when a GPU-sized profile falls back to the CPU.
    """
    try:
        cfg = resolve_profile(name, **kwargs)
    except (ValueError, TypeError) as err:
        fail(parser, err)
    note = cpu_fallback_message(name, kwargs.get("device", "auto"), cfg.device)
    if note:
        warn(parser, note)
    return cfg
