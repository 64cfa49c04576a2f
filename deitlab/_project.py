"""Project-wide constants that more than one place needs (set here only)."""

from __future__ import annotations

#: Public repository of the kit. Colab badges and the Colab install cell of every
#: notebook are generated from these two values (``make strip`` rewrites them and
#: a unit test fails when a notebook disagrees).
REPO_SLUG = "deitlab/deitlab"
REPO_BRANCH = "main"
REPO_URL = f"https://github.com/{REPO_SLUG}"


def colab_url(notebook_path: str) -> str:
    """The "Open in Colab" address of a notebook given its path in the repository."""
    return f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{REPO_BRANCH}/{notebook_path}"


def colab_badge(notebook_path: str) -> str:
    """Markdown for the "Open in Colab" badge of a notebook."""
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook_path)})"


def colab_install_command() -> str:
    """The pip command the Colab-only setup cell runs."""
    return f'pip install -q "deitlab[deploy] @ git+{REPO_URL}@{REPO_BRANCH}"'
