"""The README's examples run as written (issue #24, "the first hour of a new user").

The fenced ``bash`` and ``python`` blocks are read from README.md when the tests
are collected, so an edited or added example is tested without touching this
file. Each runs in a fresh process from a temporary working folder laid out
like a checkout's: ``../shared`` beside it (a link to the real one) and
``.venv`` in it, with ``python`` on the PATH being this interpreter's, and with
relative ``GSUTILS_RESULTS`` and ``GSUTILS_CACHE``, so that the results must
land under the caller's folder. The blocks that cannot run here are listed in
:data:`SKIPPED` with the reason; a skip entry that matches no block fails.
Every ``python -m gsutils ...`` command line of the README, in a block or
inline, skipped or not, is also parsed by its command's parser.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
README = REPO / "README.md"
#: the relative result and cache folders the examples run with
RESULTS, CACHE = "my-results", "my-cache"

#: a distinctive piece of a block's text -> why the block is not run here
SKIPPED = {
    "make book": "`make book` and `make test` execute every chapter and the whole test suite (about 30 and "
                 "45 minutes); `make test` runs this file too",
    "python -m gsutils train --profile gpu --executor dask":
        "trains the gpu profile's bias grid (GPU work, hours on a CPU) and starts a Slurm cluster (no sbatch here)",
    "python -m gsutils.book --profile gpu --device cuda --data-root ../shared/data":
        "executes chapters at the gpu profile on CUDA (no GPU here; hours on a CPU), and its jupytext line would "
        "replace the executed notebook book/grid_saliency/02_setup_and_bias.ipynb",
    "-p voc_root /data/VOCdevkit/VOC2007": "needs VOC2007 and TorchRay's checkpoints under /data (absent here)",
}
#: the longest a block may run (seconds)
TIMEOUT = 600
#: a distinctive piece of a block's text -> marked slow (over about a minute)
SLOW: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"line{self.line}-{self.lang}"


_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[ \t]*\n(?P<text>.*?)^```[ \t]*$", re.S | re.M)


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text."""
    return [Block(text.count("\n", 0, m.start()) + 1, m.group("lang"), m.group("text"))
            for m in _FENCE.finditer(text)]


BLOCKS = [b for b in readme_blocks(README.read_text()) if b.lang in ("bash", "sh", "python")]


def _skip_reason(block: Block) -> str | None:
    return next((why for key, why in SKIPPED.items() if key in block.text), None)


def test_the_readme_has_examples_and_every_skip_names_one():
    assert sum(_skip_reason(b) is None for b in BLOCKS) >= 3
    for key in (*SKIPPED, *SLOW):
        assert sum(key in b.text for b in BLOCKS) == 1, f"{key!r} should match exactly one README block"


@pytest.fixture
def workdir(tmp_path) -> Path:
    """``<tmp>/work``, the examples' current folder, with ``<tmp>/shared`` (-> ../shared) beside it."""
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    return work


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(GSUTILS_RESULTS=RESULTS, GSUTILS_CACHE=CACHE)
    env.setdefault("OMP_NUM_THREADS", "1")  # the examples share the machine with the other tests
    return env


def _params():
    for b in BLOCKS:
        marks = [pytest.mark.slow] if any(k in b.text for k in SLOW) else []
        yield pytest.param(b, id=b.id, marks=marks)


@pytest.mark.parametrize("block", _params())
def test_readme_block_runs_as_written(block, workdir):
    why = _skip_reason(block)
    if why:
        pytest.skip(why)
    if "../shared" in block.text and not (workdir.parent / "shared").is_dir():
        pytest.skip(f"{SHARED} (../shared beside the checkout) is absent; this example reads it")
    if block.lang == "python":
        script = workdir / f"readme_line{block.line}.py"
        script.write_text(block.text)
        cmd = [sys.executable, script.name]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.text]
    r = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, (f"README block at line {block.line} failed ({r.returncode}):\n{block.text}\n"
                               f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
    # relative GSUTILS_RESULTS / GSUTILS_CACHE are resolved against the caller's folder, and nothing
    # is written beside it
    assert sorted(p.name for p in workdir.parent.iterdir()) == sorted(
        ["work"] + (["shared"] if (workdir.parent / "shared").exists() else [])), list(workdir.parent.iterdir())
    if "gsutils" in block.text and "load_network" in block.text:
        assert list((workdir / RESULTS / "quick" / "models").glob("*/model.pt")), "no network in ./my-results"
    for out in re.findall(r"--out (\S+)", block.text):
        assert (workdir / out).is_file(), f"--out {out} was not written in the current folder"


# ------------------------------------------------------------------------------ every command line parses


def _command_lines(text: str) -> list[str]:
    """Every ``python -m gsutils...`` command in the README: in code blocks and in inline code."""
    command = re.compile(r"\s*(\S*/)?python -m gsutils")
    lines = []
    for b in readme_blocks(text):
        if b.lang in ("bash", "sh"):
            lines += [ln for ln in b.text.replace("\\\n", " ").splitlines() if command.match(ln)]
    prose = _FENCE.sub("", text)
    lines += [m for m in re.findall(r"`([^`]+)`", prose) if command.match(m)]
    return [" ".join(ln.split("#")[0].split()) for ln in lines]


COMMAND_LINES = _command_lines(README.read_text())


def test_the_readme_shows_the_small_saliency_command():
    small = [c for c in COMMAND_LINES if c.startswith("python -m gsutils saliency") and "--networks" in c
             and "--images" in c]
    assert small, "the README should show a one-network, few-image saliency command"


@pytest.mark.parametrize("line", COMMAND_LINES,
                         ids=[f"{i}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', c)[:60]}" for i, c in enumerate(COMMAND_LINES)])
def test_readme_command_line_parses(line):
    from gsutils.__main__ import DELEGATED, build_parser
    from gsutils.cli_commands import command_parser

    words = shlex.split(re.sub(r"\[[^\]]*\]", "", line))  # "[--address ...]": an optional part
    module = words[words.index("-m") + 1]
    args = words[words.index("-m") + 2:]
    if module != "gsutils":  # python -m gsutils.book, python -m gsutils.experiments.grid.backbones
        by_module = {m: c for c, (m, _) in DELEGATED.items()}
        assert module in by_module, f"{module} is not the module of a `python -m gsutils` command"
        args = [by_module[module], *args]
    if not args or "--help" in args:
        return
    try:
        if args[0] in DELEGATED:
            command_parser(args[0]).parse_args(args[1:])
        else:
            build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"the README's `{line}` does not parse (exit {exc.code})")
