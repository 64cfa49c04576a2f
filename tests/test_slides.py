"""Slide metadata rules (deitlab.slides), the committed notebooks' metadata, and the reveal.js export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deitlab import slides

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")) + sorted((ROOT / "notebooks/solutions").glob("*.ipynb"))


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text: str, tags: list[str] | None = None, outputs: list | None = None) -> dict:
    return {"cell_type": "code", "metadata": {"tags": tags or []}, "source": text, "outputs": outputs or []}


def _write(path: Path, cells: list[dict]) -> Path:
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n")
    return path


def test_structure_gives_slides_subslides_fragments_and_skips() -> None:
    cells = [
        _md("# Title"),
        _md("## Objectives\n- one"),
        _code("!pip install x", tags=["colab"]),
        _md("some prose"),
        _code("x = 1"),
        _md("what x means"),
        _md("more prose"),
        _md("### Detail"),
        _md("> **Then → now.** a box"),
    ]
    assert slides.slide_types(cells) == [
        "slide",
        "slide",
        "skip",
        "-",
        "fragment",
        "fragment",
        "-",
        "subslide",
        "subslide",
    ]


def test_a_cell_that_overflows_the_slide_starts_a_subslide() -> None:
    long_code = "\n".join(f"x{i} = {i}" for i in range(slides.SLIDE_LINES))
    assert slides.slide_types([_md("## Section\nintro"), _code(long_code)]) == ["slide", "subslide"]
    image = {"output_type": "display_data", "data": {"image/png": "AAAA"}, "metadata": {}}
    assert slides.cell_height(_code("plot()", outputs=[image])) == 1 + slides.IMAGE_LINES
    assert slides.slide_types([_md("## S"), _md("> box"), _md("prose")]) == ["slide", "subslide", "-"]


def test_apply_is_idempotent_and_check_reports_drift(tmp_path: Path) -> None:
    nb = _write(tmp_path / "01_x.ipynb", [_md("# T"), _code("x = 1")])
    assert slides.problems(nb) and slides.apply(nb)
    assert slides.problems(nb) == [] and not slides.apply(nb)
    data = json.loads(nb.read_text())
    data["cells"].append(_md("## New section"))
    nb.write_text(json.dumps(data, indent=1) + "\n")
    assert slides.problems(nb) == [
        f"{nb}: cell 2 has slide type None, the rules give 'slide' (run `python -m deitlab.slides apply`)"
    ]


def test_bad_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(f"{broken}: not a readable notebook")):
        slides.problems(broken)
    assert slides.main(["check", str(broken)]) == 1
    assert capsys.readouterr().err.startswith(f"deitlab.slides: {broken}")
    assert slides.main(["export", str(tmp_path)]) == 2
    assert slides.main(["shuffle", "x.ipynb"]) == 2
    with pytest.raises(FileNotFoundError, match="no such notebook"):
        slides.export(tmp_path / "missing.ipynb", tmp_path)
    with pytest.raises(FileNotFoundError, match="make vendor"):
        slides.vendor(tmp_path / "node_modules", tmp_path / "web")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_slide_metadata_matches_the_rules(notebook: Path) -> None:
    assert slides.problems(notebook) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_deck_builds_and_loads_no_script_from_the_internet(notebook: Path, tmp_path: Path) -> None:
    deck = slides.export(notebook, tmp_path).read_text(encoding="utf-8")
    assert deck.count("<section") >= 2
    remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?:[^"]+)"', deck)
    assert remote == []
    assert f'src="{slides.VENDOR}/requirejs/require.js"' in deck
