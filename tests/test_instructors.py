"""Session plans generated from notebooks and measured cell times (deitlab.instructors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deitlab import instructors
from deitlab.celltimes import CellTime


def _cell(kind: str, text: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": tags or []}, "source": text}
    return {**cell, "outputs": []} if kind == "code" else cell


@pytest.fixture()
def lesson(tmp_path: Path) -> Path:
    cells = [
        _cell("markdown", "# 05 · A lesson\n\n**Promise:** you learn a thing.\n"),
        _cell("markdown", "## Learning objectives\n- One\n- Two\n"),
        _cell("code", "%pip install x", tags=["colab"]),
        _cell("markdown", "## 1 · Train"),
        _cell("code", "train()"),
        _cell("code", "plot()"),
        _cell("markdown", "## Discussion questions\n1. Why?\n2. Why not?\n"),
    ]
    path = tmp_path / "05_lesson.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def _time(cell: int, cold: float, warm: float, kernel: bool = False) -> CellTime:
    return CellTime("05_lesson.ipynb", cell, "", cold, warm, None, kernel, "x", "a laptop", "2026-12-03")


def test_goal_and_questions_come_from_the_notebook(lesson: Path) -> None:
    cells = json.loads(lesson.read_text())["cells"]
    assert instructors.goal(cells) == ("05 · A lesson", "You learn a thing.", ["One", "Two"])
    assert instructors.questions(cells) == ["Why?", "Why not?"]
    assert instructors.questions(cells[:3]) == []


def test_section_times_are_sums_of_the_measured_cells(lesson: Path) -> None:
    times = [_time(2, 30.0, 25.0, kernel=True), _time(4, 120.0, 2.0), _time(5, 3.0, 1.0)]
    plan = instructors.notebook_plan(lesson, times)
    assert "| 1 · Train | 1 | 2.0 min | 3 s |" in plan  # the kernel start (cell 2) is not counted
    assert "- cell 4 `x` — cold 2.0 min, warm 2 s" in plan  # pre-run: over 5 s cold
    assert "1. Why?" in plan and "**Goal.** You learn a thing." in plan


def test_whole_file_names_the_machine_and_lists_failure_modes(lesson: Path) -> None:
    text = instructors.instructors_markdown([_time(4, 1.0, 1.0)], [lesson])
    assert "a laptop, 2026-12-03" in text
    assert "random weights" in text and "XNNPACK" in text and "VNNI" in text


def test_without_times_the_plan_says_so(lesson: Path) -> None:
    assert "No measured times yet" in instructors.notebook_plan(lesson, [])


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert instructors.main(["only-one"]) == 2
    capsys.readouterr()
    broken = tmp_path / "broken.csv"
    broken.write_text("x\n1\n")
    assert instructors.main([str(broken), str(tmp_path / "out.md"), "nb.ipynb"]) == 1
    assert capsys.readouterr().err.startswith(f"deitlab.instructors: {broken}: not a cell-times CSV")
