"""Self-checks for notebook 04 (post-training quantization)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from deitlab.checks._core import CheckResult, passed, require, require_close
from deitlab.quant import dequantize, linear_names, qparams, quantize, sqnr

__all__ = ["check_dynamic_mlp_only", "check_integer_linear", "check_per_channel_int8"]


def check_dynamic_mlp_only(original: nn.Module, quantized: nn.Module) -> CheckResult:
    """Exercise 04.1: ``quantize_dynamic`` on a copy, int8 for the MLP Linear layers only."""
    exercise = "04.1 quantize_dynamic, MLP layers only"
    require(isinstance(quantized, nn.Module), exercise, "pass the model quantize_dynamic returned")
    require(quantized is not original, exercise, "quantize a copy: leave inplace=False (the default)")
    names = linear_names(original)
    require(len(names) > 0, exercise, "pass the original fp32 model (the tiny DeiT) as first argument")
    dynamic_linear = torch.ao.nn.quantized.dynamic.Linear
    for name in names:
        module = quantized.get_submodule(name)
        if ".mlp." in name:
            require(
                isinstance(module, dynamic_linear),
                exercise,
                f"{name} is still {type(module).__name__}: name the MLP layers (fc1, fc2) in qconfig_spec",
            )
            require(module.weight().dtype == torch.qint8, exercise, f"{name}: weights must be torch.qint8 (dtype=...)")
        else:
            require(
                type(module) is nn.Linear,
                exercise,
                f"{name} was quantized too: qconfig_spec should name only the layers whose name contains '.mlp.'",
            )
    mlp = sum(".mlp." in name for name in names)
    return passed(exercise, f"{mlp} MLP layers int8, {len(names) - mlp} Linear layers left fp32")


def _reference_static_linear() -> tuple[torch.ao.nn.quantized.Linear, torch.Tensor, dict]:
    """A static int8 Linear with per-channel weights and 7-bit activations (the x86 default), and its input."""
    generator = torch.Generator().manual_seed(7)
    in_features, out_features, batch = 48, 24, 32
    weight = torch.randn(out_features, in_features, generator=generator) * 0.2
    weight[0] *= 8.0  # one output channel with a much larger range
    bias = torch.randn(out_features, generator=generator)
    x = torch.randn(batch, in_features, generator=generator) + 0.5
    s_x = ((x.max() - x.min()) / 127).item()  # reduce_range: activation codes 0…127
    z_x = round(-x.min().item() / s_x)
    s_w = (weight.abs().amax(dim=1) / 127).double()
    q_weight = torch.quantize_per_channel(weight, s_w, torch.zeros(out_features, dtype=torch.long), 0, torch.qint8)
    y = nn.functional.linear(x, weight, bias)
    s_y = ((y.max() - y.min()) / 255).item()
    z_y = round(-y.min().item() / s_y)
    layer = torch.ao.nn.quantized.Linear(in_features, out_features)
    layer.set_weight_bias(q_weight, bias)
    layer.scale, layer.zero_point = s_y, z_y
    q_x = torch.quantize_per_tensor(x, s_x, z_x, torch.quint8)
    arguments = {
        "q_x": q_x.int_repr(),
        "s_x": s_x,
        "z_x": z_x,
        "q_w": q_weight.int_repr(),
        "s_w": q_weight.q_per_channel_scales(),
        "bias": bias,
        "s_y": s_y,
        "z_y": z_y,
    }
    return layer, q_x, arguments


def check_integer_linear(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Exercise 04.2: ``fn(q_x, s_x, z_x, q_w, s_w, bias, s_y, z_y)`` returns the output codes of a static int8 Linear.

    Compared with ``torch.ao.nn.quantized.Linear`` on a layer with per-channel weight scales:
    every code within one step (LSB), at least 99 % identical.
    """
    exercise = "04.2 integer-only linear layer"
    require(callable(fn), exercise, "pass your function itself, not its result")
    with warnings.catch_warnings():  # torch's quantized tensor types are deprecated (the notebook shows it once)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        layer, q_x, arguments = _reference_static_linear()
        expected = layer(q_x).int_repr().int()
    result = fn(**{name: value.clone() if torch.is_tensor(value) else value for name, value in arguments.items()})
    require(result is not None, exercise, "your function returned None: return the output codes")
    require(isinstance(result, torch.Tensor), exercise, "return a tensor of output codes")
    require(
        tuple(result.shape) == tuple(expected.shape),
        exercise,
        f"expected codes of shape {tuple(expected.shape)} (batch × out_features), got {tuple(result.shape)}",
    )
    require(
        not result.is_floating_point(),
        exercise,
        "return integer codes (round, add z_y, clamp to [0, 255], then .to(torch.uint8)), not real numbers",
    )
    require(
        int(result.min()) >= 0 and int(result.max()) <= 255, exercise, "clamp the codes to the uint8 range [0, 255]"
    )
    gap = (result.int() - expected).abs()
    require(
        int(gap.max()) <= 1,
        exercise,
        f"codes differ from torch's by up to {int(gap.max())} steps: convert the codes to torch.int32 before "
        "subtracting z_x (uint8 arithmetic wraps around), add the bias as round(bias / (s_x·s_w)), "
        "multiply by M = s_x·s_w / s_y per output channel, then add z_y",
    )
    exact = (gap == 0).float().mean().item()
    require(exact >= 0.99, exercise, f"only {exact:.1%} of the codes are identical: round to nearest, not down")
    return passed(exercise, f"{exact:.1%} of the codes identical to torch.ao.nn.quantized.Linear, all within one step")


def _reference_weight() -> torch.Tensor:
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(6, 10, generator=generator)
    weight[0] *= 20.0  # one row with a much larger range
    weight[3] *= 0.01  # and one with a tiny one
    return weight


def check_per_channel_int8(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> CheckResult:
    """Exercise 04.3: ``fn(w) -> (codes, scales)``, symmetric int8 with one scale per output row."""
    exercise = "04.3 symmetric per-channel int8"
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
