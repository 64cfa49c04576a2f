"""Translations: catalogues, editions, their sync with the English sources, and completeness."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polib
import pytest
from markdown_it import MarkdownIt

from deitlab.i18n import __main__ as cli
from deitlab.i18n import catalogue, editions, kit_messages, status, workflow
from deitlab.i18n.languages import LANGUAGES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LOCALES = NOTEBOOKS / "locales"
#: Notebooks whose English has settled and whose translations must be complete (03–07: a later session).
CODE_SPAN = re.compile(r"`[^`\n]+`")
URL = re.compile(r"https?://[A-Za-z0-9./_:#?=&%~+-]*[A-Za-z0-9/_#=&%~+-]")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
MARKDOWN = MarkdownIt("commonmark").enable("table")


def _notebook(cells: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _md(cell_id: str, text: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text.splitlines(keepends=True)}


def _code(cell_id: str, text: str) -> dict:
    return {"cell_type": "code", "id": cell_id, "metadata": {}, "execution_count": None, "outputs": [], "source": text}


@pytest.fixture
def repo(tmp_path):
    """A two-notebook repository: notebooks/00_a.ipynb and notebooks/solutions/00_a_solutions.ipynb."""
    badge = "[![Open in Colab](x.svg)](https://colab.research.google.com/github/deitlab/deitlab/blob/main/notebooks/00_a.ipynb)"
    _notebook(
        [_md("m1", f"# Title\n\n{badge}"), _code("c1", "print('hi')  # same in every edition"), _md("m2", "Same")],
        tmp_path / "notebooks" / "00_a.ipynb",
    )
    _notebook([_md("s1", "Same"), _code("c2", "x = 1")], tmp_path / "notebooks" / "solutions" / "00_a_solutions.ipynb")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text(
        'from x import t, N_, require\nt("hello")\nB = N_("banner {x}")\nrequire(1, "e", "hint")\n'
    )
    return tmp_path


def _make_translations(repo: Path) -> None:
    notebooks, locales = repo / "notebooks", repo / "notebooks" / "locales"
    workflow.extract(notebooks, locales)
    workflow.merge_all(locales)
    kit_messages.update_kit_catalogues(repo / "pkg" / "locales", repo / "pkg")
    editions.write_editions(notebooks, locales)


def _translate(po_file: Path, msgctxt: str, text: str) -> None:
    po = catalogue.load_catalogue(po_file)
    po.find(msgctxt, by="msgctxt").msgstr = text
    catalogue.save(po, po_file)


# ------------------------------------------------------------------ the repository's own editions


@pytest.mark.parametrize("source", editions.source_notebooks(NOTEBOOKS), ids=lambda p: p.stem)
def test_every_edition_has_the_sources_code_cells_byte_for_byte(source):
    code = [c for c in json.loads(source.read_text(encoding="utf-8"))["cells"] if c["cell_type"] != "markdown"]
    for lang in LANGUAGES:
        edition = json.loads(editions.edition_path(source, NOTEBOOKS, lang).read_text(encoding="utf-8"))
        assert [c for c in edition["cells"] if c["cell_type"] != "markdown"] == code, f"{lang}: {source.name}"
        assert edition["metadata"]["deitlab"]["lang"] == lang


def test_editions_and_catalogues_are_in_sync_with_the_english_sources():
    problems = workflow.out_of_sync(NOTEBOOKS, LOCALES)
    assert not problems, "\n".join(problems[:10]) + "\nrun `make translations`"


def test_completeness_report_and_every_notebook_is_fully_translated():
    stems = [p.stem for p in editions.source_notebooks(NOTEBOOKS)]
    report = status.edition_completeness(LOCALES, stems)
    print("\n" + status.format_report(report))  # the completeness report, shown with -rP
    for lang in LANGUAGES:
        for stem in stems:
            counts = report[lang][stem]
            assert counts.fuzzy == counts.missing == 0 and counts.translated > 0, f"{lang} {stem}: {counts}"


def _translated_entries():
    for lang, language in LANGUAGES.items():
        for po_file in sorted((LOCALES / language.locale).glob("*.po")):
            for entry in catalogue.load_catalogue(po_file):
                if entry.msgstr:
                    yield pytest.param(entry, id=f"{lang}:{entry.msgctxt}")


@pytest.mark.parametrize("entry", list(_translated_entries()))
def test_translations_keep_code_spans_links_code_blocks_and_headings(entry):
    english, translated = entry.msgid, entry.msgstr
    assert sorted(CODE_SPAN.findall(translated)) == sorted(CODE_SPAN.findall(english))
    assert sorted(URL.findall(translated)) == sorted(URL.findall(english))
    assert FENCE.findall(translated) == FENCE.findall(english)
    levels = [len(m) for m in re.findall(r"^(#+) ", FENCE.sub("", english), re.M)]
    assert [len(m) for m in re.findall(r"^(#+) ", FENCE.sub("", translated), re.M)] == levels
    rendered_en, rendered = MARKDOWN.render(english), MARKDOWN.render(translated)
    for tag in ("<strong>", "<em>", "<code>", "<table>", "<li>", "<a ", "<blockquote>"):
        assert rendered.count(tag) == rendered_en.count(tag), f"{tag} count differs: emphasis or list broken?"
    # GitHub would swallow a full-width character written straight after a link address
    assert not re.search(r"https?://\S*[\u3000-\u9fff\uff00-\uffef]", translated)


def test_glossary_has_four_languages_and_about_sixty_terms():
    rows = [line for line in (LOCALES / "GLOSSARY.md").read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    assert rows[0].replace(" ", "") == "|English|日本語|中文|TiếngViệt|"
    terms = [row for row in rows[2:] if row.count("|") == 5 and all(cell.strip() for cell in row.split("|")[1:-1])]
    assert len(terms) >= 55


# ------------------------------------------------------------------ drift: English changed without make translations


def test_changed_english_cell_fails_until_make_translations_then_is_fuzzy_and_shown_in_english(repo):
    notebooks, locales = repo / "notebooks", repo / "notebooks" / "locales"
    _make_translations(repo)
    _translate(catalogue.po_path(locales, "00_a", "ja"), "00_a:m2", "同じ")
    editions.write_editions(notebooks, locales)
    assert workflow.out_of_sync(notebooks, locales, repo / "pkg") == []
    source = notebooks / "00_a.ipynb"
    nb = json.loads(source.read_text(encoding="utf-8"))
    nb["cells"][2]["source"] = ["Changed English"]
    source.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    problems = workflow.out_of_sync(notebooks, locales, repo / "pkg")
    assert any("00_a.pot" in p for p in problems) and any("ja/00_a.ipynb" in p for p in problems)
    _make_translations(repo)
    assert workflow.out_of_sync(notebooks, locales, repo / "pkg") == []
    counts = status.completeness(catalogue.load_catalogue(catalogue.po_path(locales, "00_a", "ja")))
    assert counts == status.Completeness(translated=0, fuzzy=1, missing=1)
    entry = catalogue.load_catalogue(catalogue.po_path(locales, "00_a", "ja")).find("00_a:m2", by="msgctxt")
    assert entry.fuzzy and entry.previous_msgid == "Same" and entry.msgstr == "同じ"
    edition = json.loads((notebooks / "ja" / "00_a.ipynb").read_text(encoding="utf-8"))
    assert "".join(edition["cells"][2]["source"]) == "Changed English"


def test_edited_edition_is_reported_and_rebuilt(repo):
    notebooks, locales = repo / "notebooks", repo / "notebooks" / "locales"
    _make_translations(repo)
    edition = notebooks / "vi" / "solutions" / "00_a_solutions.ipynb"
    edition.write_text(edition.read_text(encoding="utf-8").replace("x = 1", "x = 2"), encoding="utf-8")
    assert editions.stale_editions(notebooks, locales) == [f"{edition}: out of date with its source or catalogue"]
    assert editions.write_editions(notebooks, locales) == [edition]
    assert editions.stale_editions(notebooks, locales) == []


# ------------------------------------------------------------------ catalogue


def test_notebook_entries_one_per_markdown_cell_with_notebook_and_cell_context(repo):
    entries = catalogue.notebook_entries(repo / "notebooks" / "00_a.ipynb")
    assert [(e.msgctxt, e.msgstr) for e in entries] == [("00_a:m1", ""), ("00_a:m2", "")]
    assert catalogue.context("00_a", "m2") == "00_a:m2"
    assert catalogue.cell_text({"source": ["a\n", "b"]}) == "a\nb" == catalogue.cell_text({"source": "a\nb"})


def test_equal_texts_in_different_notebooks_stay_separate_entries(repo):
    a = catalogue.template(repo / "notebooks" / "00_a.ipynb").find("00_a:m2", by="msgctxt")
    b = catalogue.template(repo / "notebooks" / "solutions" / "00_a_solutions.ipynb").find(
        "00_a_solutions:s1", by="msgctxt"
    )
    assert a.msgid == b.msgid == "Same" and a.msgctxt != b.msgctxt


def test_read_notebook_names_a_missing_or_broken_notebook(tmp_path):
    with pytest.raises(catalogue.CatalogueError, match="nope.ipynb: no such notebook"):
        catalogue.read_notebook(tmp_path / "nope.ipynb")
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(catalogue.CatalogueError, match="bad.ipynb: not a readable notebook"):
        catalogue.read_notebook(tmp_path / "bad.ipynb")
    (tmp_path / "list.ipynb").write_text("[]")
    with pytest.raises(catalogue.CatalogueError, match="list.ipynb: not a notebook"):
        catalogue.read_notebook(tmp_path / "list.ipynb")


def test_markdown_cell_without_id_is_refused(tmp_path):
    path = _notebook([{"cell_type": "markdown", "metadata": {}, "source": "text"}], tmp_path / "old.ipynb")
    with pytest.raises(catalogue.CatalogueError, match="old.ipynb: markdown cell 0 has no id"):
        catalogue.notebook_entries(path)


def test_load_catalogue_names_a_missing_or_corrupt_po(tmp_path):
    with pytest.raises(catalogue.CatalogueError, match="none.po: no such catalogue"):
        catalogue.load_catalogue(tmp_path / "none.po")
    (tmp_path / "bad.po").write_text('msgid "a"\nmsgstr "b\nnot po at all\n')
    with pytest.raises(catalogue.CatalogueError, match="bad.po: not a valid gettext catalogue"):
        catalogue.load_catalogue(tmp_path / "bad.po")


def test_merge_keeps_marks_fuzzy_adds_and_drops():
    def entry(ctxt, msgid, msgstr=""):
        return polib.POEntry(msgctxt=ctxt, msgid=msgid, msgstr=msgstr)

    old = catalogue.new_catalogue([entry("n:a", "A", "ア"), entry("n:b", "B", "ビ"), entry("n:gone", "G", "ジ")])
    pot = catalogue.new_catalogue([entry("n:a", "A"), entry("n:b", "B2"), entry("n:new", "N")])
    merged = catalogue.merge(pot, old, "ja")
    assert [(e.msgctxt, e.msgstr, e.fuzzy) for e in merged] == [
        ("n:a", "ア", False),
        ("n:b", "ビ", True),
        ("n:new", "", False),
    ]
    assert merged.find("n:b", by="msgctxt").previous_msgid == "B" and merged.metadata["Language"] == "ja"
    again = catalogue.merge(catalogue.new_catalogue([entry("n:b", "B3")]), merged, "ja")
    assert again[0].fuzzy and again[0].previous_msgid == "B"  # still the English that was translated
    assert [e.msgstr for e in catalogue.merge(pot, None, "vi")] == ["", "", ""]


def test_translation_only_when_finished_and_current():
    done = polib.POEntry(msgctxt="n:a", msgid="A", msgstr="ア")
    fuzzy = polib.POEntry(msgctxt="n:b", msgid="B", msgstr="ビ", flags=["fuzzy"])
    po = catalogue.new_catalogue([done, fuzzy, polib.POEntry(msgctxt="n:c", msgid="C", msgstr="")])
    assert catalogue.translation(po, "n:a", "A") == "ア"
    assert catalogue.translation(po, "n:a", "A changed") is None
    assert catalogue.translation(po, "n:b", "B") is None
    assert catalogue.translation(po, "n:c", "C") is None
    assert catalogue.translation(po, "n:zzz", "Z") is None


def test_paths_and_save_writes_only_on_change(tmp_path):
    assert catalogue.pot_path(tmp_path, "00_a") == tmp_path / "00_a.pot"
    assert catalogue.po_path(tmp_path, "00_a", "zh") == tmp_path / "zh_CN" / "00_a.po"
    po = catalogue.new_catalogue([polib.POEntry(msgctxt="n:a", msgid="A", msgstr="")])
    target = tmp_path / "x" / "a.pot"
    assert catalogue.save(po, target) is True
    assert catalogue.save(po, target) is False
    assert target.read_text(encoding="utf-8").endswith("\n")


# ------------------------------------------------------------------ editions


def test_build_edition_translates_markdown_points_colab_at_the_edition_and_sets_the_language(repo):
    source = catalogue.read_notebook(repo / "notebooks" / "00_a.ipynb")
    po = catalogue.new_catalogue(
        [
            polib.POEntry(
                msgctxt="00_a:m1",
                msgid=catalogue.cell_text(source["cells"][0]),
                msgstr="# 題\n\n[b](https://colab.research.google.com/github/deitlab/deitlab/blob/main/notebooks/00_a.ipynb)",
            ),
        ]
    )
    edition = editions.build_edition(source, "notebooks/00_a.ipynb", "notebooks/ja/00_a.ipynb", po, "ja")
    assert catalogue.cell_text(edition["cells"][0]).endswith("/blob/main/notebooks/ja/00_a.ipynb)")
    assert catalogue.cell_text(edition["cells"][0]).startswith("# 題")
    assert edition["cells"][1] == source["cells"][1] and catalogue.cell_text(edition["cells"][2]) == "Same"
    assert edition["metadata"]["deitlab"] == {"lang": "ja"} and "deitlab" not in source["metadata"]
    with pytest.raises(ValueError, match="lang 'fr'"):
        editions.build_edition(source, "a", "b", po, "fr")


def test_edition_paths_and_listing(repo):
    notebooks = repo / "notebooks"
    sources = editions.source_notebooks(notebooks)
    assert [p.relative_to(notebooks).as_posix() for p in sources] == ["00_a.ipynb", "solutions/00_a_solutions.ipynb"]
    assert editions.edition_path(sources[1], notebooks, "zh") == notebooks / "zh" / "solutions" / "00_a_solutions.ipynb"
    assert editions.existing_editions(notebooks) == []
    _make_translations(repo)
    assert len(editions.existing_editions(notebooks)) == 2 * len(LANGUAGES)
    assert set(editions.expected_editions(notebooks, notebooks / "locales")) == set(
        editions.existing_editions(notebooks)
    )
    assert editions.notebook_json({"b": "é"}) == '{\n "b": "é"\n}\n'


def test_editions_of_a_removed_notebook_are_removed(repo):
    notebooks = repo / "notebooks"
    _make_translations(repo)
    (notebooks / "solutions" / "00_a_solutions.ipynb").unlink()
    assert any("its source is gone" in p for p in editions.stale_editions(notebooks, notebooks / "locales"))
    removed = editions.write_editions(notebooks, notebooks / "locales")
    assert sorted(p.parent.parent.name for p in removed) == sorted(lang.edition for lang in LANGUAGES.values())


def test_stale_editions_reports_a_corrupt_catalogue_in_one_line(repo):
    _make_translations(repo)
    po_file = catalogue.po_path(repo / "notebooks" / "locales", "00_a", "ja")
    po_file.write_text('msgid "x"\nbroken')
    [problem] = editions.stale_editions(repo / "notebooks", repo / "notebooks" / "locales")
    assert problem.startswith(f"{po_file}: not a valid gettext catalogue")


# ------------------------------------------------------------------ kit messages, workflow, status, CLI


def test_source_messages_finds_marked_literals_and_names_bad_files(repo, tmp_path):
    assert [m for m, _ in kit_messages.source_messages(repo / "pkg" / "m.py")] == ["hello", "banner {x}", "hint"]
    with pytest.raises(catalogue.CatalogueError, match="missing.py: no such Python file"):
        kit_messages.source_messages(tmp_path / "missing.py")
    (tmp_path / "broken.py").write_text("def (:\n")
    with pytest.raises(catalogue.CatalogueError, match="broken.py: cannot parse"):
        kit_messages.source_messages(tmp_path / "broken.py")


def test_kit_catalogues_are_merged_and_compiled(repo):
    template = kit_messages.kit_template(repo / "pkg")
    assert [e.msgid for e in template] == ["hello", "banner {x}", "hint"]
    assert "python-brace-format" in template[1].flags
    written = kit_messages.update_kit_catalogues(repo / "pkg" / "locales", repo / "pkg")
    assert kit_messages.kit_po_path("vi", repo / "pkg" / "locales") in written
    assert all(
        kit_messages.kit_po_path(lang, repo / "pkg" / "locales").with_suffix(".mo").is_file() for lang in LANGUAGES
    )
    assert kit_messages.update_kit_catalogues(repo / "pkg" / "locales", repo / "pkg") == []


def test_the_kits_messages_are_translated_in_every_language():
    for lang in LANGUAGES:
        counts = status.completeness(catalogue.load_catalogue(kit_messages.kit_po_path(lang)))
        assert counts.fuzzy == counts.missing == 0, f"{lang}: {counts}"


def test_extract_and_merge_all_write_templates_and_catalogues_then_nothing(repo):
    notebooks, locales = repo / "notebooks", repo / "notebooks" / "locales"
    assert sorted(p.name for p in workflow.extract(notebooks, locales)) == ["00_a.pot", "00_a_solutions.pot"]
    assert len(workflow.merge_all(locales)) == 2 * len(LANGUAGES)
    assert workflow.extract(notebooks, locales) == [] and workflow.merge_all(locales) == []
    (notebooks / "00_a.ipynb").unlink()
    assert workflow.extract(notebooks, locales) == [locales / "00_a.pot"]


def test_stale_catalogues_names_each_file(repo):
    notebooks, locales = repo / "notebooks", repo / "notebooks" / "locales"
    problems = workflow.stale_catalogues(notebooks, locales, repo / "pkg")
    assert f"{locales / '00_a.pot'}: differs from 00_a.ipynb's markdown" in problems
    assert len(problems) == 2 * (1 + len(LANGUAGES)) + len(LANGUAGES)
    _make_translations(repo)
    assert workflow.stale_catalogues(notebooks, locales, repo / "pkg") == []


def test_completeness_counts_and_report():
    entries = [
        polib.POEntry(msgctxt="a", msgid="A", msgstr="ア"),
        polib.POEntry(msgctxt="b", msgid="B", msgstr="ビ", flags=["fuzzy"]),
        polib.POEntry(msgctxt="c", msgid="C", msgstr=""),
        polib.POEntry(msgctxt="d", msgid="D", msgstr="ディ", obsolete=True),
    ]
    counts = status.completeness(catalogue.new_catalogue(entries))
    assert counts == status.Completeness(1, 1, 1) and counts.total == 3 and round(counts.percent) == 33
    assert status.Completeness().percent == 100.0
    assert counts + counts == status.Completeness(2, 2, 2)
    text = status.format_report({"ja": {"00_a": counts}})
    assert text.splitlines()[1].split() == ["ja", "00_a", "1", "1", "1", "33%"]
    assert text.splitlines()[2].split()[:2] == ["ja", "TOTAL"]


def test_edition_completeness_counts_a_notebook_without_po_as_missing(repo):
    locales = repo / "notebooks" / "locales"
    workflow.extract(repo / "notebooks", locales)
    report = status.edition_completeness(locales, ["00_a"])
    assert report["vi"]["00_a"] == status.Completeness(missing=2)


def test_cli_runs_every_step_and_check_fails_on_drift(repo, capsys):
    notebooks = str(repo / "notebooks")
    assert cli.main(["check", "--notebooks", notebooks]) == 1
    assert "run `make translations`" in capsys.readouterr().err
    for command in ("extract", "merge", "build"):
        assert cli.main([command, "--notebooks", notebooks]) == 0
    assert cli.main(["status", "--notebooks", notebooks]) == 0
    assert "TOTAL" in capsys.readouterr().out


def test_cli_names_a_missing_folder_and_refuses_stray_arguments(tmp_path, capsys):
    assert cli.main(["build", "--notebooks", str(tmp_path / "none")]) == 2
    assert "none: no such notebooks folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["build", "extra"])
    with pytest.raises(SystemExit):
        cli.main(["lab", "ja"])


def test_cli_lab_writes_the_settings_and_prints_the_edition(tmp_path, capsys):
    assert cli.main(["lab", "zh-CN", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "zh"
    assert cli.main(["lab", "klingon", str(tmp_path)]) == 2
    assert "klingon" in capsys.readouterr().err


def test_the_repository_copy_drifts_when_an_english_cell_changes(tmp_path):
    """The same drift check on a copy of the real notebook 00, its catalogues and editions."""
    notebooks = tmp_path / "notebooks"
    for relative in ("00_setup.ipynb", "solutions/00_setup_solutions.ipynb"):
        for prefix in ("", *[lang.edition + "/" for lang in LANGUAGES.values()]):
            target = notebooks / (prefix + relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(NOTEBOOKS / (prefix + relative), target)
    for path in LOCALES.rglob("00_setup*"):
        target = notebooks / "locales" / path.relative_to(LOCALES)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    assert editions.stale_editions(notebooks, notebooks / "locales") == []
    source = notebooks / "00_setup.ipynb"
    source.write_text(
        source.read_text(encoding="utf-8").replace("## Learning objectives", "## Goals"), encoding="utf-8"
    )
    assert len(editions.stale_editions(notebooks, notebooks / "locales")) == len(LANGUAGES)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_each_readme_links_the_others_and_opens_its_own_edition_in_colab(lang):
    language = LANGUAGES[lang]
    readme = (ROOT / language.readme).read_text(encoding="utf-8")
    for other in ["README.md", *[x.readme for x in LANGUAGES.values() if x is not language]]:
        assert f"]({other})" in readme
    assert f"]({language.readme})" in (ROOT / "README.md").read_text(encoding="utf-8")
    colab = re.findall(r"https://colab\.research\.google\.com/github/deitlab/deitlab/blob/main/(\S+?\.ipynb)", readme)
    expected = [p.relative_to(ROOT).as_posix() for p in sorted((NOTEBOOKS / language.edition).glob("[0-9]*.ipynb"))]
    assert colab == expected
    for link in re.findall(r"\]\((notebooks/[^)#]+)\)", readme):
        assert (ROOT / link).exists(), link
