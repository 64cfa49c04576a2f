"""Notebook discovery for the browser pass (no browser needed: runs with the unit tests)."""

from __future__ import annotations

import json
from pathlib import Path

from e2e_support import NOTEBOOK_DIR, browser_notebooks, explorer_cells


def _write(path: Path, tags_per_cell: list[list[str]]) -> Path:
    cells = [{"cell_type": "code", "metadata": {"tags": tags}, "source": [], "outputs": []} for tags in tags_per_cell]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_explorer_cells_finds_tagged_cells_by_index(tmp_path: Path) -> None:
    nb = _write(tmp_path / "01_a.ipynb", [[], ["widget-explorer"], ["colab"], ["x", "widget-explorer"]])
    assert explorer_cells(nb) == [1, 3]
    assert explorer_cells(_write(tmp_path / "02_b.ipynb", [["colab"], []])) == []


def test_browser_notebooks_is_setup_plus_explorer_notebooks(tmp_path: Path) -> None:
    _write(tmp_path / "00_setup.ipynb", [[]])
    _write(tmp_path / "01_widgets.ipynb", [["widget-explorer"]])
    _write(tmp_path / "02_plain.ipynb", [[]])
    _write(tmp_path / "notes.ipynb", [["widget-explorer"]])  # not a numbered lesson
    assert [nb.name for nb in browser_notebooks(tmp_path)] == ["00_setup.ipynb", "01_widgets.ipynb"]


def test_the_project_setup_notebook_is_always_selected() -> None:
    assert NOTEBOOK_DIR / "00_setup.ipynb" in browser_notebooks()
