"""Per-cell run times of the notebooks, cold and warm, from nbval's JUnit XML.

``make cell-times`` runs nbval twice with ``--junitxml`` (first on an empty cache: *cold*, then
again: *warm*) and calls ``python -m deitlab.celltimes report --cold X.xml --warm Y.xml --out
notebooks/cell_times.csv --date DATE NOTEBOOK...`` (``--cold``/``--warm`` may repeat, one per
partial run), which writes one row per code cell with its
section and the machine and date of the run; ``python -m deitlab.celltimes check
notebooks/cell_times.csv`` lists every slow warm cell that is not a timing cell (exit 1 if any).

nbval names each code cell ``Cell N`` (N counts code cells only) and its JUnit time includes the
cell's set-up, so the first code cell (the Colab install cell, which does nothing elsewhere) also
carries the kernel start; it is reported as ``kernel start`` and never counted as slow.

A **timing cell** exists to time something (a benchmark). It carries the cell tag ``timing`` and
says up front how long it takes, on its first line: ``# timing cell: about N s`` with N ≤
``TIMING_LIMIT_S``. Every other code cell must re-run warm in ≤ ``WARM_LIMIT_S`` seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from deitlab.nbtools import COLAB_TAG

WARM_LIMIT_S = 5.0
TIMING_LIMIT_S = 60.0
TIMING_TAG = "timing"
TIMING_LINE = re.compile(r"^#\s*timing cell:\s*about\s+(\d+(?:\.\d+)?)\s*s\b")
_NBVAL_CELL = re.compile(r"^Cell (\d+)$")


@dataclass(frozen=True)
class CellTime:
    """One code cell's measured times (seconds; None when that run did not reach it)."""

    notebook: str
    cell: int  # index among all cells, as JupyterLab shows them
    section: str  # the ``## `` heading the cell sits under
    cold_s: float | None
    warm_s: float | None
    timing_budget_s: float | None  # what a timing cell announces; None for ordinary cells
    kernel_start: bool  # the Colab install cell, whose time is the kernel's start-up
    first_line: str
    machine: str
    date: str


def junit_cell_times(path: str | Path) -> dict[str, dict[int, float]]:
    """``{notebook file name: {code cell number: seconds}}`` from an nbval JUnit XML file."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ValueError(f"{path}: not a readable JUnit XML file ({exc})") from None
    times: dict[str, dict[int, float]] = {}
    for case in root.iter("testcase"):
        classname, match = case.get("classname", ""), _NBVAL_CELL.match(case.get("name", ""))
        if match and classname.endswith(".ipynb"):
            notebook = ".".join(classname.split(".")[-2:])
            times.setdefault(notebook, {})[int(match.group(1))] = float(case.get("time", "nan"))
    return times


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def timing_budget(cell: dict) -> float | None:
    """Seconds a timing cell announces on its first line; None if the cell is not a timing cell."""
    if TIMING_TAG not in cell.get("metadata", {}).get("tags", []):
        return None
    match = TIMING_LINE.match(_source(cell).lstrip())
    return float(match.group(1)) if match else float("inf")


def sections(cells: list[dict]) -> list[str]:
    """The ``## `` section title each cell belongs to (the title cell's own for the cells before)."""
    current, found = "", []
    for cell in cells:
        first = _source(cell).lstrip().split("\n", 1)[0]
        if cell["cell_type"] == "markdown" and re.match(r"#{1,2} ", first):
            current = first.lstrip("#").strip()
        found.append(current)
    return found


def cell_times(
    notebook: str | Path,
    cold: dict[str, dict[int, float]],
    warm: dict[str, dict[int, float]],
    machine: str,
    date: str,
) -> list[CellTime]:
    """One row per code cell of ``notebook`` with its cold and warm time from nbval's numbering."""
    notebook = Path(notebook)
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    rows, code_number = [], 0
    for index, (cell, section) in enumerate(zip(cells, sections(cells))):
        if cell["cell_type"] != "code":
            continue
        rows.append(
            CellTime(
                notebook=notebook.name,
                cell=index,
                section=section,
                cold_s=cold.get(notebook.name, {}).get(code_number),
                warm_s=warm.get(notebook.name, {}).get(code_number),
                timing_budget_s=timing_budget(cell),
                kernel_start=COLAB_TAG in cell.get("metadata", {}).get("tags", []),
                first_line=_source(cell).strip().split("\n", 1)[0][:80],
                machine=machine,
                date=date,
            )
        )
        code_number += 1
    return rows


def write_csv(rows: list[CellTime], path: str | Path) -> Path:
    """Write the rows (times rounded to 0.01 s) as CSV."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(CellTime)], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            record = asdict(row)
            for key in ("cold_s", "warm_s"):
                record[key] = "" if record[key] is None else f"{record[key]:.2f}"
            writer.writerow(record)
    return path


def read_csv(path: str | Path) -> list[CellTime]:
    """Rows written by ``write_csv``."""
    path = Path(path)

    def number(text: str) -> float | None:
        return float(text) if text not in ("", None) else None

    try:
        with path.open(encoding="utf-8") as source:
            return [
                CellTime(
                    notebook=r["notebook"],
                    cell=int(r["cell"]),
                    section=r["section"],
                    cold_s=number(r["cold_s"]),
                    warm_s=number(r["warm_s"]),
                    timing_budget_s=number(r["timing_budget_s"]),
                    kernel_start=r["kernel_start"] == "True",
                    first_line=r["first_line"],
                    machine=r["machine"],
                    date=r["date"],
                )
                for r in csv.DictReader(source)
            ]
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a cell-times CSV ({exc})") from None


def slow_cells(rows: list[CellTime]) -> list[str]:
    """Every warm cell over ``WARM_LIMIT_S`` that is not a timing cell, and every timing cell that
    announces no time, more than ``TIMING_LIMIT_S``, or takes longer than that (empty if none)."""
    found = []
    for row in rows:
        where = f"{row.notebook} cell {row.cell} ({row.first_line!r})"
        if row.timing_budget_s is not None:
            if row.timing_budget_s > TIMING_LIMIT_S:
                found.append(
                    f"{where}: tagged {TIMING_TAG!r} but its first line does not say "
                    f"'# timing cell: about N s' with N <= {TIMING_LIMIT_S:.0f}"
                )
            elif row.warm_s is not None and row.warm_s > TIMING_LIMIT_S:
                found.append(f"{where}: timing cell took {row.warm_s:.1f} s warm (limit {TIMING_LIMIT_S:.0f} s)")
        elif not row.kernel_start and row.warm_s is not None and row.warm_s > WARM_LIMIT_S:
            found.append(
                f"{where}: {row.warm_s:.1f} s warm (limit {WARM_LIMIT_S:.0f} s; a benchmark cell needs the "
                f"tag {TIMING_TAG!r} and a first line '# timing cell: about N s')"
            )
    return found


def machine_description() -> str:
    """CPU model, core count and int8 instruction sets of this machine, in one line."""
    import os

    from deitlab.env import cpu_features, cpu_model

    features = [name for name, present in cpu_features().items() if present]
    return f"{cpu_model()} · {os.cpu_count()} cores · {' '.join(features) or 'no AVX2'}"


def main(argv: list[str]) -> int:
    """``report`` (JUnit XML → CSV) or ``check`` (slow warm cells) from the command line."""
    parser = argparse.ArgumentParser(prog="python -m deitlab.celltimes", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="write the per-cell CSV from nbval's JUnit XML")
    report.add_argument("--cold", required=True, action="append", help="JUnit XML of a run on an empty cache")
    report.add_argument("--warm", required=True, action="append", help="JUnit XML of the run right after it")
    report.add_argument("--out", required=True, help="CSV file to write")
    report.add_argument("--date", required=True, help="date of the runs (UTC)")
    report.add_argument("--note", default="", help="appended to the machine description (e.g. the load)")
    report.add_argument("notebooks", nargs="+")
    check = commands.add_parser("check", help="list slow warm cells that are not timing cells")
    check.add_argument("csv")
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            cold = {nb: t for path in args.cold for nb, t in junit_cell_times(path).items()}
            warm = {nb: t for path in args.warm for nb, t in junit_cell_times(path).items()}
            machine = machine_description() + (f" · {args.note}" if args.note else "")
            rows = [row for nb in args.notebooks for row in cell_times(nb, cold, warm, machine, args.date)]
            print(f"wrote {write_csv(rows, args.out)} ({len(rows)} code cells)")
            return 0
        slow = slow_cells(read_csv(args.csv))
    except (OSError, ValueError) as exc:
        print(f"deitlab.celltimes: {exc}", file=sys.stderr)
        return 1
    print("\n".join(slow) or f"no warm cell over {WARM_LIMIT_S:.0f} s outside the timing cells")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
