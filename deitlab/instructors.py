"""``notebooks/INSTRUCTORS.md``: a session plan per notebook, generated from the notebooks and the
measured per-cell times (``notebooks/cell_times.csv``, written by ``make cell-times``).

``python -m deitlab.instructors notebooks/cell_times.csv notebooks/INSTRUCTORS.md NOTEBOOK...``
(``make instructors``). Per notebook: the goal (its promise and learning objectives), a plan whose
clock adds, per ``## `` section, ``TALK_MIN_PER_SLIDE`` minutes per slide (the slide metadata of
``deitlab.slides``) to the section's measured warm run time, the measured cold and warm time of
each section (sums of its cells), the cells to pre-run before the session (cold over
``WARM_LIMIT_S``), the discussion questions (the notebook's section whose heading says
"discussion" or "questions", when it has one) and the failure modes seen on real machines with
what to say (the hand-written ``FAILURE_MODES`` table below).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from deitlab.celltimes import WARM_LIMIT_S, CellTime, read_csv, sections
from deitlab.slides import slide_types

#: Minutes an instructor talks per slide or sub-slide (fragments are part of their slide).
TALK_MIN_PER_SLIDE = 1.5
_QUESTIONS_HEADING = re.compile(r"^#{2,3} .*(discussion|questions)", re.IGNORECASE)

#: What goes wrong in classrooms, the notebooks it affects, and what to say. Hand-written.
FAILURE_MODES = [
    (
        "No internet (or the hub is blocked): the **random weights** banner",
        "00–02, 04, 06, 07",
        "Sizes, parameter counts and latencies are real; predictions and attention maps are not. "
        "Point at the banner, then at the trained tiny models (03–06), whose accuracies are real offline.",
    ),
    (
        "**XNNPACK missing**: `optimize_for_mobile` fails (official wheels ≥ 2.13)",
        "00, 06",
        "This is the lesson, not a bug: the legacy mobile path is gone from the wheels; "
        "ExecuTorch's XNNPACK delegate is today's path. The capability table in 00 shows it live.",
    ),
    (
        "**int8 slower than fp32** (CPU without AVX-512 VNNI / AMX)",
        "04, 07",
        "int8 kernels need int8 dot-product instructions to win; on AVX2-only laptops they fall back to "
        "slow paths. Read `deitlab env` (VNNI/AMX columns) aloud; the size win stays 4× everywhere.",
    ),
    (
        "First run much slower than the plan (**cold cache**)",
        "03–07",
        "The cold column is the first run: trainings and exports are cached afterwards. "
        "Run `make classroom` on every machine before the session.",
    ),
    (
        "Timings jump around (**busy laptop**, video call, browser tabs)",
        "02, 04, 07",
        "That is why 07 reports medians and spread over repeats with fixed threads. "
        "Close the other programs and re-run the timing cell; never compare single runs.",
    ),
    (
        "Colab: different torch version, a GPU, legacy APIs present or absent",
        "all",
        "The capability probes decide at run time; the notebook says what works on *this* machine. "
        "Compare two learners' capability tables as a discussion point.",
    ),
    (
        "Kernel dies (out of memory) on 4 GB machines",
        "04, 06, 07 (DeiT-B)",
        "DeiT-B in fp32 plus its int8 copies needs ~2 GB; restart the kernel, close other notebooks, "
        "and run only the tiny-model sections.",
    ),
]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def goal(cells: list[dict]) -> tuple[str, str, list[str]]:
    """The notebook's title, promise and learning objectives (from its first cells)."""
    title = _source(cells[0]).lstrip("# ").split("\n", 1)[0].strip() if cells else ""
    promise = next((line for line in _source(cells[0]).splitlines() if line.startswith("**Promise:**")), "")
    objectives: list[str] = []
    for cell in cells:
        text = _source(cell)
        if cell["cell_type"] == "markdown" and text.lstrip().lower().startswith("## learning objectives"):
            objectives = [line[2:].strip() for line in text.splitlines() if line.startswith("- ")]
            break
    promise = promise.removeprefix("**Promise:**").strip()
    return title, promise[:1].upper() + promise[1:], objectives


def questions(cells: list[dict]) -> list[str]:
    """Numbered or bulleted items of the notebook's discussion-questions section (empty if none)."""
    for cell in cells:
        text = _source(cell)
        if cell["cell_type"] == "markdown" and _QUESTIONS_HEADING.match(text.lstrip()):
            return [
                re.sub(r"^(\d+\.|-)\s+", "", line).strip()
                for line in text.splitlines()
                if re.match(r"^(\d+\.|-)\s", line)
            ]
    return []


def notebook_plan(notebook: str | Path, times: list[CellTime]) -> str:
    """The markdown session plan of one notebook."""
    notebook = Path(notebook)
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    title, promise, objectives = goal(cells)
    by_cell = {t.cell: t for t in times if t.notebook == notebook.name}
    order: list[str] = []
    slides: dict[str, int] = {}
    cold: dict[str, float] = {}
    warm: dict[str, float] = {}
    for index, (section, kind) in enumerate(zip(sections(cells), slide_types(cells))):
        if section not in slides:
            order.append(section)
            slides[section], cold[section], warm[section] = 0, 0.0, 0.0
        slides[section] += kind in {"slide", "subslide"}
        row = by_cell.get(index)
        if row is not None and not row.kernel_start:
            cold[section] += row.cold_s or 0.0
            warm[section] += row.warm_s or 0.0
    lines = [f"## {title}", "", f"[`{notebook.name}`]({notebook.name})", ""]
    if promise:
        lines += [f"**Goal.** {promise}", ""]
    lines += [f"- {o}" for o in objectives] + ([""] if objectives else [])
    if not by_cell:
        lines += ["*No measured times yet for this notebook: run `make cell-times`.*", ""]
    lines += ["| start | section | slides | cold run | warm run |", "|---:|---|---:|---:|---:|"]
    clock = 0.0
    for section in order:
        lines.append(
            f"| {clock:.0f} min | {section} | {slides[section]} | {_minutes(cold[section] if by_cell else None)} "
            f"| {_minutes(warm[section] if by_cell else None)} |"
        )
        clock += slides[section] * TALK_MIN_PER_SLIDE + warm[section] / 60
    total_cold, total_warm = sum(cold.values()), sum(warm.values())
    lines += [
        f"| {clock:.0f} min | *end* | | {_minutes(total_cold if by_cell else None)} "
        f"| {_minutes(total_warm if by_cell else None)} |",
        "",
    ]
    pre_run = [t for t in by_cell.values() if not t.kernel_start and (t.cold_s or 0) > WARM_LIMIT_S]
    slow_warm = [t for t in pre_run if (t.warm_s or 0) > WARM_LIMIT_S]
    if by_cell:
        lines.append(
            "**Run live:** every code cell not listed below (each re-runs warm in ≤ "
            f"{WARM_LIMIT_S:.0f} s). **Pre-run before the session** (`make classroom`; over "
            f"{WARM_LIMIT_S:.0f} s cold):" + ("" if pre_run else " none.")
        )
        lines += [
            f"- cell {t.cell} `{t.first_line}` — cold {_minutes(t.cold_s)}, warm {_minutes(t.warm_s)}" for t in pre_run
        ]
        if slow_warm:
            lines.append("")
            lines.append(
                "**Still slow warm** (show the kept output or let it run during discussion): "
                + ", ".join(f"cell {t.cell}" for t in slow_warm)
            )
        lines.append("")
    found = questions(cells)
    lines += ["**Discussion questions**", ""]
    lines += [f"{i}. {q}" for i, q in enumerate(found, 1)] or [
        "*This notebook has no discussion-questions section yet.*"
    ]
    lines.append("")
    return "\n".join(lines)


def instructors_markdown(times: list[CellTime], notebooks: list[str | Path]) -> str:
    """The whole INSTRUCTORS.md: how to read it, one plan per notebook, the failure modes."""
    machines = sorted({f"{t.machine}, {t.date}" for t in times})
    head = [
        "# Session plans for instructors",
        "",
        "Generated by `make instructors` (`deitlab/instructors.py`) from the notebooks and the measured "
        "per-cell times in [`cell_times.csv`](cell_times.csv) (`make cell-times`); do not edit by hand.",
        "",
        f"Times measured on: {'; '.join(machines) or 'no measurement yet'}. *Cold* is the first run on an "
        "empty cache (trainings and exports happen), *warm* the re-run right after. The *start* column "
        f"budgets {TALK_MIN_PER_SLIDE:g} min of talk per slide (the notebook's slide metadata) plus the "
        "section's warm run time; the kernel start (first code cell) is not counted.",
        "",
        "Before the session: `make classroom` on the instructor's laptop (and copy its cache to the "
        "learners' machines, as it prints). Present with JupyterLab ▸ View ▸ Render as slideshow (RISE), "
        "or the static decks from `make slides`.",
        "",
    ]
    plans = [notebook_plan(nb, times) for nb in notebooks]
    tail = ["## Failure modes seen on real machines", "", "| what happens | notebooks | what to say |", "|---|---|---|"]
    tail += [f"| {what} | {where} | {say} |" for what, where, say in FAILURE_MODES]
    return "\n".join(head + plans + tail) + "\n"


def main(argv: list[str]) -> int:
    """``python -m deitlab.instructors CELL_TIMES_CSV OUT_MD NOTEBOOK...``"""
    if len(argv) < 3:
        print("usage: python -m deitlab.instructors CELL_TIMES_CSV OUT_MD NOTEBOOK...", file=sys.stderr)
        return 2
    csv_path, out, notebooks = argv[0], Path(argv[1]), argv[2:]
    try:
        times = read_csv(csv_path) if Path(csv_path).exists() else []
        if not times:
            print(f"deitlab.instructors: no times in {csv_path} yet (run `make cell-times`): plans without times")
        text = instructors_markdown(times, notebooks)
    except (OSError, ValueError) as exc:
        print(f"deitlab.instructors: {exc}", file=sys.stderr)
        return 1
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
