"""The ja/zh/vi editions as a learner meets them: JupyterLab in that language, in a real browser.

For each edition (``make lab LAB_LANG=<lang>``): open notebook 01 (prose, plots and a widget
explorer), run every cell, then check that JupyterLab's menus are translated by the language pack,
that the kit's status line speaks the edition's language (``metadata.deitlab.lang``), that no
character of the page renders as a missing-glyph box (tofu) and no plot warned about a missing
glyph, and that the explorer's controls redraw its plot. Screenshots: ``build/screenshots/<lang>-*``.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from e2e_support import Lab, explorer_cells
from test_notebooks_in_browser import CELLS, NOTEBOOK_TIMEOUT_S, _check_explorer, _open, _run_all

from deitlab.i18n import runtime

pytestmark = pytest.mark.e2e

NOTEBOOK = "01_vit_transformers.ipynb"
# "Kernel" and "Settings" may stay as loanwords (the Vietnamese pack keeps "Kernel")
ENGLISH_MENUS = {"File", "Edit", "View", "Run", "Help"}

# Characters of the page (CJK and Vietnamese letters) drawn exactly like a code point that no font
# has: those render as tofu. Drawn in the font the rendered markdown uses.
TOFU_JS = """() => {
  const text = document.querySelector('.jp-NotebookPanel').innerText;
  const wanted = c => { const p = c.codePointAt(0);
    return (p >= 0xC0 && p <= 0x24F) || (p >= 0x1E00 && p <= 0x1EFF) || (p >= 0x3000 && p <= 0x9FFF)
        || (p >= 0xFF00 && p <= 0xFFEF); };
  const chars = [...new Set([...text].filter(wanted))];
  const md = document.querySelector('.jp-NotebookPanel .jp-RenderedMarkdown');
  const canvas = document.createElement('canvas');
  canvas.width = 48; canvas.height = 48;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.font = '32px ' + getComputedStyle(md).fontFamily;
  const draw = c => { ctx.clearRect(0, 0, 48, 48); ctx.fillText(c, 4, 36);
                      return ctx.getImageData(0, 0, 48, 48).data.join(','); };
  const tofu = draw(String.fromCodePoint(0x10FFFD));
  return {checked: chars.length, tofu: chars.filter(c => draw(c) === tofu), letterIsTofu: draw('A') === tofu};
}"""


def _run_all_by_command(page) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _expected_words(lang: str) -> str:
    previous = runtime.current_language()
    runtime.set_language(lang)
    try:
        return runtime.t("threads")
    finally:
        runtime.set_language(previous)


def test_edition_in_jupyterlab_in_its_language(edition_lab: Lab, browser_context, screenshots) -> None:
    lang = edition_lab.root.name
    notebook = edition_lab.root / NOTEBOOK
    started = time.monotonic()
    deadline = started + NOTEBOOK_TIMEOUT_S
    original = notebook.read_bytes()
    page = browser_context.new_page()
    shot = screenshots / f"{lang}-{notebook.stem}.png"
    try:
        _open(page, edition_lab, notebook, deadline)
        menus = set(page.locator(".lm-MenuBar-itemLabel").all_inner_texts())
        assert menus and not menus & ENGLISH_MENUS, f"{lang}: JupyterLab menus not translated: {sorted(menus)}"
        _run_all(page, notebook, deadline, start=_run_all_by_command)

        outputs = page.locator(f"{CELLS} .jp-OutputArea-output").all_inner_texts()
        status = next((text for text in outputs if text.startswith("deitlab · ")), "")
        assert _expected_words(lang) in status, f"{lang}: the status line is not in the edition's language: {status!r}"
        warned = [text[:300] for text in outputs if "missing from font" in text]
        assert not warned, f"{lang}: matplotlib drew tofu: {warned}"
        glyphs = page.evaluate(TOFU_JS)
        assert glyphs["checked"] > 20 and not glyphs["letterIsTofu"], f"{lang}: the tofu probe is broken: {glyphs}"
        assert not glyphs["tofu"], f"{lang}: characters drawn as tofu: {''.join(glyphs['tofu'])}"

        [explorer] = explorer_cells(notebook)
        cell = page.locator(CELLS).nth(explorer)
        action = _check_explorer(page, cell, f"{lang}/{NOTEBOOK} explorer", deadline)
        cell.screenshot(path=str(screenshots / f"{lang}-{notebook.stem}-explorer.png"))
        page.locator(CELLS).first.scroll_into_view_if_needed()
        page.screenshot(path=str(shot))
        print(
            f"\n{lang}/{NOTEBOOK}: ran and checked in {time.monotonic() - started:.0f} s; menus {sorted(menus)}; "
            f"{glyphs['checked']} distinct letters, no tofu; explorer: {action}; screenshot {shot}"
        )
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot))
        raise
    finally:
        page.close()
        edition_lab.shutdown_sessions(notebook.name)
    assert notebook.read_bytes() == original, f"{notebook} was modified on disk by the browser session"
