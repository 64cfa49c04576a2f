"""Per-cell times from nbval's JUnit XML (deitlab.celltimes) and the committed warm run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deitlab import celltimes

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "notebooks" / "cell_times.csv"


def _notebook(path: Path, cells: list[dict]) -> Path:
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text: str, tags: list[str] | None = None) -> dict:
    return {"cell_type": "code", "metadata": {"tags": tags or []}, "source": text, "outputs": []}


def _junit(path: Path, notebook: str, times: list[float]) -> Path:
    cases = "".join(
        f'<testcase classname="notebooks.{notebook}" name="Cell {i}" time="{t}"/>' for i, t in enumerate(times)
    )
    other = '<testcase classname="tests.test_x" name="test_y" time="9"/>'  # not a notebook cell: ignored
    path.write_text(f'<testsuites><testsuite name="pytest">{other}{cases}</testsuite></testsuites>')
    return path


@pytest.fixture()
def lesson(tmp_path: Path) -> Path:
    return _notebook(
        tmp_path / "01_x.ipynb",
        [
            _md("# 01 · Title"),
            _code("%pip install x", tags=["colab"]),
            _md("## 1 · First"),
            _code("a = 1"),
            _code("# timing cell: about 30 s\nbench()", tags=["timing"]),
            _md("## 2 · Second"),
            _code("slow()"),
            _code("bench2()", tags=["timing"]),
        ],
    )


def test_rows_follow_nbval_numbering_and_sections(lesson: Path, tmp_path: Path) -> None:
    cold = celltimes.junit_cell_times(_junit(tmp_path / "c.xml", lesson.name, [9.0, 20.0, 40.0, 8.0, 50.0]))
    warm = celltimes.junit_cell_times(_junit(tmp_path / "w.xml", lesson.name, [8.0, 0.1, 31.0, 6.0]))
    assert list(cold) == [lesson.name]
    rows = celltimes.cell_times(lesson, cold, warm, "test machine", "2026-12-03")
    assert [(r.cell, r.section, r.cold_s, r.warm_s) for r in rows] == [
        (1, "01 · Title", 9.0, 8.0),
        (3, "1 · First", 20.0, 0.1),
        (4, "1 · First", 40.0, 31.0),
        (6, "2 · Second", 8.0, 6.0),
        (7, "2 · Second", 50.0, None),
    ]
    assert [r.timing_budget_s for r in rows] == [None, None, 30.0, None, float("inf")]
    assert rows[0].kernel_start and not rows[1].kernel_start


def test_slow_cells_are_warm_cells_over_the_limit_outside_timing_cells(lesson: Path, tmp_path: Path) -> None:
    cold = celltimes.junit_cell_times(_junit(tmp_path / "c.xml", lesson.name, [9.0, 20.0, 40.0, 8.0, 50.0]))
    warm = celltimes.junit_cell_times(_junit(tmp_path / "w.xml", lesson.name, [8.0, 0.1, 31.0, 6.0, 10.0]))
    rows = celltimes.cell_times(lesson, cold, warm, "m", "d")
    slow = celltimes.slow_cells(rows)
    assert len(slow) == 2
    assert slow[0].startswith("01_x.ipynb cell 6 ('slow()'): 6.0 s warm")
    assert "cell 7" in slow[1] and "does not say '# timing cell: about N s'" in slow[1]


def test_csv_round_trip(lesson: Path, tmp_path: Path) -> None:
    cold = celltimes.junit_cell_times(_junit(tmp_path / "c.xml", lesson.name, [1.234, 2.0]))
    rows = celltimes.cell_times(lesson, cold, {}, "m, with comma", "2026-12-03 10:00 UTC")
    back = celltimes.read_csv(celltimes.write_csv(rows, tmp_path / "t.csv"))
    assert back[0].cold_s == 1.23 and back[0].warm_s is None and back[0].machine == "m, with comma"
    assert [r.cell for r in back] == [r.cell for r in rows]


def test_bad_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<not closed")
    with pytest.raises(ValueError, match="bad.xml: not a readable JUnit XML file"):
        celltimes.junit_cell_times(bad)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="wrong.csv: not a cell-times CSV"):
        celltimes.read_csv(wrong)
    assert celltimes.main(["check", str(wrong)]) == 1
    assert capsys.readouterr().err.startswith("deitlab.celltimes: ")


def test_committed_warm_run_has_no_slow_cell_outside_timing_cells() -> None:
    if not COMMITTED.exists():
        pytest.skip(f"{COMMITTED} not measured yet (make cell-times)")
    rows = celltimes.read_csv(COMMITTED)
    assert rows and all(r.machine and r.date for r in rows)
    assert celltimes.slow_cells(rows) == []


LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.name)
def test_every_cell_announcing_a_timing_budget_is_tagged_and_within_the_limit(notebook: Path) -> None:
    limit = celltimes.TIMING_LIMIT_S
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        announces = bool(celltimes.TIMING_LINE.match("".join(cell["source"]).lstrip()))
        budget = celltimes.timing_budget(cell)
        where = f"{notebook.name} cell {cell.get('id')}"
        assert announces == (budget is not None), f"{where}: the '# timing cell' line and the 'timing' tag go together"
        assert budget is None or budget <= limit, f"{where}: announces {budget} s, more than {limit} s"
