"""A matplotlib font that has the glyphs of the learner's language (CJK for Japanese and Chinese)."""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib import font_manager, rcParams

from deitlab.i18n.languages import normalise_language

#: Font families to try per language, best first (Debian/Ubuntu: ``apt-get install fonts-noto-cjk``;
#: macOS and Windows ship the later ones).
CJK_FONTS: dict[str, tuple[str, ...]] = {
    "ja": ("Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Yu Gothic", "IPAexGothic", "Noto Sans CJK SC"),
    "zh": ("Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei", "SimHei", "Noto Sans CJK JP"),
}


#: File names of CJK fonts, for fonts installed after matplotlib cached its font list.
_CJK_FILE = re.compile(r"CJK|Hiragino|PingFang|YaHei|msyh|SimHei|IPAex|YuGoth|NotoSans(JP|SC)", re.IGNORECASE)


class MissingFontError(RuntimeError):
    """No installed font can draw the language's characters."""


def installed_families() -> set[str]:
    """Names of the font families matplotlib can find on this machine."""
    return {entry.name for entry in font_manager.fontManager.ttflist}


def register_system_cjk_fonts() -> int:
    """Add the system's CJK font files to matplotlib (its font cache may predate them); returns how many."""
    files = [f for f in font_manager.findSystemFonts() if _CJK_FILE.search(Path(f).name)]
    for path in files:
        font_manager.fontManager.addfont(path)
    return len(files)


def use_language_font(lang: str) -> str | None:
    """Put a font with ``lang``'s glyphs first in matplotlib's sans-serif list; returns its name.

    English and Vietnamese need nothing (DejaVu Sans draws Vietnamese): None. Raises
    :class:`MissingFontError` when Japanese or Chinese is asked for and no CJK font is installed.
    """
    code = normalise_language(lang)
    if code not in CJK_FONTS:
        return None
    family = next((name for name in CJK_FONTS[code] if name in installed_families()), None)
    if family is None and register_system_cjk_fonts():
        family = next((name for name in CJK_FONTS[code] if name in installed_families()), None)
    if family is None:
        raise MissingFontError(
            f"no font for {code!r} plots: install one of {', '.join(CJK_FONTS[code][:2])} "
            "(Debian/Ubuntu: apt-get install fonts-noto-cjk)"
        )
    rcParams["font.sans-serif"] = [family, *[f for f in rcParams["font.sans-serif"] if f != family]]
    rcParams["font.family"] = "sans-serif"
    return family
