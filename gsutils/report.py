"""Tables of the reproduction ledger for the report page.

The papers' claims and this project's gates are counted and listed apart
(:mod:`gsutils.claims`): a gate that fails means a network of ours was not
good enough to judge claims with, not that a paper's claim failed.
"""

from __future__ import annotations

import html
from collections import Counter

from gsutils.claims import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Claim, gates, paper_claims

_CSS = {REPRODUCED: "#e6f4ea", NOT_REPRODUCED: "#fce8e6", NOT_MEASURED: "#f1f3f4"}
#: how the gates' verdicts are counted (the same three values, read as gate outcomes)
_GATE_HEAD = {REPRODUCED: "passed", NOT_REPRODUCED: "failed", NOT_MEASURED: "not measured"}
#: a failed gate is marked apart from a claim that was not reproduced
_GATE_CSS = {REPRODUCED: "#e6f4ea", NOT_REPRODUCED: "#fdf0d5", NOT_MEASURED: "#f1f3f4"}


class _HTML:
    """A value displayed as HTML in a notebook (and as plain text elsewhere)."""

    def __init__(self, markup: str, text: str) -> None:
        self.markup, self.text = markup, text

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _counts_table(rows: list[Claim], heads: dict[str, str], what: str) -> tuple[str, list[str]]:
    counts = Counter((r.paper, r.verdict) for r in rows)
    papers = sorted({r.paper for r in rows})
    verdicts = (REPRODUCED, NOT_REPRODUCED, NOT_MEASURED)
    text = [f"{len(rows)} {what}"]
    head = "".join(f"<th>{heads[v]}</th>" for v in verdicts)
    body = ""
    for p in papers:
        cells = "".join(f"<td>{counts[(p, v)]}</td>" for v in verdicts)
        body += f"<tr><th>{p}</th>{cells}</tr>"
        text.append(f"{p}: " + ", ".join(f"{heads[v]} {counts[(p, v)]}" for v in verdicts))
    return f"<table><tr><th>{what}</th>{head}</tr>{body}</table>", text


def verdict_counts(rows: list[Claim]) -> _HTML:
    """How many of the papers' claims per paper and verdict, and, apart, how many gates passed.

    Gate rows (:func:`gsutils.claims.gates`) are never counted as claims: a
    failed gate is not a failed reproduction.
    """
    claims_markup, text = _counts_table(paper_claims(rows), {v: v for v in _GATE_HEAD}, "paper claims")
    markup = claims_markup
    gate_rows = gates(rows)
    if gate_rows:
        gate_markup, gate_text = _counts_table(gate_rows, _GATE_HEAD, "gates")
        markup += gate_markup
        text += gate_text
    return _HTML(markup, "\n".join(text))


def ledger_html(rows: list[Claim]) -> _HTML:
    """The ledger rows as an HTML table with coloured verdicts (a gate's reads "gate passed"/"gate failed")."""
    if not rows:
        return _HTML("<p><em>No rows recorded at this profile.</em></p>", "no rows")
    cols = ("section", "claim", "reported", "measured", "criterion", "verdict", "note", "profile")
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = html.escape(_fmt(r.outcome if c == "verdict" else getattr(r, c)))
            colour = (_GATE_CSS if r.is_gate else _CSS)[r.verdict]
            style = f' style="background:{colour}"' if c == "verdict" else ""
            cells.append(f"<td{style}>{v}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    markup = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    text = "\n".join(f"[{r.outcome}] {r.section} {r.id}" for r in rows)
    return _HTML(markup, text)
