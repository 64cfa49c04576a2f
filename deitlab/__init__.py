"""deitlab: helpers for the Vision Transformer deployment workbook."""

from __future__ import annotations

__version__ = "0.1.0"
