"""deitlab.export on a micro model (each export path once; ExecuTorch and ONNX are the slow ones)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deitlab import capabilities, export, measure, quant


class Micro(nn.Module):
    """Conv patch embedding + linear head: the op mix of a ViT, in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 4, stride=4)
        self.fc = nn.Linear(16, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(self.patch(x).flatten(2).mean(1))))


def _caps(unavailable: tuple[str, ...] = ()) -> tuple[capabilities.Capability, ...]:
    return tuple(capabilities.Capability(n, n not in unavailable, f"reason for {n}") for n in capabilities.PROBES)


@pytest.fixture
def all_paths(monkeypatch):
    """Pretend every probe succeeded (the tests then exercise the real export paths)."""
    monkeypatch.setattr(capabilities, "capabilities", lambda *a, **k: _caps())


@pytest.fixture
def model_and_inputs():
    torch.manual_seed(0)
    return Micro().eval(), torch.randn(6, 1, 16, 16)


def test_parity_identical_and_different():
    a = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    same = export.parity(a, a.clone())
    assert same.max_abs_diff == 0 and same.top1_agreement == 1 and same.n == 2
    flipped = export.parity(a, torch.tensor([[1.0, 2.5], [0.0, 3.0]]))
    assert flipped.top1_agreement == 0.5 and flipped.max_abs_diff == pytest.approx(3.0)
    assert "50.0%" in str(flipped)


def test_parity_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        export.parity(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="N×C"):
        export.parity(torch.zeros(3), torch.zeros(3))


def test_reference_logits_rejects_non_images(model_and_inputs):
    model, _ = model_and_inputs
    with pytest.raises(ValueError, match="N×C×H×W"):
        export.reference_logits(model, torch.zeros(3, 16))


@pytest.mark.parametrize("method", ["script", "trace"])
def test_torchscript_roundtrip(all_paths, model_and_inputs, tmp_path, method):
    model, x = model_and_inputs
    artifact = export.export_torchscript(model, x, tmp_path / f"m-{method}.pt", method=method)
    assert artifact.available and artifact.size_mb > 0 and artifact.load_seconds >= 0
    assert artifact.parity.max_abs_diff < 1e-5 and artifact.parity.top1_agreement == 1
    assert artifact(x).shape == (6, 5)
    assert artifact.row()["runs here"] == "✅"


def test_torchscript_of_a_dynamic_int8_model(all_paths, model_and_inputs, tmp_path):
    """Regression: the fingerprint of a quantize_dynamic model (packed params) used to raise AttributeError."""
    model, x = model_and_inputs
    int8, _ = quant.legacy_dynamic_int8(model)
    artifact = export.export_torchscript(int8, x, tmp_path / "int8.pt")
    assert artifact.available and artifact.size_mb == pytest.approx(measure.file_size_mb(tmp_path / "int8.pt"))
    assert artifact.parity.top1_agreement == 1


def test_check_inputs_and_run_chunked(model_and_inputs):
    model, x = model_and_inputs
    checked = export.check_inputs(x.double().requires_grad_())
    assert checked.dtype == torch.float32 and not checked.requires_grad
    with pytest.raises(ValueError, match="N×C×H×W"):
        export.check_inputs(torch.zeros(3, 16))
    sizes = []
    out = export.run_chunked(lambda t: (sizes.append(len(t)) or model(t), "extra"), x, chunk=4)
    assert sizes == [4, 2] and torch.allclose(out, model(x))
    with pytest.raises(ValueError, match="chunk"):
        export.run_chunked(model, x, chunk=0)


def test_unavailable_names_the_reason(monkeypatch):
    monkeypatch.setattr(capabilities, "capabilities", lambda *a, **k: _caps(("optimize_for_mobile",)))
    missing = export.unavailable("mobile", "optimize_for_mobile")
    assert missing.kind == "mobile" and not missing.available and missing.reason == "reason for optimize_for_mobile"
    assert export.unavailable("script", "TorchScript script/save/load") is None


def test_torchscript_rejects_unknown_method(model_and_inputs):
    model, x = model_and_inputs
    with pytest.raises(ValueError, match="'script' or 'trace'"):
        export.export_torchscript(model, x, method="compile")


def test_scripted_int8_is_smaller_and_close(all_paths, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4)).eval()
    x = torch.randn(8, 1, 16, 16)
    fp32 = export.export_torchscript(model, x, tmp_path / "fp32.pt")
    int8 = export.export_scripted_int8(model, x, tmp_path / "int8.pt")
    assert int8.size_mb < fp32.size_mb / 2
    assert int8.parity.max_abs_diff < 0.1


def test_unavailable_path_explains_itself(monkeypatch, model_and_inputs, tmp_path):
    monkeypatch.setattr(capabilities, "capabilities", lambda *a, **k: _caps(("optimize_for_mobile",)))
    model, x = model_and_inputs
    scripted = export.export_torchscript(model, x, tmp_path / "m.pt")
    mobile = export.export_optimized_for_mobile(scripted, x, scripted.parity and export.reference_logits(model, x))
    assert not mobile.available and mobile.reason == "reason for optimize_for_mobile"
    assert mobile.size_mb == 0 and mobile.row()["runs here"] == "❌"
    with pytest.raises(export.ExportUnavailable, match="cannot run here"):
        mobile(x)


def test_optimize_and_lite_need_a_torchscript_artifact(all_paths, model_and_inputs):
    model, x = model_and_inputs
    bogus = export.Artifact("x", None, False, "none")
    with pytest.raises(ValueError, match="TorchScript Artifact"):
        export.export_lite_interpreter(bogus, x, torch.zeros(6, 5))


def test_lite_interpreter_reports_load_failure_instead_of_raising(all_paths, model_and_inputs, tmp_path):
    model, x = model_and_inputs
    scripted = export.export_torchscript(model, x, tmp_path / "m.pt")
    lite = export.export_lite_interpreter(scripted, x, export.reference_logits(model, x))
    assert lite.size_mb > 0  # the .ptl is always written
    assert lite.available == (lite.parity is not None)
    if not lite.available:
        assert "loading failed" in lite.reason


@pytest.mark.parametrize("quantize", [False, True])
def test_onnx_export_and_reuse(all_paths, model_and_inputs, tmp_path, quantize):
    model, x = model_and_inputs
    path = tmp_path / "m.onnx"
    artifact = export.export_onnx(model, x, path, quantize=quantize)
    assert artifact.available and artifact.reason == "exported now"
    assert artifact.parity.top1_agreement >= (0.8 if quantize else 1.0)
    assert artifact(x[:1]).shape == (1, 5) and artifact(x).shape == (6, 5)  # dynamic batch
    again = export.export_onnx(model, x, path, quantize=quantize)
    assert again.reason == "reused cached export"


def test_executorch_fp32_runs_and_lists_delegation(all_paths, model_and_inputs, tmp_path):
    model, x = model_and_inputs
    artifact = export.export_executorch(model, x, tmp_path / "m.pte")
    assert artifact.available and artifact.parity.max_abs_diff < 1e-4
    ops = {row["op"] for row in artifact.notes["delegation"]}
    assert any("linear" in op or "addmm" in op or "convolution" in op for op in ops)
    assert artifact(x[:3]).shape == (3, 5)


def test_runtime_log_is_silenced_only_inside_the_block(capsys):
    with export.runtime_log_silenced():
        print("cpuinfo noise on stdout")
        print("cpuinfo noise on stderr", file=sys.stderr)
    print("after")
    out, err = capsys.readouterr()
    assert "noise" not in out + err and "after" in out


def test_runtime_log_is_shown_when_the_block_raises(capsys):
    with pytest.raises(RuntimeError, match="load failed"), export.runtime_log_silenced():
        print("why it failed")
        raise RuntimeError("load failed")
    print("visible", file=sys.stderr)
    err = capsys.readouterr().err
    assert "why it failed" in err and "visible" in err


def test_check_pte_accepts_a_lowered_dynamic_batch_file_and_explains_wrong_ones(model_and_inputs, tmp_path):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from deitlab import checks

    model, x = model_and_inputs

    def lower(dynamic: bool, partitioner: list) -> Path:
        shapes = ({0: torch.export.Dim("batch", min=1, max=8)},) if dynamic else None
        program = torch.export.export(model, (x[:2],), dynamic_shapes=shapes)
        target = tmp_path / f"m-{dynamic}-{len(partitioner)}.pte"
        target.write_bytes(to_edge_transform_and_lower(program, partitioner=partitioner).to_executorch().buffer)
        return target

    good = lower(True, [XnnpackPartitioner()])
    assert "06.1" in repr(checks.check_pte(good, model, x))
    with pytest.raises(checks.CheckFailed, match="dynamic_shapes"):
        checks.check_pte(lower(False, [XnnpackPartitioner()]), model, x)
    with pytest.raises(checks.CheckFailed, match="XnnpackPartitioner"):
        checks.check_pte(lower(True, []), model, x)
    torch.manual_seed(1)
    with pytest.raises(checks.CheckFailed, match="differ from eager"):
        checks.check_pte(good, Micro().eval(), x)
    with pytest.raises(checks.CheckFailed, match="no .pte file"):
        checks.check_pte(tmp_path / "missing.pte", model, x)


def test_check_onnx_int8_needs_an_int8_file_and_the_right_percentage(tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    from deitlab import checks

    fp32 = _matmul_onnx(tmp_path / "fp32.onnx")
    int8 = tmp_path / "int8.onnx"
    with export.without_onnx_quantization_notices():
        quantize_dynamic(str(fp32), str(int8))
    inputs = torch.randn(20, 32)
    reference = export.run_chunked(export.onnx_runner(fp32), inputs)
    candidate = export.run_chunked(export.onnx_runner(int8), inputs)
    percent = 100 * (candidate.argmax(1) == reference.argmax(1)).float().mean().item()
    with pytest.raises(checks.CheckFailed, match="no int8 operators"):
        checks.check_onnx_int8(fp32, reference, inputs, percent)
    with pytest.raises(checks.CheckFailed, match="06.2"):
        checks.check_onnx_int8(int8, reference, inputs, percent - 10)
    with pytest.raises(checks.CheckFailed, match="percentage"):
        checks.check_onnx_int8(int8, reference, inputs, percent / 100)


def test_cached_export_runs_the_write_function_once_per_model_and_code(model_and_inputs, monkeypatch, tmp_path):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    model, _ = model_and_inputs
    calls = []

    def write(path: Path) -> dict:
        calls.append(path)
        path.write_bytes(b"artifact")
        return {"written": True}

    first = export.cached_export("micro", model, write, ".bin")
    again = export.cached_export("micro", model, write, ".bin")
    assert len(calls) == 1 and not first.reused and again.reused and again.path.read_bytes() == b"artifact"
    assert again.notes == {"written": True} and first.path.name.startswith("micro-")
    export.cached_export("micro", model, write, ".bin", settings={"batch": 2})
    with torch.no_grad():
        model.head.bias.add_(1)  # other weights: exported again
    export.cached_export("micro", model, write, ".bin")
    assert len(calls) == 3
    export.cached_export("micro", model, write, ".bin", reuse=False)
    assert len(calls) == 4


def test_cached_export_rejects_bad_arguments(model_and_inputs):
    model, _ = model_and_inputs
    with pytest.raises(TypeError, match="write must be a function"):
        export.cached_export("micro", model, "not a function", ".bin")
    with pytest.raises(ValueError, match="suffix must start with a dot"):
        export.cached_export("micro", model, lambda path: None, "bin")


def test_check_artifact_measures_parity_and_reports_a_loader_that_fails(model_and_inputs):
    model, x = model_and_inputs
    same = export.check_artifact("eager", None, lambda: model, x, model=model)
    assert same.available and same.parity.max_abs_diff == 0 and same.load_seconds >= 0

    def broken_loader():
        raise RuntimeError("cannot read this file")

    broken = export.check_artifact("broken", None, broken_loader, x, model=model)
    assert not broken.available and "cannot read this file" in broken.reason
    with pytest.raises(ValueError, match="either the eager model or its reference"):
        export.check_artifact("no reference", None, lambda: model, x)
    with pytest.raises(ValueError, match="N×C×H×W"):
        export.check_artifact("bad inputs", None, lambda: model, torch.zeros(3, 4), model=model)


def test_paths_diagram_names_every_call():
    import matplotlib

    matplotlib.use("Agg")
    figure = export.paths_diagram()
    texts = " ".join(t.get_text() for t in figure.axes[0].texts)
    for call in ("torch.jit.script", "optimize_for_mobile", "_save_for_lite_interpreter", "torch.export.export",
                 "to_edge_transform_and_lower", "to_executorch", "torch.onnx.export", "InferenceSession"):  # fmt: skip
        assert call in texts, call


def test_exports_are_cache_entries_and_a_damaged_one_is_exported_again(
    all_paths, model_and_inputs, capfd, monkeypatch, tmp_path
):
    from deitlab import cache

    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    model, x = model_and_inputs
    first = export.export_torchscript(model, x)
    assert first.reason.endswith("exported now") and first.path.parent.parent == export.artifact_dir()
    meta = cache.lookup(
        "artifacts",
        first.path.stem,
        {"model": export.model_fingerprint(model), "method": "script", "torch": torch.__version__},
    ).meta
    assert meta["payload"]["export_seconds"] == first.export_seconds and meta["payload"]["notes"] == {}
    assert export.export_torchscript(model, x).reason.endswith("reused cached export")
    first.path.write_bytes(first.path.read_bytes()[:100])  # a half-written file
    capfd.readouterr()
    again = export.export_torchscript(model, x)
    assert again.reason.endswith("exported now") and again.parity.max_abs_diff < 1e-5
    assert f"deitlab cache: {first.path} is damaged" in capfd.readouterr().err
    assert not list(export.artifact_dir().glob("*.json"))  # no sidecars any more


def _matmul_onnx(path: Path) -> Path:
    """A one-MatMul ONNX model with a 32×32 weight: enough for ORT's dynamic int8 quantizer."""
    onnx = pytest.importorskip("onnx", reason="onnx is not installed")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((32, 32)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_onnx_int8_quantization_leaves_the_root_logger_alone(tmp_path, caplog):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    root = logging.getLogger()
    before = (root.level, list(root.handlers), list(root.filters))
    with caplog.at_level(logging.WARNING):
        export._quantize_onnx(_matmul_onnx(tmp_path / "fp32.onnx"), tmp_path / "int8.onnx", reduce_range=False)
        logging.getLogger("deitlab.test").warning("a warning of the learner's own code")
    assert (tmp_path / "int8.onnx").stat().st_size > 0
    assert (root.level, list(root.handlers), list(root.filters)) == before
    assert "a warning of the learner's own code" in caplog.text
    assert "pre-processing" not in caplog.text  # ORT's notice stays hidden during the quantization


def test_onnx_quantization_does_not_install_a_root_handler(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    script = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "from deitlab import export\n"
        "export._quantize_onnx(Path(sys.argv[1]), Path(sys.argv[2]), reduce_range=False)\n"
        "root = logging.getLogger()\n"
        "print(logging.getLevelName(root.level), len(root.handlers), len(root.filters))\n"
    )
    source = _matmul_onnx(tmp_path / "fp32.onnx")
    done = subprocess.run(
        [sys.executable, "-c", script, str(source), str(tmp_path / "int8.onnx")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["WARNING", "0", "0"]
    assert "pre-processing" not in done.stderr


def test_deitlab_disable_makes_executorch_and_onnx_report_missing_without_writing(
    monkeypatch, model_and_inputs, tmp_path
):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(capabilities, "_in_process", {})
    monkeypatch.setattr(
        capabilities, "_probe_in_subprocess", lambda name, timeout: capabilities.Capability(name, True, "ok")
    )
    monkeypatch.setenv("DEITLAB_DISABLE", "executorch,onnx")
    model, x = model_and_inputs
    pte = export.export_executorch(model, x, tmp_path / "m.pte", quantize=True)
    onnx_int8 = export.export_onnx(model, x, tmp_path / "m.onnx", quantize=True)
    for artifact in (pte, onnx_int8):
        assert not artifact.available and artifact.reason == "switched off by DEITLAB_DISABLE"
        assert artifact.runner is None and artifact.row()["runs here"] == "❌"
    assert not (tmp_path / "m.pte").exists() and not (tmp_path / "m.onnx").exists()
