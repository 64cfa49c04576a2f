"""The languages the kit speaks, and their names in gettext, in the editions and for learners."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    """One translation target: its code, gettext locale, edition folder and own name."""

    code: str  # what setup_notebook(lang=...) and DEITLAB_LANG take
    locale: str  # the gettext catalogue name (notebooks/locales/<locale>/, deitlab/locales/<locale>/)
    edition: str  # the edition folder under notebooks/
    name: str  # the language's own name
    readme: str  # the README translation
    lab_locale: str  # JupyterLab's language pack locale (jupyterlab-language-pack-<ll-CC>)


ENGLISH = "en"

#: Every language besides English, in the order the READMEs list them.
LANGUAGES: dict[str, Language] = {
    "ja": Language("ja", "ja", "ja", "日本語", "README.ja.md", "ja_JP"),
    "zh": Language("zh", "zh_CN", "zh", "中文", "README.zh-CN.md", "zh_CN"),
    "vi": Language("vi", "vi", "vi", "Tiếng Việt", "README.vi.md", "vi_VN"),
}

_ALIASES = {"zh_cn": "zh", "zh-cn": "zh", "zh_hans": "zh", "ja_jp": "ja", "ja-jp": "ja", "vi_vn": "vi", "vi-vn": "vi"}


def normalise_language(lang: str) -> str:
    """``"ja"``, ``"zh-CN"``, ``"vi_VN"``, ``"en"`` … → ``"ja"``/``"zh"``/``"vi"``/``"en"``; ValueError otherwise."""
    key = lang.strip().lower()
    key = _ALIASES.get(key, key)
    if key == ENGLISH or key.startswith("en_") or key.startswith("en-"):
        return ENGLISH
    if key not in LANGUAGES:
        choices = ", ".join([ENGLISH, *LANGUAGES])
        raise ValueError(f"language {lang!r} is not one the kit speaks (choose one of {choices})")
    return key
