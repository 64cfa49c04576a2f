"""Write the ja/zh/vi editions of the notebooks from the English sources and the catalogues.

An edition is its source notebook with each markdown cell replaced by its finished translation
(the English stays where there is none, or where it is fuzzy), the Colab link pointing at the
edition, and ``metadata.deitlab.lang`` naming its language, which ``setup_notebook()`` reads.
Code cells are copied unchanged, outputs and metadata included.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import polib

from deitlab._project import colab_url
from deitlab.i18n.catalogue import (
    CatalogueError,
    cell_text,
    context,
    load_catalogue,
    po_path,
    read_notebook,
    translation,
)
from deitlab.i18n.languages import LANGUAGES
from deitlab.i18n.runtime import METADATA_KEY

SOLUTIONS = "solutions"


def source_notebooks(notebooks_dir: Path) -> list[Path]:
    """The English notebooks that get editions: ``NN_*.ipynb`` and ``solutions/*.ipynb``."""
    return sorted(notebooks_dir.glob("[0-9]*.ipynb")) + sorted((notebooks_dir / SOLUTIONS).glob("*.ipynb"))


def edition_path(source: Path, notebooks_dir: Path, lang: str) -> Path:
    """``notebooks/X.ipynb`` → ``notebooks/<edition>/X.ipynb`` (solutions: ``<edition>/solutions/X.ipynb``)."""
    relative = source.relative_to(notebooks_dir)
    return notebooks_dir / LANGUAGES[lang].edition / relative


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def build_edition(source: dict, source_path: str, target_path: str, catalogue: polib.POFile, lang: str) -> dict:
    """The edition of the notebook JSON ``source`` (at repository path ``source_path``) in ``lang``."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang {lang!r}: editions exist for {', '.join(LANGUAGES)}")
    edition = copy.deepcopy(source)
    stem = Path(source_path).stem
    for cell in edition["cells"]:
        if cell.get("cell_type") != "markdown" or "id" not in cell:
            continue
        english = cell_text(cell)
        text = translation(catalogue, context(stem, cell["id"]), english) or english
        text = text.replace(colab_url(source_path), colab_url(target_path))
        cell["source"] = _lines(text)
    edition.setdefault("metadata", {}).setdefault("deitlab", {})[METADATA_KEY] = lang
    return edition


def notebook_json(notebook: dict) -> str:
    """A notebook's text as the repository stores it (indent 1, UTF-8 as is, final newline)."""
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def expected_editions(notebooks_dir: Path, locale_dir: Path) -> dict[Path, str]:
    """Every edition file and the text it should hold, from the sources and the ``.po`` files."""
    root = notebooks_dir.parent
    expected = {}
    for source in source_notebooks(notebooks_dir):
        notebook = read_notebook(source)
        for lang in LANGUAGES:
            po_file = po_path(locale_dir, source.stem, lang)
            catalogue = load_catalogue(po_file) if po_file.exists() else polib.POFile()
            target = edition_path(source, notebooks_dir, lang)
            edition = build_edition(
                notebook, source.relative_to(root).as_posix(), target.relative_to(root).as_posix(), catalogue, lang
            )
            expected[target] = notebook_json(edition)
    return expected


def write_editions(notebooks_dir: Path, locale_dir: Path) -> list[Path]:
    """Write every edition whose text changed (and remove editions whose source is gone); returns them."""
    expected = expected_editions(notebooks_dir, locale_dir)
    changed = []
    for path, text in expected.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    for path in existing_editions(notebooks_dir):
        if path not in expected:
            path.unlink()
            changed.append(path)
    return changed


def existing_editions(notebooks_dir: Path) -> list[Path]:
    """The edition notebooks on disk."""
    found = []
    for lang in LANGUAGES.values():
        folder = notebooks_dir / lang.edition
        found += sorted(folder.glob("*.ipynb")) + sorted((folder / SOLUTIONS).glob("*.ipynb"))
    return found


def stale_editions(notebooks_dir: Path, locale_dir: Path) -> list[str]:
    """One line per edition that differs from what ``make translations`` would write (empty: in sync)."""
    try:
        expected = expected_editions(notebooks_dir, locale_dir)
    except CatalogueError as error:
        return [str(error)]
    problems = [f"{path}: missing" for path in expected if not path.is_file()]
    problems += [
        f"{path}: out of date with its source or catalogue"
        for path, text in expected.items()
        if path.is_file() and path.read_text(encoding="utf-8") != text
    ]
    problems += [f"{path}: its source is gone" for path in existing_editions(notebooks_dir) if path not in expected]
    return problems
