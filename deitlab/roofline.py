"""How much work a forward pass is, and how fast this CPU can do matrix multiplies.

Convention: one multiply-add counts as **2 FLOPs** (what ``torch.utils.flop_counter``
and most papers use; model cards that say "17.6 GFLOPs" for DeiT-B count multiply-adds).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import torch
from torch import nn

from deitlab.measure import time_call

_ATTENTION = "attention matmuls (QKᵀ, AV)"
#: How the FLOP counter's aten ops are grouped for a transformer.
_OP_GROUPS = {
    "addmm": "linear layers",
    "mm": "linear layers",
    "convolution": "patch embedding (conv)",
    "bmm": "attention matmuls (QKᵀ, AV)",
    "_scaled_dot_product_flash_attention": "attention matmuls (QKᵀ, AV)",
    "_scaled_dot_product_efficient_attention": "attention matmuls (QKᵀ, AV)",
    "_scaled_dot_product_flash_attention_for_cpu": "attention matmuls (QKᵀ, AV)",
    "_scaled_dot_product_cudnn_attention": "attention matmuls (QKᵀ, AV)",
}


def count_flops(model: nn.Module, inputs: torch.Tensor) -> dict[str, int]:
    """FLOPs of one forward pass on ``inputs`` (2 per multiply-add), grouped by kind of op.

    Uses ``torch.utils.flop_counter.FlopCounterMode``, which counts matrix
    multiplications, convolutions and attention; element-wise ops (softmax, GELU,
    LayerNorm) are not counted — they are a few percent at most for a ViT.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
        raise ValueError("inputs must be an N×C×H×W image batch tensor")
    attention = 0

    def attention_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal attention
        batch, tokens, dim = args[0].shape
        attention += 2 * 2 * batch * tokens * tokens * dim  # QKᵀ and AV, summed over heads

    counter = FlopCounterMode(display=False)
    handles = [m.register_forward_hook(attention_hook) for m in model.modules() if _is_attention(m)]
    try:
        with torch.inference_mode(), counter:
            model.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
    groups: dict[str, int] = defaultdict(int)
    for op, flops in counter.get_flop_counts()["Global"].items():
        name = getattr(op, "__name__", str(op)).split(".")[0]
        groups[_OP_GROUPS.get(name, name)] += int(flops)
    if attention and not groups.get(_ATTENTION):
        groups[_ATTENTION] = attention  # the CPU attention kernel has no FLOP formula in the counter
    return dict(groups)


def _is_attention(module: nn.Module) -> bool:
    """timm's ``Attention`` block: a fused ``qkv`` projection and a head count."""
    return hasattr(module, "qkv") and hasattr(module, "num_heads")


def linear_flops(model: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of the layers that hold weights (``nn.Linear`` and ``nn.Conv2d``) only, counted by hooks.

    This is the part dynamic int8 quantization can speed up; the attention matmuls
    between activations stay in floating point.
    """
    total = 0

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += 2 * output.numel() * module.in_features
        else:
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += 2 * output.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.inference_mode():
            model.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def matmul_peak(dtype: str = "fp32", m: int = 256, k: int = 768, n: int = 3072, repeats: int = 10) -> float:
    """Achievable matrix-multiply throughput on this CPU in GFLOP/s (int8: GOP/s), best of ``repeats``.

    The default shape is a DeiT-B MLP layer (a batch of ~256 tokens × 768 → 3072).
    ``"fp32"`` times ``torch.mm``; ``"int8"`` times the best of ``torch._int_mm``
    (int8 × int8 → int32) and the fbgemm dynamic-quantized linear that
    ``quantize_dynamic`` uses. Uses the current ``torch.get_num_threads()``.
    """
    if dtype not in ("fp32", "int8"):
        raise ValueError(f"dtype must be 'fp32' or 'int8', got {dtype!r}")
    if min(m, k, n) < 1 or repeats < 1:
        raise ValueError("matrix sizes and repeats must be positive")
    flops = 2 * m * k * n
    with torch.inference_mode():
        if dtype == "fp32":
            a, b = torch.randn(m, k), torch.randn(k, n)
            return flops / time_call(torch.mm, a, b, repeats=repeats, warmup=1).min_ms / 1e3 / 1e9
        candidates = []
        a8 = torch.randint(-128, 127, (m, k), dtype=torch.int8)
        b8 = torch.randint(-128, 127, (k, n), dtype=torch.int8)
        with contextlib.suppress(RuntimeError):  # builds without a CPU int8 GEMM
            candidates.append(time_call(torch._int_mm, a8, b8, repeats=repeats, warmup=1).min_ms / 1e3)
        linear = torch.ao.nn.quantized.dynamic.Linear(k, n)
        x = torch.randn(m, k)
        candidates.append(time_call(linear, x, repeats=repeats, warmup=1).min_ms / 1e3)
    return flops / min(candidates) / 1e9


def percent_of_peak(flops: float, seconds: float, peak_gflops: float) -> float:
    """Achieved throughput ``flops / seconds`` as a percentage of ``peak_gflops``."""
    if seconds <= 0 or peak_gflops <= 0:
        raise ValueError("seconds and peak must be positive")
    return 100.0 * flops / seconds / 1e9 / peak_gflops
