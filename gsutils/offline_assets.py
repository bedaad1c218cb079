"""Web assets the built book needs to render with no network.

Sphinx points MathJax, and myst-nb points the ipywidgets embed manager, at a
CDN. So that the book renders from ``file://`` on a machine with no network,
the build installs those packages from the npm registry into the git-ignored
folder ``.offline_assets/`` (outside the book's sources), copies the files a page
loads into ``.offline_assets/static/`` and ``book/_config.yml`` adds that
folder to ``html_static_path`` and points ``mathjax_path`` and
``nb_ipywidgets_js`` at the local copies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from gsutils.paths import REPO_ROOT

ASSETS = REPO_ROOT / ".offline_assets"
STATIC = ASSETS / "static"
#: npm packages, pinned
PACKAGES = {
    "mathjax": "3.2.2",
    "@jupyter-widgets/html-manager": "1.0.15",
    "requirejs": "2.3.8",
}
#: files the book's configuration refers to, relative to STATIC
REQUIRED = ("mathjax/tex-chtml.js", "require.min.js", "embed-amd.js")


def missing() -> list[str]:
    return [f for f in REQUIRED if not (STATIC / f).exists()]


def ensure_assets(force: bool = False) -> Path:
    """Install (once) and stage the offline assets; returns the static folder."""
    if not force and not missing():
        return STATIC
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError(
            "npm is needed once to install MathJax and the widget manager for an offline "
            "book; install Node.js (e.g. `apt-get install nodejs npm`) and build again"
        )
    ASSETS.mkdir(exist_ok=True)
    (ASSETS / "package.json").write_text(json.dumps(
        {"name": "gsutils-offline-assets", "private": True,
         "dependencies": PACKAGES}, indent=1))
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=ASSETS, check=True)
    mods = ASSETS / "node_modules"
    if STATIC.exists():
        shutil.rmtree(STATIC)
    STATIC.mkdir(parents=True)
    # MathJax: the es5 tree (component loader, tex input, chtml output and its fonts)
    es5 = mods / "mathjax" / "es5"
    shutil.copytree(es5, STATIC / "mathjax",
                    ignore=shutil.ignore_patterns("sre", "*.map", "mml-*", "tex-svg*", "svg*"))
    shutil.copy2(mods / "requirejs" / "require.js", STATIC / "require.min.js")
    shutil.copy2(mods / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js",
                 STATIC / "embed-amd.js")
    gone = missing()
    if gone:
        raise FileNotFoundError(f"offline assets incomplete after npm install: {gone}")
    return STATIC


if __name__ == "__main__":
    print(ensure_assets(force=True))
