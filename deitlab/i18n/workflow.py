"""The steps of ``make translations`` over the whole repository: extract, merge, and the in-sync check."""

from __future__ import annotations

from pathlib import Path

from deitlab.i18n.catalogue import load_catalogue, merge, po_path, pot_path, save, template
from deitlab.i18n.editions import source_notebooks, stale_editions
from deitlab.i18n.kit_messages import PACKAGE_DIR, kit_po_path, kit_template
from deitlab.i18n.languages import LANGUAGES


def extract(notebooks_dir: Path, locale_dir: Path) -> list[Path]:
    """Write ``<locale_dir>/<stem>.pot`` for every source notebook (and drop templates of removed ones)."""
    written = []
    stems = set()
    for notebook in source_notebooks(notebooks_dir):
        stems.add(notebook.stem)
        if save(template(notebook), pot_path(locale_dir, notebook.stem)):
            written.append(pot_path(locale_dir, notebook.stem))
    for old in sorted(locale_dir.glob("*.pot")):
        if old.stem not in stems:
            old.unlink()
            written.append(old)
    return written


def merge_all(locale_dir: Path) -> list[Path]:
    """Merge every ``.pot`` into each language's ``.po`` (creating missing ones); returns the files written."""
    written = []
    for pot_file in sorted(locale_dir.glob("*.pot")):
        pot = load_catalogue(pot_file)
        for lang, language in LANGUAGES.items():
            po_file = po_path(locale_dir, pot_file.stem, lang)
            old = load_catalogue(po_file) if po_file.exists() else None
            if save(merge(pot, old, language.locale), po_file):
                written.append(po_file)
    return written


def _same_units(a, b) -> bool:
    return [(e.msgctxt, e.msgid) for e in a if not e.obsolete] == [(e.msgctxt, e.msgid) for e in b if not e.obsolete]


def stale_catalogues(notebooks_dir: Path, locale_dir: Path, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """One line per template or catalogue that no longer matches the English it translates (empty: in sync)."""
    problems = []
    for notebook in source_notebooks(notebooks_dir):
        fresh = template(notebook)
        pot_file = pot_path(locale_dir, notebook.stem)
        if not pot_file.exists() or not _same_units(fresh, load_catalogue(pot_file)):
            problems.append(f"{pot_file}: differs from {notebook.name}'s markdown")
        for lang in LANGUAGES:
            po_file = po_path(locale_dir, notebook.stem, lang)
            if not po_file.exists() or not _same_units(fresh, load_catalogue(po_file)):
                problems.append(f"{po_file}: not merged with {notebook.name}'s markdown")
    kit = kit_template(package_dir)
    for lang in LANGUAGES:
        po_file = kit_po_path(lang, package_dir / "locales")
        if not po_file.exists() or not _same_units(kit, load_catalogue(po_file)):
            problems.append(f"{po_file}: not merged with the kit's messages")
    return problems


def out_of_sync(notebooks_dir: Path, locale_dir: Path, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Everything ``make translations`` would change: stale catalogues, then stale editions."""
    return stale_catalogues(notebooks_dir, locale_dir, package_dir) + stale_editions(notebooks_dir, locale_dir)
