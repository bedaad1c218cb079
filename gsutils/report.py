"""Tables of the reproduction ledger for the report page."""

from __future__ import annotations

import html
from collections import Counter

from gsutils.claims import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Claim

_CSS = {REPRODUCED: "#e6f4ea", NOT_REPRODUCED: "#fce8e6", NOT_MEASURED: "#f1f3f4"}


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


def verdict_counts(rows: list[Claim]) -> _HTML:
    """How many claims per paper and verdict."""
    counts = Counter((r.paper, r.verdict) for r in rows)
    papers = sorted({r.paper for r in rows})
    verdicts = (REPRODUCED, NOT_REPRODUCED, NOT_MEASURED)
    text = [f"{len(rows)} claims"]
    head = "".join(f"<th>{v}</th>" for v in verdicts)
    body = ""
    for p in papers:
        cells = "".join(f"<td>{counts[(p, v)]}</td>" for v in verdicts)
        body += f"<tr><th>{p}</th>{cells}</tr>"
        text.append(f"{p}: " + ", ".join(f"{v} {counts[(p, v)]}" for v in verdicts))
    markup = f"<table><tr><th></th>{head}</tr>{body}</table>"
    return _HTML(markup, "\n".join(text))


def ledger_html(rows: list[Claim]) -> _HTML:
    """The ledger rows as an HTML table with coloured verdicts."""
    if not rows:
        return _HTML("<p><em>No claims recorded at this profile.</em></p>", "no claims")
    cols = ("section", "claim", "reported", "measured", "criterion", "verdict", "note", "profile")
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = html.escape(_fmt(getattr(r, c)))
            style = f' style="background:{_CSS[r.verdict]}"' if c == "verdict" else ""
            cells.append(f"<td{style}>{v}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    markup = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    text = "\n".join(f"[{r.verdict}] {r.section} {r.id}" for r in rows)
    return _HTML(markup, text)
