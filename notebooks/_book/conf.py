"""Sphinx configuration of the rendered book (``make book`` → build/book).

The book is Sphinx + myst-nb over the notebooks as committed: nothing executes
(``nb_execution_mode = "off"``), every page shows the kept outputs of the reference run. The source
directory is ``notebooks/`` (so that the theme's Colab launch button points at each notebook's real
path), this folder holds only the configuration and the book's own pages.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deitlab._project import REPO_BRANCH, REPO_URL

ROOT = Path(__file__).resolve().parents[2]
#: MathJax 2 from the npm registry (``make vendor``), served from the book itself: no CDN at view time.
MATHJAX = ROOT / "build" / "vendor" / "web" / "mathjax"

project = "deitlab — Vision Transformers, from the idea to a phone"
author = "the deitlab authors"
root_doc = "_book/index"
extensions = ["myst_nb"]
# The ja/zh/vi editions and their catalogues are not part of the English book (issue 20).
exclude_patterns = ["README.md", "QUARANTINE", "**/.ipynb_checkpoints", "ja", "zh", "vi", "locales"]
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "myst.xref_missing", "misc.highlighting_failure"]

html_theme = "sphinx_book_theme"
html_title = "deitlab"
html_theme_options = {
    "repository_url": REPO_URL,
    "repository_branch": REPO_BRANCH,
    "path_to_docs": "notebooks",
    "use_repository_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com", "notebook_interface": "jupyterlab"},
    "show_toc_level": 2,
}
html_last_updated_fmt = None
html_copy_source = False

if MATHJAX.joinpath("MathJax.js").exists():
    mathjax_path = "mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
    mathjax2_config = {"tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]}}
else:  # no local MathJax: formulas stay readable TeX rather than loading a CDN
    print(f"book: {MATHJAX} missing (run `make vendor`); formulas are shown as TeX")
    mathjax_path = "mathjax/MathJax.js"


#: The site's entry page redirects to the book's front page (which lives in _book/ beside this file).
REDIRECT = '<!DOCTYPE html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=_book/index.html">'


def _finish(app, exception) -> None:
    """Copy MathJax into the site and write the entry page."""
    if exception is not None or app.builder.format != "html":
        return
    if MATHJAX.exists():
        shutil.copytree(MATHJAX, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)
    Path(app.outdir, "index.html").write_text(REDIRECT + "\n", encoding="utf-8")


def setup(app) -> None:
    app.connect("build-finished", _finish)
