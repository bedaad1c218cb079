"""The library's layers import downward only, and no import goes round in a circle.

DESIGN.md: io -> data, models -> saliency, metrics -> experiments -> plots ->
book; the ranks are :data:`import_graph.LAYERS`. Every module under
``gsutils/`` is parsed with :mod:`ast` (:mod:`import_graph`, also a script
that prints the graph's cycles and upward imports); every import in it
counts, including those inside functions and under ``TYPE_CHECKING``, and
relative imports are resolved against the module's package.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import (
    LAYERS,
    PACKAGE,
    cycle_edges,
    import_graph,
    imported_names,
    is_upward,
    layer_of,
    module_name,
    modules,
    strongly_connected,
    upward_imports,
    without,
)

# ------------------------------------------------------------------------------ allowlists
# An import that breaks the layering or closes a cycle may be listed here, named after what has to move,
# while the change that removes it is under way (issue 25 emptied both). A test fails on an entry whose
# edge is gone or no longer closes a cycle, so the lists only shrink.

#: cycle -> the edges that close it (with them left out, the graph has no cycle)
KNOWN_CYCLES: dict[str, tuple[tuple[str, str], ...]] = {}

#: upward import -> the edges
KNOWN_UPWARD: dict[str, tuple[tuple[str, str], ...]] = {}


def _known(table: dict[str, tuple[tuple[str, str], ...]]) -> set[tuple[str, str]]:
    return {edge for edges in table.values() for edge in edges}


def violations(path: Path, package_dir: Path = PACKAGE) -> list[str]:
    """One line per import of ``path`` that goes up the layers (or sideways where its layer forbids it)."""
    name = module_name(path, package_dir)
    root = package_dir.name
    found, lines = [], set()
    for line, target in imported_names(path, package_dir):
        if (target == root or target.startswith(root + ".")) and line not in lines and is_upward(name, target):
            lines.add(line)
            found.append(f"{path.relative_to(package_dir.parent)}:{line} imports {target} "
                         f"(layer {layer_of(name)[0]} imports layer {layer_of(target)[0]})")
    return found


def _report(graph, edges) -> str:
    return "\n".join(f"{a} -> {b} (lines {', '.join(map(str, graph[a][b]))})" for a, b in edges)


# ------------------------------------------------------------------------------ the library


def test_every_module_has_a_layer():
    missing = [name for name in modules() if layer_of(name, strict=True) is None]
    assert not missing, f"modules in no layer of import_graph.LAYERS: {missing}"


def test_every_layer_imports_downward_only():
    graph = import_graph()
    found = [e for e in upward_imports(graph) if e not in _known(KNOWN_UPWARD)]
    assert not found, "upward imports:\n" + _report(graph, found)


def test_no_import_goes_round_in_a_circle():
    graph = import_graph()
    left = strongly_connected(without(graph, _known(KNOWN_CYCLES)))
    assert not left, "import cycles:\n" + "\n".join(
        "cycle: " + ", ".join(c) + "\n" + _report(graph, cycle_edges({a: graph[a] for a in c})) for c in left)


def test_the_allowlists_name_only_what_is_still_there():
    graph = import_graph()
    on_cycles, upward = set(cycle_edges(graph)), set(upward_imports(graph))
    stale = [f"{name}: {a} -> {b}" for table, present in ((KNOWN_CYCLES, on_cycles), (KNOWN_UPWARD, upward))
             for name, edges in table.items() for a, b in edges if (a, b) not in present]
    assert not stale, "remove these entries, their imports are gone or no longer a problem:\n" + "\n".join(stale)


def test_the_layers_cover_the_library():
    names = set(modules())
    for _, prefixes, _ in LAYERS:
        for prefix in prefixes:
            assert any(layer_of(n, strict=True)[1] == prefix for n in names if layer_of(n, strict=True)), \
                f"no module in layer {prefix}"


# ------------------------------------------------------------------------------ the checker itself


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "gsutils"
    for rel, source in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


@pytest.mark.parametrize("module, source", [
    ("data/fake.py", "def f():\n    from gsutils.experiments.common.store import Store\n"),
    ("data/fake.py", "def f():\n    from ..metrics import pointing\n"),  # data sits below metrics
    ("metrics/fake.py", "import gsutils.plots\n"),
    ("models/fake.py", "from gsutils.plots import toy\n"),
    ("saliency/fake.py", "from ..experiments.grid import segmentation\n"),
    ("claims.py", "def f():\n    import gsutils.experiments\n"),
    ("io.py", "from gsutils.paths import cache_root\n"),  # the bottom imports nothing of ours
    ("references.py", "from gsutils import io\n"),
    ("cli.py", "def f():\n    from gsutils.experiments.common.executor import make_cluster\n"),
    ("experiments/fake.py", "from gsutils.plots.normgrad import plot_fig7\n"),
    ("experiments/fake.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gsutils import book\n"),
    # the two papers' experiments never import each other; common imports neither
    ("experiments/grid/fake.py", "from gsutils.experiments.normgrad.pointing_runs import CENTER\n"),
    ("experiments/grid/fake.py", "def f():\n    from ..normgrad import captioning\n"),
    ("experiments/normgrad/fake.py", "from gsutils.experiments.grid import segmentation\n"),
    ("experiments/normgrad/fake.py", "def f():\n    import gsutils.experiments.grid.seg_runs\n"),
    ("experiments/common/fake.py", "from gsutils.experiments.grid.seg_runs import SegRun\n"),
    ("experiments/common/fake.py", "def f():\n    from gsutils.experiments.normgrad import classifier_training\n"),
    ("experiments/common/fake.py", "from .. import grid\n"),
    ("experiments/fake.py", "from gsutils.experiments.normgrad import captioning\n"),  # the package's __init__
])
def test_a_violating_import_is_found(tmp_path, module, source):
    root = _package(tmp_path, {module: source})
    assert violations(root / module, root), f"{module}: {source!r} was not reported"


def test_allowed_imports_are_not_reported(tmp_path):
    root = _package(tmp_path, {"data/fake.py": "from gsutils.io import atomic_write_bytes\nfrom . import voc\n"
                                               "import numpy\ndef f():\n    from ..models import classifiers\n",
                               "book.py": "from gsutils import claims\nfrom gsutils.plots import toy\n",
                               "experiments/grid/fake.py": "from gsutils.experiments.common.store import Store\n"
                                                           "from . import seg_runs\n"
                                                           "def f():\n    from ..common import executor\n",
                               "experiments/normgrad/fake.py": "from gsutils.experiments.normgrad import captioning\n"
                                                               "from gsutils.experiments.common import training\n",
                               "experiments/common/fake.py": "from gsutils.experiments.common.shipped import machine\n"
                                                             "from gsutils.saliency import grid\n",
                               "plots/fake.py": "from gsutils.experiments.grid import sweeps\n"
                                                "from gsutils.experiments.normgrad import meta_saliency\n"})
    for module in ("data/fake.py", "book.py", "experiments/grid/fake.py", "experiments/normgrad/fake.py",
                   "experiments/common/fake.py", "plots/fake.py"):
        assert violations(root / module, root) == [], module


def test_experiments_modules_live_in_a_subpackage():
    """``gsutils/experiments/`` holds the three subpackages that show the book, and no module of its own."""
    loose = [n for n in modules() if n.startswith("gsutils.experiments.")
             and n.split(".")[2] not in ("common", "grid", "normgrad")]
    assert not loose, f"modules of gsutils.experiments outside common/, grid/ and normgrad/: {loose}"


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    root = _package(tmp_path, {
        "experiments/a.py": "from gsutils.experiments.b import g\n",
        "experiments/b.py": "def g():\n    from gsutils.experiments import a\n",
        "experiments/c.py": "from gsutils.experiments import a, b\n",
        "data/toy.py": "from gsutils.data.render import draw\n",
        "data/render.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .toy import Params\n",
    })
    graph = import_graph(root)
    assert graph["gsutils.experiments.c"] == {"gsutils.experiments.a": [1], "gsutils.experiments.b": [1]}
    assert strongly_connected(graph) == [["gsutils.data.render", "gsutils.data.toy"],
                                         ["gsutils.experiments.a", "gsutils.experiments.b"]]
    assert ("gsutils.experiments.b", "gsutils.experiments.a") in cycle_edges(graph)
    assert ("gsutils.experiments.c", "gsutils.experiments.a") not in cycle_edges(graph)
    assert strongly_connected(without(graph, [("gsutils.experiments.b", "gsutils.experiments.a"),
                                              ("gsutils.data.render", "gsutils.data.toy")])) == []


#: a module past this many lines does more than one job: split it (issue "one house for the library")
MAX_MODULE_LINES = 500


def test_no_module_of_the_library_is_over_the_line_budget():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
