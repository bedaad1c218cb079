"""The library's layers import downward only (DESIGN.md: io -> data, models ->
saliency, metrics -> experiments -> plots -> book).

Every module under ``gsutils/`` is parsed with :mod:`ast`; every import in
it counts, including those inside functions, and relative imports are
resolved against the module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gsutils"

#: what the lower layers must never import: the runners, the figures, the executors
UPPER = ("gsutils.experiments", "gsutils.plots", "gsutils.book", "gsutils.__main__")
#: module prefix -> the module prefixes it must not import
RULES: dict[str, tuple[str, ...]] = {
    "gsutils.io": ("gsutils",),  # the bottom layer imports nothing of ours
    "gsutils.paths": ("gsutils",),
    "gsutils.references": ("gsutils",),  # published numbers and thresholds: plain data
    "gsutils.profiles": ("gsutils.data", "gsutils.models", "gsutils.saliency", "gsutils.metrics") + UPPER,
    "gsutils.data": UPPER,
    "gsutils.models": UPPER,
    "gsutils.saliency": UPPER,
    "gsutils.metrics": UPPER,
    "gsutils.claims": UPPER,
    "gsutils.experiments": ("gsutils.plots", "gsutils.book", "gsutils.__main__"),
}


def _is_plots(name: str) -> bool:
    """``gsutils.plots`` and the per-part figure modules (``gsutils.plots.toy``, ...)."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[0] == "gsutils" and (parts[1] == "plots")


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``gsutils.data.toy`` for ``<package>/data/toy.py``."""
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file (``from a import b`` counts ``a`` and ``a.b``)."""
    name = module_name(path, package_dir)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{alias.name}") for alias in node.names if alias.name != "*"]
    return out


def violations(path: Path, package_dir: Path = PACKAGE) -> list[str]:
    """One line per import of ``path`` that breaks :data:`RULES`."""
    name = module_name(path, package_dir)
    found, lines = [], set()
    for layer, forbidden in RULES.items():
        if not _within(name, layer):
            continue
        for line, mod in imported_modules(path, package_dir):
            plots = _is_plots(mod) and "gsutils.plots" in forbidden
            if line not in lines and (plots or any(_within(mod, f) for f in forbidden)):
                lines.add(line)
                found.append(f"{path.relative_to(package_dir.parent)}:{line} imports {mod} "
                             f"({layer} must not import {', '.join(forbidden)})")
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_layer_imports_downward_only():
    found = [v for path in _modules() for v in violations(path)]
    assert not found, "layer violations:\n" + "\n".join(found)


def test_the_rules_cover_the_lower_layers():
    names = {module_name(p) for p in _modules()}
    for layer in RULES:
        assert any(_within(n, layer) for n in names), f"no module in layer {layer}"


@pytest.mark.parametrize("module, source", [
    ("data/fake.py", "def f():\n    from gsutils.experiments.store import Store\n"),
    ("metrics/fake.py", "import gsutils.plots\n"),
    ("models/fake.py", "from gsutils.plots import toy\n"),
    ("saliency/fake.py", "from ..experiments import segmentation\n"),
    ("claims.py", "def f():\n    import gsutils.experiments\n"),
    ("io.py", "from gsutils.paths import cache_root\n"),
    ("experiments/fake.py", "from gsutils.plots.normgrad import plot_fig7\n"),
])
def test_a_violating_import_is_found(tmp_path, module, source):
    root = tmp_path / "gsutils"
    path = root / module
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    assert violations(path, root), f"{module}: {source!r} was not reported"


def test_allowed_imports_are_not_reported(tmp_path):
    root = tmp_path / "gsutils"
    path = root / "data" / "fake.py"
    path.parent.mkdir(parents=True)
    path.write_text("from gsutils.io import atomic_write_bytes\nfrom . import voc\nimport numpy\n"
                    "def f():\n    from ..metrics import pointing\n")
    assert violations(path, root) == []


#: a module past this many lines does more than one job: split it (issue "one house for the library")
MAX_MODULE_LINES = 500


def test_no_module_of_the_library_is_over_the_line_budget():
    root = Path(__file__).resolve().parents[1] / "gsutils"
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
