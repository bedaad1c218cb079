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


def profile_or_exit(parser: argparse.ArgumentParser, name: str, **kwargs: Any):
    """:func:`gsutils.profiles.get_profile`, with its ``ValueError`` as a one-line user error.

    A ``data_root`` that is given must be an existing folder. Warns (one line)
    when a GPU-sized profile falls back to the CPU.
    """
    from pathlib import Path

    from gsutils.profiles import get_profile

    root = kwargs.get("data_root")
    if root and not Path(root).expanduser().is_dir():
        fail(parser, f"--data-root {str(root)!r} is not a folder")
    try:
        cfg = get_profile(name, **kwargs)
    except (ValueError, TypeError) as err:
        fail(parser, err)
    note = cpu_fallback_message(name, kwargs.get("device", "auto"), cfg.device)
    if note:
        warn(parser, note)
    return cfg
