"""The report page: gate rows are not paper claims, and the page reads at a glance.

The ledger marks gates and the report counts them apart; the page's parts
(introduction, per-chapter summary, claim tables, gates) are checked here on
synthetic rows: counts per chapter, relative links, identical gates grouped
once, no ``None``/``NaN``/raw dict in what a reader sees, a verdict in every row.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from gsutils import claims
from gsutils.book import chapters as executor_chapters
from gsutils.claims import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Claim
from gsutils.experiments.grid import scene_claims
from gsutils.experiments.grid.bias_results import saliency_network_gate
from gsutils.profiles import get_profile
from gsutils.report import (AT_PROFILE, GATE_FAILED, REPORT_PAGE, Chapter, Report, book_chapters, chapter_counts,
                            fmt_number, fmt_value, group_gates, not_measured_reason, page_url, toc_files)


@pytest.fixture
def cfg(tmp_path):
    return get_profile("quick", device="cpu", results_dir=tmp_path)


# ------------------------------------------------------------------------- reading the rendered tables


class _Tables(HTMLParser):
    """The tables of an HTML fragment: per table its class, caption links and rows of cells."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: dict | None = None
        self._in_caption = self._in_body = False
        self.text: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"class": a.get("class", ""), "caption": [], "rows": []})
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self._in_body:
            self._cell = {"tag": tag, "class": a.get("class", ""), "text": "", "links": []}
            self.tables[-1]["rows"][-1].append(self._cell)
        elif tag == "a":
            if self._in_caption:
                self.tables[-1]["caption"].append(a.get("href"))
            elif self._cell is not None:
                self._cell["links"].append(a.get("href"))

    def handle_endtag(self, tag):
        if tag == "caption":
            self._in_caption = False
        elif tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data


def _claim(chapter: str, id: str, verdict: str, *, kind: str = "claim", measured=1.0, reported=None,
           section: str | None = None, note: str = "", claim: str | None = None,
           criterion: str = "a criterion") -> Claim:
    return Claim(id=id, paper=chapter.split("/")[0], section=section or chapter.split("/")[1][:2],
                 claim=claim or f"claim {id}", criterion=criterion, reported=reported, measured=measured,
                 profile="quick", verdict=verdict, chapter=chapter, note=note, kind=kind)


CHAPTERS = [Chapter("grid_saliency/01_a", "S1.1 First"), Chapter("grid_saliency/03_c", "S1.3 Third"),
            Chapter("grid_saliency/04_d", "S1.4 Fourth"), Chapter("normgrad/01_x", "A. Pointing")]
GATE = dict(claim="the network is good enough", criterion="IoU >= 0.75", measured=0.7123, kind="gate")


@pytest.fixture
def rows() -> list[Claim]:
    return [
        # listed out of book order: the report orders by the table of contents
        _claim("normgrad/01_x", "n1", REPRODUCED, measured={"normgrad": 81.25, "layer": "features.29"},
               reported="best at features.29", section="A (Table 2)"),
        _claim("normgrad/01_x", "n2", NOT_REPRODUCED, measured=[50_000, 1_000], section="A (Table 2)"),
        _claim("grid_saliency/01_a", "a1", REPRODUCED, measured=11, reported=11),
        _claim("grid_saliency/01_a", "a2", NOT_MEASURED, measured=None, reported=[50_000, 1_000]),
        _claim("grid_saliency/01_a", "a3", NOT_REPRODUCED, measured=float("nan"), note="long " * 80),
        # the same gate, failed, recorded by two chapters (their claims are then not measured)
        _claim("grid_saliency/03_c", "gate", NOT_REPRODUCED, section="S1.3 (gate)", **GATE),
        _claim("grid_saliency/03_c", "c1", NOT_MEASURED, measured=None, reported={"bias": 0.42, "other": None}),
        _claim("grid_saliency/04_d", "gate", NOT_REPRODUCED, section="S1.4 (gate)", **GATE),
        _claim("grid_saliency/04_d", "d1", NOT_MEASURED, measured=None),
        _claim("grid_saliency/04_d", "d2", NOT_MEASURED, measured=None),
        # another gate, passed
        _claim("normgrad/01_x", "classifier_gate", REPRODUCED, section="A", claim="the classifier is good",
               measured=0.87, kind="gate"),
    ]


# ---------------------------------------------------------------------------------- gates apart (ledger)


def test_gate_rows_are_recognised():
    assert claims.is_gate_row("gate") and claims.is_gate_row("s2_gate") and claims.is_gate_row("s3_gate_xception65")
    assert claims.is_gate_row("captioner_gate") and claims.is_gate_row("x", "S1.2 (gate)")
    assert not claims.is_gate_row("gradcam_last_block_vgg16", "A (Table 2)")
    assert not claims.is_gate_row("navigate_x") and not claims.is_gate_row("gates_of_x")


def test_a_failed_gate_is_not_a_failed_reproduction(cfg):
    led = claims.Ledger("grid_saliency/99_x", profile=cfg)
    led.check(**saliency_network_gate(0.6, 0.75, "mean digit IoU", {}).row(section="S1.3 (gate)"))
    led.check(**scene_claims.scene_gate(0.7, 0.65, {"car": 0.7}, "S2").row())
    led.check("claim_a", "S1.3", "a claim", measured=1, passed=True, criterion="x")
    led.check("claim_b", "S1.3", "b claim", measured=1, passed=None, criterion="x")
    other = claims.Ledger("normgrad/99_y", profile=cfg)
    other.check("captioner_gate", "F", "gate", measured=0.2, passed=False, criterion="x", kind="gate")
    other.check("c", "F", "c", measured=0.2, passed=False, criterion="x")
    with pytest.raises(ValueError, match="kind"):
        other.check("d", "F", "d", measured=0, passed=True, criterion="x", kind="other")
    rows = claims.load(cfg.results_dir)
    assert {r.id for r in claims.gates(rows)} == {"gate", "s2_gate", "captioner_gate"}
    assert {r.id for r in claims.paper_claims(rows)} == {"claim_a", "claim_b", "c"}
    gate = next(r for r in rows if r.id == "gate")
    assert gate.verdict == claims.NOT_REPRODUCED and gate.outcome == "gate failed"
    report = Report(rows, chapters=[])  # chapters without a page: listed after the book's, unlinked
    summary = repr(report.summary()).splitlines()
    # the failed gates are not counted among the claims
    assert "grid_saliency/99_x: reproduced 1, not reproduced 0, not measured 1; gate passed 1, gate failed 1" \
        in summary
    assert "normgrad/99_y: reproduced 0, not reproduced 1, not measured 0; gate passed 0, gate failed 1" in summary
    assert summary[-1] == "all chapters: reproduced 1, not reproduced 1, not measured 1; gate passed 1, gate failed 2"
    assert "[gate failed] gate (S1.3): ours 0.6" in repr(report.gates())
    assert "claim_a" in repr(report.claims()) and "gate" not in repr(report.claims())
    assert "[gate failed]" in led.summary()
    assert list(led.table()["kind"]) == ["gate", "gate", "claim", "claim"]


def test_rows_written_before_the_kind_existed_are_read(cfg):
    old = [{"id": "gate", "paper": "grid_saliency", "section": "S1.2 (gate)", "claim": "c", "criterion": "x",
            "reported": None, "measured": 0.8, "profile": "quick", "verdict": "reproduced",
            "chapter": "grid_saliency/02", "note": ""},
           {"id": "x", "paper": "grid_saliency", "section": "S1.2", "claim": "c", "criterion": "x",
            "reported": None, "measured": 0.8, "profile": "quick", "verdict": "reproduced",
            "chapter": "grid_saliency/02", "note": ""}]
    (cfg.results_dir / "claims").mkdir(parents=True)
    (cfg.results_dir / "claims" / "grid_saliency__02.json").write_text(json.dumps(old))
    rows = claims.load(cfg.results_dir)
    assert {r.id: r.kind for r in rows} == {"gate": "gate", "x": "claim"}


# ------------------------------------------------------------------------------------- the book's pages


def test_chapters_come_from_the_table_of_contents():
    toc = {"root": "intro", "parts": [{"caption": "x", "chapters": [{"file": "a/01"}, {"file": "a/02",
                                                                                     "sections": [{"file": "a/03"}]}]},
                                      {"chapters": [{"file": "b/01"}]}]}
    assert toc_files(toc) == ["a/01", "a/02", "a/03", "b/01"]
    book = book_chapters()
    papers = ("grid_saliency/", "normgrad/")
    assert [c.id for c in book if c.id.startswith(papers)] == [c for c in executor_chapters() if c.startswith(papers)]
    assert REPORT_PAGE not in [c.id for c in book]
    assert all(c.in_book and c.title and c.title != c.id for c in book)
    assert book[0].title.startswith("S1.1")


@pytest.mark.parametrize("chapter, page, url", [
    ("grid_saliency/05_backbones", "reproduction_report", "grid_saliency/05_backbones.html"),
    ("normgrad/01_pointing_game", "reproduction_report", "normgrad/01_pointing_game.html"),
    ("grid_saliency/05_backbones", "summary/report", "../grid_saliency/05_backbones.html"),
    ("grid_saliency/05_backbones", "grid_saliency/99_report", "05_backbones.html"),
    ("intro", "a/b/report", "../../intro.html"),
])
def test_links_are_relative_to_the_report_page(chapter, page, url):
    assert page_url(chapter, page) == url


# ------------------------------------------------------------------------------------------- the values


@pytest.mark.parametrize("value, text", [
    (50_000, "50,000"), (0.84123, "0.841"), (45.25, "45.2"), (12_345.6, "12,346"), (1.0, "1"),
    (1.234e-5, "1.23e-5"), (True, "yes"), (float("inf"), "∞"), (-0.5, "-0.5"),
])
def test_numbers_read_as_numbers(value, text):
    assert fmt_number(value) == text


def test_values_never_read_none_nan_or_a_dict():
    assert fmt_value(None) == [] and fmt_value(float("nan")) == [] and fmt_value("nan") == []
    assert fmt_value({"normgrad": 81.25, "layer": "features.29", "x": None}) == [
        "normgrad: 81.2", "layer: features.29", "x: —"]
    assert fmt_value([50_000, 1_000]) == ["50,000; 1,000"]
    assert fmt_value([0.5, None]) == ["0.5; —"]


# --------------------------------------------------------------------------------------------- the page


def test_counts_per_chapter(rows):
    counts = chapter_counts(rows)
    assert counts["grid_saliency/01_a"] == {REPRODUCED: 1, NOT_MEASURED: 1, NOT_REPRODUCED: 1}
    assert counts["grid_saliency/03_c"] == {"gate failed": 1, NOT_MEASURED: 1}
    assert counts["normgrad/01_x"] == {REPRODUCED: 1, NOT_REPRODUCED: 1, "gate passed": 1}
    summary = Report(rows, CHAPTERS).summary()
    assert repr(summary).splitlines() == [
        "S1.1 First: reproduced 1, not reproduced 1, not measured 1; gate passed 0, gate failed 0",
        "S1.3 Third: reproduced 0, not reproduced 0, not measured 1; gate passed 0, gate failed 1",
        "S1.4 Fourth: reproduced 0, not reproduced 0, not measured 2; gate passed 0, gate failed 1",
        "A. Pointing: reproduced 1, not reproduced 1, not measured 0; gate passed 1, gate failed 0",
        # the gate that two chapters record counts once
        "all chapters: reproduced 2, not reproduced 2, not measured 4; gate passed 1, gate failed 1",
    ]
    table = _Tables(summary._repr_html_()).tables[0]
    chapter_rows = [r for r in table["rows"] if r[0]["tag"] == "td" and r[0]["links"]]
    # one row per chapter in book order, its name linked to its page, then the counts
    assert [r[0]["links"] for r in chapter_rows] == [[page_url(c.id)] for c in CHAPTERS]
    assert [r[0]["text"] for r in chapter_rows] == [c.title for c in CHAPTERS]
    assert [[c["text"] for c in r[1:]] for r in chapter_rows] == [
        ["1", "1", "1", "0", "0"], ["0", "0", "1", "0", "1"], ["0", "0", "2", "0", "1"], ["1", "1", "0", "1", "0"]]


def test_the_introduction_is_computed_from_the_ledger(rows):
    assert not_measured_reason(rows[3], rows) == AT_PROFILE  # its chapter's gates (none) did not fail
    assert not_measured_reason(rows[6], rows) == GATE_FAILED
    sentences = Report(rows, CHAPTERS).sentences()
    assert sentences == [
        "Of the 6 claims of the Grid Saliency supplement checked here, 1 reproduced, 1 did not reproduce (01) and 4 were "
        "not measured (3 because a gate failed, 1 at this profile).",
        "Of the 2 claims of the There and Back Again (NormGrad) supplement checked here, 1 reproduced and "
        "1 did not reproduce (A).",
        "Of this project's 2 gates (its own preconditions, such as a network good enough to be explained, not "
        "claims of either paper), 1 passed and 1 failed; the claims resting on it (S1.3, S1.4) read "
        "\"not measured\".",
    ]
    assert repr(Report(rows, CHAPTERS).intro()) == "\n".join(sentences)
    empty = Report([], CHAPTERS).sentences()
    assert empty[0].startswith("No claim of the Grid Saliency supplement") and empty[2].startswith("No gate")


def test_identical_gates_are_grouped_once_with_their_chapters(rows):
    groups = group_gates(rows, CHAPTERS)
    assert [(g.first.id, [r.chapter for r in g.rows]) for g in groups] == [
        ("gate", ["grid_saliency/03_c", "grid_saliency/04_d"]), ("classifier_gate", ["normgrad/01_x"])]
    assert groups[0].sections == ["S1.3", "S1.4"]
    # another measurement is another gate
    other = _claim("grid_saliency/01_a", "gate", NOT_REPRODUCED, section="S1.1 (gate)", **{**GATE, "measured": 0.6})
    assert len(group_gates([*rows, other], CHAPTERS)) == 3
    gates = Report(rows, CHAPTERS).gates()
    assert repr(gates).splitlines() == ["[gate failed] gate (S1.3, S1.4): ours 0.712",
                                        "[gate passed] classifier_gate (A): ours 0.87"]
    table = _Tables(gates._repr_html_()).tables[0]
    assert len(table["rows"]) == 2
    assert table["rows"][0][1]["links"] == ["grid_saliency/03_c.html", "grid_saliency/04_d.html"]


def test_claim_tables_link_every_row_and_show_its_verdict(rows):
    report = Report(rows, CHAPTERS)
    for part in (report.claims("grid_saliency"), report.claims("normgrad"), report.claims(), report.gates()):
        tables = _Tables(part._repr_html_()).tables
        assert tables
        for table in tables:
            assert "gs-rows" in table["class"]
            for row in table["rows"]:
                verdicts = [c for c in row if "gs-verdict" in c["class"]]
                assert len(verdicts) == 1 and verdicts[0] is row[-1], row
                assert verdicts[0]["text"].split("(")[0].strip() in (
                    "reproduced", "not reproduced", "not measured", "gate passed", "gate failed")
                links = [h for c in row for h in c["links"]]
                assert links and all(h in {page_url(c.id) for c in CHAPTERS} for h in links), row
    tables = _Tables(report.claims("grid_saliency")._repr_html_()).tables
    # one table per chapter with claims, in book order, captioned with a link to the chapter
    assert [t["caption"] for t in tables] == [[page_url(c.id)] for c in CHAPTERS[:3]]
    assert [len(t["rows"]) for t in tables] == [3, 1, 2]
    # a claim not measured says why, in its verdict cell
    assert [r[-1]["text"] for r in tables[1]["rows"]] == ["not measured(gate failed)"]
    assert tables[0]["rows"][1][-1]["text"] == "not measured(at this profile)"


def test_the_reader_never_sees_none_nan_or_raw_values(rows):
    report = Report(rows, CHAPTERS)
    for part in (report.intro(), report.summary(), report.claims(), report.gates()):
        markup = part._repr_html_()
        visible = " ".join(_Tables(markup).text)
        assert not re.search(r"\b(None|nan|NaN|null)\b", visible), visible
        assert not re.search(r"[{}\[\]]", visible), visible
        assert not re.search(r"\b(None|nan|NaN|null)\b", repr(part)), repr(part)
        # every table keeps to the content column: a fixed layout, text that wraps
        for table in re.findall(r"<table[^>]*>", markup):
            assert "table-layout:fixed" in table and "width:100%" in table
    # the criterion and the note fold away under the claim, not in columns of their own
    markup = report.claims()._repr_html_()
    assert markup.count("<details") == sum(1 for r in rows if not r.is_gate)
    assert "<th" in markup and "criterion</th>" not in markup and "note</th>" not in markup


def test_a_chapter_without_a_page_is_listed_unlinked(rows):
    extra = _claim("grid_saliency/99_extra", "z", REPRODUCED)
    report = Report([*rows, extra], CHAPTERS)
    assert report.chapters[-1] == Chapter("grid_saliency/99_extra", "grid_saliency/99_extra", in_book=False)
    tables = _Tables(report.claims()._repr_html_()).tables
    assert tables[-1]["caption"] == [] and all(not c["links"] for c in tables[-1]["rows"][0])
    assert Report([], CHAPTERS).claims()._repr_html_().count("No claim recorded") == 1


def test_a_pages_own_table_shows_gates_first_and_no_raw_values():
    from gsutils.report import chapter_table

    rows = [_claim("normgrad/01_pointing_game", "a", NOT_MEASURED, measured={"vgg16": 0.81234, "x": None},
                   reported=None),
            _claim("normgrad/01_pointing_game", "gate", NOT_REPRODUCED, kind="gate", measured=float("nan"))]
    page = chapter_table(rows)
    markup, text = page._repr_html_(), repr(page)
    assert markup.index("gate failed") < markup.index("not measured")
    for raw in (">None<", ">NaN<", ">nan<", "{'", "{&#x27;"):
        assert raw not in markup
    assert "vgg16: 0.812" in markup and "—" in markup
    assert text.splitlines()[0].startswith("[gate failed]")
