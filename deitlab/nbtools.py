"""Notebook housekeeping after ``nbstripout``: Colab links and the nbval policy.

``python -m deitlab.nbtools sync NOTEBOOK...`` rewrites the Colab badge and the whole
install cell from ``deitlab._project`` (with the deployment stack from notebook 04 on)
and numbers the cells whose output is kept (nbval refuses kept outputs on a cell
without an execution count);
``python -m deitlab.nbtools stamp NOTEBOOK...`` records, on every kept output, a
fingerprint of the cell source that produced it (``make refresh`` runs it right after
executing the notebooks);
``python -m deitlab.nbtools check NOTEBOOK...`` lists every problem (exit 1 if any).

Two kinds of output are kept (cell metadata ``keep_output``): *checked* outputs, whose
source carries ``# NBVAL_CHECK_OUTPUT`` and which nbval compares, and *shown* outputs
(the key figures and tables from the reference run), which nbval does not compare. Both
carry the source fingerprint, so a cell edited after its output was kept is reported.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from deitlab._project import colab_badge, install_cell, needs_deployment_stack

_BADGE = re.compile(r"\[!\[Open in Colab\]\([^)]*\)\]\([^)]*\)")
#: Paths to the write-ups the kit grew from, which learners do not have (cite author, title, address).
_SEED_PATH = re.compile(r"shared/seeds|\bseeds/\d{3}")
COLAB_TAG = "colab"
KEEP_FLAG = "keep_output"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
#: Cell metadata key of the kit; ``source_sha256`` inside it fingerprints a kept output's source.
META_KEY = "deitlab"


def _repo_path(notebook: Path) -> str:
    parts = notebook.resolve().parts
    return "/".join(parts[parts.index("notebooks") :]) if "notebooks" in parts else notebook.name


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def source_fingerprint(cell: dict) -> str:
    """Short SHA-256 of a cell's source: what produced the output that is kept with it."""
    return hashlib.sha256(_source(cell).encode("utf-8")).hexdigest()[:16]


def _stored_fingerprint(cell: dict) -> str | None:
    return cell.get("metadata", {}).get(META_KEY, {}).get("source_sha256")


def expected_links(notebook: Path) -> tuple[str, str]:
    """The badge markdown and the install cell this notebook should contain."""
    path = _repo_path(notebook)
    return colab_badge(path), install_cell(deploy=needs_deployment_stack(path))


def problems(notebook: str | Path) -> list[str]:
    """What is out of sync in one notebook (an empty list when all is well)."""
    notebook = Path(notebook)
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    badge, install = expected_links(notebook)
    found = []
    if not cells or badge not in _source(cells[0]):
        found.append(f"{notebook}: first cell lacks the badge {badge}")
    install_cells = [c for c in cells if COLAB_TAG in c.get("metadata", {}).get("tags", [])]
    if len(install_cells) != 1 or _source(install_cells[0]) != install.rstrip("\n"):
        found.append(
            f"{notebook}: needs exactly one cell tagged {COLAB_TAG!r} holding the install cell (run `make strip`)"
        )
    for index, cell in enumerate(cells):
        if _SEED_PATH.search(_source(cell)):
            found.append(f"{notebook}: cell {index} cites a path learners do not have; cite author, title, address")
        if cell["cell_type"] != "code":
            continue
        kept = bool(cell.get("metadata", {}).get(KEEP_FLAG))
        if cell.get("outputs") and not kept:
            found.append(f"{notebook}: cell {index} has outputs but no {KEEP_FLAG!r} flag (run `make strip`)")
        if kept and not cell.get("outputs"):
            found.append(f"{notebook}: cell {index} is flagged {KEEP_FLAG!r} but has no output (run `make refresh`)")
        elif kept and _stored_fingerprint(cell) != source_fingerprint(cell):
            found.append(f"{notebook}: cell {index} was edited after its output was kept (run `make refresh`)")
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            found.append(f"{notebook}: cell {index} stores an error output")
    return found


def sync(notebook: str | Path) -> bool:
    """Rewrite the badge and install command from the project constants; True if changed."""
    notebook = Path(notebook)
    text = notebook.read_text(encoding="utf-8")
    data = json.loads(text)
    badge, install = expected_links(notebook)
    for index, cell in enumerate(data["cells"]):
        source = _source(cell)
        if index == 0:
            source = _BADGE.sub(badge, source)
        if COLAB_TAG in cell.get("metadata", {}).get("tags", []):
            source = install.rstrip("\n")
        cell["source"] = source.splitlines(keepends=True)
        if cell["cell_type"] == "code":
            cell["execution_count"] = index if cell.get("outputs") else None
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output["execution_count"] = cell["execution_count"]
    new_text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    if new_text != text:
        notebook.write_text(new_text, encoding="utf-8")
        return True
    return False


def stamp(notebook: str | Path) -> bool:
    """Fingerprint the source of every kept output (after a fresh run); True if changed."""
    notebook = Path(notebook)
    text = notebook.read_text(encoding="utf-8")
    data = json.loads(text)
    for cell in data["cells"]:
        if cell["cell_type"] == "code" and cell.get("metadata", {}).get(KEEP_FLAG) and cell.get("outputs"):
            cell["metadata"].setdefault(META_KEY, {})["source_sha256"] = source_fingerprint(cell)
    new_text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    if new_text != text:
        notebook.write_text(new_text, encoding="utf-8")
        return True
    return False


def main(argv: list[str]) -> int:
    """``sync``, ``stamp`` or ``check`` the given notebooks."""
    if len(argv) < 2 or argv[0] not in {"sync", "stamp", "check"}:
        print("usage: python -m deitlab.nbtools sync|stamp|check NOTEBOOK...", file=sys.stderr)
        return 2
    command, paths = argv[0], argv[1:]
    if command in {"sync", "stamp"}:
        rewrite = sync if command == "sync" else stamp
        for path in paths:
            if rewrite(path):
                print(f"{command}ed {path}")
        return 0
    issues = [p for path in paths for p in problems(path)]
    print("\n".join(issues) or "all notebooks in sync")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
