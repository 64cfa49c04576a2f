"""Self-checks for notebook 05 (quantization-aware training)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.ao.quantization as tq
from torch import nn

from deitlab.checks._core import CheckFailed, CheckResult, passed, require, require_close

__all__ = ["check_fake_quant", "check_qat_stub_placement"]

#: (scale, zero_point, bits) cases the fake-quantizer check tries.
FAKE_QUANT_CASES = ((0.05, 128, 8), (0.1, 20, 8), (0.25, 3, 4), (0.5, 0, 3), (0.3, 7, 3))


def check_fake_quant(fake_quant: Callable[[torch.Tensor, float, int, int], torch.Tensor]) -> CheckResult:
    """Exercise 05.1: ``fake_quant(x, scale, zero_point, bits)`` on the unsigned grid matches PyTorch's op.

    Values and straight-through gradients are compared with ``torch.fake_quantize_per_tensor_affine``.
    """
    exercise = "05.1 asymmetric fake quantizer"
    require(callable(fake_quant), exercise, "pass your function itself, e.g. check_fake_quant(my_fake_quant)")
    for scale, zero_point, bits in FAKE_QUANT_CASES:
        x = (torch.linspace(-4.0, 8.0, 241) + 0.013).requires_grad_()  # no x / scale lands on a rounding tie
        out = fake_quant(x, scale, zero_point, bits)
        require(out is not None, exercise, "your function returns None: return the fake-quantized tensor")
        require(isinstance(out, torch.Tensor), exercise, f"return a tensor, not a {type(out).__name__}")
        reference_x = x.detach().clone().requires_grad_()
        expected = torch.fake_quantize_per_tensor_affine(reference_x, scale, zero_point, 0, 2**bits - 1)
        levels = out.detach().unique().numel()
        require(
            levels <= 2**bits,
            exercise,
            f"{bits} bits allow at most {2**bits} distinct values, yours has {levels}: round and clamp",
        )
        require_close(out.detach(), expected.detach(), exercise, atol=1e-6)
        require(
            out.requires_grad,
            exercise,
            "no gradient flows through your function: add the straight-through trick x + (y - x).detach()",
        )
        out.sum().backward()
        expected.sum().backward()
        require(
            x.grad is not None and torch.equal(x.grad, reference_x.grad),
            exercise,
            f"gradients differ at scale {scale}, zero-point {zero_point}, {bits} bits: "
            "1 where round(x / scale) + zero_point fits [0, 2**bits - 1], 0 where it was clipped",
        )
    return passed(
        exercise, f"values and gradients match torch.fake_quantize_per_tensor_affine in {len(FAKE_QUANT_CASES)} cases"
    )


def _named(model: nn.Module, name: str, exercise: str) -> nn.Module:
    modules = dict(model.named_modules())
    require(name in modules, exercise, f"the model has no module named {name!r} (keep SmallCNN's names)")
    return modules[name]


def check_qat_stub_placement(prepared: nn.Module, converted: nn.Module, float_name: str = "fc") -> CheckResult:
    """Exercise 05.2: QAT with the stubs placed so that ``float_name`` stays fp32.

    ``prepared`` is the model after ``prepare_qat``, ``converted`` the model after ``convert``.
    """
    exercise = "05.2 stub placement"
    require(isinstance(prepared, nn.Module), exercise, "pass the prepared model (after prepare_qat) first")
    require(isinstance(converted, nn.Module), exercise, "pass the converted model (after convert) second")
    require(
        prepared is not converted, exercise, "convert a copy (copy.deepcopy), so the prepared model stays as it was"
    )
    modules = list(prepared.modules())
    fake = sum(isinstance(m, tq.FakeQuantizeBase) for m in modules)
    observers = sum(isinstance(m, tq.ObserverBase) for m in modules)
    require(
        fake > 0,
        exercise,
        f"the prepared model has no fake quantizer ({observers} observers): use get_default_qat_qconfig, "
        "not get_default_qconfig, before prepare_qat",
    )
    head = _named(prepared, float_name, exercise)
    require(
        not hasattr(head, "weight_fake_quant"),
        exercise,
        f"{float_name!r} got a weight fake quantizer: set model.{float_name}.qconfig = None before prepare_qat",
    )
    int8_convs = [
        name
        for name, m in converted.named_modules()
        if "quantized" in type(m).__module__ and "Conv" in type(m).__name__
    ]
    require(len(int8_convs) >= 3, exercise, f"expected 3 int8 convolutions after convert, found {len(int8_convs)}")
    head_kind = type(_named(converted, float_name, exercise))
    require(
        head_kind is nn.Linear,
        exercise,
        f"{float_name!r} is {head_kind.__name__} after convert, not an fp32 nn.Linear: set its qconfig to None",
    )
    try:
        with torch.inference_mode():
            out = converted.eval()(torch.randn(2, 1, 28, 28))
    except (RuntimeError, NotImplementedError) as exc:
        first_line = str(exc).splitlines()[0][:120]
        raise CheckFailed(
            f"❌ {exercise}: the converted model fails on a CPU batch ({first_line}): the fp32 {float_name!r} must "
            "receive a float tensor — put the DeQuantStub before it"
        ) from None
    require(
        isinstance(out, torch.Tensor) and not out.is_quantized and out.shape == (2, 10),
        exercise,
        "expected 2×10 float logits for a 2×1×28×28 batch: dequantize before the classifier",
    )
    return passed(
        exercise, f"{len(int8_convs)} int8 convolutions, {fake} fake quantizers before convert, {float_name!r} in fp32"
    )
