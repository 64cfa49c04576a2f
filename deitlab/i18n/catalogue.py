"""Gettext catalogues of the notebooks' markdown: extract ``<stem>.pot``, merge it into each language's ``.po``.

One translatable unit per markdown cell; its ``msgctxt`` is ``<notebook stem>:<cell id>``, so equal
texts in different cells stay separate entries. Merging keeps a translation whose English is
unchanged, marks it fuzzy (with the previous English in ``#| msgid``) when the English changed,
adds new cells untranslated and drops cells that no longer exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import polib

from deitlab.i18n.languages import LANGUAGES

HEADER = {
    "Project-Id-Version": "deitlab notebooks",
    "MIME-Version": "1.0",
    "Content-Type": "text/plain; charset=UTF-8",
    "Content-Transfer-Encoding": "8bit",
}
FUZZY = "fuzzy"


class CatalogueError(ValueError):
    """A notebook or catalogue file cannot be read."""


def read_notebook(path: str | Path) -> dict:
    """A notebook's JSON; :class:`CatalogueError` naming the file when it is missing or not a notebook."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogueError(f"{path}: no such notebook") from None
    except (OSError, ValueError) as error:
        raise CatalogueError(f"{path}: not a readable notebook ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise CatalogueError(f"{path}: not a notebook (no list of cells)")
    return data


def cell_text(cell: dict) -> str:
    """A cell's source as one string (notebooks store it as a list of lines or as one string)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def context(stem: str, cell_id: str) -> str:
    """The ``msgctxt`` of a markdown cell: ``<notebook stem>:<cell id>``."""
    return f"{stem}:{cell_id}"


def notebook_entries(notebook: str | Path) -> list[polib.POEntry]:
    """One untranslated entry per non-empty markdown cell of ``notebook``, in cell order."""
    path = Path(notebook)
    entries = []
    for index, cell in enumerate(read_notebook(path)["cells"]):
        text = cell_text(cell)
        if cell.get("cell_type") != "markdown" or not text.strip():
            continue
        if "id" not in cell:
            raise CatalogueError(f"{path}: markdown cell {index} has no id (nbformat 4.5 ids are required)")
        entries.append(
            polib.POEntry(msgctxt=context(path.stem, cell["id"]), msgid=text, msgstr="", occurrences=[(path.name, "")])
        )
    return entries


def new_catalogue(entries: list[polib.POEntry], language: str = "") -> polib.POFile:
    """A catalogue with the kit's header holding ``entries`` (in their order)."""
    catalogue = polib.POFile(wrapwidth=0)
    catalogue.metadata = dict(HEADER, **({"Language": language} if language else {}))
    catalogue.extend(entries)
    return catalogue


def template(notebook: str | Path) -> polib.POFile:
    """The ``.pot`` of one notebook: its markdown cells, untranslated."""
    return new_catalogue(notebook_entries(notebook))


def load_catalogue(path: str | Path) -> polib.POFile:
    """Read a ``.po``/``.pot`` file; :class:`CatalogueError` naming it when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"{path}: no such catalogue")
    try:
        catalogue = polib.pofile(str(path), wrapwidth=0)
    except (OSError, ValueError) as error:  # polib raises OSError for syntax errors
        raise CatalogueError(f"{path}: not a valid gettext catalogue ({error})") from None
    return catalogue


def _key(entry: polib.POEntry) -> tuple[str | None, str]:
    return (entry.msgctxt, "") if entry.msgctxt else (None, entry.msgid)


def merge(pot: polib.POFile, po: polib.POFile | None, language: str) -> polib.POFile:
    """``po`` brought up to date with ``pot`` (see the module docstring); ``po`` None starts a new catalogue."""
    old = {_key(e): e for e in po if not e.obsolete} if po is not None else {}
    entries = []
    for source in pot:
        entry = polib.POEntry(msgctxt=source.msgctxt, msgid=source.msgid, occurrences=source.occurrences)
        previous = old.get(_key(source))
        if previous is not None and previous.msgstr:
            entry.msgstr = previous.msgstr
            entry.tcomment = previous.tcomment
            if previous.msgid != source.msgid:
                entry.flags = [FUZZY]
                entry.previous_msgid = previous.previous_msgid if previous.fuzzy else previous.msgid
            elif previous.fuzzy:
                entry.flags = [FUZZY]
                entry.previous_msgid = previous.previous_msgid
        entries.append(entry)
    merged = new_catalogue(entries, language)
    if po is not None:
        merged.metadata = dict(po.metadata, Language=language)
    return merged


def translation(catalogue: polib.POFile, msgctxt: str, english: str) -> str | None:
    """The finished translation of ``english`` in the cell ``msgctxt``; None when missing, fuzzy or stale."""
    entry = catalogue.find(msgctxt, by="msgctxt")
    if entry is None or entry.obsolete or entry.fuzzy or not entry.msgstr or entry.msgid != english:
        return None
    return entry.msgstr


def pot_path(locale_dir: Path, stem: str) -> Path:
    """Where the template of the notebook ``stem`` lives."""
    return locale_dir / f"{stem}.pot"


def po_path(locale_dir: Path, stem: str, lang: str) -> Path:
    """Where language ``lang``'s catalogue of the notebook ``stem`` lives."""
    return locale_dir / LANGUAGES[lang].locale / f"{stem}.po"


def save(catalogue: polib.POFile, path: Path) -> bool:
    """Write ``catalogue`` to ``path`` when its text changed; returns whether it did."""
    text = str(catalogue)
    if not text.endswith("\n"):
        text += "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True
