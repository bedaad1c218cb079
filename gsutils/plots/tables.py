"""A page's own pandas tables as HTML (:func:`html_table`), styled like the report's tables
(``book/_theme/report.css``)."""

from __future__ import annotations

import html
import math
from typing import Any

from gsutils.claims import _missing, fmt_number
from gsutils.report import _HEAD, _HTML

__all__ = ["html_table"]


def _frame_cell(v: Any, digits: int) -> tuple[str, bool]:
    """A table cell's text and whether it is a number (numbers align right)."""
    import numpy as np

    if isinstance(v, np.generic):
        v = v.item()
    if _missing(v):
        return "—", False
    if isinstance(v, bool):
        return ("yes" if v else "no"), False
    if isinstance(v, int):
        return f"{v:,}", True
    if isinstance(v, float):
        return (fmt_number(v) if math.isinf(v) or abs(v) >= 1000 else f"{v:.{digits}f}"), True
    return str(v), False


def _label(key: Any) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def html_table(df: Any, *, caption: str = "", digits: int = 3, index: bool = True) -> _HTML:
    """A pandas table as a page shows it: an HTML table (numbers at ``digits`` decimals, aligned
    right, a missing value as a dash) that scrolls inside its own box when wider than the column,
    with ``caption`` above it; plain text (``DataFrame.to_string``) outside a notebook."""
    import pandas as pd

    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"html_table() takes a pandas DataFrame or Series, got {type(df).__name__}")
    num = "text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap"
    heads = ([_label(df.index.name or "")] if index else []) + [_label(c) for c in df.columns]
    head = "<tr>" + "".join(f'<th style="{_HEAD}">{html.escape(h)}</th>' for h in heads) + "</tr>"
    body = []
    for key, row in zip(df.index, df.itertuples(index=False, name=None)):
        cells = [f"<th>{html.escape(_label(key))}</th>"] if index else []
        for v in row:
            text, is_num = _frame_cell(v, digits)
            cells.append(f'<td style="{num if is_num else "vertical-align:top"}">{html.escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    markup = (f'<div class="gs-report gs-frame" style="overflow-x:auto;max-width:100%">'
              f'<table class="gs-table gs-frame-table">{cap}<thead>{head}</thead>'
              f'<tbody>{"".join(body)}</tbody></table></div>')
    text = (caption + "\n" if caption else "") + df.round(digits).to_string(index=index)
    return _HTML(markup, text)
