"""JupyterLab in the learner's language: a user-settings folder that selects the language pack."""

from __future__ import annotations

import json
from pathlib import Path

from deitlab.i18n.languages import ENGLISH, LANGUAGES, normalise_language

#: JupyterLab's settings file for its display language, relative to ``--LabApp.user_settings_dir``.
TRANSLATION_SETTINGS = Path("@jupyterlab") / "translation-extension" / "plugin.jupyterlab-settings"


def write_lab_settings(lang: str, settings_dir: str | Path) -> Path:
    """Write the JupyterLab setting that shows its UI in ``lang``; returns the settings file.

    Start JupyterLab with ``--LabApp.user_settings_dir=<settings_dir>`` to use it (``make lab LAB_LANG=ja``).
    English writes ``"locale": "en"``, JupyterLab's default.
    """
    code = normalise_language(lang)
    locale = "en" if code == ENGLISH else LANGUAGES[code].lab_locale
    path = Path(settings_dir) / TRANSLATION_SETTINGS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"locale": locale}, indent=2) + "\n", encoding="utf-8")
    return path


def edition_folder(lang: str) -> str:
    """The folder under ``notebooks/`` that JupyterLab opens for ``lang`` (``.`` for English)."""
    code = normalise_language(lang)
    return "." if code == ENGLISH else LANGUAGES[code].edition
