"""deitlab: helpers for the Vision Transformer deployment workbook."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

# torchao registers enum constants with torch's pytree when it is imported, and torch 2.14 logs a
# deprecation line for each: noise unrelated to anything a learner does. Quieted on import, not in
# setup_notebook(): notebook 01 imports transformers, which imports torchao, before calling it, and
# every notebook imports deitlab first (its install cell).
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
