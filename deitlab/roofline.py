"""A roofline for this CPU: how much work a forward pass is, and how fast this machine can do it.

* work — :func:`count_flops` (2 FLOPs per multiply-accumulate, what ``torch.utils.flop_counter``
  counts; papers and timm quote DeiT-B's "17.6 GFLOPs", which are multiply-accumulates) and
  :func:`linear_flops` (the layers with weights only);
* traffic — :func:`matmul_layers` lists every matrix multiply with weights and its shape;
  :func:`intensity_table` turns shapes into arithmetic intensity (FLOPs per byte moved);
* machine — :func:`memory_bandwidth` (a STREAM-like tensor copy) and :func:`matmul_peak` per
  precision, timed with the kernels the benchmark's variants call (:data:`PRECISIONS`);
* placement — :func:`place_variants` rates each timed variant against the peak of **its own**
  precision (``Variant.precision``), never another precision's.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from deitlab.env import cpu_features, onednn_int8_matmul
from deitlab.measure import time_call

_ATTENTION = "attention matmuls (QKᵀ, AV)"
#: How the FLOP counter's aten ops are grouped for a transformer.
_OP_GROUPS = {
    "addmm": "linear layers",
    "mm": "linear layers",
    "convolution": "patch embedding (conv)",
    "bmm": _ATTENTION,
    "_scaled_dot_product_flash_attention": _ATTENTION,
    "_scaled_dot_product_efficient_attention": _ATTENTION,
    "_scaled_dot_product_flash_attention_for_cpu": _ATTENTION,
    "_scaled_dot_product_cudnn_attention": _ATTENTION,
}
#: The arithmetic precisions a variant can declare, and the bytes one value of each occupies.
PRECISIONS = ("fp32", "bf16", "int8")
BYTES_PER_VALUE = {"fp32": 4, "bf16": 2, "int8": 1}
#: The matmul shape the peaks are timed on: DeiT-B's MLP expansion for one image (197 tokens × 768 → 3072).
DEIT_B_MLP = (197, 768, 3072)


def count_flops(model: nn.Module, inputs: torch.Tensor) -> dict[str, int]:
    """FLOPs of one forward pass on ``inputs`` (2 per multiply-add), grouped by kind of op.

    Uses ``torch.utils.flop_counter.FlopCounterMode``, which counts matrix
    multiplications, convolutions and attention; element-wise ops (softmax, GELU,
    LayerNorm) are not counted — they are a few percent at most for a ViT.
    """
    from torch.utils.flop_counter import FlopCounterMode

    _check_images(inputs)
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


def _check_images(inputs: object) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
        raise ValueError("inputs must be an N×C×H×W image batch tensor")


def _is_attention(module: nn.Module) -> bool:
    """timm's ``Attention`` block: a fused ``qkv`` projection and a head count."""
    return hasattr(module, "qkv") and hasattr(module, "num_heads")


def matmul_layers(model: nn.Module, inputs: torch.Tensor) -> pd.DataFrame:
    """Every layer with weights as the matrix multiply it runs: one row per layer, ``m × k → n``.

    ``m`` is the number of rows multiplied (tokens × batch for a ``Linear``, output pixels ×
    batch for a ``Conv2d``), ``k`` the inner dimension and ``n`` the output features; ``flops``
    is ``2·m·k·n``. Found by forward hooks during one pass on ``inputs``.
    """
    _check_images(inputs)
    rows = []

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if isinstance(module, nn.Linear):
                m, k, n = output.numel() // module.out_features, module.in_features, module.out_features
            else:
                m = output.numel() // module.out_channels
                k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
                n = module.out_channels
            rows.append({"layer": name, "kind": type(module).__name__, "m": m, "k": k, "n": n, "flops": 2 * m * k * n})

        return record

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    handles = [module.register_forward_hook(hook(name)) for name, module in layers]
    try:
        with torch.inference_mode():
            model.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return pd.DataFrame(rows, columns=["layer", "kind", "m", "k", "n", "flops"])


def linear_flops(model: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of the layers that hold weights (``nn.Linear`` and ``nn.Conv2d``) only.

    This is the part int8 weight quantization can speed up; the attention matmuls
    between activations stay in floating point in most int8 variants.
    """
    return int(matmul_layers(model, inputs).flops.sum())


def intensity(m: int, k: int, n: int, precision: str = "fp32") -> float:
    """Arithmetic intensity of one ``m×k @ k×n`` matmul in FLOPs per byte.

    Bytes moved: the input (m·k), the weights (k·n) and the output (m·n), each read or
    written once at ``BYTES_PER_VALUE[precision]`` bytes — the minimum traffic, the
    roofline's convention.
    """
    _check_precision(precision)
    if min(m, k, n) < 1:
        raise ValueError(f"matrix sizes must be positive, got m={m}, k={k}, n={n}")
    return 2 * m * k * n / ((m * k + k * n + m * n) * BYTES_PER_VALUE[precision])


def intensity_table(layers: pd.DataFrame, batch_sizes: tuple[int, ...] = (1, 8, 32), precision: str = "fp32"):
    """Arithmetic intensity (FLOP/byte) of each distinct layer shape and of the whole model, per batch size.

    ``layers`` is :func:`matmul_layers` at batch 1; a batch of ``b`` multiplies every ``m`` by ``b``.
    The whole-model row divides all FLOPs by all bytes (every weight read once per forward pass).
    """
    _check_precision(precision)
    if layers.empty:
        raise ValueError("no layers with weights: pass matmul_layers(model, one_image)")
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be positive, got {batch_sizes}")
    shapes = layers.groupby(["kind", "m", "k", "n"]).size().rename("layers").reset_index()
    shapes["shape"] = [f"{kind} {m}×{k}→{n}" for kind, m, k, n in zip(shapes.kind, shapes.m, shapes.k, shapes.n)]
    table = shapes.set_index("shape")[["layers"]]
    for b in batch_sizes:
        table[f"batch {b}"] = [intensity(b * m, k, n, precision) for m, k, n in zip(shapes.m, shapes.k, shapes.n)]
    whole = {"layers": len(layers)}
    for b in batch_sizes:
        flops = (2 * b * layers.m * layers.k * layers.n).sum()
        values = (b * layers.m * layers.k + layers.k * layers.n + b * layers.m * layers.n).sum()
        whole[f"batch {b}"] = flops / (values * BYTES_PER_VALUE[precision])
    table.loc["whole model"] = whole
    return table


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """This machine's memory bandwidth in GB/s: the best of ``repeats`` copies of a ``megabytes`` fp32 tensor.

    STREAM's "copy" convention: each copy reads and writes the tensor, 2 × its size in bytes.
    The tensor must be far larger than the caches (256 MB is).
    """
    if megabytes < 1 or repeats < 1:
        raise ValueError("megabytes and repeats must be positive")
    source = torch.ones(megabytes * 10**6 // 4)
    target = torch.empty_like(source)
    best = time_call(target.copy_, source, repeats=repeats, warmup=1).min_ms / 1e3
    return 2 * source.numel() * 4 / best / 1e9


@dataclass(frozen=True)
class Peak:
    """The best matmul throughput measured for one precision, and which kernel gave it."""

    precision: str
    gflops: float  # GFLOP/s (int8: GOP/s)
    kernel: str
    candidates: dict[str, float] = field(default_factory=dict)  # every kernel timed → GFLOP/s


def has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX)."""
    from deitlab.bench import has_fast_bf16 as bench_has_fast_bf16

    return bench_has_fast_bf16()


def bf16_kernel() -> str:
    """What ``torch.mm`` on bf16 tensors runs on this CPU."""
    features = cpu_features()
    if features.get("AMX"):
        return "torch.mm on bf16 tensors (oneDNN, AMX tiles)"
    if features.get("BF16"):
        return "torch.mm on bf16 tensors (oneDNN, AVX512-BF16)"
    return "torch.mm on bf16 tensors (no bf16 instructions: converted, slower than fp32)"


def _gflops(fn, *args, flops: int, repeats: int) -> float:
    return flops / (time_call(fn, *args, repeats=repeats, warmup=1).min_ms / 1e3) / 1e9


def _int8_candidates(m: int, k: int, n: int, repeats: int) -> dict[str, float]:
    """The int8 kernels the benchmark's int8 variants call, each timed on ``m×k @ k×n``."""
    flops = 2 * m * k * n
    found = {}
    with contextlib.suppress(RuntimeError), torch.inference_mode(), warnings.catch_warnings():
        # builds without fbgemm raise RuntimeError; the quantized-tensor deprecation warning is the legacy API's
        warnings.simplefilter("ignore", UserWarning)
        linear = torch.ao.nn.quantized.dynamic.Linear(k, n)
        found["fbgemm dynamic Linear (quantize_dynamic)"] = _gflops(
            linear, torch.randn(m, k), flops=flops, repeats=repeats
        )
    if onednn_int8_matmul():  # else torch._int_mm is a reference loop, tens of times slower than fp32
        a8 = torch.randint(-128, 127, (m, k), dtype=torch.int8)
        b8 = torch.randint(-128, 127, (k, n), dtype=torch.int8)
        found["torch._int_mm (oneDNN, VNNI/AMX)"] = _gflops(torch._int_mm, a8, b8, flops=flops, repeats=repeats)
    with contextlib.suppress(ImportError):
        found["ONNX Runtime MatMulInteger (MLAS)"] = _ort_gflops(m, k, n, "int8", repeats)
    return found


def _ort_gflops(m: int, k: int, n: int, precision: str, repeats: int) -> float:
    """ONNX Runtime's GEMM (MLAS, the kernel of its models): one ``MatMul`` or int8 ``MatMulInteger`` node."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if precision == "int8":
        op, x_type, y_type = "MatMulInteger", TensorProto.UINT8, TensorProto.INT32
        w, x = rng.integers(-128, 127, (k, n), dtype=np.int8), rng.integers(0, 255, (m, k), dtype=np.uint8)
    else:
        op, x_type, y_type = "MatMul", TensorProto.FLOAT, TensorProto.FLOAT
        w, x = rng.standard_normal((k, n), dtype=np.float32), rng.standard_normal((m, k), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node(op, ["X", "W"], ["Y"])],
        f"{precision}_matmul",
        [helper.make_tensor_value_info("X", x_type, [m, k])],
        [helper.make_tensor_value_info("Y", y_type, [m, n])],
        [numpy_helper.from_array(w, "W")],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return _gflops(lambda feed: session.run(None, feed), {"X": x}, flops=2 * m * k * n, repeats=repeats)


def matmul_peak(precision: str = "fp32", m: int = 197, k: int = 768, n: int = 3072, repeats: int = 10) -> Peak:
    """The best measured matrix-multiply throughput for ``precision`` on this CPU, best of ``repeats``.

    Timed with the kernels the variants really use: ``"fp32"`` the faster of ``torch.mm`` and
    ONNX Runtime's ``MatMul``; ``"bf16"``
    ``torch.mm`` on bf16 tensors (oneDNN, AMX or AVX512-BF16 where present); ``"int8"`` the
    fastest of the fbgemm dynamic ``Linear`` (``quantize_dynamic``), ``torch._int_mm`` (only
    where oneDNN runs it: VNNI/AMX) and ONNX Runtime's ``MatMulInteger``. The default shape is
    DeiT-B's MLP layer for one image. Uses the current ``torch.get_num_threads()``.
    """
    _check_precision(precision)
    if min(m, k, n) < 1 or repeats < 1:
        raise ValueError("matrix sizes and repeats must be positive")
    flops = 2 * m * k * n
    with torch.inference_mode():
        if precision == "fp32":
            a, b = torch.randn(m, k), torch.randn(k, n)
            found = {"torch.mm fp32": _gflops(torch.mm, a, b, flops=flops, repeats=repeats)}
            with contextlib.suppress(ImportError):
                found["ONNX Runtime MatMul fp32 (MLAS)"] = _ort_gflops(m, k, n, "fp32", repeats)
        elif precision == "bf16":
            a, b = torch.randn(m, k, dtype=torch.bfloat16), torch.randn(k, n, dtype=torch.bfloat16)
            found = {bf16_kernel(): _gflops(torch.mm, a, b, flops=flops, repeats=repeats)}
        else:
            found = _int8_candidates(m, k, n, repeats)
    if not found:
        raise RuntimeError(f"no {precision} matmul kernel runs on this build")
    kernel = max(found, key=found.get)
    return Peak(precision, found[kernel], kernel, found)


def measure_machine(shape: tuple[int, int, int] = DEIT_B_MLP, repeats: int = 20) -> tuple[float, dict[str, Peak]]:
    """Memory bandwidth (GB/s) and the matmul peak of every precision, in a few seconds.

    Each is the best of ``repeats`` runs: a peak is a maximum, and on a shared machine (a
    cloud VM's neighbours) a few runs are often all slowed down together.

    Without bf16 instructions a bf16 matmul is emulated and hundreds of times slower, so its
    peak is timed on a 16× smaller shape (it only shows that bf16 is no option there).
    """
    bandwidth = memory_bandwidth(repeats=repeats)
    peaks = {}
    for precision in PRECISIONS:
        size = shape if precision != "bf16" or has_fast_bf16() else tuple(max(1, s // 16) for s in shape)
        peaks[precision] = matmul_peak(precision, *size, repeats=1 if size != shape else repeats)
    return bandwidth, peaks


def attainable(intensity_flop_per_byte: float, peak_gflops: float, bandwidth_gbs: float) -> float:
    """The roofline: ``min(peak, intensity × bandwidth)`` in GFLOP/s."""
    if peak_gflops <= 0 or bandwidth_gbs <= 0 or intensity_flop_per_byte <= 0:
        raise ValueError("intensity, peak and bandwidth must be positive")
    return min(peak_gflops, intensity_flop_per_byte * bandwidth_gbs)


def percent_of_peak(flops: float, seconds: float, peak_gflops: float) -> float:
    """Achieved throughput ``flops / seconds`` as a percentage of ``peak_gflops``."""
    if seconds <= 0 or peak_gflops <= 0:
        raise ValueError("seconds and peak must be positive")
    return 100.0 * flops / seconds / 1e9 / peak_gflops


def place_variants(timed: pd.DataFrame, flops: float, peaks: dict[str, Peak]) -> pd.DataFrame:
    """Each timed variant's achieved GFLOP/s against the peak of its own precision.

    ``timed`` holds benchmark rows (columns ``variant``, ``label``, ``precision``, ``batch``,
    ``median_ms``); ``flops`` is the work of one image. A row whose precision has no measured
    peak raises ``ValueError`` — a variant is never rated against another precision's peak.
    """
    missing = sorted(set(timed.precision) - set(peaks))
    if missing:
        raise ValueError(f"no measured peak for precision(s) {missing}: pass peaks for {sorted(set(timed.precision))}")
    if flops <= 0:
        raise ValueError("flops must be positive")
    out = timed[["variant", "label", "precision", "batch", "median_ms"]].copy()
    out["GFLOP/s"] = flops * out.batch / (out.median_ms / 1e3) / 1e9
    out["peak used"] = out.precision
    out["peak GFLOP/s"] = [peaks[p].gflops for p in out.precision]
    out["peak kernel"] = [peaks[p].kernel for p in out.precision]
    out["% of own peak"] = 100 * out["GFLOP/s"] / out["peak GFLOP/s"]
    return out.reset_index(drop=True)
