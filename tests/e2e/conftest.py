"""Fixtures for the browser pass: Debian's chromium, a JupyterLab server as `make lab` starts it,
and a fresh headless browser profile driven by Playwright.

Run with ``make e2e`` (``pytest -m e2e tests/e2e``). In any other pytest run (``make test``'s
first pass, ``make unit``) these tests are skipped: they need their own, sequential pass.

Environment variables (all optional):
- ``DEITLAB_E2E_DIR``: directory served as JupyterLab's root and searched for notebooks
  (default ``notebooks/``); a development aid for trying the test on scratch notebooks.
- ``DEITLAB_CHROMIUM``: browser executable (default ``/usr/bin/chromium``, Debian's package).
- ``DEITLAB_E2E_NOTEBOOK_TIMEOUT``: seconds allowed per notebook (default 600).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import NOTEBOOK_DIR, REPO, Lab, browser_notebooks

from deitlab.i18n.languages import LANGUAGES

HERE = Path(__file__).resolve().parent
CHROMIUM = Path(os.environ.get("DEITLAB_CHROMIUM", "/usr/bin/chromium"))
BUILD = REPO / "build"
SCREENSHOTS = BUILD / "screenshots"
LOGS = BUILD / "e2e"
#: Flags known to work for Debian's chromium in containers (headless mode is added by Playwright).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: JupyterLab user settings for a deterministic, side-effect-free session: every cell in the DOM
#: (no windowing, so all outputs can be inspected), no autosave (the test never writes the
#: committed notebooks), no news/update requests to the internet.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
# Captured at import, before any function-scoped fixture (tests/conftest.py) patches it:
# the server must see the caller's DEITLAB_CACHE (make e2e: build/cache, warm after nbval).
_CALLER_ENV = dict(os.environ)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "notebook" in metafunc.fixturenames:
        notebooks = browser_notebooks()
        metafunc.parametrize("notebook", notebooks, ids=[nb.stem for nb in notebooks])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "e2e" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="browser pass: run it with `make e2e` (pytest -m e2e tests/e2e)")
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's chromium; installs it with apt (tests/e2e/install_browser.sh) if missing."""
    if not os.access(CHROMIUM, os.X_OK):
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / "install_browser.log"
        print(f"\n{CHROMIUM} missing: installing it with apt (log: {log})", file=sys.stderr)
        try:
            proc = subprocess.run(
                ["sh", str(HERE / "install_browser.sh")],
                env={**_CALLER_ENV, "CHROMIUM": str(CHROMIUM)},
                capture_output=True,
                text=True,
                timeout=900,
            )
            output = proc.stdout + proc.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            output = f"install_browser.sh did not finish: {exc}"
        log.write_text(output, encoding="utf-8")
        if not os.access(CHROMIUM, os.X_OK):
            tail = "\n".join(output.strip().splitlines()[-8:])
            pytest.skip(f"browser unavailable: {CHROMIUM} is missing and apt could not install it:\n{tail}")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def browser_context(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A headless chromium with a fresh profile (Playwright, system browser, no downloads)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(60_000)
        yield context
        context.close()


# --------------------------------------------------------------------------- JupyterLab


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _jupyter() -> str:
    venv = REPO / ".venv" / "bin" / "jupyter"
    if venv.exists():
        return str(venv)
    here = Path(sys.executable).parent / "jupyter"
    return str(here) if here.exists() else (shutil.which("jupyter") or "jupyter")


def _write_settings(settings_dir: Path, settings: dict) -> None:
    for relative, values in settings.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab started like `make lab` (project venv, 127.0.0.1, root notebooks/), with a token.

    The fixture checks the server answers its HTTP API (/api/status) with the token and refuses
    without it, and that /lab serves the JupyterLab page.
    """
    with _serve_lab(NOTEBOOK_DIR, tmp_path_factory.mktemp("jupyterlab"), LAB_SETTINGS) as server:
        yield server


@pytest.fixture(scope="session", params=["ja", "zh", "vi"])
def edition_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab as `make lab LAB_LANG=<lang>` starts it: the edition's folder, the UI in its language."""
    language = LANGUAGES[request.param]
    settings = {
        **LAB_SETTINGS,
        "@jupyterlab/translation-extension/plugin.jupyterlab-settings": {"locale": language.lab_locale},
    }
    # expose_app_in_browser: the test runs commands by id (menu labels are translated)
    with _serve_lab(
        NOTEBOOK_DIR / language.edition,
        tmp_path_factory.mktemp(f"jupyterlab-{language.code}"),
        settings,
        ("--LabApp.expose_app_in_browser=True",),
        f"jupyterlab-{language.code}.log",
    ) as server:
        yield server


@contextlib.contextmanager
def _serve_lab(
    root: Path, state: Path, settings: dict, extra_args: tuple[str, ...] = (), log_name: str = "jupyterlab.log"
) -> Iterator[Lab]:
    """A JupyterLab server on a free port with a token, serving ``root``, stopped on exit."""
    _write_settings(state / "settings", settings)
    port, token = _free_port(), secrets.token_hex(24)
    command = [
        _jupyter(),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        f"--LabApp.user_settings_dir={state / 'settings'}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
        *extra_args,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    env = {
        **_CALLER_ENV,
        "HF_HUB_OFFLINE": _CALLER_ENV.get("HF_HUB_OFFLINE", "1"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),  # private connection files and cookie secret
    }
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / log_name
    with log_path.open("w", encoding="utf-8") as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    lab = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log_path)
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}; see {log_path}:\n{log_path.read_text()}")
            try:
                status, body = lab.api("/api/status")
            except OSError:
                status, body = None, None
            if status == 200:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer /api/status within 180 s; see {log_path}")
            time.sleep(0.5)
        assert isinstance(body, dict) and "started" in body, f"/api/status answered {body!r}"
        assert lab.api("/api/status", token=False)[0] == 403, "the server answers without its token"
        with urllib.request.urlopen(f"{lab.url}/lab?token={token}", timeout=60) as page:
            assert page.status == 200 and b"JupyterLab" in page.read(), "/lab does not serve JupyterLab"
        yield lab
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """``build/screenshots/``, created on demand."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def report() -> Iterator[Path]:
    """``build/e2e/report.txt``: one line per notebook (durations, interactions, screenshot)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    path = LOGS / "report.txt"
    path.write_text("", encoding="utf-8")
    yield path
