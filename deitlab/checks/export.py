"""Self-checks for notebook 06 (mobile and edge export)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from deitlab.checks._core import CheckResult, passed, require, require_close

__all__ = ["check_trace_pitfall", "check_size_ratio", "check_top1_agreement"]


def check_trace_pitfall(eager: Callable[[torch.Tensor], torch.Tensor], traced, x: torch.Tensor) -> CheckResult:
    """Exercise 06.1: an input on which the traced module silently disagrees with eager Python."""
    exercise = "06.1 where trace bakes in control flow"
    require(isinstance(x, torch.Tensor), exercise, "answer with an input tensor")
    require(isinstance(traced, torch.jit.ScriptModule), exercise, "trace the function with torch.jit.trace first")
    with torch.inference_mode():
        expected, got = eager(x), traced(x)
    require(expected.shape == got.shape, exercise, f"shapes differ ({tuple(expected.shape)} vs {tuple(got.shape)})")
    require(
        not torch.allclose(expected, got),
        exercise,
        "on this input trace and eager agree: pick one that takes the *other* branch of the `if`",
    )
    return passed(exercise, "the trace replayed the branch it saw while tracing; eager took the other one")


def check_size_ratio(fp32_path: str | Path, int8_path: str | Path, answer: float) -> CheckResult:
    """Exercise 06.2: how many times smaller the int8 file is than the fp32 one."""
    exercise = "06.2 size ratio"
    require(answer is not None and float(answer) > 0, exercise, "answer with a positive number (fp32 size / int8 size)")
    fp32, int8 = Path(fp32_path).stat().st_size, Path(int8_path).stat().st_size
    require(float(answer) > 1, exercise, "divide the fp32 size by the int8 size, not the other way round")
    require_close(float(answer), fp32 / int8, exercise, atol=0.05, rtol=0.01)
    return passed(exercise, f"the int8 file is {fp32 / int8:.1f}× smaller")


def check_top1_agreement(reference: torch.Tensor, candidate: torch.Tensor, answer: float) -> CheckResult:
    """Exercise 06.3: the percentage of rows whose arg-max class is the same in both logit tensors."""
    exercise = "06.3 top-1 agreement"
    require(answer is not None, exercise, "answer with a percentage between 0 and 100")
    same_class = reference.argmax(1) == candidate.argmax(1).to(reference.device)  # e.g. GPU reference, CPU runtime
    expected = 100.0 * same_class.float().mean().item()
    in_range = 0 <= float(answer) <= 100 and not float(answer) <= 1 < expected
    require(in_range, exercise, "give a percentage (0–100), not a fraction")
    require_close(float(answer), expected, exercise, atol=1e-3)
    return passed(exercise, f"{expected:.1f}% of the test digits get the same class")
