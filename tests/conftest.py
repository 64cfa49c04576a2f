"""Shared fixtures: every test runs offline, with its own cache directory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path_factory.getbasetemp() / "deitlab-cache"))
    monkeypatch.delenv("DEITLAB_WEIGHTS_DIR", raising=False)
