"""The teaching deliverables in a real (headless) browser: the rendered book, a static reveal.js
deck, and notebook 03 as a live RISE slideshow in JupyterLab.

``make test`` builds the book and the decks (``make book slides``) before this pass; run alone,
``make book slides e2e``. The static sites are served from ``build/`` by a local HTTP server, and
every request that leaves 127.0.0.1 is blocked and recorded: nothing may come from a CDN (only the
Colab badge image, which is a link to Colab, is allowed to be missing offline). Screenshots go to
``build/screenshots/``.
"""

from __future__ import annotations

import functools
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from e2e_support import NOTEBOOK_DIR, REPO, Lab

pytestmark = pytest.mark.e2e

BUILD = REPO / "build"
#: Remote addresses a page may ask for while offline: the Colab badge image (its link is the point).
ALLOWED_REMOTE = ("https://colab.research.google.com/assets/colab-badge.svg",)
LESSON_04 = "04_post_training_quantization"
LIVE_NOTEBOOK = "03_distillation.ipynb"
#: The deck's reveal.js instance (a require.js module, not a global), moved to the first slide that
#: holds a kept output with all its fragments shown; resolves to that slide's indices or null.
GOTO_FIRST_OUTPUT_JS = """() => new Promise(resolve => require(["vendor/reveal.js/dist/reveal.js"], Reveal => {
  const section = [...document.querySelectorAll('.reveal .slides section section')]
    .find(s => s.querySelector('.jp-OutputArea-output'));
  if (!section) return resolve(null);
  const {h, v} = Reveal.getIndices(section);
  Reveal.slide(h, v, 99);
  setTimeout(() => resolve([h, v]), 1000);
}))"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """``build/`` served over HTTP on a free local port; yields its base address."""
    for built, target in ((BUILD / "book" / "index.html", "book"), (BUILD / "slides", "slides")):
        if not built.exists():
            pytest.fail(f"{built} is missing: run `make {target}` before the browser pass")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(BUILD)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def offline_page(browser_context) -> Iterator[tuple[object, list[str]]]:
    """A page whose requests to anything but 127.0.0.1 are aborted and listed."""
    page = browser_context.new_page()
    remote: list[str] = []

    def route(request_route) -> None:
        url = request_route.request.url
        host = urllib.parse.urlsplit(url).hostname
        if host in {"127.0.0.1", "localhost"} or url.startswith("data:"):
            request_route.continue_()
        else:
            remote.append(url)
            request_route.abort()

    page.route("**/*", route)
    yield page, remote
    page.close()


def _unexpected(remote: list[str]) -> list[str]:
    return [url for url in remote if not url.startswith(ALLOWED_REMOTE)]


def test_book_table_of_contents_leads_to_notebook_04(site: str, offline_page, screenshots: Path) -> None:
    page, remote = offline_page
    page.goto(f"{site}/book/index.html")
    page.wait_for_url(re.compile(r"/_book/index\.html$"))
    toc = page.locator("nav.bd-links a.reference.internal", has_text=re.compile(r"^04 ·"))
    assert toc.count() >= 1, "no table-of-contents entry for notebook 04"
    toc.first.click()
    page.wait_for_url(re.compile(rf"/{LESSON_04}\.html$"))
    article = page.locator("article.bd-article")
    assert article.locator("h1").first.inner_text().startswith("04 ·")
    sections = article.locator("h2").all_inner_texts()
    assert len(sections) >= 5 and any("Key takeaways" in s for s in sections), sections
    launch = page.locator(f'a[href*="colab.research.google.com/github/"][href$="notebooks/{LESSON_04}.ipynb"]')
    assert launch.count() >= 1, "no Colab launch link to the notebook"
    figures = article.locator(".cell_output img")
    if figures.count():  # a kept figure: show it
        figures.first.scroll_into_view_if_needed()
        assert figures.first.evaluate("img => img.naturalWidth") > 0, "the kept figure does not load"
    else:  # notebook 04 keeps no figure yet: its kept text outputs and code must render
        assert article.locator(".cell_output pre").count() >= 1, "no kept output rendered"
        assert article.locator("div.cell_input pre").count() >= 10, "code cells not rendered"
        article.locator(".cell_output pre").first.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / f"book-{LESSON_04}.png"))
    assert _unexpected(remote) == [], f"the book asked the internet for {_unexpected(remote)}"


def test_book_glossary_and_search(site: str, offline_page, screenshots: Path) -> None:
    page, remote = offline_page
    page.goto(f"{site}/book/_book/glossary.html")
    terms = page.locator("dl.glossary dt").all_inner_texts()
    assert len(terms) >= 30 and any("zero point" in t for t in terms), terms
    page.goto(f"{site}/book/search.html?q=calibration")
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=60_000)
    hrefs = results.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any(LESSON_04 in h for h in hrefs), f"search for 'calibration' does not find notebook 04: {hrefs}"
    page.screenshot(path=str(screenshots / "book-search.png"))
    assert _unexpected(remote) == [], f"the book asked the internet for {_unexpected(remote)}"


def test_static_slides_navigate_offline(site: str, offline_page, screenshots: Path) -> None:
    page, remote = offline_page
    page.goto(f"{site}/slides/{LIVE_NOTEBOOK.removesuffix('.ipynb')}.slides.html")
    # require.js loads reveal.js as a module (no global Reveal): read its state from the DOM
    page.locator(".reveal.ready").wait_for(state="attached", timeout=60_000)
    assert page.locator(".reveal .slides > section").count() >= 10
    page.wait_for_function("() => window.MathJax && MathJax.Hub", timeout=60_000)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_url(re.compile(r"#/2(/|$)"), timeout=10_000)
    page.keyboard.press("Space")  # reveals the setup cell, a fragment
    present = page.locator(".reveal .slides section.present")
    assert "setup" in present.first.inner_text().lower()
    page.screenshot(path=str(screenshots / "slides-03-setup.png"))
    # Jump to the first slide that shows a kept output, with all its fragments revealed.
    shown = page.evaluate(GOTO_FIRST_OUTPUT_JS)
    assert shown, "no slide of the deck shows a kept output"
    output = page.locator(".reveal .slides section.present .jp-OutputArea-output").first
    output.wait_for(state="visible", timeout=10_000)
    assert output.inner_text().strip(), "the kept output on the slide is empty"
    page.screenshot(path=str(screenshots / "slides-03-kept-output.png"))
    assert _unexpected(remote) == [], f"the deck asked the internet for {_unexpected(remote)}"


def test_notebook_03_as_live_rise_slideshow(lab: Lab, browser_context, screenshots: Path) -> None:
    notebook = NOTEBOOK_DIR / LIVE_NOTEBOOK
    original = notebook.read_bytes()
    page = browser_context.new_page()
    try:
        page.goto(f"{lab.url}/rise/{LIVE_NOTEBOOK}?token={lab.token}")
        page.locator(".reveal .slides section.present").first.wait_for(state="visible", timeout=180_000)
        present = page.locator(".reveal .slides section.present")
        assert present.first.inner_text().startswith("03 ·"), "the slideshow does not open on the title slide"
        for _ in range(10):  # step forward (Space: slides, sub-slides, fragments) until the setup cell shows
            if present.locator(".jp-CodeCell:visible").count() and "from deitlab" in present.first.inner_text():
                break
            page.keyboard.press("Space")
            page.wait_for_timeout(800)
        cell = present.locator(".jp-CodeCell:visible").last
        assert cell.count() == 1, "stepping forward never showed the setup cell"
        cell.locator(".cm-content").focus()  # a long cell can reach past the projected slide: focus, not click
        page.keyboard.press("Control+Enter")  # run the cell, stay on the slide
        prompt = cell.locator(".jp-InputPrompt")
        page.wait_for_function(
            "p => /\\[\\d+\\]/.test(p.textContent)", arg=prompt.element_handle(), timeout=300_000, polling=1000
        )
        output = cell.locator(".jp-OutputArea-output").all_inner_texts()
        assert output and not any("Traceback" in text for text in output), f"the cell failed: {output}"
        page.screenshot(path=str(screenshots / "rise-03-setup-cell.png"))
    finally:
        page.close()
        lab.shutdown_sessions(LIVE_NOTEBOOK)
    assert notebook.read_bytes() == original, f"{LIVE_NOTEBOOK} was modified on disk by the slideshow"
