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
notebooks with execution off. The kernels run in the chapter's folder, so
``--data-root`` and the path variables ``GSUTILS_RESULTS`` and
``GSUTILS_CACHE`` are first made absolute against the folder the command
runs in.

A chapter is not re-executed when its source, its parameters and the library
(every ``gsutils/**/*.py``) are unchanged since its last successful run; the
stamp lives in ``results/<profile>/executed/``. The reproduction report is
always re-executed, since it reads the claims every other chapter wrote. A
chapter that raises stops the run with its traceback and a non-zero exit.

Profiles: every executed notebook records its parameters and stamp in its
metadata (``metadata.gsutils``) and opens with a note, under its title, that
names the profile it shows (so does every page of the built book). A copy of
each executed notebook is kept per profile in ``results/<profile>/executed/``:
switching profiles restores that copy (``restored``) when its stamp still
matches, and re-executes the chapter otherwise; a notebook of another profile
is never reported as cached. A book built from notebooks of several profiles
says so with a warning.
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

from gsutils.paths import REPO_ROOT, absolute_path_environment

BOOK = REPO_ROOT / "book"
#: chapters that read what the others wrote: always executed, and last
ALWAYS_RUN = ("reproduction_report",)


def chapters(book: Path = BOOK) -> list[str]:
    """Chapter ids (``part/NN_slug``) in table-of-contents order."""
    import yaml

    from gsutils.report import toc_files

    toc = yaml.safe_load((book / "_toc.yml").read_text())
    return [f for f in toc_files(toc) if (book / f"{f}.py").exists()]


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


#: key of the executor's record in an executed notebook's metadata
META_KEY = "gsutils"
#: tag of the injected cell that names the profile
PROFILE_TAG = "gsutils-profile"


def notebook_record(path: Path) -> dict | None:
    """``metadata.gsutils`` of an executed notebook (profile, parameters, stamp), or ``None``.

    ``None`` for a missing or unreadable notebook, or one written before the
    executor recorded it.
    """
    try:
        meta = json.loads(Path(path).read_text()).get("metadata", {})
    except (OSError, ValueError):
        return None
    rec = meta.get(META_KEY)
    return rec if isinstance(rec, dict) else None


def profile_note(params: dict) -> str:
    """The Markdown admonition that names the profile a page shows."""
    profile = params.get("profile", "?")
    device = str(params.get("device", "auto"))
    if device == "auto":  # say what "auto" was when the page ran
        try:
            from gsutils.profiles import resolve_device

            device = f"auto, here {resolve_device('auto')}"
        except Exception:  # pragma: no cover - torch missing: keep "auto"
            pass
    bits = [f"device `{device}`", f"seed {params.get('seed', 0)}"]
    if params.get("data_root"):
        bits.append(f"data root `{params['data_root']}`")
    return ("```{note}\n"
            f"This page shows the results of the **{profile}** profile ({', '.join(bits)}). "
            "Other profiles give other sizes and numbers; see the README's *Profiles*.\n"
            "```")


def inject_profile(nb, params: dict, stamp: str):
    """Record ``params`` and ``stamp`` in ``nb``'s metadata and add the profile note.

    The note goes right under the page title: when the first cell is Markdown
    starting with a ``# `` heading, that heading is split off into its own
    cell and the note follows it; otherwise the note is the first cell. An
    earlier note is replaced, not repeated. Returns ``nb`` (changed in place).
    """
    import nbformat

    nb.cells = [c for c in nb.cells if PROFILE_TAG not in c.get("metadata", {}).get("tags", [])]
    note = nbformat.v4.new_markdown_cell(profile_note(params), metadata={"tags": [PROFILE_TAG]})
    at = 0
    if nb.cells and nb.cells[0].cell_type == "markdown":
        first = nb.cells[0]
        head, _, rest = first.source.partition("\n")
        if head.startswith("# "):
            first.source = head
            at = 1
            if rest.strip():
                nb.cells.insert(1, nbformat.v4.new_markdown_cell(rest.strip("\n")))
    nb.cells.insert(at, note)
    nb.metadata[META_KEY] = {"profile": params.get("profile"), "params": dict(params), "stamp": stamp}
    return nb


#: Jupyter Book's cell tags that decide how a cell is shown
_SHOW_TAGS = ("remove-cell", "remove-input", "remove-output", "hide-cell", "hide-input", "hide-output")


def present_cells(nb):
    """Tag ``nb``'s cells for reading: the page shows prose, outputs and figures; code is one click away.

    The ``parameters`` cell and papermill's ``injected-parameters`` cell are removed from the
    page (the profile note says what ran); every other code cell gets ``hide-input`` unless
    the page gave it a display tag of its own (``show-input`` keeps the code visible, for a
    cell whose code the page explains). Returns ``nb`` (changed in place).
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = list(cell.get("metadata", {}).get("tags", []))
        if "parameters" in tags or "injected-parameters" in tags:
            add = "remove-cell"
        elif "show-input" in tags or any(t in tags for t in _SHOW_TAGS):
            continue
        else:
            add = "hide-input"
        if add not in tags:
            cell.setdefault("metadata", {})["tags"] = tags + [add]
    return nb


def _atomic_copy(src: Path, dst: Path) -> None:
    from gsutils.io import atomic_write_bytes

    atomic_write_bytes(dst, src.read_bytes())


def execute(chapter: str, params: dict, stamp_dir: Path, lib: str, force: bool = False) -> str:
    """Execute one chapter; returns ``"ran"``, ``"cached"`` or ``"restored"``. Raises on failure.

    ``"cached"``: ``book/<chapter>.ipynb`` already holds this stamp (same
    profile, parameters, source and library). ``"restored"``: it held another
    profile's run, and this profile's copy in ``stamp_dir`` still matches, so
    that copy is put back. Otherwise the chapter is executed, and the result
    written both to the book and to ``stamp_dir``. The kernel runs in the
    chapter's folder: paths in ``params`` must be absolute, and relative path
    variables of the environment are made absolute (against the current
    folder) first.
    """
    import jupytext
    import nbformat
    import papermill

    src = BOOK / f"{chapter}.py"
    out = src.with_suffix(".ipynb")
    stamp_file = stamp_dir / (chapter.replace("/", "__") + ".stamp")
    copy = stamp_dir / (chapter.replace("/", "__") + ".ipynb")
    absolute_path_environment()  # the kernel runs in the chapter's folder
    stamp = _stamp(chapter, params, lib)
    always = Path(chapter).name in ALWAYS_RUN
    if not force and not always:
        if (notebook_record(out) or {}).get("stamp") == stamp:
            if not copy.exists():
                _atomic_copy(out, copy)
            return "cached"
        if (notebook_record(copy) or {}).get("stamp") == stamp:
            _atomic_copy(copy, out)
            return "restored"
    nb = jupytext.read(src)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ValueError(f"{src}: no cell tagged 'parameters'; add `# %% tags=[\"parameters\"]`")
    inject_profile(nb, params, stamp)
    tmp_dir = stamp_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp_in = tmp_dir / (out.stem + ".in.ipynb")
    tmp_out = tmp_dir / (out.stem + ".out.ipynb")
    nbformat.write(nb, tmp_in)
    papermill.execute_notebook(
        str(tmp_in), str(tmp_out), parameters=params, cwd=str(src.parent),
        kernel_name="python3", progress_bar=False, log_output=False,
    )
    nbformat.write(present_cells(nbformat.read(tmp_out, as_version=4)), tmp_out)
    # the executed notebook appears only once complete; this profile keeps its own copy
    _atomic_copy(tmp_out, copy)
    os.replace(tmp_out, out)
    tmp_in.unlink(missing_ok=True)
    stamp_dir.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(stamp)
    return "ran"


def book_profiles(chs: list[str] | None = None, book: Path | None = None) -> dict[str, str | None]:
    """``{chapter: profile}`` of the executed notebooks (``None``: missing or not recorded)."""
    book = BOOK if book is None else book
    chs = chapters(book) if chs is None else chs
    return {c: (notebook_record(book / f"{c}.ipynb") or {}).get("profile") for c in chs}


def profile_summary(profiles: dict[str, str | None]) -> tuple[str, bool]:
    """A one-line account of which profile(s) the book shows, and whether it is mixed."""
    shown = sorted({p for p in profiles.values() if p})
    unknown = [c for c, p in profiles.items() if not p]
    if len(shown) == 1 and not unknown:
        return f"the book shows the {shown[0]!r} profile", False
    parts = [f"{p!r}: {', '.join(c for c, q in profiles.items() if q == p)}" for p in shown]
    if unknown:
        parts.append(f"not executed or of unknown profile: {', '.join(unknown)}")
    return "the book mixes profiles (each page says which it shows) -- " + "; ".join(parts), True


#: chapters that read nothing their part's earlier chapters computed: a chain of their own,
#: started after the parts. Grid Saliency's sweeps (S1.6) and backbone comparison (S1.5)
#: restore the networks they explain and compute their own maps; the street scenes and
#: COCO train their own networks on their own data.
OWN_CHAIN: dict[str, str] = {"grid_saliency/05_backbones": "backbones", "grid_saliency/06_parameters": "sweeps",
                             "grid_saliency/07_cityscapes": "scenes", "grid_saliency/08_coco": "scenes"}
#: the order the own chains start in: the longest first, so that two lanes end close together
OWN_CHAIN_ORDER: tuple[str, ...] = ("sweeps", "backbones", "scenes")


def _parts(chs: list[str]) -> list[list[str]]:
    """Chapters grouped by part (``grid_saliency/...``): each part is a chain whose
    chapters may read what earlier ones computed; different parts are independent.
    The chains of :data:`OWN_CHAIN` come after the parts, in :data:`OWN_CHAIN_ORDER`."""
    groups: dict[str, list[str]] = {}
    for c in chs:
        if c not in OWN_CHAIN:
            groups.setdefault(c.split("/")[0], []).append(c)
    own = sorted((c for c in chs if c in OWN_CHAIN), key=lambda c: OWN_CHAIN_ORDER.index(OWN_CHAIN[c]))
    for c in own:
        groups.setdefault(f"{c.split('/')[0]}/{OWN_CHAIN[c]}", []).append(c)
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
        name = chain[0].split("/")[0] + (f"/{OWN_CHAIN[chain[0]]}" if chain[0] in OWN_CHAIN else "")
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
    line, mixed = profile_summary(book_profiles())
    print(("warning: " if mixed else "") + line, file=sys.stderr if mixed else sys.stdout, flush=True)
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
    from gsutils.cli import fail, profile_or_exit
    from gsutils.cli_commands import command_parser

    p = command_parser("book", prog="python -m gsutils.book")
    args = p.parse_args(argv)
    if args.jobs < 1:
        fail(p, f"--jobs must be at least 1, got {args.jobs}")

    from gsutils import claims

    # relative paths (--data-root, $GSUTILS_RESULTS, $GSUTILS_CACHE) are made absolute here: the
    # kernels run in book/<part>/ and the part processes of --jobs in the repository
    cfg = profile_or_exit(p, args.profile, device=args.device, seed=args.seed,
                          data_root=args.data_root or None)
    args.data_root = "" if cfg.data_root is None else str(cfg.data_root)
    if not args.build_only:
        todo = chapters()
        if args.only:
            known = set(todo)
            bad = [c for c in args.only if c not in known]
            if bad:
                fail(p, f"unknown chapter(s) {bad}; known: {', '.join(todo)}")
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
