"""``python -m gsutils <command> --help`` and usage errors import no torch (issue #24);
every command's arguments are defined once (issue #25).

The runners of the commands import torch, matplotlib or Dask on import (seconds).
``python -m gsutils`` parses a command's arguments first with the light parsers of
:mod:`gsutils.cli_commands`; these tests check, in a fresh interpreter for every
command listed by ``python -m gsutils --help``, that ``--help`` and a usage error
leave the heavy modules unimported, that each runner's ``main`` parses with that
same parser (built by :func:`gsutils.cli_commands.command_parser`, nothing added),
and that ``python -m <runner module> --help`` shows the command's arguments.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from gsutils.__main__ import DELEGATED, build_parser
from gsutils.cli_commands import PARSERS, command_parser

#: modules that take seconds to import: none may be imported to answer --help or a usage error
HEAVY = ("torch", "torchvision", "matplotlib", "dask", "distributed", "pandas", "scipy",
         "segmentation_models_pytorch", "timm", "gsutils.experiments")

#: runs ``python -m gsutils ARGS`` as the shell would (runpy, ``__main__``), then prints the
#: heavy modules it imported as the last line of stdout
_WRAPPER = """
import json, runpy, sys
watched = json.loads(sys.argv[2])
sys.argv = ["python -m gsutils", *json.loads(sys.argv[1])]
try:
    runpy.run_module("gsutils", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exc:
    code = exc.code
heavy = [m for m in watched if m in sys.modules]
print()
print("IMPORTED " + json.dumps({"code": code, "heavy": heavy}))
"""


def _listed_commands() -> list[str]:
    """The commands ``python -m gsutils --help`` lists."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


COMMANDS = _listed_commands()


def _run(*args: str) -> tuple[dict, subprocess.CompletedProcess]:
    r = subprocess.run([sys.executable, "-c", _WRAPPER, json.dumps(list(args)), json.dumps(HEAVY)],
                       capture_output=True, text=True, timeout=120)
    last = r.stdout.rstrip().splitlines()[-1]
    assert last.startswith("IMPORTED "), (r.stdout[-2000:], r.stderr[-2000:])
    return json.loads(last.removeprefix("IMPORTED ")), r


def test_every_listed_command_is_covered():
    assert set(DELEGATED) <= set(COMMANDS) and "toy-data" in COMMANDS
    assert set(PARSERS) == set(DELEGATED), "every delegated command needs a light parser in gsutils.cli_commands"


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_imports_no_torch(command):
    res, r = _run(*([command] if command else []), "--help")
    assert res["code"] == 0, r.stderr
    assert res["heavy"] == [], f"`python -m gsutils {command} --help` imported {res['heavy']}"
    prog = f"python -m gsutils {command}".strip()
    assert r.stdout.startswith(f"usage: {prog} "), r.stdout[:300]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_a_usage_error_imports_no_torch(command):
    args = [command, "--no-such-option"] if command else ["no-such-command"]
    res, r = _run(*args)
    assert res["code"] == 2, (r.stdout, r.stderr)
    assert res["heavy"] == [], f"`python -m gsutils {' '.join(args)}` imported {res['heavy']}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in r.stderr, r.stderr


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


@pytest.mark.parametrize("command", sorted(DELEGATED))
def test_each_runner_parses_with_the_commands_parser(command, monkeypatch):
    """The runner's ``main`` builds its parser with ``command_parser(command)`` and adds no argument."""
    import importlib

    from gsutils import cli, cli_commands

    built = []
    builder = cli_commands.PARSERS[command]

    def spy(prog):
        built.append(builder(prog))
        return built[-1]

    def catch(self, *args, **kwargs):
        raise _Captured(self)

    module, _ = DELEGATED[command]
    main = importlib.import_module(module).main
    monkeypatch.setitem(cli_commands.PARSERS, command, spy)
    monkeypatch.setattr(cli.Parser, "parse_args", catch)
    with cli.command_prog(module, f"python -m gsutils {command}"), pytest.raises(_Captured) as got:
        main([])
    assert len(built) == 1 and got.value.parser is built[0], f"{module}.main does not parse with command_parser"
    assert got.value.parser.prog == f"python -m gsutils {command}"
    assert got.value.parser.format_help() == builder(f"python -m gsutils {command}").format_help()


#: runs ``python -m MODULE --help`` for each module of ``argv[1]`` as the shell would (runpy,
#: ``__main__``), in one interpreter; prints ``{module: [exit code, stdout]}``
_HELP_OF_MODULES = """
import contextlib, io, json, runpy, sys, warnings
warnings.simplefilter("ignore", RuntimeWarning)  # runpy: a module already imported by an earlier one
out = {}
for module in json.loads(sys.argv[1]):
    sys.argv, buf, code = [module, "--help"], io.StringIO(), None
    with contextlib.redirect_stdout(buf):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code
    out[module] = [code, buf.getvalue()]
print(json.dumps(out))
"""

#: ``python -m <module>`` -> the command it runs: every runner
SCRIPTS = {module: command for command, (module, _) in DELEGATED.items()}


def test_each_runner_module_runs_its_command_as_a_script():
    """``python -m <runner module> --help`` shows what ``python -m gsutils <command> --help`` shows,
    apart from the program's name (the invocations the book and the docstrings give keep working)."""
    import os

    r = subprocess.run([sys.executable, "-c", _HELP_OF_MODULES, json.dumps(list(SCRIPTS))], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "COLUMNS": "100"})
    assert r.returncode == 0, r.stderr[-3000:]
    shown = json.loads(r.stdout.strip().splitlines()[-1])

    def words(text: str, *progs: str) -> list[str]:  # argparse wraps the usage after the program's name
        for prog in progs:
            text = text.replace(prog, "PROG")
        return text.split()

    for module, command in SCRIPTS.items():
        code, text = shown[module]
        assert code in (0, None) and text.startswith("usage: python -m "), (module, code, text[:300])
        own = f"python -m gsutils {command}"
        assert words(text, f"python -m {module}", own) == words(command_parser(command).format_help(), own), module


def test_the_copied_names_equal_the_originals():
    from gsutils import cli_commands
    from gsutils.experiments.grid.context_saliency import OTHER_DIGIT_DIVISOR
    from gsutils.models.classifiers import ARCHS
    from gsutils.models.unet import BACKBONES

    assert cli_commands.UNET_BACKBONES == BACKBONES
    assert cli_commands.CLASSIFIER_ARCHS == ARCHS
    assert cli_commands.OTHER_DIGIT_DIVISOR == OTHER_DIGIT_DIVISOR


def test_the_light_parser_rejects_what_the_runner_would_before_its_import(capsys):
    from gsutils.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--backbones", "no-such-backbone"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m gsutils train: error:") and "no-such-backbone" in err[0]
