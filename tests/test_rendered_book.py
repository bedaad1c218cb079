"""The built book renders from file:// with no network, and reads well at 1,280 px.

Runs after ``make book`` / the strict build. Each page is opened in headless
Chromium with background networking off; its DOM after rendering must contain
typeset MathJax (where the page has math), every image must point at a file
that exists in the build, and an embedded widget state must render widget
views. A screenshot of each chapter goes to ``book/_build/screenshots`` for a
person to look at.

The layout is measured in the page itself at a 1,280 px window (a script added
to a copy of the page, which a ``<base>`` element keeps reading the build's
files): nothing is wider than the content column unless it scrolls inside its
own container, no visible text says "NBVAL", every figure is shown at least
~300 px wide (or at its natural width, and never under 200 px), and every row
of the report page's claim and gate tables links to a chapter page with its
verdict in view. The checks themselves are tested on small hand-made pages,
so they run without a built book; the tests of the built book skip (fail in
CI) when it is absent.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gsutils.paths import REPO_ROOT

HTML = REPO_ROOT / "book" / "_build" / "html"
CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--hide-scrollbars",
]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def _pages() -> list[Path]:
    if not (HTML / "index.html").exists():
        message = f"the book is not built ({HTML} has no index.html): run `make book` (or the strict build) first"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    skip = {"genindex.html", "search.html", "index.html"}
    return sorted(p for p in HTML.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def _dom(exe: str, page: Path, tmp_path: Path) -> str:
    res = subprocess.run(
        [exe, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_pages_render_offline(tmp_path):
    exe = _chromium()
    pages = _pages()
    assert pages, "no pages were built"
    n_math = n_img = n_widgets = 0
    for page in pages:
        raw = page.read_text()
        dom = _dom(exe, page, tmp_path)
        # math: a page whose source has math must show typeset MathJax
        if 'class="math' in raw:
            n_math += 1
            assert "<mjx-container" in dom, f"MathJax did not typeset {page.relative_to(HTML)}"
        # figures: every <img> must exist in the build
        for src in re.findall(r'<img[^>]+src="([^"]+)"', dom):
            if src.startswith("data:"):
                n_img += 1
                continue
            assert not src.startswith("http"), f"{page.name}: image from the network: {src}"
            target = (page.parent / src.split("#")[0]).resolve()
            assert target.exists(), f"{page.relative_to(HTML)}: missing image {src}"
            n_img += 1
        # widgets: embedded widget state renders widget views
        if "application/vnd.jupyter.widget-state+json" in raw:
            n_widgets += 1
            assert re.search(r'class="[^"]*widget-', dom), \
                f"widgets did not render in {page.relative_to(HTML)}"
        # no reference to a CDN remains for scripts, and no script is loaded twice
        # (a second copy of the widget manager draws every widget twice)
        srcs = [src.split("?")[0] for src in re.findall(r'<script[^>]+src="([^"]+)"', raw)]
        for src in srcs:
            assert not src.startswith(("http://", "https://")), f"{page.name} loads {src}"
        twice = sorted({src for src in srcs if srcs.count(src) > 1})
        assert not twice, f"{page.relative_to(HTML)} loads these scripts more than once: {twice}"
    assert n_math > 0, "no page with math was checked"
    assert n_img > 0, "no figure was checked"


def test_screenshots_of_chapters(tmp_path):
    exe = _chromium()
    out = REPO_ROOT / "book" / "_build" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for page in _pages():
        png = out / (str(page.relative_to(HTML)).replace("/", "__").replace(".html", ".png"))
        subprocess.run(
            [exe, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=15000", "--window-size=1280,2000",
             f"--screenshot={png}", page.as_uri()],
            capture_output=True, timeout=120, check=True,
        )
        assert png.exists() and png.stat().st_size > 10_000, f"blank screenshot for {page.name}"


# ------------------------------------------------------------------------------ layout, measured in the page

#: the window the layout is judged at
WINDOW = (1280, 2000)
#: a figure is shown at least this wide (or at its natural width when that is smaller) ...
FIGURE_MIN_PX = 300
#: ... and one shown narrower than this is flagged as tiny in any case
TINY_PX = 200
#: the report page, whose claim and gate tables (class ``gs-rows``) must link every row to a chapter
REPORT = "reproduction_report.html"

#: runs in the page once it has loaded (and MathJax and the widgets have had time to draw): measures
#: it and writes the result, as JSON, into a hidden <pre> that --dump-dom returns
LAYOUT_JS = r"""
(function () {
  function run() {
    var content = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
    var cs = getComputedStyle(content), box = content.getBoundingClientRect();
    var left = box.left + parseFloat(cs.paddingLeft), right = box.right - parseFloat(cs.paddingRight);
    function name(el) {
      var s = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "");
      var cls = typeof el.className === "string" ? el.className.trim() : "";
      if (cls) s += "." + cls.split(/\s+/).join(".");
      var t = (el.innerText || el.textContent || "").trim().replace(/\s+/g, " ");
      return s + (t ? " \"" + t.slice(0, 60) + "\"" : "");
    }
    function shown(el) {
      var r = el.getBoundingClientRect(), st = getComputedStyle(el);
      return r.width > 0 && r.height > 0 && st.visibility !== "hidden";
    }
    function hidden(el) {  // read by screen readers only (MathJax's copy of the math, skip links)
      return !!el.closest("mjx-assistive-mml, .visually-hidden, .sr-only");
    }
    function scroller(el) {  // the nearest container, inside the content, that scrolls or clips sideways
      for (var a = el.parentElement; a && a !== content; a = a.parentElement) {
        var o = getComputedStyle(a).overflowX;
        if (o === "auto" || o === "scroll" || o === "hidden" || o === "clip") return a;
      }
      return null;
    }
    function inside(r) { return r.left >= left - 1 && r.right <= right + 1; }
    var wide = [], flagged = [];
    content.querySelectorAll("*").forEach(function (el) {
      if (!shown(el) || hidden(el) || flagged.some(function (f) { return f.contains(el); })) return;
      var r = el.getBoundingClientRect();
      if (inside(r)) return;
      var s = scroller(el);
      if (s && inside(s.getBoundingClientRect())) return;
      flagged.push(el);
      wide.push({what: name(el), left: Math.round(r.left - left), right: Math.round(r.right - right)});
    });
    var nbval = document.body.innerText.split("\n").filter(function (l) { return /NBVAL/.test(l); })
      .map(function (l) { return l.trim().slice(0, 100); });
    var images = [];
    content.querySelectorAll("img").forEach(function (img) {
      if (!shown(img)) return;
      images.push({src: img.getAttribute("src").slice(0, 120), natural: img.naturalWidth,
                   width: Math.round(img.getBoundingClientRect().width)});
    });
    var rows = [];
    document.querySelectorAll("table.gs-rows tbody tr").forEach(function (tr) {
      var links = Array.prototype.map.call(tr.querySelectorAll("a[href]"),
                                           function (a) { return a.getAttribute("href"); });
      var v = tr.querySelector(".gs-verdict"), verdict = null;
      if (v) {
        var vr = v.getBoundingClientRect(), s = scroller(v), edge = right;
        if (s) edge = Math.min(edge, s.getBoundingClientRect().right);
        verdict = {text: v.innerText.trim(), right: Math.round(vr.right - edge)};
      }
      rows.push({text: tr.innerText.trim().replace(/\s+/g, " ").slice(0, 80), links: links, verdict: verdict});
    });
    var out = {content: [Math.round(left), Math.round(right)], wide: wide, nbval: nbval, images: images, rows: rows,
               page_width: document.documentElement.scrollWidth, window_width: window.innerWidth};
    var pre = document.createElement("pre");
    pre.id = "gs-layout-result";
    pre.style.display = "none";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  window.addEventListener("load", function () { setTimeout(run, 3000); });
})();
"""


def measure_layout(exe: str, page: Path, tmp_path: Path) -> dict:
    """Open a copy of ``page`` (reading its files from the page's folder) and measure its layout."""
    raw = page.read_text()
    base = f'<base href="{page.parent.as_uri()}/">'
    head = re.search(r"<head[^>]*>", raw)
    raw = raw[:head.end()] + base + raw[head.end():] if head else base + raw
    script = f"<script>{LAYOUT_JS}</script>"
    raw = raw.replace("</body>", script + "</body>") if "</body>" in raw else raw + script
    copy = tmp_path / f"layout-{page.name}"
    copy.write_text(raw)
    res = subprocess.run(
        [exe, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'<pre id="gs-layout-result"[^>]*>(.*?)</pre>', res.stdout, flags=re.S)
    assert found, f"the layout script did not run on {page.name}"
    return json.loads(html.unescape(found.group(1)))


def _chapter_page(page: Path, href: str, root: Path) -> bool:
    """Whether ``href`` (on ``page``) leads to a chapter page of the build under ``root``."""
    if href.startswith(("http:", "https:", "#", "mailto:")):
        return False
    target = (page.parent / href.split("#")[0]).resolve()
    return (target.suffix == ".html" and target.exists() and target.is_relative_to(root.resolve())
            and target != page.resolve() and target.name not in ("index.html", "genindex.html", "search.html"))


def layout_problems(layout: dict, page: Path, root: Path) -> list[str]:
    """What a reader would see wrong on ``page`` (measured by :func:`measure_layout`); empty when none."""
    where = str(page.relative_to(root))
    out = []
    if layout["page_width"] > layout["window_width"] + 1:
        out.append(f"{where}: the page scrolls sideways ({layout['page_width']} px in a "
                   f"{layout['window_width']} px window)")
    for w in layout["wide"]:
        out.append(f"{where}: {w['what']} leaves the content column ({w['left']} px on the left, "
                   f"{w['right']} px on the right) and does not scroll inside a container of its own")
    for line in layout["nbval"]:
        out.append(f"{where}: visible text says NBVAL: {line!r}")
    for img in layout["images"]:
        need = min(FIGURE_MIN_PX, img["natural"])
        if img["natural"] == 0:
            out.append(f"{where}: image {img['src']} did not load")
        elif img["width"] < TINY_PX:
            out.append(f"{where}: image {img['src']} is tiny: shown {img['width']} px wide "
                       f"(natural {img['natural']} px; a figure needs at least {TINY_PX})")
        elif img["width"] < need - 2:
            out.append(f"{where}: image {img['src']} is shown {img['width']} px wide, under {need} px "
                       f"(natural {img['natural']} px)")
    for row in layout["rows"]:
        # the report's rows lead to their chapters; a chapter's own closing table is already there
        if page.name == REPORT and not any(_chapter_page(page, h, root) for h in row["links"]):
            out.append(f"{where}: report row without a link to a chapter page: {row['text']!r}")
        if row["verdict"] is None:
            out.append(f"{where}: report row without a verdict: {row['text']!r}")
        elif row["verdict"]["right"] > 1:
            out.append(f"{where}: the verdict {row['verdict']['text']!r} is cut off by {row['verdict']['right']} px "
                       f"in {row['text']!r}")
    return out


def test_pages_fit_the_column_and_show_readable_figures(tmp_path):
    exe = _chromium()
    problems = []
    for page in _pages():
        problems += layout_problems(measure_layout(exe, page, tmp_path), page, HTML)
    assert not problems, "\n".join(problems)


def test_report_rows_link_to_their_chapters(tmp_path):
    exe = _chromium()
    page = next((p for p in _pages() if p.name == REPORT), None)
    assert page is not None, f"no {REPORT} in the build"
    layout = measure_layout(exe, page, tmp_path)
    assert layout["rows"], "the report page shows no claim or gate rows"
    problems = [p for p in layout_problems(layout, page, HTML) if "report row" in p or "verdict" in p]
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ the layout checks, on hand-made pages

_FIXTURE = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; font: 16px sans-serif; }}
article.bd-article {{ width: 800px; margin-left: 200px; padding: 0 20px; }}
</style></head><body><article class="bd-article"><h1>A page</h1>{body}</article></body></html>"""
_ROW = '<tr><td>{link}</td><td>a claim</td><td class="gs-verdict">reproduced</td></tr>'
_REPORT_TABLE = '<table class="gs-rows" style="table-layout:fixed;width:100%"><tbody>{rows}</tbody></table>'


@pytest.mark.parametrize("name, body, expected", [
    ("fits", '<table style="table-layout:fixed;width:100%"><tr><td>' + "word " * 200 + "</td></tr></table>"
             '<img src="fig800.svg" style="max-width:100%"><img src="fig250.svg">'
             '<details><summary>code</summary><pre># NBVAL_CHECK_OUTPUT</pre></details>'
             '<div style="overflow-x:auto"><table style="width:1500px"><tr><td>wide, scrolls</td></tr></table></div>',
     None),
    ("too_wide", '<div style="width:1100px">a block wider than the column</div>', "leaves the content column"),
    ("wide_table", '<table><tr><td style="white-space:nowrap">' + "word " * 200 + "</td></tr></table>",
     "leaves the content column"),
    ("nbval", "<pre># NBVAL_CHECK_OUTPUT\nx = 1</pre>", "visible text says NBVAL"),
    ("shrunk_figure", '<img src="fig800.svg" style="width:260px">', "shown 260 px wide, under 300 px"),
    ("tiny_figure", '<img src="fig120.svg">', "is tiny"),
    ("squeezed_figure", '<img src="fig250.svg" style="width:150px">', "is tiny"),
    ("report_ok", _REPORT_TABLE.format(rows=_ROW.format(link='<a href="ch/01_a.html">S1.1</a>')), None),
    ("report_row_unlinked", _REPORT_TABLE.format(rows=_ROW.format(link="S1.1")), "without a link to a chapter"),
    ("report_link_elsewhere", _REPORT_TABLE.format(rows=_ROW.format(link='<a href="ch/99_gone.html">S1</a>')
                                                   + _ROW.format(link='<a href="https://x.org/">S1</a>')),
     "without a link to a chapter"),
    ("chapter_rows_ok", _REPORT_TABLE.format(rows=_ROW.format(link="S1.1")), None),
    ("report_no_verdict", '<table class="gs-rows"><tbody><tr><td><a href="ch/01_a.html">S1</a></td></tr></tbody>'
                          "</table>", "without a verdict"),
    ("verdict_cut_off", '<div style="overflow-x:auto"><table class="gs-rows" style="width:1400px"><tbody>'
                        + _ROW.format(link='<a href="ch/01_a.html">S1.1</a>') + "</tbody></table></div>",
     "is cut off"),
])
def test_layout_checks_on_hand_made_pages(tmp_path, name, body, expected):
    exe = _chromium()
    site = tmp_path / "site"
    (site / "ch").mkdir(parents=True)
    (site / "ch" / "01_a.html").write_text(_FIXTURE.format(body="a chapter"))
    for width in (800, 250, 120):
        (site / f"fig{width}.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="100">'
                                              f'<rect width="{width}" height="100" fill="#4477aa"/></svg>')
    page = site / (REPORT if name.startswith(("report", "verdict")) else f"{name}.html")
    page.write_text(_FIXTURE.format(body=body))
    layout = measure_layout(exe, page, tmp_path)
    problems = layout_problems(layout, page, site)
    if expected is None:
        assert problems == []
        assert layout["images"] or layout["rows"] or name == "fits"
    else:
        assert any(expected in p for p in problems), problems
