"""Self-checks for notebook 00 (setup)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deitlab.checks._core import CheckResult, passed, require
from deitlab.data import imagenet_classes

__all__ = ["check_top5"]


def check_top5(logits: torch.Tensor, answer: Sequence[str]) -> CheckResult:
    """Exercise 00.1: the five most likely class names of a ``1×1000`` logit row, best first."""
    exercise = "00.1 top-5 class names"
    require(isinstance(logits, torch.Tensor) and logits.shape == (1, 1000), exercise, "pass the 1×1000 logits")
    require(not isinstance(answer, str) and len(answer) == 5, exercise, "answer with a list of five class names")
    expected = [imagenet_classes()[i] for i in logits[0].topk(5).indices.tolist()]
    require(list(answer) == expected, exercise, "names or order differ: sort by probability, highest first")
    return passed(exercise, ", ".join(expected))
