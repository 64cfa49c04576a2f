"""Shared fixtures: every test runs offline, with its own cache directory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path_factory.getbasetemp() / "deitlab-cache"))
    monkeypatch.delenv("DEITLAB_WEIGHTS_DIR", raising=False)
    # the kit speaks English in tests unless a test chooses a language (deitlab/i18n/runtime.py)
    monkeypatch.delenv("DEITLAB_LANG", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
