"""The one command line, ``python -m gsutils <command>`` (gsutils/__main__.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gsutils.__main__ import DELEGATED

COMMANDS = ("toy-data", "train", "saliency", "pointing", "shipped", "book")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gsutils", *args], capture_output=True, text=True,
                          timeout=300)


def test_help_lists_every_command():
    r = _run("--help")
    assert r.returncode == 0, r.stderr
    listed = {line.split()[0] for line in r.stdout.splitlines() if line.startswith("    ")}
    assert set(COMMANDS) <= listed, r.stdout


def test_a_bad_profile_is_a_one_line_error():
    r = _run("train", "--profile", "nope")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "nope" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("command", sorted(DELEGATED))
def test_shared_profile_arguments_are_checked_for_every_command(command, capsys):
    from gsutils.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--device", "tpu"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"python -m gsutils {command}: error:") and "tpu" in err[0]


def test_delegated_commands_reach_their_module(monkeypatch):
    import importlib

    from gsutils.__main__ import main

    seen = {}
    for command, (module, _) in DELEGATED.items():
        def fake_main(argv, command=command):
            seen[command] = argv
            return 0

        monkeypatch.setattr(importlib.import_module(module), "main", fake_main)
    for command in DELEGATED:
        assert main([command, "--profile", "quick", "--device", "cpu"]) == 0
        assert seen[command] == ["--profile", "quick", "--device", "cpu"]
