"""Where inference time goes: operator times from ``torch.profiler`` or ONNX Runtime's profiler, by kind of work.

The notebooks run the profilers themselves (the API is the lesson); this module only
reads their output into one table of milliseconds per call per operator, sorts the
operators into a few kinds (matrix multiplies, normalisation and activations, data
movement, …) and says how much faster the model could get if the matrix multiplies
alone became free (Amdahl's law).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

MATMUL = "matrix multiplies"
CONVOLUTION = "convolution (patch embedding)"
FUSED = "compiled fused kernels (norms, GELU, adds, quantize)"
NORM_ACTIVATION = "layer norm, GELU, softmax"
ELEMENTWISE = "element-wise adds and scales"
QUANTIZE = "quantize / dequantize"
DATA_MOVEMENT = "data movement (transpose, reshape, copy)"
OTHER = "other"
#: The kinds of work, in the order tables and plots show them.
CATEGORIES = (MATMUL, CONVOLUTION, FUSED, NORM_ACTIVATION, ELEMENTWISE, QUANTIZE, DATA_MOVEMENT, OTHER)

# Operator names of PyTorch (aten::, quantized::, onednn::, mkldnn::) and ONNX Runtime op types, matched
# without regard to case; the first rule that matches wins.
_RULES: tuple[tuple[str, str], ...] = (
    (FUSED, r"CompiledFxGraph|cpp_fused"),
    (QUANTIZE, r"quantize_per_tensor|dequantize|QuantizeLinear$"),
    (MATMUL, r"linear|addmm|::mm$|bmm|matmul|_int_mm|scaled_dot_product|gemm|attention$"),
    (CONVOLUTION, r"conv"),
    (NORM_ACTIVATION, r"layer_?norm|gelu|softmax"),
    (ELEMENTWISE, r"^(aten::)?(add|mul|sub|div)_?$"),
    (
        DATA_MOVEMENT,
        r"transpose|reshape|permute|contiguous|copy|clone|expand|::cat$|::to$"
        r"|^(Concat|Slice|Split|Squeeze|Unsqueeze|Gather|Cast|Shape)$",
    ),
)
# Bookkeeping records of the profiler, not work: their time is already counted in their children.
_WRAPPERS = re.compile(r"^(Torch-Compiled Region|TorchDynamo|AOTDispatcher|Pregraph|ProfilerStep)")


def op_category(op_name: str) -> str:
    """The kind of work an operator does (one of :data:`CATEGORIES`), from its PyTorch or ONNX Runtime name."""
    if not isinstance(op_name, str) or not op_name:
        raise ValueError(f"an operator name must be a non-empty string, got {op_name!r}")
    for category, pattern in _RULES:
        if re.search(pattern, op_name, re.IGNORECASE):
            return category
    return OTHER


def _per_call(times_us: dict[str, float], calls: int) -> pd.Series:
    if calls < 1:
        raise ValueError(f"calls must be at least 1 (the number of profiled model calls), got {calls}")
    series = pd.Series(times_us, dtype=float) / 1000.0 / calls
    return series[series > 0].sort_values(ascending=False).rename("ms per call")


def torch_op_times(prof, calls: int) -> pd.Series:
    """Self CPU time per operator in ms per model call, from a finished ``torch.profiler.profile``.

    Self time (without children) so that nothing is counted twice; the profiler's own
    bookkeeping records (compiled-region and dynamo wrappers) are left out.
    """
    if not hasattr(prof, "key_averages"):
        raise TypeError(f"expected a torch.profiler.profile that has run, got {type(prof).__name__}")
    times = {e.key: e.self_cpu_time_total for e in prof.key_averages() if not _WRAPPERS.match(e.key)}
    return _per_call(times, calls)


def ort_op_times(trace: str | Path, calls: int) -> pd.Series:
    """Kernel time per ONNX Runtime op type in ms per model call, from the JSON trace ``end_profiling()`` wrote."""
    path = Path(trace)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX Runtime profile not found: {path}")
    try:
        events = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not an ONNX Runtime JSON trace: {exc}") from exc
    times: dict[str, float] = {}
    for event in events if isinstance(events, list) else []:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            times[op] = times.get(op, 0.0) + float(event.get("dur", 0))
    if not times:
        raise ValueError(f"{path} holds no ONNX Runtime node timings (was enable_profiling set before the runs?)")
    return _per_call(times, calls)


def time_by_category(op_times: pd.Series) -> pd.DataFrame:
    """Milliseconds per call and share of the total for each kind of work, biggest first."""
    if op_times.empty:
        raise ValueError("no operator times to sort (the profile recorded nothing)")
    by_kind = op_times.groupby(op_times.index.map(op_category)).sum()
    table = pd.DataFrame({"ms per call": by_kind, "share %": 100 * by_kind / by_kind.sum()})
    return table.sort_values("ms per call", ascending=False)


def matmul_free_speedup(by_category: pd.DataFrame) -> float:
    """Amdahl's bound: how many times faster the model gets if its matrix multiplies took no time at all."""
    share = by_category["share %"].get(MATMUL, 0.0) / 100
    return float("inf") if share >= 1 else 1 / (1 - share)
