"""The built book renders from file:// with no network: figures, math and widgets.

Runs after ``make book`` / the strict build. Each page is opened in headless
Chromium with background networking off; its DOM after rendering must contain
typeset MathJax (where the page has math), every image must point at a file
that exists in the build, and an embedded widget state must render widget
views. A screenshot of each chapter goes to ``book/_build/screenshots`` for a
person to look at.
"""

from __future__ import annotations

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
        pytest.fail("the book is not built: run `make book` (or the strict build) first")
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
