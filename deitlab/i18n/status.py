"""How complete each edition is: translated, fuzzy (English changed since) and missing entries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polib

from deitlab.i18n.catalogue import load_catalogue, po_path
from deitlab.i18n.languages import LANGUAGES


@dataclass(frozen=True)
class Completeness:
    """Counts of one catalogue's (or one edition's) entries."""

    translated: int = 0
    fuzzy: int = 0
    missing: int = 0

    @property
    def total(self) -> int:
        return self.translated + self.fuzzy + self.missing

    @property
    def percent(self) -> float:
        """Share of finished translations, 0–100 (100 for an empty catalogue)."""
        return 100.0 * self.translated / self.total if self.total else 100.0

    def __add__(self, other: Completeness) -> Completeness:
        return Completeness(self.translated + other.translated, self.fuzzy + other.fuzzy, self.missing + other.missing)


def completeness(catalogue: polib.POFile) -> Completeness:
    """Translated / fuzzy / missing entries of a catalogue (obsolete entries do not count)."""
    live = [e for e in catalogue if not e.obsolete]
    fuzzy = sum(1 for e in live if e.fuzzy and e.msgstr)
    translated = sum(1 for e in live if e.msgstr and not e.fuzzy)
    return Completeness(translated, fuzzy, len(live) - translated - fuzzy)


def edition_completeness(locale_dir: Path, stems: list[str]) -> dict[str, dict[str, Completeness]]:
    """``{lang: {notebook stem: Completeness}}``; a notebook without a ``.po`` counts as all missing."""
    report: dict[str, dict[str, Completeness]] = {}
    for lang in LANGUAGES:
        report[lang] = {}
        for stem in stems:
            po_file = po_path(locale_dir, stem, lang)
            if po_file.exists():
                report[lang][stem] = completeness(load_catalogue(po_file))
            else:
                pot = load_catalogue(locale_dir / f"{stem}.pot")
                report[lang][stem] = Completeness(missing=len([e for e in pot if not e.obsolete]))
    return report


def _row(lang: str, stem: str, width: int, counts: Completeness) -> str:
    return (
        f"{lang:8} {stem:{width}} {counts.translated:>10} {counts.fuzzy:>6} {counts.missing:>8} {counts.percent:>5.0f}%"
    )


def format_report(report: dict[str, dict[str, Completeness]]) -> str:
    """A plain-text table: one row per edition and notebook, then each edition's total."""
    width = max((len(stem) for rows in report.values() for stem in rows), default=8)
    lines = [f"{'edition':8} {'notebook':{width}} {'translated':>10} {'fuzzy':>6} {'missing':>8} {'done':>6}"]
    for lang, rows in report.items():
        total = Completeness()
        for stem, counts in rows.items():
            total += counts
            lines.append(_row(lang, stem, width, counts))
        lines.append(_row(lang, "TOTAL", width, total))
    return "\n".join(lines)
