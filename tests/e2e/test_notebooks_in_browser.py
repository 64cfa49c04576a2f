"""The notebooks as a learner meets them: JupyterLab in a real (headless) browser.

For 00_setup and every notebook with a cell tagged ``widget-explorer``: open it, Run ▸ Run All
Cells, wait for the kernel, then check that no cell raised, that each explorer renders as live
ipywidgets controls (not "Loading widget..." nor a plain-text repr) and that changing a control
redraws its plot. One screenshot per notebook goes to ``build/screenshots/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

import pytest
from e2e_support import Lab, explorer_cells

pytestmark = pytest.mark.e2e

NOTEBOOK_TIMEOUT_S = float(os.environ.get("DEITLAB_E2E_NOTEBOOK_TIMEOUT", "600"))
#: Seconds a control change may take to redraw its plot (kernel round trip + matplotlib).
REDRAW_TIMEOUT_S = 90.0

CELLS = ".jp-NotebookPanel .jp-Notebook .jp-Cell"
CONTROLS = ".widget-slider, .widget-dropdown, .widget-toggle-buttons, .widget-radio, .widget-checkbox"
#: A widget shown as its Python repr: the front-end widget manager is missing.
PLAIN_REPR = re.compile(r"\b(interactive|VBox|HBox|Box|IntSlider|FloatSlider|Dropdown|Output)\(children=|\(value=")
FRONTEND_FAILURES = ("Loading widget...", "Error displaying widget", "Javascript Error")

# Execution state of the open notebook, read from the DOM in one go.
STATE_JS = """() => {
  const indicator = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
  const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
    .map(p => p.textContent.trim());
  return {status: indicator ? indicator.getAttribute('data-status') : null, prompts};
}"""

# Text of every error output (exceptions raised by cells, front-end rendering errors).
ERRORS_JS = """() => {
  const errors = [...document.querySelectorAll(
      '.jp-NotebookPanel [data-mime-type="application/vnd.jupyter.error"]')]
    .map(e => e.textContent);
  for (const out of document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output')) {
    const text = out.textContent;
    if (text.includes('Traceback (most recent call last)') || text.includes('Javascript Error'))
      errors.push(text);
  }
  return [...new Set(errors)];
}"""


def _code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _wait(page, condition, deadline: float, what: str, poll_ms: int = 1000):
    """Poll ``condition()`` until it returns something truthy or the deadline passes."""
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        page.wait_for_timeout(poll_ms)


def _open(page, lab: Lab, notebook: Path, deadline: float) -> None:
    page.goto(lab.open_url(notebook.relative_to(lab.root).as_posix()), wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=180_000)

    path = notebook.relative_to(lab.root).as_posix()

    def kernel_ready():
        # The toolbar indicator says "idle" before any kernel exists: ask the server too.
        status, sessions = lab.api("/api/sessions")
        server_idle = status == 200 and any(
            s.get("path") == path and (s.get("kernel") or {}).get("execution_state") == "idle" for s in sessions
        )
        return server_idle and page.evaluate(STATE_JS)["status"] == "idle"

    _wait(page, kernel_ready, min(deadline, time.monotonic() + 180), "the notebook's kernel to start")
    n_cells = len(json.loads(notebook.read_text(encoding="utf-8"))["cells"])
    _wait(page, lambda: page.locator(CELLS).count() == n_cells, deadline, f"all {n_cells} cells in the DOM")


def _click_run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _run_all(page, notebook: Path, deadline: float, start=_click_run_all) -> None:
    """Run ▸ Run All Cells (``start(page)``: from the menu bar), then wait until every queued cell has finished."""

    def started():
        return any(re.search(r"\*|\d", p) for p in page.evaluate(STATE_JS)["prompts"])

    for attempt in (1, 2):  # a click landing while the page still settles can be lost: retry once
        start(page)
        try:
            _wait(page, started, min(deadline, time.monotonic() + 30), "Run All Cells to start", poll_ms=250)
            break
        except pytest.fail.Exception:
            if attempt == 2:
                raise

    def finished():
        state = page.evaluate(STATE_JS)
        prompts = state["prompts"]
        ran = any(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
        return ran and state["status"] == "idle" and not any("*" in p for p in prompts)

    _wait(page, finished, deadline, f"{notebook.name} to finish running (limit {NOTEBOOK_TIMEOUT_S:.0f} s)")
    errors = page.evaluate(ERRORS_JS)
    assert not errors, f"{notebook.name}: error output(s) in the browser:\n" + "\n---\n".join(e[:3000] for e in errors)
    prompts = page.evaluate(STATE_JS)["prompts"]
    sources = _code_cells(notebook)
    assert len(prompts) == len(sources), f"{len(prompts)} code cells in the DOM, {len(sources)} in the file"
    skipped = [i for i, (p, src) in enumerate(zip(prompts, sources)) if src.strip() and not re.search(r"\d", p)]
    assert not skipped, f"{notebook.name}: code cells {skipped} did not run (prompts {[prompts[i] for i in skipped]})"


def _plot_sources(cell) -> list[str]:
    return cell.locator(".widget-output img").evaluate_all("imgs => imgs.map(i => i.src)")


def _change(control) -> str:
    """Change one ipywidgets control the way a learner would; returns what was done."""
    classes = control.get_attribute("class") or ""
    if "widget-dropdown" in classes:
        select = control.locator("select")
        current = select.input_value()
        values = select.locator("option").evaluate_all("os => os.map(o => o.value)")
        target = next(v for v in values if v != current)
        select.select_option(target)
        return f"dropdown → option {target}"
    if "widget-slider" in classes:
        readout = control.locator(".widget-readout")
        before = readout.inner_text() if readout.count() else None
        handle = control.locator(".noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        if readout.count() and readout.inner_text() == before:  # already at the maximum
            handle.press("ArrowLeft")
            handle.press("ArrowLeft")
        after = readout.inner_text() if readout.count() else "?"
        return f"slider (keyboard) {before} → {after}"
    if "widget-toggle-buttons" in classes:
        button = control.locator("button:not(.mod-active)").first
        label = button.inner_text()
        button.click()
        return f"toggle button → {label}"
    if "widget-radio" in classes:
        option = control.locator("input[type=radio]:not(:checked)").first
        option.check()
        return "radio → another option"
    control.locator("input[type=checkbox]").first.click()
    return "checkbox toggled"


def _check_explorer(page, cell, label: str, deadline: float) -> str:
    """An explorer cell shows live controls, and changing one of them redraws its plot."""
    cell.scroll_into_view_if_needed()
    outputs = cell.locator(".jp-Cell-outputArea")
    bound = min(deadline, time.monotonic() + 120)

    def rendered():
        # Done once the widget view is there and no longer says "Loading widget...", or as soon as
        # the output shows a failure (plain-text repr, widget error) that no waiting will fix.
        text = outputs.inner_text()
        failed = PLAIN_REPR.search(text) or any(marker in text for marker in FRONTEND_FAILURES[1:])
        loaded = cell.locator(".jupyter-widgets").count() > 0 and FRONTEND_FAILURES[0] not in text
        return failed or loaded

    _wait(page, rendered, bound, f"{label}: the widget to render (still 'Loading widget...' or no widget)")
    text = outputs.inner_text()
    for marker in FRONTEND_FAILURES:
        assert marker not in text, f"{label}: the widget front-end failed: {marker!r} in\n{text[:2000]}"
    assert not PLAIN_REPR.search(text), f"{label}: widget shown as plain text, not controls:\n{text[:2000]}"
    controls = cell.locator(CONTROLS)
    assert controls.count() > 0, f"{label}: no slider/dropdown/toggle/radio/checkbox control rendered"
    _wait(page, lambda: _plot_sources(cell), bound, f"{label}: the explorer's plot (an <img> in its output)")
    tried = []
    for i in range(controls.count()):
        control = controls.nth(i)
        if not control.is_visible():
            continue
        before = _plot_sources(cell)
        action = _change(control)
        redraw_deadline = min(deadline, time.monotonic() + REDRAW_TIMEOUT_S)
        while time.monotonic() < redraw_deadline:
            page.wait_for_timeout(500)
            after = _plot_sources(cell)
            if after and after != before:
                assert not page.evaluate(ERRORS_JS), f"{label}: {action} raised:\n{page.evaluate(ERRORS_JS)}"
                return action
        tried.append(action)
    pytest.fail(f"{label}: no control change redrew the plot (tried: {tried})")


def test_notebook_in_jupyterlab(notebook: Path, lab: Lab, browser_context, screenshots: Path, report: Path) -> None:
    started = time.monotonic()
    deadline = started + NOTEBOOK_TIMEOUT_S
    original = notebook.read_bytes()
    page = browser_context.new_page()
    console: list[str] = []
    page.on("pageerror", lambda exc: console.append(f"page error: {exc}"))
    page.on("console", lambda msg: console.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    shot = screenshots / f"{notebook.stem}.png"
    try:
        _open(page, lab, notebook, deadline)
        _run_all(page, notebook, deadline)
        ran = time.monotonic() - started
        actions = []
        explorers = explorer_cells(notebook)
        for k, index in enumerate(explorers):
            cell = page.locator(CELLS).nth(index)
            actions.append(_check_explorer(page, cell, f"{notebook.name} cell {index}", deadline))
            cell.screenshot(path=str(screenshots / f"{notebook.stem}-explorer-{k + 1}.png"))
        # The notebook-level screenshot shows the first explorer (or the first picture).
        focus = (
            page.locator(CELLS).nth(explorers[0])
            if explorers
            else page.locator(f"{CELLS} .jp-OutputArea-output img").first
        )
        if focus.count():
            focus.scroll_into_view_if_needed()
        page.screenshot(path=str(shot))
        line = (
            f"{notebook.name}: ran in {ran:.0f} s, checked in {time.monotonic() - started:.0f} s; "
            f"{len(explorers)} explorer(s); interactions: {actions}; screenshot {shot}"
        )
        print(f"\n{line}")
        with report.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
    except BaseException:
        with contextlib.suppress(Exception):  # keep the original failure if the page is gone
            running = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt", has_text="[*]")
            if running.count():  # show the cell that was still running
                running.first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot))
        if console:
            print(f"\nbrowser console of {notebook.name}:\n" + "\n".join(console[-30:]))
        raise
    finally:
        page.close()
        lab.shutdown_sessions(notebook.name)
    assert notebook.read_bytes() == original, f"{notebook.name} was modified on disk by the browser session"
