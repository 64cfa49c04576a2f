"""Self-checks for notebook 01 and 02."""

from __future__ import annotations

__all__: list[str] = []
