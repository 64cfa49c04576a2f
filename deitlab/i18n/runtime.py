"""The language the kit speaks to the learner at run time, and its message lookup.

Standard library only: messages are gettext catalogues compiled to ``deitlab/locales/<locale>/
LC_MESSAGES/deitlab.mo`` (``make translations`` writes them from the ``.po`` files beside them).
The language comes from, in order: ``setup_notebook(lang=...)``, the ``DEITLAB_LANG`` variable,
the running notebook's metadata ``deitlab.lang`` (set in the ja/zh/vi editions), English.
"""

from __future__ import annotations

import gettext
import json
import os
from functools import cache
from pathlib import Path

from deitlab.i18n.languages import ENGLISH, LANGUAGES, normalise_language

#: The compiled kit catalogues, one folder per gettext locale.
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "deitlab"
#: Notebook metadata key (under ``metadata.deitlab``) that names an edition's language.
METADATA_KEY = "lang"

_language = ENGLISH


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark a message for the catalogue where it is defined; :func:`t` translates it where it is shown."""
    return message


@cache
def _catalogue(code: str) -> gettext.NullTranslations:
    if code == ENGLISH:
        return gettext.NullTranslations()
    locale = LANGUAGES[code].locale
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[locale], fallback=True)


def t(message: str) -> str:
    """``message`` in the current language (English when it has no translation yet)."""
    return _catalogue(_language).gettext(message)


def current_language() -> str:
    """The code of the language the kit speaks now: ``en``, ``ja``, ``zh`` or ``vi``."""
    return _language


def set_language(lang: str) -> str:
    """Speak ``lang`` from now on (``ja``, ``zh``/``zh-CN``, ``vi``, ``en``); returns its code."""
    global _language
    _language = normalise_language(lang)
    return _language


def notebook_language(notebook: str | Path) -> str | None:
    """The ``metadata.deitlab.lang`` of a notebook file, or None when it has none."""
    path = Path(notebook)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the notebook's language ({error})") from error
    lang = metadata.get("deitlab", {}).get(METADATA_KEY)
    return normalise_language(lang) if lang else None


def _running_notebook_language() -> str | None:
    """The language of the notebook this kernel runs, when the front-end says which one it is."""
    session = os.environ.get("JPY_SESSION_NAME")  # set by jupyter_server (JupyterLab, Notebook, VS Code)
    if session and session.endswith(".ipynb") and Path(session).is_file():
        return notebook_language(session)
    try:  # Colab keeps the notebook in the browser; its kernel can ask for the metadata
        from google.colab import _message  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=5) or {}
    except Exception:  # noqa: BLE001 - the front-end did not answer: the other sources decide
        return None
    lang = reply.get("ipynb", {}).get("metadata", {}).get("deitlab", {}).get(METADATA_KEY)
    return normalise_language(lang) if lang else None


def resolve_language(lang: str | None = None) -> str:
    """The language to speak: ``lang`` if given, else ``$DEITLAB_LANG``, else the notebook's metadata, else English."""
    if lang:
        return normalise_language(lang)
    variable = os.environ.get("DEITLAB_LANG", "").strip()
    if variable:
        try:
            return normalise_language(variable)
        except ValueError as error:
            raise ValueError(f"DEITLAB_LANG: {error}") from None
    return _running_notebook_language() or ENGLISH
