"""deitlab.op_profile: operator times from both profilers, sorted into kinds of work."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from deitlab import export, op_profile
from deitlab.op_profile import CATEGORIES, MATMUL


@pytest.mark.parametrize(
    ("op", "kind"),
    [
        ("quantized::linear_dynamic", MATMUL),
        ("onednn::qlinear_pointwise", MATMUL),
        ("aten::_scaled_dot_product_flash_attention_for_cpu", MATMUL),
        ("DynamicQuantizeMatMul", MATMUL),
        ("MatMulIntegerToFloat", MATMUL),
        ("aten::native_layer_norm", op_profile.NORM_ACTIVATION),
        ("SkipLayerNormalization", op_profile.NORM_ACTIVATION),
        ("BiasGelu", op_profile.NORM_ACTIVATION),
        ("DynamicQuantizeLinear", op_profile.QUANTIZE),
        ("aten::dequantize", op_profile.QUANTIZE),
        ("ConvInteger", op_profile.CONVOLUTION),
        ("aten::mkldnn_convolution", op_profile.CONVOLUTION),
        ("## Call CompiledFxGraph None ##", op_profile.FUSED),
        ("aten::add", op_profile.ELEMENTWISE),
        ("Add", op_profile.ELEMENTWISE),
        ("Transpose", op_profile.DATA_MOVEMENT),
        ("aten::cat", op_profile.DATA_MOVEMENT),
        ("aten::empty", op_profile.OTHER),
    ],
)
def test_op_category_knows_pytorch_and_onnx_runtime_names(op, kind):
    assert op_profile.op_category(op) == kind


@pytest.mark.parametrize("bad", ["", None, 3])
def test_op_category_refuses_a_non_name(bad):
    with pytest.raises(ValueError, match="non-empty string"):
        op_profile.op_category(bad)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.GELU(), nn.LayerNorm(256), nn.Linear(256, 10)).eval()


def test_torch_op_times_per_call_then_by_category_adds_up():
    model, x = _tiny(), torch.randn(16, 1, 8, 8)
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(4):
            model(x)
    ops = op_profile.torch_op_times(prof, calls=4)
    assert (ops > 0).all() and ops.index.is_unique
    table = op_profile.time_by_category(ops)
    assert set(table.index) <= set(CATEGORIES) and MATMUL in table.index
    assert table["share %"].sum() == pytest.approx(100)
    assert table["ms per call"].sum() == pytest.approx(ops.sum())
    assert table["ms per call"].is_monotonic_decreasing
    twice = op_profile.torch_op_times(prof, calls=2)
    assert twice.sum() == pytest.approx(2 * ops.sum())


def test_torch_op_times_names_bad_input():
    with pytest.raises(TypeError, match="torch.profiler.profile"):
        op_profile.torch_op_times(object(), calls=1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        torch.ones(2) + 1
    with pytest.raises(ValueError, match="calls must be at least 1"):
        op_profile.torch_op_times(prof, calls=0)


def test_ort_op_times_from_a_real_session_trace(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, x = _tiny(), torch.randn(4, 1, 8, 8)
    artifact = export.export_onnx(model, x, path=tmp_path / "tiny.onnx", reuse=False)
    if artifact.runner is None:
        pytest.skip(artifact.reason)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "trace")
    session = ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, {session.get_inputs()[0].name: x.numpy()})
    ops = op_profile.ort_op_times(session.end_profiling(), calls=3)
    assert (ops > 0).all() and MATMUL in op_profile.time_by_category(ops).index


def test_ort_op_times_sums_kernel_events_and_ignores_the_rest(tmp_path):
    trace = tmp_path / "trace.json"
    events = [
        {"cat": "Session", "name": "model_run", "dur": 9999},
        {"cat": "Node", "name": "mm_kernel_time", "dur": 3000, "args": {"op_name": "MatMul"}},
        {"cat": "Node", "name": "mm2_kernel_time", "dur": 1000, "args": {"op_name": "MatMul"}},
        {"cat": "Node", "name": "mm_fence_before", "dur": 50, "args": {"op_name": "MatMul"}},
        {"cat": "Node", "name": "t_kernel_time", "dur": 2000, "args": {"op_name": "Transpose"}},
    ]
    trace.write_text(json.dumps(events))
    ops = op_profile.ort_op_times(trace, calls=2)
    assert ops.to_dict() == {"MatMul": 2.0, "Transpose": 1.0}
    table = op_profile.time_by_category(ops)
    assert table.loc[MATMUL, "share %"] == pytest.approx(200 / 3)
    assert op_profile.matmul_free_speedup(table) == pytest.approx(3.0)


def test_ort_op_times_names_a_missing_corrupt_or_empty_trace(tmp_path):
    with pytest.raises(FileNotFoundError, match="profile not found"):
        op_profile.ort_op_times(tmp_path / "none.json", calls=1)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not an ONNX Runtime JSON trace"):
        op_profile.ort_op_times(tmp_path / "bad.json", calls=1)
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(ValueError, match="enable_profiling"):
        op_profile.ort_op_times(tmp_path / "empty.json", calls=1)


def test_time_by_category_refuses_an_empty_profile():
    with pytest.raises(ValueError, match="recorded nothing"):
        op_profile.time_by_category(pd.Series(dtype=float))


def test_matmul_free_speedup_is_amdahls_bound():
    table = pd.DataFrame({"share %": [75.0, 25.0]}, index=[MATMUL, op_profile.OTHER])
    assert op_profile.matmul_free_speedup(table) == pytest.approx(4.0)
    assert op_profile.matmul_free_speedup(table.drop(MATMUL)) == 1.0
    assert op_profile.matmul_free_speedup(table.loc[[MATMUL]] * [100 / 75]) == float("inf")
