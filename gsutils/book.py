"""The book executor: jupytext sources -> papermill -> executed notebooks -> Jupyter Book.

Usage::

    python -m gsutils.book                       # every chapter, quick profile, then build
    python -m gsutils.book --only grid_saliency/01_toy_dataset --no-build
    python -m gsutils.book --profile gpu --device cuda --data-root ../shared/data
    python -m gsutils.book --build-only --strict # jupyter-book build -W -n --keep-going
    python -m gsutils.book --jobs 2              # the two papers' parts in parallel, 1 thread each

Each chapter ``book/<part>/<NN_slug>.py`` (jupytext percent format) is
converted to a notebook, executed by papermill with the parameters
``profile``, ``device``, ``seed`` and ``data_root``, and written next to its
source as ``<NN_slug>.ipynb`` (git-ignored). Jupyter Book then renders those
notebooks with execution off.

A chapter is not re-executed when its source, its parameters and the library
(every ``gsutils/**/*.py``) are unchanged since its last successful run; the
stamp lives in ``results/<profile>/executed/``. The reproduction report is
always re-executed, since it reads the claims every other chapter wrote. A
chapter that raises stops the run with its traceback and a non-zero exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gsutils.paths import REPO_ROOT

BOOK = REPO_ROOT / "book"
#: chapters that read what the others wrote: always executed, and last
ALWAYS_RUN = ("reproduction_report",)


def chapters(book: Path = BOOK) -> list[str]:
    """Chapter ids (``part/NN_slug``) in table-of-contents order."""
    import yaml

    toc = yaml.safe_load((book / "_toc.yml").read_text())
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            f = node.get("file")
            if f and (book / f"{f}.py").exists():
                out.append(f)
            for v in node.values():
                if isinstance(v, (list, dict)):
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return out


def library_fingerprint(root: Path = REPO_ROOT / "gsutils") -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _stamp(chapter: str, params: dict, lib: str) -> str:
    src = (BOOK / f"{chapter}.py").read_bytes()
    blob = json.dumps(params, sort_keys=True).encode() + src + lib.encode()
    return hashlib.sha256(blob).hexdigest()


def execute(chapter: str, params: dict, stamp_dir: Path, lib: str, force: bool = False) -> str:
    """Execute one chapter; returns ``"ran"`` or ``"cached"``. Raises on failure."""
    import jupytext
    import nbformat
    import papermill

    src = BOOK / f"{chapter}.py"
    out = src.with_suffix(".ipynb")
    stamp_file = stamp_dir / (chapter.replace("/", "__") + ".stamp")
    stamp = _stamp(chapter, params, lib)
    always = Path(chapter).name in ALWAYS_RUN
    if (not force and not always and out.exists() and stamp_file.exists()
            and stamp_file.read_text() == stamp):
        return "cached"
    nb = jupytext.read(src)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ValueError(f"{src}: no cell tagged 'parameters'; add `# %% tags=[\"parameters\"]`")
    tmp_dir = stamp_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp_in = tmp_dir / (out.stem + ".in.ipynb")
    tmp_out = tmp_dir / (out.stem + ".out.ipynb")
    nbformat.write(nb, tmp_in)
    papermill.execute_notebook(
        str(tmp_in), str(tmp_out), parameters=params, cwd=str(src.parent),
        kernel_name="python3", progress_bar=False, log_output=False,
    )
    # the executed notebook appears only once complete
    os.replace(tmp_out, out)
    tmp_in.unlink(missing_ok=True)
    stamp_dir.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(stamp)
    return "ran"


def _parts(chs: list[str]) -> list[list[str]]:
    """Chapters grouped by part (``grid_saliency/...``): each part is a chain whose
    chapters may read what earlier ones computed; different parts are independent."""
    groups: dict[str, list[str]] = {}
    for c in chs:
        groups.setdefault(c.split("/")[0], []).append(c)
    return list(groups.values())


def _run_parts_in_parallel(parts: list[list[str]], args: argparse.Namespace) -> bool:
    """One executor process per part, at most ``args.jobs`` at a time, one thread each.

    Output lines are prefixed with the part's name. Returns whether all succeeded.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    lock = threading.Lock()

    def run(chain: list[str]) -> int:
        name = chain[0].split("/")[0]
        cmd = [sys.executable, "-m", "gsutils.book", "--profile", args.profile,
               "--device", args.device, "--seed", str(args.seed), "--data-root", args.data_root,
               "--no-build", "--no-report", "--only", *chain] + (["--force"] if args.force else [])
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if "without encryption" in line:  # the kernel's transport notice
                continue
            with lock:
                print(f"[{name}] {line}", end="", flush=True)
        return proc.wait()

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = list(pool.map(run, parts))
    return all(c == 0 for c in codes)


def build(strict: bool = False) -> Path:
    """``jupyter-book build book/`` (``-W -n --keep-going`` when strict)."""
    from gsutils.offline_assets import ensure_assets

    ensure_assets()
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    cmd = [jb, "build", str(BOOK)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    res = subprocess.run(cmd, cwd=REPO_ROOT)
    if res.returncode != 0:
        raise SystemExit(f"jupyter-book build failed (exit {res.returncode})")
    index = BOOK / "_build" / "html" / "index.html"
    print(f"book built: {index}")
    return index


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gsutils.book", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="quick", choices=("quick", "gpu", "paper"))
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default="")
    p.add_argument("--only", nargs="+", metavar="CHAPTER",
                   help="chapter ids such as grid_saliency/01_toy_dataset (the report is re-run too)")
    p.add_argument("--force", action="store_true", help="re-execute even if unchanged")
    p.add_argument("--no-build", action="store_true", help="execute only")
    p.add_argument("--build-only", action="store_true", help="build the book from executed notebooks")
    p.add_argument("--strict", action="store_true", help="build with -W -n --keep-going")
    p.add_argument("--no-report", action="store_true",
                   help="with --only: do not re-run the reproduction report")
    p.add_argument("--jobs", type=int, default=1,
                   help="run the book's parts (chains of dependent chapters) in up to JOBS "
                        "parallel processes, each kernel limited to one thread")
    args = p.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")

    from gsutils import claims
    from gsutils.profiles import get_profile

    cfg = get_profile(args.profile, device=args.device, seed=args.seed,
                      data_root=args.data_root or None)
    if not args.build_only:
        todo = chapters()
        if args.only:
            known = set(todo)
            bad = [c for c in args.only if c not in known]
            if bad:
                raise SystemExit(f"unknown chapter(s) {bad}; known: {', '.join(todo)}")
            todo = [c for c in todo if c in args.only
                    or (Path(c).name in ALWAYS_RUN and not args.no_report)]
        params = dict(profile=args.profile, device=args.device, seed=args.seed,
                      data_root=args.data_root)
        stamp_dir = cfg.results_dir / "executed"
        lib = library_fingerprint()
        parts = _parts([c for c in todo if Path(c).name not in ALWAYS_RUN])
        if args.jobs > 1 and len(parts) > 1:
            if not _run_parts_in_parallel(parts, args):
                return 1
            todo = [c for c in todo if Path(c).name in ALWAYS_RUN]
        for i, ch in enumerate(todo, 1):
            if Path(ch).name in ALWAYS_RUN:
                claims.collect(cfg.results_dir)
            t0 = time.perf_counter()
            print(f"[{i}/{len(todo)}] {ch}: executing", flush=True)
            try:
                how = execute(ch, params, stamp_dir, lib, force=args.force)
            except Exception as err:  # papermill's error carries the cell traceback
                print(f"[{i}/{len(todo)}] {ch}: FAILED", flush=True)
                print(f"\nchapter {ch} raised:\n{err}", file=sys.stderr)
                return 1
            print(f"[{i}/{len(todo)}] {ch}: {how} ({time.perf_counter() - t0:.0f}s)", flush=True)
        path = claims.collect(cfg.results_dir)
        print(f"claims: {path}")
    if not args.no_build:
        build(strict=args.strict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
