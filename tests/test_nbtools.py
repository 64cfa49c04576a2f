import json
from pathlib import Path

import pytest

from deitlab import nbtools
from deitlab._project import REPO_SLUG, colab_badge, install_cell, needs_deployment_stack

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def _quarantine() -> dict[str, str]:
    """notebooks/QUARANTINE as {path: reason} (the Makefile reads the same file)."""
    entries = {}
    for line in (ROOT / "notebooks" / "QUARANTINE").read_text().splitlines():
        path, _, reason = line.partition("#")
        if path.strip():
            entries[path.strip()] = reason.strip()
    return entries


QUARANTINED = set(_quarantine())
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))


def _notebook(tmp_path: Path, cells: list[dict]) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir(exist_ok=True)
    path = folder / "99_demo.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def _cell(kind: str, source: str, **extra) -> dict:
    cell = {"cell_type": kind, "metadata": extra.pop("metadata", {}), "source": source}
    if kind == "code":
        cell.update(outputs=extra.pop("outputs", []), execution_count=None)
    return cell


def _good_cells(badge: str) -> list[dict]:
    return [
        _cell("markdown", f"# Demo\n{badge}"),
        _cell("code", install_cell(deploy=True), metadata={"tags": ["colab"]}),
    ]


def test_sync_rewrites_stale_links_and_numbers_kept_cells(tmp_path):
    stale_badge = "[![Open in Colab](https://x/badge.svg)](https://colab.research.google.com/github/old/repo)"
    cells = [
        _cell("markdown", f"# Demo\n{stale_badge}"),
        _cell(
            "code",
            '%pip install -q "deitlab[deploy] @ git+https://github.com/old/repo@dev"',
            metadata={"tags": ["colab"]},
        ),
        _cell(
            "code",
            "# NBVAL_CHECK_OUTPUT\nprint(1)",
            metadata={"keep_output": True},
            outputs=[{"output_type": "stream", "name": "stdout", "text": "1\n"}],
        ),
    ]
    path = _notebook(tmp_path, cells)
    assert nbtools.problems(path)
    assert nbtools.sync(path) is True
    nbtools.stamp(path)
    assert nbtools.problems(path) == []
    assert nbtools.sync(path) is False
    stored = json.loads(path.read_text())["cells"]
    assert stored[2]["execution_count"] == 2
    assert colab_badge("notebooks/99_demo.ipynb") in "".join(stored[0]["source"])
    assert "".join(stored[1]["source"]) == install_cell(deploy=True).rstrip("\n")


def test_a_hand_edited_install_cell_is_reported(tmp_path):
    cells = _good_cells(colab_badge("notebooks/99_demo.ipynb"))
    cells[1]["source"] = cells[1]["source"].replace("import deitlab", "import deitlab, torch")
    assert "holding the install cell" in "\n".join(nbtools.problems(_notebook(tmp_path, cells)))


@pytest.mark.parametrize(
    ("path", "deploy"),
    [
        ("notebooks/00_setup.ipynb", False),
        ("notebooks/03_distillation.ipynb", False),
        ("notebooks/04_post_training_quantization.ipynb", True),
        ("notebooks/solutions/07_benchmarking_solutions.ipynb", True),
        ("README.md", False),
    ],
)
def test_only_notebooks_from_04_on_install_the_deployment_stack(path, deploy):
    assert needs_deployment_stack(path) is deploy
    cell = install_cell(deploy)
    assert ("deitlab[deploy] @" in cell) is deploy and ("executorch==" in cell) is deploy
    assert cell.startswith("# Installs the kit where it is missing") and "import deitlab" in cell


def test_problems_flags_unstripped_and_unchecked_outputs(tmp_path):
    badge = colab_badge("notebooks/99_demo.ipynb")
    cells = _good_cells(badge) + [
        _cell("code", "print(2)", outputs=[{"output_type": "stream", "name": "stdout", "text": "2\n"}]),
        _cell(
            "code",
            "print(3)",
            metadata={"keep_output": True},
            outputs=[{"output_type": "stream", "name": "stdout", "text": "3\n"}],
        ),
        _cell("code", "# NBVAL_CHECK_OUTPUT\nprint(4)", metadata={"keep_output": True}),
        _cell(
            "code",
            "1/0",
            metadata={"keep_output": True},
            outputs=[{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "", "traceback": []}],
        ),
    ]
    found = "\n".join(nbtools.problems(_notebook(tmp_path, cells)))
    assert "cell 2 has outputs but no 'keep_output'" in found
    assert "cell 3 was edited after its output was kept" in found
    assert "cell 4 is flagged 'keep_output' but has no output" in found
    assert "cell 5 stores an error output" in found


def test_stamp_ties_kept_outputs_to_their_source(tmp_path):
    badge = colab_badge("notebooks/99_demo.ipynb")
    shown = _cell(
        "code",
        "plot()",
        metadata={"keep_output": True},
        outputs=[{"output_type": "display_data", "data": {"text/plain": "<Figure>"}, "metadata": {}}],
    )
    path = _notebook(tmp_path, [*_good_cells(badge), shown])
    nbtools.sync(path)
    assert "cell 2 was edited after its output was kept" in "\n".join(nbtools.problems(path))
    assert nbtools.stamp(path) is True
    assert nbtools.stamp(path) is False
    assert nbtools.problems(path) == []  # a shown output (no NBVAL mark) is fine once stamped
    data = json.loads(path.read_text())
    data["cells"][2]["source"] = "plot(changed=True)"
    path.write_text(json.dumps(data))
    assert "cell 2 was edited after its output was kept" in "\n".join(nbtools.problems(path))


def test_problems_flags_paths_to_the_source_write_ups(tmp_path):
    badge = colab_badge("notebooks/99_demo.ipynb")
    cells = [*_good_cells(badge), _cell("markdown", "as the notes in `../shared/seeds/` record")]
    path = _notebook(tmp_path, cells)
    nbtools.sync(path)
    assert "cell 2 cites a path learners do not have" in "\n".join(nbtools.problems(path))


def test_main_reports_usage_and_exit_codes(tmp_path, capsys):
    assert nbtools.main([]) == 2
    path = _notebook(tmp_path, [_cell("markdown", "no badge")])
    assert nbtools.main(["check", str(path)]) == 1
    assert "lacks the badge" in capsys.readouterr().out


@pytest.mark.parametrize("notebook", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.name)
def test_committed_notebooks_are_stripped_and_in_sync(notebook):
    found = nbtools.problems(notebook)
    if str(notebook.relative_to(ROOT)) in QUARANTINED:  # not run by CI yet: outputs may be missing
        found = [problem for problem in found if "has no output" not in problem]
    assert found == []
    assert REPO_SLUG in notebook.read_text()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_solution_notebook(notebook):
    assert (ROOT / "notebooks" / "solutions" / f"{notebook.stem}_solutions.ipynb").exists()


def test_quarantine_lists_existing_notebooks_with_reasons():
    for path, reason in _quarantine().items():
        assert (ROOT / path).exists() and reason, path
