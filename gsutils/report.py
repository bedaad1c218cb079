"""The report page: the reproduction ledger, read at a glance.

The page (``book/reproduction_report.py``) shows, from the ledger alone:

* :meth:`Report.intro`: three sentences, one per paper and one for the
  gates, saying how many claims reproduced, how many did not (and in which
  sections) and how many were not measured, and why;
* :meth:`Report.summary`: one row per chapter, in the book's order, with its
  claims counted by verdict and its gates passed and failed apart; each
  chapter's name links to its page;
* :meth:`Report.claims`: per chapter, a compact table of its claims (section,
  claim, the paper's number, ours, verdict); the criterion and the note fold
  away in a ``<details>`` element, every row links to its chapter's page;
* :meth:`Report.gates`: this project's gates in a table of their own, a gate
  that several chapters record (the same network, the same number) once, with
  the chapters that record it.

The papers' claims and this project's gates are counted apart
(:mod:`gsutils.claims`): a gate that fails means a network of ours was not
good enough to judge claims with, not that a paper's claim failed. Tables use
a fixed layout and wrap their text so that they fit the content column (the
book's ``_theme/report.css`` styles them; the layout itself is inline, so a
notebook shows them the same). Every HTML object also has a plain-text form
(its ``repr``), which nbval compares.
"""

from __future__ import annotations

import html
import json
import posixpath
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsutils.claims import (GATE_OUTCOME, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Claim, _missing, fmt_number,
                            fmt_value, gates, paper_claims)
from gsutils.paths import REPO_ROOT

BOOK = REPO_ROOT / "book"
#: the report page's path in the book without its suffix; links to the chapters are relative to it
REPORT_PAGE = "reproduction_report"
#: each paper as a heading, and as the sentences of the introduction name it
PAPERS = {"grid_saliency": "Grid Saliency (Hoyer et al., 2019)",
          "normgrad": "There and Back Again (Rebuffi et al., 2020)"}
_PAPER_IN_TEXT = {"grid_saliency": "the Grid Saliency supplement",
                  "normgrad": "the There and Back Again (NormGrad) supplement"}
#: why a claim was not measured
GATE_FAILED = "a gate failed"
AT_PROFILE = "not judged at this profile"
#: a verdict's background (a failed gate is marked apart from a claim that was not reproduced)
_COLOUR = {REPRODUCED: "#e6f4ea", NOT_REPRODUCED: "#fce8e6", NOT_MEASURED: "#f1f3f4"}
_GATE_COLOUR = {REPRODUCED: "#e6f4ea", NOT_REPRODUCED: "#fdf0d5", NOT_MEASURED: "#f1f3f4"}
_SHORT = {REPRODUCED: "reproduced", NOT_REPRODUCED: "not reproduced", NOT_MEASURED: "not measured"}
_CSS_CLASS = {REPRODUCED: "reproduced", NOT_REPRODUCED: "not-reproduced", NOT_MEASURED: "not-measured"}
#: the layout that keeps a table inside the content column (also set by report.css)
_TABLE_STYLE = "table-layout:fixed;width:100%;max-width:100%;border-collapse:collapse"
_CELL_STYLE = "overflow-wrap:anywhere;word-wrap:break-word;vertical-align:top"
#: a count and its heading: centred, the heading's words hyphenated rather than broken anywhere
_NUM_STYLE = "overflow-wrap:normal;hyphens:auto;text-align:center;vertical-align:top"
_NUM_HEAD = "overflow-wrap:normal;hyphens:auto;text-align:center;vertical-align:bottom"
#: a column heading: short words, hyphenated rather than broken anywhere
_HEAD = "overflow-wrap:normal;hyphens:auto;vertical-align:bottom"


class _HTML:
    """A value displayed as HTML in a notebook (and as plain text elsewhere)."""

    def __init__(self, markup: str, text: str) -> None:
        self.markup, self.text = markup, text

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text


# ------------------------------------------------------------------------------------------ the chapters


@dataclass(frozen=True)
class Chapter:
    """A page of the book: its id (path under ``book/`` without suffix) and title."""

    id: str
    title: str
    #: whether the book has the page (listed in ``_toc.yml``); only then is it linked
    in_book: bool = True


def _title(book: Path, chapter: str) -> str:
    """The ``# `` title of a chapter's source (jupytext ``.py`` or Markdown), else its id."""
    for suffix, prefix in ((".py", "# # "), (".md", "# ")):
        src = book / f"{chapter}{suffix}"
        if src.exists():
            for line in src.read_text().splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
    return chapter


def toc_files(toc: dict) -> list[str]:
    """The ``file`` entries of a ``_toc.yml`` (parsed), in book order, the root page left out."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("file"):
                out.append(str(node["file"]))
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in toc.items() if k != "root"})
    return out


def book_chapters(book: Path = BOOK) -> list[Chapter]:
    """The book's chapters in ``_toc.yml`` order with their titles (the report page left out)."""
    import yaml

    files = toc_files(yaml.safe_load((book / "_toc.yml").read_text()))
    return [Chapter(f, _title(book, f)) for f in files if f != REPORT_PAGE]


def page_url(chapter: str, page: str = REPORT_PAGE) -> str:
    """The relative link from the page ``page`` to the page of ``chapter`` (both ids, no suffix)."""
    return posixpath.relpath(f"{chapter}.html", posixpath.dirname(page) or ".")


def chapter_list(rows: Sequence[Claim], chapters: Sequence[Chapter]) -> list[Chapter]:
    """``chapters`` followed by any chapter that has rows but no page (sorted, not linked)."""
    known = {c.id for c in chapters}
    extra = sorted({r.chapter for r in rows} - known)
    return list(chapters) + [Chapter(c, c, in_book=False) for c in extra]


# -------------------------------------------------------------------------------------- counting rows


def chapter_counts(rows: Sequence[Claim]) -> dict[str, Counter]:
    """Per chapter, its rows counted by outcome (``"reproduced"``, ..., ``"gate passed"``, ...)."""
    out: dict[str, Counter] = {}
    for r in rows:
        out.setdefault(r.chapter, Counter())[r.outcome] += 1
    return out


def not_measured_reason(row: Claim, rows: Sequence[Claim]) -> str:
    """Why a claim reads "not measured": :data:`GATE_FAILED` when a gate of its chapter did not
    pass (its claims are then not judged), else :data:`AT_PROFILE`."""
    blocked = any(g.chapter == row.chapter and g.verdict != REPRODUCED for g in gates(list(rows)))
    return GATE_FAILED if blocked else AT_PROFILE


@dataclass(frozen=True)
class GateGroup:
    """Identical gate rows (the same gate, the same measurement) recorded by several chapters."""

    rows: tuple[Claim, ...]

    @property
    def first(self) -> Claim:
        return self.rows[0]

    @property
    def sections(self) -> list[str]:
        return list(dict.fromkeys(r.section.removesuffix("(gate)").strip() for r in self.rows))


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def group_gates(rows: Sequence[Claim], chapters: Sequence[Chapter] = ()) -> list[GateGroup]:
    """The gate rows, identical ones (all but section and chapter equal) grouped, in book order."""
    order = {c.id: i for i, c in enumerate(chapters)}
    ranked = sorted(gates(list(rows)), key=lambda r: (order.get(r.chapter, len(order)), r.chapter, r.section))
    groups: dict[tuple, list[Claim]] = {}
    for r in ranked:
        key = (r.paper, r.id, r.claim, r.criterion, _key(r.reported), _key(r.measured), r.verdict, r.note)
        groups.setdefault(key, []).append(r)
    return [GateGroup(tuple(g)) for g in groups.values()]


# ------------------------------------------------------------------------------------------- values


def _value_cell(lines: list[str], empty: str, why: str) -> str:
    if not lines:
        return f'<span class="gs-missing" title="{html.escape(why)}">{html.escape(empty)}</span>'
    return "<br>".join(html.escape(line) for line in lines)


def _reported(r: Claim) -> str:
    return _value_cell(fmt_value(r.reported), "—", "the paper states no number for this claim")


def _measured(r: Claim, rows: Sequence[Claim]) -> str:
    if r.verdict == NOT_MEASURED and _missing(r.measured):
        reason = "the gate was not measured at this profile" if r.is_gate else not_measured_reason(r, rows)
        return _value_cell([], "—", f"not measured: {reason}")
    return _value_cell(fmt_value(r.measured), "—", "nothing was measured for this row")


def _text(v: Any, missing: str = "—") -> str:
    return "; ".join(fmt_value(v)) or missing


# ---------------------------------------------------------------------------------------- HTML pieces


def _link(chapter: Chapter, text: str, page: str) -> str:
    if not chapter.in_book:
        return html.escape(text)
    return f'<a href="{html.escape(page_url(chapter.id, page))}">{html.escape(text)}</a>'


def _verdict_cell(r: Claim, rows: Sequence[Claim]) -> str:
    colour = (_GATE_COLOUR if r.is_gate else _COLOUR)[r.verdict]
    label = GATE_OUTCOME[r.verdict] if r.is_gate else _SHORT[r.verdict]
    why = ""
    if r.verdict == NOT_MEASURED and not r.is_gate:
        short = "gate failed" if not_measured_reason(r, rows) == GATE_FAILED else "at this profile"
        why = f'<small title="{html.escape(not_measured_reason(r, rows))}">({short})</small>'
    css = f"gs-verdict verdict-{_CSS_CLASS[r.verdict]}"
    return (f'<td class="{css}" style="{_CELL_STYLE};background:{colour};color:#202124">'
            f"{html.escape(label)}{why}</td>")


def _details(r: Claim) -> str:
    """The criterion and the note, folded away under the claim."""
    parts = [f"<p><b>criterion:</b> {html.escape(r.criterion)}</p>"] if r.criterion.strip() else []
    if r.note.strip():
        parts.append(f"<p><b>note:</b> {html.escape(r.note)}</p>")
    if not parts:
        return ""
    label = "criterion and note" if len(parts) == 2 else ("criterion" if r.criterion.strip() else "note")
    return f'<details class="gs-details"><summary>{label}</summary>{"".join(parts)}</details>'


def _table(widths: Sequence[int], head: str, body: Sequence[str], css: str, caption: str = "") -> str:
    cols = "".join(f'<col style="width:{w}%">' for w in widths)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (f'<table class="gs-table {css}" style="{_TABLE_STYLE}">{cap}<colgroup>{cols}</colgroup>'
            f'<thead>{head}</thead><tbody>{"".join(body)}</tbody></table>')


def _th(text: str, extra: str = "", style: str = _CELL_STYLE) -> str:
    return f'<th style="{style}"{extra}>{html.escape(text)}</th>'


def _td(markup: str, css: str = "", style: str = _CELL_STYLE) -> str:
    cls = f' class="{css}"' if css else ""
    return f'<td{cls} style="{style}">{markup}</td>'


def _wrap(markup: str) -> str:
    return f'<div class="gs-report">{markup}</div>'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _join(items: Sequence[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------------------------- the page


_CLAIM_HEADS = (REPRODUCED, NOT_REPRODUCED, NOT_MEASURED)
_GATE_HEADS = tuple(GATE_OUTCOME[v] for v in _CLAIM_HEADS)


class Report:
    """The report page's parts, computed from the ledger rows ``rows``.

    ``chapters``: the book's pages in order (default: :func:`book_chapters`);
    ``page``: the report page's own id, against which links are made relative.
    """

    def __init__(self, rows: Sequence[Claim], chapters: Sequence[Chapter] | None = None,
                 page: str = REPORT_PAGE) -> None:
        self.rows = list(rows)
        self.page = page
        self.chapters = chapter_list(self.rows, book_chapters() if chapters is None else chapters)
        self.claim_rows = paper_claims(self.rows)
        self.gate_groups = group_gates(self.rows, self.chapters)

    # ------------------------------------------------------------------ intro
    def sentences(self) -> list[str]:
        """What reproduces and what does not: one sentence per paper, one for the gates."""
        out = []
        for paper, name in _PAPER_IN_TEXT.items():
            rows = [r for r in self.claim_rows if r.paper == paper]
            if not rows:
                out.append(f"No claim of {name} was recorded at this profile.")
                continue
            n = Counter(r.verdict for r in rows)
            failed = list(dict.fromkeys(r.section.split(" (")[0] for r in rows if r.verdict == NOT_REPRODUCED))
            why = Counter(not_measured_reason(r, self.rows) for r in rows if r.verdict == NOT_MEASURED)
            parts = [f"{n[REPRODUCED]} reproduced",
                     f"{n[NOT_REPRODUCED]} did not reproduce" + (f" ({', '.join(failed)})" if failed else "")]
            if n[NOT_MEASURED]:
                verb = "was" if n[NOT_MEASURED] == 1 else "were"
                if len(why) == 1:
                    reason = "because a gate failed" if GATE_FAILED in why else "at this profile"
                    parts.append(f"{n[NOT_MEASURED]} {verb} not measured {reason}")
                else:
                    parts.append(f"{n[NOT_MEASURED]} {verb} not measured ({why[GATE_FAILED]} because a gate "
                                 f"failed, {why[AT_PROFILE]} at this profile)")
            out.append(f"Of the {_plural(len(rows), 'claim')} of {name} checked here, {_join(parts)}.")
        out.append(self._gate_sentence())
        return out

    def _gate_sentence(self) -> str:
        groups = self.gate_groups
        if not groups:
            return "No gate of this project's was recorded at this profile."
        n = Counter(g.first.verdict for g in groups)
        bad = [g for g in groups if g.first.verdict != REPRODUCED]
        parts = [f"{n[REPRODUCED]} passed", f"{n[NOT_REPRODUCED]} failed"]
        if n[NOT_MEASURED]:
            parts.append(f"{n[NOT_MEASURED]} not measured")
        tail = ""
        if bad:
            tail = "; the claims resting on " + ("it" if len(bad) == 1 else "them") + " (" + "; ".join(
                ", ".join(g.sections) for g in bad) + ") read \"not measured\""
        return (f"Of this project's {_plural(len(groups), 'gate')} (its own preconditions, such as a network "
                f"good enough to be explained, not claims of either paper), {_join(parts)}{tail}.")

    def intro(self) -> _HTML:
        sentences = self.sentences()
        markup = '<ul class="gs-intro">' + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>"
        return _HTML(_wrap(markup), "\n".join(sentences))

    # ---------------------------------------------------------------- summary
    def summary(self) -> _HTML:
        """One row per chapter: its claims by verdict and its gates, the name linked to its page."""
        counts = chapter_counts(self.rows)
        heads = list(_GATE_HEADS[:2]) + ([_GATE_HEADS[2]] if any(c[_GATE_HEADS[2]] for c in counts.values())
                                         else [])
        head = ("<tr>" + _th("chapter", ' rowspan="2"', _HEAD)
                + _th("paper claims", ' colspan="3"', _NUM_HEAD)
                + _th("our gates", f' colspan="{len(heads)}"', _NUM_HEAD)
                + "</tr><tr>" + "".join(_th(_SHORT[v], "", _NUM_HEAD) for v in _CLAIM_HEADS)
                + "".join(_th(h.removeprefix("gate "), "", _NUM_HEAD) for h in heads) + "</tr>")
        body, text = [], []
        for paper in PAPERS:
            chapters = [c for c in self.chapters if c.id.split("/")[0] == paper]
            if not chapters:
                continue
            span = f' colspan="{4 + len(heads)}"'
            body.append(f'<tr class="gs-part">{_th(PAPERS[paper], span)}</tr>')
            for ch in chapters:
                c = counts.get(ch.id, Counter())
                cells = [c[v] for v in _CLAIM_HEADS] + [c[h] for h in heads]
                body.append("<tr>" + _td(_link(ch, ch.title, self.page))
                            + "".join(_td(str(k), "gs-n" + (" gs-zero" if k == 0 else ""), _NUM_STYLE)
                                      for k in cells)
                            + "</tr>")
                text.append(f"{ch.title}: " + ", ".join(f"{_SHORT[v]} {c[v]}" for v in _CLAIM_HEADS)
                            + "; " + ", ".join(f"{h} {c[h]}" for h in heads))
        total = Counter(r.outcome for r in self.claim_rows)
        total_gates = Counter(g.first.outcome for g in self.gate_groups)
        cells = [total[v] for v in _CLAIM_HEADS] + [total_gates[h] for h in heads]
        body.append('<tr class="gs-total">' + _td("<b>all chapters</b> <small>(a gate recorded by several "
                                                   "chapters counts once)</small>")
                    + "".join(_td(f"<b>{k}</b>", "gs-n", _NUM_STYLE) for k in cells) + "</tr>")
        text.append("all chapters: " + ", ".join(f"{_SHORT[v]} {total[v]}" for v in _CLAIM_HEADS)
                    + "; " + ", ".join(f"{h} {total_gates[h]}" for h in heads))
        widths = [100 - 13 * (3 + len(heads))] + [13] * (3 + len(heads))
        return _HTML(_wrap(_table(widths, head, body, "gs-summary")), "\n".join(text))

    # ----------------------------------------------------------------- claims
    def claims(self, paper: str | None = None) -> _HTML:
        """Per chapter (of ``paper``, default all), a table of its claims; every row links to the chapter."""
        head = "<tr>" + "".join(_th(h, "", _HEAD) for h in ("section", "claim", "paper", "ours", "verdict")) + "</tr>"
        tables, text = [], []
        for ch in self.chapters:
            rows = [r for r in self.claim_rows if r.chapter == ch.id and (paper is None or r.paper == paper)]
            if not rows:
                continue
            body = []
            for r in rows:
                claim = f'<span class="gs-claim">{html.escape(r.claim)}</span>{_details(r)}'
                body.append("<tr>" + _td(_link(ch, r.section, self.page), "gs-section") + _td(claim)
                            + _td(_reported(r)) + _td(_measured(r, self.rows))
                            + _verdict_cell(r, self.rows) + "</tr>")
                text.append(f"[{_SHORT[r.verdict]}] {r.section} {r.id}: ours {_text(r.measured, 'not measured')}, "
                            f"paper {_text(r.reported)}")
            caption = _link(ch, ch.title, self.page)
            tables.append(_table((11, 40, 15, 19, 15), head, body, "gs-rows gs-claims", caption))
        if not tables:
            return _HTML(_wrap("<p><em>No claim recorded at this profile.</em></p>"), "no claims")
        return _HTML(_wrap("".join(tables)), "\n".join(text))

    # ------------------------------------------------------------------ gates
    def gates(self) -> _HTML:
        """The gates, each identical one once, with the chapters (and sections) that record it."""
        if not self.gate_groups:
            return _HTML(_wrap("<p><em>No gate recorded at this profile.</em></p>"), "no gates")
        by_id = {c.id: c for c in self.chapters}
        head = "<tr>" + "".join(_th(h, "", _HEAD) for h in ("gate", "recorded by", "ours", "outcome")) + "</tr>"
        body, text = [], []
        for g in self.gate_groups:
            r = g.first
            where = "<br>".join(_link(by_id[x.chapter], by_id[x.chapter].title, self.page) for x in g.rows)
            gate = f'<span class="gs-claim">{html.escape(r.claim)}</span>{_details(r)}'
            body.append("<tr>" + _td(gate) + _td(where) + _td(_measured(r, self.rows))
                        + _verdict_cell(r, self.rows) + "</tr>")
            ours = _text(r.measured, "not measured")
            text.append(f"[{r.outcome}] {r.id} ({', '.join(g.sections)}): ours {ours}")
        return _HTML(_wrap(_table((40, 30, 14, 16), head, body, "gs-rows gs-gates")), "\n".join(text))


def chapter_table(ledger: Any) -> _HTML:
    """A page's own rows (its gates, then its claims) as the report shows them: the paper's number,
    ours, formatted (no ``None``, ``NaN`` or raw dicts), the verdict, and the criterion and note
    folded under each claim. ``ledger`` is the page's :class:`gsutils.claims.Ledger` (or its rows)."""
    rows = list(ledger.claims.values()) if hasattr(ledger, "claims") else list(ledger)
    rows = [r for r in rows if r.is_gate] + [r for r in rows if not r.is_gate]
    if not rows:
        return _HTML(_wrap("<p><em>No claim recorded on this page at this profile.</em></p>"), "no claims")
    head = "<tr>" + "".join(_th(h, "", _HEAD) for h in ("section", "claim", "paper", "ours", "verdict")) + "</tr>"
    body, text = [], []
    for r in rows:
        claim = f'<span class="gs-claim">{html.escape(r.claim)}</span>{_details(r)}'
        body.append("<tr>" + _td(html.escape(r.section), "gs-section") + _td(claim) + _td(_reported(r))
                    + _td(_measured(r, rows)) + _verdict_cell(r, rows) + "</tr>")
        text.append(f"[{r.outcome}] {r.section} {r.id}: ours {_text(r.measured, 'not measured')}, "
                    f"paper {_text(r.reported)}")
    return _HTML(_wrap(_table((11, 40, 15, 19, 15), head, body, "gs-rows gs-claims")), "\n".join(text))

