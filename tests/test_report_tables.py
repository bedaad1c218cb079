"""gsutils.report.html_table: a page's pandas tables as HTML."""

import numpy as np
import pandas as pd
import pytest

from gsutils.plots.tables import html_table


def test_html_table_formats_numbers_and_missing_values():
    df = pd.DataFrame({"CBL": [0.81234, np.nan], "n": [3, 12000]}, index=pd.Index(["grid", "VG <b>"], name="method"))
    t = html_table(df, caption="CBL & count", digits=2)
    markup = t._repr_html_()
    assert "<caption>CBL &amp; count</caption>" in markup
    assert ">0.81<" in markup and ">12,000<" in markup and ">—<" in markup
    assert "VG &lt;b&gt;" in markup and "<b>" not in markup  # labels are escaped
    assert markup.count("text-align:right") == 3  # the three numbers, not the missing value
    assert "overflow-x:auto" in markup  # a wide table scrolls in its own box
    assert repr(t).startswith("CBL & count\n") and "0.81" in repr(t)


def test_html_table_without_index_and_with_a_series():
    s = pd.Series([1.0, 2.0], index=["a", "b"], name="x")
    assert "<th>a</th>" in html_table(s)._repr_html_()
    df = pd.DataFrame({("grid", "CBD"): [0.5]})
    markup = html_table(df, index=False)._repr_html_()
    assert "grid / CBD" in markup and "<tbody><tr><td" in markup


def test_html_table_rejects_other_values():
    with pytest.raises(TypeError, match="pandas DataFrame or Series"):
        html_table([[1, 2]])
