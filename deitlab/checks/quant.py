"""Self-checks for notebook 04 (post-training quantization)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from deitlab.checks._core import CheckResult, passed, require, require_close
from deitlab.quant import dequantize, qparams, quantize, sqnr

__all__ = ["check_per_channel_int8", "check_most_sensitive", "check_sqnr"]


def _reference_weight() -> torch.Tensor:
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(6, 10, generator=generator)
    weight[0] *= 20.0  # one row with a much larger range
    weight[3] *= 0.01  # and one with a tiny one
    return weight


def check_per_channel_int8(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> CheckResult:
    """Exercise 04.1: ``fn(w) -> (codes, scales)``, symmetric int8 with one scale per output row."""
    exercise = "04.1 symmetric per-channel int8"
    require(callable(fn), exercise, "pass your function itself, not its result")
    weight = _reference_weight()
    result = fn(weight.clone())
    require(result is not None, exercise, "your function returned None: return (codes, scales)")
    require(isinstance(result, tuple) and len(result) == 2, exercise, "return a pair (codes, scales)")
    codes, scales = result
    params = qparams(weight, bits=8, symmetric=True, axis=0)
    require(isinstance(scales, torch.Tensor), exercise, "scales must be a tensor")
    require(
        scales.numel() == weight.shape[0],
        exercise,
        f"one scale per output channel (row): expected {weight.shape[0]}, got {scales.numel()}",
    )
    require_close(scales.reshape(-1), params.scale, exercise, atol=1e-8, rtol=1e-5)
    require(
        isinstance(codes, torch.Tensor) and not codes.is_floating_point(),
        exercise,
        "codes must be an integer tensor (round, clamp, then .to(torch.int8))",
    )
    require(
        int(codes.min()) >= -128 and int(codes.max()) <= 127, exercise, "codes must lie in the int8 range [-128, 127]"
    )
    require_close(codes, quantize(weight, params), exercise, atol=0, rtol=0)
    error = sqnr(weight, dequantize(codes.long(), params))
    return passed(exercise, f"codes and scales match the reference (SQNR {error:.1f} dB)")


def check_most_sensitive(drops: Mapping[str, float], answer: str | None) -> CheckResult:
    """Exercise 04.2: the layer whose quantization alone costs the most accuracy."""
    exercise = "04.2 most sensitive layer"
    require(isinstance(drops, Mapping) and len(drops) > 0, exercise, "pass the dict of accuracy drops per layer")
    require(isinstance(answer, str), exercise, "answer with a layer name (a key of the drops dict)")
    require(answer in drops, exercise, f"{answer!r} is not one of the layers measured")
    worst = max(drops, key=drops.get)
    require(
        drops[answer] == drops[worst],
        exercise,
        f"{answer!r} costs {drops[answer]:.2f} points; another layer costs more — sort by the drop",
    )
    return passed(exercise, "that is the layer to keep in higher precision first")


def check_sqnr(x: torch.Tensor, x_hat: torch.Tensor, answer: float | None) -> CheckResult:
    """Exercise 04.3: the signal-to-quantization-noise ratio of ``x_hat`` in dB."""
    exercise = "04.3 SQNR by hand"
    require(isinstance(answer, (int, float, torch.Tensor)), exercise, "answer with a number (dB)")
    expected = sqnr(x, x_hat)
    require(
        abs(float(answer) - expected) < 1e-3,
        exercise,
        "compute 10·log10(Σx² / Σ(x − x̂)²); check you used the sums (or means) of squares, not amplitudes",
    )
    return passed(exercise, "each extra bit buys about 6 dB")
