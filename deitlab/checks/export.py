"""Self-checks for notebook 06 (mobile and edge export)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deitlab.checks._core import CheckResult, passed, require, require_close

__all__ = ["check_pte", "check_onnx_int8"]

#: The XNNPACK delegate's id, stored in every ``.pte`` whose graph it took over.
XNNPACK_ID = b"XnnpackBackend"
#: ONNX operators that only an int8-quantized graph contains.
INT8_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "QLinearMatMul", "ConvInteger"}


def check_pte(path: str | Path, model: nn.Module, inputs: torch.Tensor) -> CheckResult:
    """Exercise 06.1: a ``.pte`` lowered to XNNPACK, with a dynamic batch, that computes what ``model`` computes.

    Runs the file with ExecuTorch's runtime on one row and on all rows of ``inputs``.
    """
    from deitlab.export import executorch_runner

    exercise = "06.1 torch.export → XNNPACK → .pte"
    require(isinstance(path, (str, Path)), exercise, "answer with the path of the .pte file you wrote")
    path = Path(path)
    require(path.suffix == ".pte" and path.is_file(), exercise, f"no .pte file at {path}")
    require(XNNPACK_ID in path.read_bytes(), exercise, "nothing was delegated: pass partitioner=[XnnpackPartitioner()]")
    require(len(inputs) > 2, exercise, "check with a batch of more than two inputs")
    run = executorch_runner(path)
    with torch.inference_mode():
        expected = model.eval()(inputs)
    for batch in (inputs[:1], inputs):
        try:
            got = torch.as_tensor(run(batch))
        except RuntimeError:
            hint = f"the .pte does not accept a batch of {len(batch)}: export with dynamic_shapes=({{0: Dim(...)}},)"
            require(False, exercise, hint)
        require(tuple(got.shape) == tuple(expected[: len(batch)].shape), exercise, f"output shape {tuple(got.shape)}")
    diff = (got - expected).abs().max().item()
    require(diff < 1e-3, exercise, f"the .pte's outputs differ from eager by {diff:.2e}: export the model given")
    return passed(exercise, f"XNNPACK-delegated, batch 1 and {len(inputs)} run, max |Δ| {diff:.1e} from eager")


def check_onnx_int8(path: str | Path, reference: torch.Tensor, inputs: torch.Tensor, answer: float) -> CheckResult:
    """Exercise 06.2: an int8 ONNX file and the percentage of ``inputs`` whose top-1 matches ``reference``."""
    import onnx

    from deitlab.export import onnx_runner, run_chunked

    exercise = "06.2 ONNX Runtime int8, per-tensor"
    require(isinstance(path, (str, Path)) and Path(path).is_file(), exercise, f"no ONNX file at {path}")
    ops = {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    require(bool(ops & INT8_OPS), exercise, "the file has no int8 operators: run quantize_dynamic on the fp32 file")
    require(answer is not None, exercise, "answer with a percentage between 0 and 100")
    got = run_chunked(onnx_runner(path), inputs).argmax(1)
    expected = 100.0 * (got == reference.argmax(1).cpu()).float().mean().item()  # e.g. a GPU reference
    in_range = 0 <= float(answer) <= 100 and not float(answer) <= 1 < expected
    require(in_range, exercise, "give a percentage (0–100), not a fraction")
    require_close(float(answer), expected, exercise, atol=1e-3)
    return passed(exercise, f"{expected:.1f}% of the inputs get the same class as eager fp32")
