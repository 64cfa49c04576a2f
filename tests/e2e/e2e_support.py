"""What the browser pass needs besides fixtures: notebook discovery and a JupyterLab handle."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = Path(os.environ.get("DEITLAB_E2E_DIR", REPO / "notebooks")).resolve()
EXPLORER_TAG = "widget-explorer"
ALWAYS = ("00_setup.ipynb",)


def explorer_cells(notebook: Path) -> list[int]:
    """Indices (among all cells) of the cells tagged ``widget-explorer`` in a notebook file."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return [i for i, cell in enumerate(cells) if EXPLORER_TAG in cell.get("metadata", {}).get("tags", [])]


def browser_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebooks the browser pass opens: 00_setup plus every notebook with a widget explorer."""
    found = sorted(directory.glob("[0-9]*.ipynb"))
    return [nb for nb in found if nb.name in ALWAYS or explorer_cells(nb)]


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its address, token, and the directory it serves."""

    url: str
    token: str
    root: Path
    log: Path

    def api(self, path: str, method: str = "GET", token: bool = True) -> tuple[int, object]:
        """Call the Jupyter server REST API; returns (HTTP status, decoded JSON or None)."""
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
                return response.status, json.loads(body) if body else None
        except urllib.error.HTTPError as err:
            return err.code, None

    def open_url(self, notebook: str) -> str:
        """Address that opens a notebook in a fresh (reset) workspace, authenticated by the token."""
        return f"{self.url}/lab/tree/{urllib.request.pathname2url(notebook)}?reset&token={self.token}"

    def shutdown_sessions(self, notebook: str) -> None:
        """Stop the kernels of a notebook (frees memory before the next one runs)."""
        status, sessions = self.api("/api/sessions")
        for session in sessions if status == 200 and isinstance(sessions, list) else []:
            if session.get("path", "").endswith(notebook):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")
