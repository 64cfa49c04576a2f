"""The kit speaks the learner's language: language choice, messages, check results, fonts, JupyterLab."""

from __future__ import annotations

import json
import warnings

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import rcParams  # noqa: E402

from deitlab import notebook  # noqa: E402
from deitlab.checks import check_top5  # noqa: E402
from deitlab.checks._core import CheckFailed, passed, require, require_close  # noqa: E402
from deitlab.i18n import fonts, lab, runtime  # noqa: E402
from deitlab.i18n.languages import LANGUAGES, normalise_language  # noqa: E402

CJK_TITLE = "量子化と蒸留 · 量化与蒸馏"


@pytest.fixture(autouse=True)
def _english_and_default_fonts_afterwards():
    saved = rcParams.copy()
    yield
    runtime.set_language("en")
    rcParams.update(saved)


def _notebook_with_lang(path, lang):
    metadata = {"deitlab": {"lang": lang}} if lang else {}
    path.write_text(json.dumps({"cells": [], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_normalise_language_accepts_codes_and_locales_and_names_the_choices():
    assert [normalise_language(x) for x in ("ja", "ja_JP", "zh-CN", "zh_cn", "vi-VN", "EN", "en_US")] == [
        "ja",
        "ja",
        "zh",
        "zh",
        "vi",
        "en",
        "en",
    ]
    with pytest.raises(ValueError, match="language 'fr' is not one the kit speaks .*en, ja, zh, vi"):
        normalise_language("fr")


def test_t_translates_known_messages_and_leaves_others_in_english():
    assert runtime.t("threads") == "threads"
    expected = {"ja": "スレッド", "zh": "线程", "vi": "luồng"}
    for lang in LANGUAGES:
        assert runtime.set_language(lang) == lang == runtime.current_language()
        assert runtime.t("threads") == expected[lang]
        assert runtime.t("no such message") == "no such message"
    assert runtime.N_("marked") == "marked"


def test_set_language_refuses_an_unknown_language():
    with pytest.raises(ValueError, match="'xx'"):
        runtime.set_language("xx")
    assert runtime.current_language() == "en"


def test_resolve_language_order_argument_variable_notebook_english(monkeypatch, tmp_path):
    assert runtime.resolve_language() == "en"
    edition = _notebook_with_lang(tmp_path / "ja.ipynb", "vi")
    monkeypatch.setenv("JPY_SESSION_NAME", str(edition))
    assert runtime.resolve_language() == "vi"
    monkeypatch.setenv("DEITLAB_LANG", "zh_CN")
    assert runtime.resolve_language() == "zh"
    assert runtime.resolve_language("ja") == "ja"
    monkeypatch.setenv("DEITLAB_LANG", "klingon")
    with pytest.raises(ValueError, match="DEITLAB_LANG: language 'klingon'"):
        runtime.resolve_language()


def test_notebook_language_reads_the_metadata_and_names_a_bad_file(tmp_path):
    assert runtime.notebook_language(_notebook_with_lang(tmp_path / "a.ipynb", "zh")) == "zh"
    assert runtime.notebook_language(_notebook_with_lang(tmp_path / "b.ipynb", None)) is None
    with pytest.raises(ValueError, match="missing.ipynb: cannot read the notebook's language"):
        runtime.notebook_language(tmp_path / "missing.ipynb")
    (tmp_path / "bad.ipynb").write_text("{")
    with pytest.raises(ValueError, match="bad.ipynb: cannot read"):
        runtime.notebook_language(tmp_path / "bad.ipynb")


def test_setup_notebook_speaks_the_editions_language(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("JPY_SESSION_NAME", str(_notebook_with_lang(tmp_path / "e.ipynb", "ja")))
    line = notebook.setup_notebook()
    assert "スレッド" in line and "実行" in line and line in capsys.readouterr().out
    assert "スレッド" in notebook.elapsed()
    english = notebook.setup_notebook(lang="en")
    assert " threads · " in english and " · run " in english


def test_check_results_and_hints_in_the_learners_language():
    assert repr(passed("00.1 top-5", "a, b")) == "✅ 00.1 top-5: a, b"  # English output is unchanged
    with pytest.raises(CheckFailed, match=r"^❌ 00\.1 top-5 class names: answer with a list of five class names$"):
        check_top5(torch.zeros(1, 1000), "x")
    runtime.set_language("ja")
    assert repr(passed("00.1", "ok")) == "✅ 00.1: 正解です — ok"
    with pytest.raises(CheckFailed, match="5 つのクラス名のリストで答えてください"):
        check_top5(torch.zeros(1, 1000), "x")
    runtime.set_language("vi")
    with pytest.raises(CheckFailed, match="gợi ý: kích thước cần là"):
        require_close(torch.zeros(2), torch.zeros(3), "x")
    runtime.set_language("zh")
    with pytest.raises(CheckFailed, match="提示：an untranslated hint"):
        require(False, "x", "an untranslated hint")


def _draw_title_warnings(title: str) -> list[str]:
    fig, ax = plt.subplots()
    ax.set_title(title)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_without_a_cjk_font_matplotlib_warns_about_missing_glyphs():
    rcParams["font.family"] = "sans-serif"
    rcParams["font.sans-serif"] = ["DejaVu Sans"]
    assert _draw_title_warnings(CJK_TITLE)  # the warning the next test must not see


@pytest.mark.parametrize("lang", ["ja", "zh"])
def test_cjk_plots_have_every_glyph(lang):
    family = fonts.use_language_font(lang)
    assert family in fonts.CJK_FONTS[lang] and rcParams["font.sans-serif"][0] == family
    assert _draw_title_warnings(CJK_TITLE) == []


def test_vietnamese_and_english_need_no_extra_font():
    assert fonts.use_language_font("vi") is None and fonts.use_language_font("en") is None
    assert _draw_title_warnings("Lượng tử hóa và chưng cất") == []


def test_missing_cjk_font_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(fonts, "installed_families", lambda: {"DejaVu Sans"})
    monkeypatch.setattr(fonts, "register_system_cjk_fonts", lambda: 0)
    with pytest.raises(fonts.MissingFontError, match="no font for 'ja' plots: install one of Noto Sans CJK JP"):
        fonts.use_language_font("ja")
    with pytest.raises(ValueError, match="'xx'"):
        fonts.use_language_font("xx")


def test_setup_notebook_reports_a_missing_font_without_failing(monkeypatch, capsys):
    monkeypatch.setattr(fonts, "installed_families", lambda: set())
    monkeypatch.setattr(fonts, "register_system_cjk_fonts", lambda: 0)
    notebook.setup_notebook(lang="zh")
    assert "⚠ no font for 'zh' plots" in capsys.readouterr().out


def test_system_cjk_fonts_are_found_when_installed():
    assert fonts.register_system_cjk_fonts() > 0  # Debian: fonts-noto-cjk (tests/e2e/install_browser.sh)
    assert "Noto Sans CJK JP" in fonts.installed_families()


def test_lab_settings_select_the_language_pack(tmp_path):
    path = lab.write_lab_settings("ja", tmp_path)
    assert path == tmp_path / lab.TRANSLATION_SETTINGS
    assert json.loads(path.read_text()) == {"locale": "ja_JP"}
    assert json.loads(lab.write_lab_settings("en", tmp_path).read_text()) == {"locale": "en"}
    assert [lab.edition_folder(x) for x in ("ja", "zh-CN", "vi", "en")] == ["ja", "zh", "vi", "."]
    with pytest.raises(ValueError, match="'de'"):
        lab.write_lab_settings("de", tmp_path)


def test_language_packs_are_installed_for_every_edition():
    from importlib.metadata import version

    for language in LANGUAGES.values():
        assert version(f"jupyterlab-language-pack-{language.lab_locale.replace('_', '-')}")
