"""The re-run pass is skipped in every pytest run except ``pytest -m rerun`` (``make rerun``)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "rerun" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="re-run pass: run it with `make rerun` (pytest -m rerun tests/rerun)")
    for item in items:
        if item.get_closest_marker("rerun"):
            item.add_marker(skip)
