"""The import graph of ``gsutils/``, read from the source with :mod:`ast`.

Every import counts: at module level, inside functions and methods, and under
``if TYPE_CHECKING:``. ``from a.b import c`` is an edge to the module
``a.b.c`` when that is a module of the package, else to ``a.b``; relative
imports are resolved against the importing module's package. Importing a
submodule does not add an edge to its parent packages' ``__init__``.

Layers (:data:`LAYERS`) are ranked from the bottom; a module may import the
layers below its own, and its own layer only where the layer allows it. Run
as a script to print the graph's cycles and upward imports::

    .venv/bin/python tests/import_graph.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gsutils"

#: ``(rank, module prefixes, may import its own layer)``, bottom first (DESIGN.md: io -> data, models ->
#: saliency, metrics -> experiments -> plots -> book). A prefix names a module and everything under it;
#: ``"gsutils"`` alone is the package's ``__init__`` (the public entry points), not the whole package.
LAYERS: tuple[tuple[int, tuple[str, ...], bool], ...] = (
    # the bottom: atomic writes, paths, published numbers; each imports nothing of ours
    (0, ("gsutils.io", "gsutils.paths", "gsutils.references"), False),
    # settings and the ledger
    (1, ("gsutils.settings", "gsutils.profiles", "gsutils.claims"), True),
    (2, ("gsutils.data", "gsutils.models"), True),
    # pure functions of tensors; the conventions every command line shares, and the commands' arguments
    (3, ("gsutils.saliency", "gsutils.metrics", "gsutils.cli", "gsutils.cli_commands"), True),
    # what both papers' experiments share (store, epoch loop, executors, shipped networks, provenance),
    # and the ``experiments`` package's ``__init__``
    (4, ("gsutils.experiments", "gsutils.experiments.common"), True),
    # the two papers' runners, results and claims: each imports its own package and common, never the
    # other paper's (:data:`APART`)
    (5, ("gsutils.experiments.grid", "gsutils.experiments.normgrad"), True),
    # figures, the report page's tables, the book's offline assets: nothing in the library imports them
    (6, ("gsutils.plots", "gsutils.report", "gsutils.offline_assets"), True),
    # the entry points: the book's executor, ``python -m gsutils`` and the package's public functions
    (7, ("gsutils.book", "gsutils.__main__", "gsutils"), True),
)

#: prefixes of one layer that must not import one another (each may still import itself): the Grid
#: Saliency and the NormGrad experiments share only what lies below them
APART: tuple[tuple[str, ...], ...] = (
    ("gsutils.experiments.grid", "gsutils.experiments.normgrad"),
)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(name: str, *, strict: bool = False) -> tuple[int, str, bool] | None:
    """``(rank, prefix, siblings allowed)`` of the most specific layer prefix that holds ``name``.

    A name of the package that no prefix holds (``gsutils.explain``) is an
    attribute of the package's ``__init__`` (``None`` when ``strict``); a
    name outside the package is ``None``.
    """
    best = None
    for rank, prefixes, siblings in LAYERS:
        for p in prefixes:
            hit = name == p if p == "gsutils" else _within(name, p)
            if hit and (best is None or len(p) > len(best[1])):
                best = (rank, p, siblings)
    if best is None and not strict and _within(name, "gsutils"):
        return layer_of("gsutils")
    return best


def is_upward(importer: str, imported: str) -> bool:
    """Whether ``importer`` importing ``imported`` goes up the layers (or sideways where that is not
    allowed: within a layer that forbids it, or between two prefixes of one group of :data:`APART`)."""
    la, lb = layer_of(importer), layer_of(imported)
    if la is None or lb is None:  # outside the package
        return False
    if lb[0] == la[0] and la[1] != lb[1] and any(la[1] in g and lb[1] in g for g in APART):
        return True
    return lb[0] > la[0] or (lb[0] == la[0] and not la[2])


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``gsutils.data.toy`` for ``<package>/data/toy.py``."""
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, module, names)`` of every import in a file; ``names`` is empty for ``import module``."""
    name = module_name(path, package_dir)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod, tuple(a.name for a in node.names if a.name != "*")))
    return out


def imported_names(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, name)`` of everything a file imports: ``from a import b`` gives ``a.b``, ``import a`` gives ``a``."""
    out = []
    for line, mod, names in imports_of(path, package_dir):
        out += [(line, f"{mod}.{n}") for n in names] if names else [(line, mod)]
    return out


def modules(package_dir: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by name."""
    return {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}


def import_graph(package_dir: Path = PACKAGE) -> dict[str, dict[str, list[int]]]:
    """``{module: {imported module of the package: [lines]}}`` (self-imports left out).

    An imported name is an edge to the longest module path that holds it:
    ``gsutils.data.toy.ToyConfig`` to ``gsutils.data.toy``.
    """
    mods = modules(package_dir)
    graph: dict[str, dict[str, list[int]]] = {}
    for name, path in mods.items():
        edges: dict[str, set[int]] = {}
        for line, target in imported_names(path, package_dir):
            while target not in mods and "." in target:
                target = target.rpartition(".")[0]
            if target in mods and target != name:
                edges.setdefault(target, set()).add(line)
        graph[name] = {t: sorted(lines) for t, lines in sorted(edges.items())}
    return graph


def strongly_connected(graph: dict[str, dict[str, list[int]]]) -> list[list[str]]:
    """The graph's components of more than one module (every module of one reaches every other)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def cycle_edges(graph: dict[str, dict[str, list[int]]]) -> list[tuple[str, str]]:
    """The edges that lie on some cycle (both ends in one strongly connected component)."""
    out = []
    for comp in strongly_connected(graph):
        members = set(comp)
        out += [(a, b) for a in comp for b in sorted(graph[a]) if b in members]
    return out


def upward_imports(graph: dict[str, dict[str, list[int]]]) -> list[tuple[str, str]]:
    """Edges from a module to a higher layer, or within a layer that does not allow it (:func:`is_upward`)."""
    return [(a, b) for a in sorted(graph) for b in sorted(graph[a]) if is_upward(a, b)]


def without(graph: dict[str, dict[str, list[int]]], edges) -> dict[str, dict[str, list[int]]]:
    """A copy of the graph without ``edges``."""
    drop = set(edges)
    return {a: {b: lines for b, lines in bs.items() if (a, b) not in drop} for a, bs in graph.items()}


def report(graph: dict[str, dict[str, list[int]]]) -> str:
    """The cycles (per component, with the lines of each edge) and the upward imports, as text."""
    lines = []
    for comp in strongly_connected(graph):
        lines.append("cycle: " + ", ".join(comp))
        members = set(comp)
        for a in comp:
            for b in sorted(graph[a]):
                if b in members:
                    lines.append(f"    {a} -> {b} (lines {', '.join(map(str, graph[a][b]))})")
    for a, b in upward_imports(graph):
        lines.append(f"upward: {a} -> {b} (lines {', '.join(map(str, graph[a][b]))})")
    return "\n".join(lines) or "no cycle, no upward import"


if __name__ == "__main__":
    print(report(import_graph(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE)))
