"""Every chapter follows one page skeleton (checked on the jupytext sources).

In order: the title (``# ...``); ``## What is reproduced``; ``## What differs
from the paper``; ``## Parameters``, followed by the ``parameters`` cell and a
statement of the page's quick-profile time; the sections that mirror the
supplement; ``## Claims``, where the page writes its ledger rows; and
``## Summary`` last.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

from gsutils.book import chapters

BOOK = Path(__file__).resolve().parents[1] / "book"
REQUIRED = ("What is reproduced", "What differs from the paper", "Parameters", "Claims", "Summary")
#: pages that are not chapters of a supplement (the ledger's report)
NOT_CHAPTERS = ("reproduction_report",)


def skeleton_problems(source: str) -> list[str]:
    """What a page's jupytext source lacks of the skeleton (empty when it follows it)."""
    nb = jupytext.reads(source, fmt="py:percent")
    problems: list[str] = []
    h1: list[str] = []
    h2: list[tuple[str, int]] = []  # (heading, cell index)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("# "):
                h1.append(line[2:].strip())
            elif line.startswith("## "):
                h2.append((line[3:].strip(), i))
    if len(h1) != 1:
        problems.append(f"expected one '# ' title, found {len(h1)}")
    names = [h for h, _ in h2]
    for req in REQUIRED:
        if names.count(req) != 1:
            problems.append(f"section '## {req}' appears {names.count(req)} times (expected once)")
    if problems:
        return problems
    order = [names.index(req) for req in REQUIRED]
    if order != sorted(order):
        problems.append(f"sections out of order: {[names[k] for k in sorted(order)]}, expected {list(REQUIRED)}")
    if names[-1] != "Summary":
        problems.append(f"'## Summary' must be the last section, found '## {names[-1]}' after it")
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if len(params) != 1:
        problems.append(f"expected one cell tagged 'parameters', found {len(params)}")
        return problems
    before = [h for h, i in h2 if i < params[0]]
    if not before or before[-1] != "Parameters":
        problems.append("the 'parameters' cell must sit in the '## Parameters' section")
    p_cell = next(i for h, i in h2 if h == "Parameters")
    timed = any(c.cell_type == "code" and "perf_counter()" in c.source for c in nb.cells)
    says_printed = re.search(r"time[^.]*printed", nb.cells[p_cell].source, flags=re.S)
    if not (re.search(r"quick profile.*\d", nb.cells[p_cell].source, flags=re.S) or (says_printed and timed)):
        problems.append("the '## Parameters' section must state the page's measured quick-profile time, "
                        "or say that the page prints the time it took (and a code cell must measure it)")
    between = names[names.index("Parameters") + 1:names.index("Claims")]
    if not between:
        problems.append("no section mirrors the supplement between '## Parameters' and '## Claims'")
    c_cell = next(i for h, i in h2 if h == "Claims")
    s_cell = next(i for h, i in h2 if h == "Summary")
    if not any("ledger" in c.source for c in nb.cells[c_cell:s_cell] if c.cell_type == "code"):
        problems.append("the '## Claims' section writes no ledger row")
    return problems


def _chapter_sources() -> list[Path]:
    return [BOOK / f"{ch}.py" for ch in chapters() if Path(ch).name not in NOT_CHAPTERS]


def test_every_chapter_is_listed():
    assert len(_chapter_sources()) >= 7


@pytest.mark.parametrize("path", _chapter_sources(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_chapter_follows_the_skeleton(path):
    problems = skeleton_problems(path.read_text())
    assert not problems, f"{path.relative_to(BOOK)}: " + "; ".join(problems)


def ledger_ids(source: str) -> list[str]:
    """The chapter ids a page's source opens: ``open_chapter("...")`` (or a ``Ledger(...)`` of its own)."""
    return re.findall(r"(?:open_chapter|Ledger)\(\s*(?:chapter=)?[\"']([^\"']+)[\"']", source)


@pytest.mark.parametrize("path", _chapter_sources(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_chapter_records_its_claims_under_its_own_id(path):
    # a copied page that kept its template's id would overwrite another chapter's ledger rows
    own = f"{path.parent.name}/{path.stem}"
    assert ledger_ids(path.read_text()) == [own]


@pytest.mark.parametrize("path", _chapter_sources(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_chapter_opens_with_open_chapter(path):
    # one opening for every page: the profile and the ledger from gsutils.claims.open_chapter
    source = path.read_text()
    assert "open_chapter(" in source and "get_profile(" not in source and "Ledger(" not in source, \
        f"{path.relative_to(BOOK)}: open the chapter with gsutils.claims.open_chapter(...)"


def test_the_ledger_id_check_sees_a_wrong_id():
    assert ledger_ids('ledger = Ledger(chapter="normgrad/01_pointing_game", profile=cfg)') == ["normgrad/01_pointing_game"]
    assert ledger_ids("a = Ledger('x/y', profile=cfg)\nb = Ledger(chapter='x/z', profile=cfg)") == ["x/y", "x/z"]
    assert ledger_ids('cfg, ledger = open_chapter("x/y",\n    profile=profile)') == ["x/y"]


def test_no_page_writes_ledger_rows_itself():
    # the claims and their criteria live in the library (a record_* function per chapter)
    pages = [p for p in BOOK.rglob("*") if p.is_file() and p.suffix in (".py", ".md")
             and "_build" not in p.parts]
    found = [str(p.relative_to(BOOK)) for p in pages if "ledger.check(" in p.read_text()]
    assert not found, f"pages calling ledger.check directly (move the claims into a record_* function): {found}"


GOOD = '''# %% [markdown]
# # Title
#
# ## What is reproduced
#
# x
#
# ## What differs from the paper
#
# y

# %% [markdown]
# ## Parameters
#
# At the quick profile this page runs in about 5 s.

# %% tags=["parameters"]
profile = "quick"

# %% [markdown]
# ## Fig. S1

# %%
plot()

# %% [markdown]
# ## Claims

# %%
record_claims(ledger)

# %% [markdown]
# ## Summary
'''


def test_the_checker_accepts_the_skeleton_and_names_each_defect():
    assert skeleton_problems(GOOD) == []
    assert any("What differs" in p for p in skeleton_problems(GOOD.replace("## What differs from the paper", "## Notes")))
    assert any("last section" in p for p in skeleton_problems(GOOD + "\n# %% [markdown]\n# ## Extra\n"))
    assert any("quick-profile time" in p for p in skeleton_problems(GOOD.replace("about 5 s", "a while")))
    moved = GOOD.replace('# %% tags=["parameters"]\nprofile = "quick"\n', "").replace(
        "# %%\nplot()", '# %% tags=["parameters"]\nprofile = "quick"\n\n# %%\nplot()')
    assert any("'parameters' cell" in p for p in skeleton_problems(moved))
    assert any("no ledger row" in p for p in skeleton_problems(GOOD.replace("record_claims(ledger)", "pass")))
    assert any("mirrors the supplement" in p for p in skeleton_problems(
        GOOD.replace("# %% [markdown]\n# ## Fig. S1\n\n# %%\nplot()\n\n", "")))


def include_problems(page: Path) -> list[str]:
    """``{literalinclude}`` blocks of ``page`` whose file, ``:pyobject:`` or markers do not exist."""
    import ast

    problems = []
    lines = [line[2:] if line.startswith("# ") else line for line in page.read_text().splitlines()]
    for i, line in enumerate(lines):
        m = re.match(r"```\{literalinclude\}\s+(\S+)", line)
        if not m:
            continue
        target = (page.parent / m.group(1)).resolve()
        if not target.is_file():
            problems.append(f"{page.name}: included file {m.group(1)} does not exist")
            continue
        text = target.read_text()
        for opt in lines[i + 1:i + 8]:
            if opt.startswith("```"):
                break
            key, _, value = opt.partition(":")[2].partition(":")
            value = value.strip()
            if key == "pyobject":
                names = {n.name for n in ast.parse(text).body
                         if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
                if value not in names:
                    problems.append(f"{page.name}: {value} is not defined in {m.group(1)}")
            elif key in ("start-after", "end-before") and value not in text:
                problems.append(f"{page.name}: marker {value!r} is not in {m.group(1)}")
    return problems


def test_included_library_code_exists():
    problems = [p for path in _chapter_sources() for p in include_problems(path)]
    assert not problems, "; ".join(problems)


def test_the_include_check_finds_a_missing_object(tmp_path):
    (tmp_path / "lib.py").write_text("def here():\n    pass\n# mark-start\n")
    page = tmp_path / "page.py"
    page.write_text("# ```{literalinclude} lib.py\n# :pyobject: gone\n# ```\n"
                    "# ```{literalinclude} lib.py\n# :start-after: mark-start\n# :end-before: mark-end\n# ```\n"
                    "# ```{literalinclude} nowhere.py\n# ```\n")
    problems = include_problems(page)
    assert len(problems) == 3 and "gone" in problems[0] and "mark-end" in problems[1] and "nowhere" in problems[2]
