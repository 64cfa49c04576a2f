"""The kit's own learner-facing messages (status line, check results and hints, banners) as gettext catalogues.

Extracted from the package source: the literal first argument of ``t(...)`` and ``N_(...)`` and the
literal hint of ``require(...)`` (deitlab/checks). Catalogues live in ``deitlab/locales/``:
``deitlab.pot``, ``<locale>/LC_MESSAGES/deitlab.po`` and the compiled ``deitlab.mo`` that
:mod:`deitlab.i18n.runtime` reads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import polib

from deitlab.i18n.catalogue import CatalogueError, load_catalogue, merge, new_catalogue, save
from deitlab.i18n.languages import LANGUAGES
from deitlab.i18n.runtime import DOMAIN, LOCALE_DIR

PACKAGE_DIR = LOCALE_DIR.parent
MARKERS = {"t": 0, "N_": 0, "require": 2}  # function name → position of the message argument


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def source_messages(path: str | Path) -> list[tuple[str, int]]:
    """``(message, line)`` for every marked literal message in one Python file."""
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except FileNotFoundError:
        raise CatalogueError(f"{path}: no such Python file") from None
    except SyntaxError as error:
        raise CatalogueError(f"{path}: cannot parse ({error.msg}, line {error.lineno})") from None
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.func.id not in MARKERS:
            continue
        position = MARKERS[node.func.id]
        argument = node.args[position] if len(node.args) > position else None
        if argument is None and node.func.id == "require":
            argument = next((k.value for k in node.keywords if k.arg == "hint"), None)
        message = _literal(argument) if argument is not None else None
        if message:
            found.append((message, node.lineno))
    return sorted(found, key=lambda item: item[1])


def kit_template(package_dir: Path = PACKAGE_DIR) -> polib.POFile:
    """The ``.pot`` of the kit's messages, each once, with where it occurs."""
    entries: dict[str, polib.POEntry] = {}
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent).as_posix()
        for message, line in source_messages(path):
            entry = entries.setdefault(message, polib.POEntry(msgid=message, msgstr=""))
            entry.occurrences.append((relative, str(line)))
            if "{" in message and "python-brace-format" not in entry.flags:
                entry.flags.append("python-brace-format")
    return new_catalogue(list(entries.values()))


def kit_po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    """The ``.po`` of the kit's messages in ``lang``."""
    return locale_dir / LANGUAGES[lang].locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def update_kit_catalogues(locale_dir: Path = LOCALE_DIR, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Extract, merge into every language and compile the ``.mo`` files; returns the files written."""
    pot = kit_template(package_dir)
    written = [locale_dir / f"{DOMAIN}.pot"] if save(pot, locale_dir / f"{DOMAIN}.pot") else []
    for lang in LANGUAGES:
        po_file = kit_po_path(lang, locale_dir)
        old = load_catalogue(po_file) if po_file.exists() else None
        merged = merge(pot, old, LANGUAGES[lang].locale)
        if save(merged, po_file):
            written.append(po_file)
        mo_file = po_file.with_suffix(".mo")
        before = mo_file.read_bytes() if mo_file.exists() else None
        merged.save_as_mofile(str(mo_file))
        if mo_file.read_bytes() != before:
            written.append(mo_file)
    return written
