"""Slide metadata for the live slideshow (RISE) and the static reveal.js export, derived from
the notebook's structure so that it can be re-generated after every content change.

``python -m deitlab.slides apply NOTEBOOK...`` writes ``metadata.slideshow.slide_type`` on every
cell; ``python -m deitlab.slides check NOTEBOOK...`` lists the cells whose stored slide type differs
from what the rules give (exit 1 if any), like ``deitlab.nbtools check``;
``python -m deitlab.slides export OUT_DIR NOTEBOOK...`` writes one reveal.js HTML deck per notebook
(``make slides``) that loads reveal.js, require.js, jQuery and MathJax from ``vendor/`` beside it, and
``python -m deitlab.slides vendor NODE_MODULES DEST`` copies those scripts there from npm packages.

The rules (one idea per slide; a projector shows about ``SLIDE_LINES`` lines):

1. The title cell (the first cell) is a ``slide``.
2. A markdown cell starting with ``# `` or ``## `` starts a ``slide``; ``### `` starts a ``subslide``
   (the section's details, reached with the down arrow).
3. The Colab install cell (tag ``colab``) is ``skip``: it never runs in a classroom.
4. A box (a markdown cell starting with ``> ``: "Then → now", "What the write-ups got wrong") starts
   a ``subslide``: it is an idea of its own.
5. Any other cell that would overflow the current slide (its estimated height plus what the slide
   already shows exceeds ``SLIDE_LINES``) starts a ``subslide``: long prose and long code get a
   slide of their own instead of running off the screen.
6. Otherwise a code cell is a ``fragment`` (the code and its result appear after the idea is
   stated), a markdown cell right after a code cell is a ``fragment`` (the reading of the result
   appears after the result), and a markdown cell after markdown continues the slide (``-``).

The rules read only cell types, sources, tags and kept outputs, never the stored slide types, so
applying them twice changes nothing.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

from deitlab.nbtools import COLAB_TAG

#: Lines of text that fit on one projected slide (reveal's 960×700 canvas at the default font size).
SLIDE_LINES = 22
#: Characters per line of wrapped prose on a slide.
PROSE_WIDTH = 100
#: Lines an image output takes on a slide.
IMAGE_LINES = 12
#: Kept text output lines counted at most (reveal scrolls or cuts the rest).
MAX_OUTPUT_LINES = 10
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _output_lines(cell: dict) -> int:
    lines = 0
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if any(mime.startswith("image/") for mime in data):
            lines += IMAGE_LINES
        else:
            text = output.get("text") or data.get("text/plain") or ""
            text = "".join(text) if isinstance(text, list) else text
            lines += min(MAX_OUTPUT_LINES, text.count("\n") + 1)
    return lines


def cell_height(cell: dict) -> int:
    """Estimated lines a cell takes on a slide: wrapped prose, or code lines plus kept outputs."""
    source = _source(cell).rstrip("\n")
    if cell["cell_type"] == "markdown":
        return sum(max(1, math.ceil(len(line) / PROSE_WIDTH)) for line in source.split("\n"))
    return source.count("\n") + 1 + _output_lines(cell)


def slide_types(cells: list[dict]) -> list[str]:
    """The slide type of every cell under the rules of this module (same length as ``cells``)."""
    types: list[str] = []
    used = 0  # lines shown on the current (sub)slide so far
    previous = None  # type of the previous cell that is shown
    for index, cell in enumerate(cells):
        source = _source(cell).lstrip()
        markdown = cell["cell_type"] == "markdown"
        height = cell_height(cell)
        if index == 0 or (markdown and source.startswith(("# ", "## "))):
            kind = "slide"
        elif COLAB_TAG in cell.get("metadata", {}).get("tags", []):
            types.append("skip")
            continue
        elif (markdown and source.startswith(("### ", "> "))) or used + height > SLIDE_LINES:
            kind = "subslide"
        elif not markdown or previous == "code":
            kind = "fragment"
        else:
            kind = "-"
        used = height if kind in {"slide", "subslide"} else used + height
        previous = cell["cell_type"]
        types.append(kind)
    return types


def _read(notebook: Path) -> dict:
    try:
        return json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{notebook}: not a readable notebook ({exc})") from None


def problems(notebook: str | Path) -> list[str]:
    """Cells whose stored slide type differs from the rules (an empty list when all agree)."""
    notebook = Path(notebook)
    cells = _read(notebook)["cells"]
    found = []
    for index, (cell, expected) in enumerate(zip(cells, slide_types(cells))):
        stored = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
        if stored != expected:
            found.append(
                f"{notebook}: cell {index} has slide type {stored!r}, the rules give {expected!r} "
                "(run `python -m deitlab.slides apply`)"
            )
    return found


def apply(notebook: str | Path) -> bool:
    """Write the slide type of every cell; True if the file changed."""
    notebook = Path(notebook)
    text = notebook.read_text(encoding="utf-8")
    data = _read(notebook)
    for cell, kind in zip(data["cells"], slide_types(data["cells"])):
        cell.setdefault("metadata", {}).setdefault("slideshow", {})["slide_type"] = kind
    new_text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    if new_text != text:
        notebook.write_text(new_text, encoding="utf-8")
        return True
    return False


#: Where the exported decks load their scripts from, relative to the deck (``make slides`` copies
#: them there with ``vendor``); nbconvert's defaults point at CDNs.
VENDOR = "vendor"
#: The npm packages (``make vendor`` installs them) and the files of each that a deck or the book
#: loads: reveal.js 5 (UMD build, loaded by require.js as nbconvert's template does), MathJax 2
#: (the API nbconvert's template calls) in its combined CommonHTML configuration.
VENDOR_FILES = {
    "reveal.js": ["dist", "plugin/notes"],
    "jquery": ["dist/jquery.min.js", "LICENSE.txt"],
    "requirejs": ["require.js"],
    "mathjax": [
        "MathJax.js",
        "LICENSE",
        "config/TeX-AMS_CHTML-full.js",
        "extensions",
        "jax/element",
        "jax/output/CommonHTML",
        "fonts/HTML-CSS/TeX/woff",
    ],
}
#: A reveal.js theme whose fonts ship with reveal.js ("simple", nbconvert's default, imports Google Fonts).
REVEAL_THEME = "white"
_MATHJAX_CONFIG = "?config=TeX-AMS_CHTML-full,Safe"
_TEMPLATE = Path(__file__).with_name("assets") / "templates" / "slides_offline.html.j2"


def export(notebook: str | Path, out_dir: str | Path) -> Path:
    """Write ``OUT_DIR/<name>.slides.html``, a reveal.js deck with the kept outputs (nothing runs)."""
    import nbformat
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    notebook, out_dir = Path(notebook), Path(out_dir)
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook}: no such notebook")
    config = Config()
    config.SlidesExporter.reveal_url_prefix = f"{VENDOR}/reveal.js"
    config.SlidesExporter.jquery_url = f"{VENDOR}/jquery/dist/jquery.min.js"
    config.SlidesExporter.require_js_url = f"{VENDOR}/requirejs/require.js"
    config.SlidesExporter.mathjax_url = f"{VENDOR}/mathjax/MathJax.js{_MATHJAX_CONFIG}"
    config.SlidesExporter.reveal_scroll = True
    config.SlidesExporter.reveal_theme = REVEAL_THEME
    config.SlidesExporter.template_file = str(
        Path(__file__).with_name("assets") / "templates" / "slides_offline.html.j2"
    )
    body, _ = SlidesExporter(config=config).from_notebook_node(nbformat.read(notebook, as_version=4))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{notebook.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def vendor(node_modules: str | Path, dest: str | Path) -> Path:
    """Copy the files of ``VENDOR_FILES`` from an npm ``node_modules`` folder into ``dest``."""
    node_modules, dest = Path(node_modules), Path(dest)
    for package, parts in VENDOR_FILES.items():
        for part in parts:
            source = node_modules / package / part
            if not source.exists():
                raise FileNotFoundError(f"{source}: missing (install it with `make vendor`)")
            target = dest / package / part
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
    return dest


def main(argv: list[str]) -> int:
    """``apply`` or ``check`` the slide metadata of notebooks, or ``export`` them as decks."""
    usage = (
        "usage: python -m deitlab.slides apply|check NOTEBOOK... | export OUT_DIR NOTEBOOK... "
        "| vendor NODE_MODULES DEST"
    )
    command, paths = (argv[0], argv[1:]) if argv else ("", [])
    wanted = {"apply": 1, "check": 1, "export": 2, "vendor": 2}
    if command not in wanted or len(paths) < wanted[command] or (command == "vendor" and len(paths) != 2):
        print(usage, file=sys.stderr)
        return 2
    try:
        if command == "vendor":
            print(f"copied the offline web assets to {vendor(*paths)}")
            return 0
        if command == "apply":
            for path in paths:
                if apply(path):
                    print(f"slide metadata written: {path}")
            return 0
        if command == "export":
            for path in paths[1:]:
                print(f"wrote {export(path, paths[0])}")
            return 0
        issues = [p for path in paths for p in problems(path)]
    except (OSError, ValueError) as exc:
        print(f"deitlab.slides: {exc}", file=sys.stderr)
        return 1
    print("\n".join(issues) or "slide metadata in sync")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
