"""Self-checks for notebook 05 (quantization-aware training)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from deitlab.checks._core import CheckResult, passed, require, require_close

__all__ = ["check_fake_quant", "check_fusion_groups", "check_partial_quantization"]


def check_fake_quant(fake_quant: Callable[[torch.Tensor, float, int], torch.Tensor]) -> CheckResult:
    """Exercise 05.1: a symmetric fake-quantizer ``fake_quant(x, scale, bits)`` matches PyTorch's."""
    exercise = "05.1 fake quantization by hand"
    require(callable(fake_quant), exercise, "pass your function itself, e.g. check_fake_quant(my_fake_quant)")
    x = torch.linspace(-3.0, 3.0, 97)
    for scale, bits in ((0.1, 8), (0.25, 4), (0.5, 3)):
        out = fake_quant(x.clone(), scale, bits)
        require(out is not None, exercise, "your function returns None: return the fake-quantized tensor")
        require(isinstance(out, torch.Tensor), exercise, f"return a tensor, not a {type(out).__name__}")
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        expected = torch.fake_quantize_per_tensor_affine(x, scale, 0, qmin, qmax)
        levels = out.unique().numel()
        require(
            levels <= 2**bits,
            exercise,
            f"{bits} bits allow at most {2**bits} distinct values, yours has {levels}: round and clamp",
        )
        require_close(out, expected, exercise, atol=1e-6)
    return passed(exercise, "matches torch.fake_quantize_per_tensor_affine at 8, 4 and 3 bits")


def check_fusion_groups(groups: Sequence[Sequence[str]], model: nn.Module) -> CheckResult:
    """Exercise 05.2: the ``[conv, bn, relu]`` name triples to fuse in ``model``."""
    exercise = "05.2 fusion list"
    require(groups is not None and not isinstance(groups, str), exercise, "answer with a list of name lists")
    names = dict(model.named_modules())
    expected = []
    for name, module in names.items():
        children = dict(module.named_children())
        conv, bn = children.get("conv"), children.get("bn")
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and isinstance(children.get("relu"), nn.ReLU):
            expected.append([f"{name}.conv", f"{name}.bn", f"{name}.relu"])
    answer = [list(group) for group in groups]
    for group in answer:
        missing = [n for n in group if n not in names]
        require(not missing, exercise, f"{missing} are not module names of the model (see model.named_modules())")
    require(len(answer) == len(expected), exercise, f"the model has {len(expected)} Conv-BN-ReLU triples")
    require(
        sorted(answer) == sorted(expected),
        exercise,
        "each group must be [block.conv, block.bn, block.relu] in this order",
    )
    return passed(exercise, f"{len(expected)} Conv+BN+ReLU triples, e.g. {expected[0]}")


def check_partial_quantization(converted: nn.Module, float_name: str = "fc") -> CheckResult:
    """Exercise 05.3: after ``convert``, the block ``float_name`` is fp32 and the convolutions are int8."""
    exercise = "05.3 partial quantization"
    require(isinstance(converted, nn.Module), exercise, "pass the converted model")
    modules = dict(converted.named_modules())
    matches = [name for name in modules if name.split(".")[-1] == float_name]
    require(bool(matches), exercise, f"no module named {float_name!r} in the model")
    target = modules[matches[0]]
    inner = getattr(target, "block", target)  # a FloatIsland holds the fp32 module as .block
    require(
        "quantized" not in type(inner).__module__,
        exercise,
        f"{float_name!r} was quantized: keep it in fp32 (qconfig = None, e.g. float_blocks=[{float_name!r}])",
    )
    int8_convs = [
        name for name, m in modules.items() if "quantized" in type(m).__module__ and "Conv" in type(m).__name__
    ]
    require(bool(int8_convs), exercise, "no quantized convolution found: calibrate, then convert")
    with torch.inference_mode():
        out = converted(torch.randn(2, 1, 28, 28))
    require(out.dtype == torch.float32 and out.shape == (2, 10), exercise, "expected 2×1×28×28 → 2×10 float logits")
    return passed(exercise, f"{len(int8_convs)} int8 convolutions, {float_name!r} kept in fp32")
