"""``python -m deitlab.i18n extract|merge|build|status|check`` — what ``make translations`` runs.

extract  notebooks' markdown → notebooks/locales/<stem>.pot; the kit's messages → deitlab/locales/deitlab.pot
merge    templates → <locale>/<stem>.po (changed English → fuzzy) and the kit's .po/.mo
build    notebooks/<ja|zh|vi>/ (solutions included) from the sources and the catalogues
status   completeness per edition and notebook: translated / fuzzy / missing
check    exit 1 when anything above is out of date (a changed English cell without `make translations`)
lab LANG DIR   write JupyterLab user settings for LANG's UI into DIR and print the edition folder to open
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deitlab.i18n.catalogue import CatalogueError, save
from deitlab.i18n.editions import source_notebooks, write_editions
from deitlab.i18n.kit_messages import kit_template, update_kit_catalogues
from deitlab.i18n.lab import edition_folder, write_lab_settings
from deitlab.i18n.runtime import DOMAIN, LOCALE_DIR
from deitlab.i18n.status import edition_completeness, format_report
from deitlab.i18n.workflow import extract, merge_all, out_of_sync

COMMANDS = ("extract", "merge", "build", "status", "check", "lab")


def run(command: str, notebooks_dir: Path) -> int:
    """Run one step on the repository whose notebooks are in ``notebooks_dir``; returns the exit status."""
    locale_dir = notebooks_dir / "locales"
    if not notebooks_dir.is_dir():
        raise CatalogueError(f"{notebooks_dir}: no such notebooks folder")
    if command == "extract":
        written = extract(notebooks_dir, locale_dir)
        if save(kit_template(), LOCALE_DIR / f"{DOMAIN}.pot"):
            written.append(LOCALE_DIR / f"{DOMAIN}.pot")
    elif command == "merge":
        written = merge_all(locale_dir) + update_kit_catalogues()
    elif command == "build":
        written = write_editions(notebooks_dir, locale_dir)
    elif command == "status":
        stems = [p.stem for p in source_notebooks(notebooks_dir)]
        print(format_report(edition_completeness(locale_dir, stems)))
        return 0
    else:
        problems = out_of_sync(notebooks_dir, locale_dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("translations are out of date: run `make translations`", file=sys.stderr)
        return 1 if problems else 0
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deitlab.i18n", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("arguments", nargs="*", help="lab: the language and the settings folder")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="the notebooks folder")
    args = parser.parse_args(argv)
    if args.command == "lab":
        if len(args.arguments) != 2:
            parser.error("lab takes two arguments: the language (ja, zh, vi, en) and the settings folder")
        try:
            write_lab_settings(args.arguments[0], args.arguments[1])
            print(edition_folder(args.arguments[0]))
        except ValueError as error:
            print(f"deitlab.i18n lab: {error}", file=sys.stderr)
            return 2
        return 0
    if args.arguments:
        parser.error(f"{args.command} takes no arguments")
    try:
        return run(args.command, args.notebooks)
    except CatalogueError as error:
        print(f"deitlab.i18n: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
