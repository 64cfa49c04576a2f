"""Export a model to deployable artifacts and check each one against eager fp32.

One function per artifact kind. Each returns an :class:`Artifact`: the file, its
size on disk, a callable that runs it, how long loading took and a :class:`Parity`
report (max abs logit difference, top-1 agreement) over a batch of real inputs.
Paths this PyTorch build cannot take (see :mod:`deitlab.capabilities`) return an
artifact with ``available=False`` and the reason instead of raising.

Exports are slow (ExecuTorch lowering takes minutes on two cores), so every artifact
is an entry of :mod:`deitlab.cache`, keyed by the model fingerprint, the export
settings and the torch version, with its export seconds and notes in the metadata;
pass ``reuse=False`` to force a fresh export, and ``path=...`` to get a copy elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deitlab import cache
from deitlab.env import cache_dir
from deitlab.measure import clock, file_size_mb, model_fingerprint
from deitlab.quant import legacy_dynamic_int8

Runner = Callable[[torch.Tensor], torch.Tensor]

#: Largest batch an ExecuTorch / ONNX artifact accepts (the batch dimension is dynamic up to this).
MAX_BATCH = 64


class ExportUnavailable(RuntimeError):
    """This export path does not work with the installed packages; the message says why."""


@dataclass(frozen=True)
class Parity:
    """How closely an artifact's logits follow eager fp32 on the same inputs."""

    max_abs_diff: float
    top1_agreement: float  # fraction of inputs with the same arg-max class
    n: int

    def __str__(self) -> str:
        return f"max |Δlogit| {self.max_abs_diff:.2e}, top-1 agreement {100 * self.top1_agreement:.1f}% (n={self.n})"


def parity(reference: torch.Tensor, candidate: torch.Tensor) -> Parity:
    """Compare two ``N×C`` logit tensors (the reference is eager fp32)."""
    reference, candidate = torch.as_tensor(reference), torch.as_tensor(candidate)
    if reference.ndim != 2 or reference.shape != candidate.shape:
        raise ValueError(
            f"parity needs two N×C logit tensors of the same shape, got {tuple(reference.shape)} "
            f"and {tuple(candidate.shape)}"
        )
    reference, candidate = reference.float(), candidate.float()
    agreement = (reference.argmax(1) == candidate.argmax(1)).float().mean().item()
    return Parity((reference - candidate).abs().max().item(), agreement, reference.shape[0])


@dataclass
class Artifact:
    """An exported model file, how to run it, and how well it matches eager fp32."""

    kind: str
    path: Path | None
    available: bool
    reason: str
    runner: Runner | None = None
    parity: Parity | None = None
    load_seconds: float | None = None
    export_seconds: float | None = None
    notes: dict = field(default_factory=dict)

    @property
    def size_mb(self) -> float:
        """Size on disk in MB (10^6 bytes); 0 when the file was not produced."""
        return file_size_mb(self.path) if self.path is not None and self.path.is_file() else 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.runner is None:
            raise ExportUnavailable(f"{self.kind} cannot run here: {self.reason}")
        return self.runner(x)

    def row(self) -> dict:
        """One row of a summary table."""
        return {
            "artifact": self.kind,
            "file": self.path.name if self.path else "—",
            "size (MB)": round(self.size_mb, 2) if self.size_mb else None,
            "runs here": "✅" if self.runner is not None else "❌",
            "max |Δlogit|": self.parity.max_abs_diff if self.parity else None,
            "top-1 agreement (%)": round(100 * self.parity.top1_agreement, 2) if self.parity else None,
            "load (s)": round(self.load_seconds, 3) if self.load_seconds is not None else None,
            "note": self.reason,
        }

    def __repr__(self) -> str:
        status = str(self.parity) if self.parity else self.reason
        return f"Artifact({self.kind}: {self.size_mb:.1f} MB, {status})"


# --- helpers ----------------------------------------------------------------------


def artifact_dir() -> Path:
    """Where exported artifacts are cached (``$DEITLAB_CACHE/artifacts``)."""
    path = cache_dir() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_inputs(inputs: torch.Tensor) -> torch.Tensor:
    """A detached float CPU copy of an ``N×C×H×W`` image batch; anything else is a one-line ``ValueError``."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be an N×C×H×W image batch tensor, got {shape}")
    return inputs.detach().float().cpu()


@torch.inference_mode()
def run_chunked(fn: Runner, inputs: torch.Tensor, chunk: int = MAX_BATCH) -> torch.Tensor:
    """``fn`` on ``inputs`` in chunks of at most ``chunk`` rows, outputs concatenated as float32.

    A tuple or list output counts by its first element (the logits).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    outputs = []
    for start in range(0, len(inputs), chunk):
        out = fn(inputs[start : start + chunk])
        outputs.append(torch.as_tensor(out[0] if isinstance(out, (tuple, list)) else out).float())
    return torch.cat(outputs)


def reference_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Eager fp32 logits of ``model`` on ``inputs`` (the parity reference)."""
    return run_chunked(model.eval(), check_inputs(inputs))


def _export_once(
    file_name: str,
    key: dict,
    save: Callable[[Path], dict | None],
    reuse: bool,
    copy_to: str | Path | None = None,
) -> tuple[Path, float, bool, dict]:
    """The artifact ``file_name``, written by ``save(target)`` into a cache entry unless one with ``key`` exists.

    ``save`` returns the export's notes (or None). The key gets the torch version. Returns
    (artifact path, export seconds, reused?, notes); with ``copy_to`` the artifact is also
    copied there (atomically) and that copy's path is returned.
    """
    exported = []

    def build(staging: Path) -> dict:
        started = clock()
        notes = save(staging / file_name) or {}
        exported.append(True)
        return {"export_seconds": clock() - started, "notes": notes}

    name = Path(file_name).stem
    entry = cache.get_or_build(
        "artifacts", name, {**key, "torch": torch.__version__}, build, [file_name], rebuild=not reuse
    )
    path = entry.path(file_name)
    if copy_to is not None:
        path = cache.atomic_write(copy_to, lambda tmp: shutil.copyfile(entry.path(file_name), tmp))
    return path, entry.payload["export_seconds"], not exported, entry.payload["notes"]


def _note(text: str, reused: bool) -> str:
    status = "reused cached export" if reused else "exported now"
    return f"{text}; {status}" if text else status


def _finish(
    kind: str,
    path: Path,
    load: Callable[[], Runner],
    inputs: torch.Tensor,
    reference: torch.Tensor | None,
    model: nn.Module | None,
    reason: str,
    export_seconds: float | None,
    notes: dict | None = None,
) -> Artifact:
    """Load the artifact, time the load, and measure parity on ``inputs``."""
    started = clock()
    try:
        runner = load()
    except Exception as exc:  # noqa: BLE001 - an unloadable artifact is reported, not raised
        why = f"saved, but loading failed here: {type(exc).__name__}: {' '.join(str(exc).split())[:140]}"
        return Artifact(kind, path, False, why, export_seconds=export_seconds, notes=notes or {})
    load_seconds = clock() - started
    if reference is None:
        if model is None:
            raise ValueError("pass either the eager model or its reference logits")
        reference = reference_logits(model, inputs)
    candidate = run_chunked(runner, inputs)
    return Artifact(
        kind, path, True, reason, runner, parity(reference, candidate), load_seconds, export_seconds, notes or {}
    )


def unavailable(kind: str, capability: str) -> Artifact | None:
    """An artifact of ``kind`` explaining why, when the probe of ``capability`` failed here, else None.

    ``capability`` is a :class:`deitlab.capabilities.Capability` name such as ``"optimize_for_mobile"``.
    """
    from deitlab.capabilities import capabilities

    for cap in capabilities():
        if cap.name == capability and not cap.available:
            return Artifact(kind, None, False, cap.reason)
    return None


def _prepare(model: nn.Module, inputs: torch.Tensor, suffix: str, kind: str):
    """(eval model, checked inputs, artifact file name, model fingerprint)."""
    inputs = check_inputs(inputs)
    model = model.eval()
    fingerprint = model_fingerprint(model)
    return model, inputs, f"{kind}-{fingerprint}{suffix}", fingerprint


# --- the tutorial's chain: TorchScript ----------------------------------------------


def export_torchscript(
    model: nn.Module,
    inputs: torch.Tensor,
    path: str | Path | None = None,
    method: str = "script",
    reference: torch.Tensor | None = None,
    reuse: bool = True,
) -> Artifact:
    """``torch.jit.script`` (or ``trace``) the model, save it, reload it with ``torch.jit.load``."""
    if method not in ("script", "trace"):
        raise ValueError(f"method must be 'script' or 'trace', got {method!r}")
    kind = f"TorchScript ({method})"
    if (missing := unavailable(kind, "TorchScript script/save/load")) is not None:
        return missing
    model, inputs, file_name, fingerprint = _prepare(model, inputs, ".pt", f"torchscript-{method}")

    def save(target: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning (deprecated) and TracerWarning (see notebook 06)
            module = torch.jit.script(model) if method == "script" else torch.jit.trace(model, inputs[:1])
            module.save(str(target))

    key = {"model": fingerprint, "method": method}
    path, seconds, reused, _ = _export_once(file_name, key, save, reuse, path)
    load = lambda: _jit_load(path)  # noqa: E731
    return _finish(kind, path, load, inputs, reference, model, _note("deprecated API, still works", reused), seconds)


def _jit_load(path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path)).eval()


def export_scripted_int8(
    model: nn.Module,
    inputs: torch.Tensor,
    path: str | Path | None = None,
    reference: torch.Tensor | None = None,
    reuse: bool = True,
) -> Artifact:
    """``quantize_dynamic`` (Linear → int8) then ``torch.jit.script`` and save — the tutorial's step 2."""
    kind = "TorchScript + dynamic int8"
    if (missing := unavailable(kind, "TorchScript script/save/load")) is not None:
        return missing
    model, inputs, file_name, fingerprint = _prepare(model, inputs, ".pt", "torchscript-int8")
    reference = reference_logits(model, inputs) if reference is None else reference

    def save(target: Path) -> None:
        with warnings.catch_warnings():
            # TorchScript's FutureWarning and the quantized-tensor UserWarning: both deprecations
            # are the subject of notebooks 04 and 06, not news at every export
            warnings.simplefilter("ignore")
            torch.jit.script(legacy_dynamic_int8(model)[0]).save(str(target))

    key = {"model": fingerprint, "method": "script-int8"}
    path, seconds, reused, _ = _export_once(file_name, key, save, reuse, path)
    load = lambda: _jit_load(path)  # noqa: E731
    return _finish(kind, path, load, inputs, reference, None, _note("deprecated APIs, still work", reused), seconds)


def export_optimized_for_mobile(
    scripted: Artifact, inputs: torch.Tensor, reference: torch.Tensor, path: str | Path | None = None
) -> Artifact:
    """``optimize_for_mobile`` on a saved TorchScript artifact — needs a torch built with XNNPACK."""
    kind = "TorchScript + optimize_for_mobile"
    if (missing := unavailable(kind, "optimize_for_mobile")) is not None:
        return missing
    _require_file(scripted)
    from torch.utils.mobile_optimizer import optimize_for_mobile

    def save(target: Path) -> None:
        optimize_for_mobile(_jit_load(scripted.path)).save(str(target))

    key = {"source": cache.sha256_file(scripted.path), "method": "optimize_for_mobile"}
    path, seconds, _, _ = _export_once(f"{scripted.path.stem}-mobile.pt", key, save, True, path)
    return _finish(kind, path, lambda: _jit_load(path), check_inputs(inputs), reference, None, "works here", seconds)


def export_lite_interpreter(
    scripted: Artifact, inputs: torch.Tensor, reference: torch.Tensor, path: str | Path | None = None
) -> Artifact:
    """``_save_for_lite_interpreter``, then load with the real lite loader (not ``torch.jit.load``)."""
    kind = "lite interpreter (.ptl)"
    if (missing := unavailable(kind, "lite interpreter save+load")) is not None:
        return missing
    _require_file(scripted)
    from torch.jit.mobile import _load_for_lite_interpreter

    def save(target: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _jit_load(scripted.path)._save_for_lite_interpreter(str(target))

    key = {"source": cache.sha256_file(scripted.path), "method": "lite interpreter"}
    path, seconds, _, _ = _export_once(f"{scripted.path.stem}.ptl", key, save, True, path)

    def load() -> Runner:
        return _load_for_lite_interpreter(str(path))

    return _finish(kind, path, load, check_inputs(inputs), reference, None, "loaded by the lite interpreter", seconds)


def _require_file(artifact: Artifact) -> None:
    if not isinstance(artifact, Artifact) or artifact.path is None or not artifact.path.exists():
        raise ValueError("pass the TorchScript Artifact returned by export_torchscript/export_scripted_int8")


# --- the 2026 way: ExecuTorch -------------------------------------------------------


def _export_example(inputs: torch.Tensor) -> torch.Tensor:
    """Two rows: torch.export specialises a batch of one to the constant 1."""
    return inputs[:2] if len(inputs) >= 2 else inputs.repeat(2, 1, 1, 1)


def _dynamic_batch(max_batch: int):
    from torch.export import Dim

    return ({0: Dim("batch", min=1, max=max_batch)},)


def executorch_program(model: nn.Module, example: torch.Tensor, quantize: bool = False, max_batch: int = MAX_BATCH):
    """``torch.export`` → (PT2E int8) → XNNPACK-lowered ExecuTorch program manager.

    Quantization follows ExecuTorch's recipe for transformers: the XNNPACK quantizer
    with dynamic activations and per-channel symmetric int8 weights.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    shapes = _dynamic_batch(max_batch)
    if quantize:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        graph = torch.export.export(model, (example,), dynamic_shapes=shapes).module()
        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
        prepared = prepare_pt2e(graph, XNNPACKQuantizer().set_global(config))
        prepared(example)  # dynamic activations: one pass only records the graph, no calibration
        model = convert_pt2e(prepared)
    program = torch.export.export(model, (example,), dynamic_shapes=shapes)
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])


def delegation_table(lowered) -> list[dict]:
    """Per operator: how many nodes XNNPACK took over and how many stayed in the portable runtime."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(lowered.exported_program().graph_module)
    return [
        {"op": row.op_type, "delegated": row.delegated, "not delegated": row.non_delegated}
        for row in sorted(info.delegation_by_operator.values(), key=lambda r: r.op_type)
    ]


@contextlib.contextmanager
def _runtime_log_silenced() -> Iterator[None]:
    """Discard what the ExecuTorch runtime logs to ``sys.stdout``/``sys.stderr`` inside the block.

    Its XNNPACK threadpool probes cpuinfo on the first load and logs a dozen lines about
    ARM-only ``/sys`` files on an x86 machine (through Python's streams, via pybind11).
    When the block raises, the captured log is written to stderr before the error.
    """
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise


def _executorch_runner(path: Path) -> Runner:
    from executorch.runtime import Runtime

    with _runtime_log_silenced():
        method = Runtime.get().load_program(str(path)).load_method("forward")
    return lambda x: method.execute([x.contiguous()])[0]


def export_executorch(
    model: nn.Module,
    inputs: torch.Tensor,
    path: str | Path | None = None,
    quantize: bool = False,
    reference: torch.Tensor | None = None,
    reuse: bool = True,
    max_batch: int = MAX_BATCH,
) -> Artifact:
    """ExecuTorch ``.pte`` with the XNNPACK delegate (fp32, or int8 via PT2E), run by the ExecuTorch runtime."""
    kind = f"ExecuTorch XNNPACK {'int8' if quantize else 'fp32'}"
    if (missing := unavailable(kind, "ExecuTorch + XNNPACK")) is not None:
        return missing
    model, inputs, file_name, fingerprint = _prepare(
        model, inputs, ".pte", f"executorch-{'int8' if quantize else 'fp32'}"
    )
    key = {"model": fingerprint, "quantize": quantize, "max_batch": max_batch, "shape": list(inputs.shape[1:])}

    def save(target: Path) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lowered = executorch_program(model, _export_example(inputs), quantize, max_batch)
            target.write_bytes(lowered.to_executorch().buffer)
            return {"delegation": delegation_table(lowered)}

    path, seconds, reused, notes = _export_once(file_name, key, save, reuse, path)
    load = lambda: _executorch_runner(path)  # noqa: E731
    return _finish(kind, path, load, inputs, reference, model, _note("", reused), seconds, notes)


# --- the 2026 way: ONNX + ONNX Runtime ----------------------------------------------


def _onnx_runner(path: Path, threads: int | None = None) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: np.ascontiguousarray(x.numpy())})[0])


def export_onnx(
    model: nn.Module,
    inputs: torch.Tensor,
    path: str | Path | None = None,
    quantize: bool = False,
    reference: torch.Tensor | None = None,
    reuse: bool = True,
    max_batch: int = MAX_BATCH,
) -> Artifact:
    """ONNX via the dynamo exporter (one self-contained file); ``quantize=True`` adds ORT dynamic int8."""
    kind = f"ONNX Runtime {'int8' if quantize else 'fp32'}"
    if (missing := unavailable(kind, "ONNX export + ONNX Runtime")) is not None:
        return missing
    model, inputs, file_name, fingerprint = _prepare(model, inputs, ".onnx", f"onnx-{'int8' if quantize else 'fp32'}")
    fp32_key = {"model": fingerprint, "quantize": False, "max_batch": max_batch, "shape": list(inputs.shape[1:])}
    example = _export_example(inputs)
    if quantize:
        reduce_range = onnx_reduce_range()
        key = {**fp32_key, "quantize": True, "reduce_range": reduce_range}

        def save(target: Path) -> None:
            write_fp32 = lambda fp32: _write_onnx(model, example, fp32, max_batch)  # noqa: E731
            source, *_ = _export_once(f"onnx-fp32-{fingerprint}.onnx", fp32_key, write_fp32, reuse)  # made once
            _quantize_onnx(source, target, reduce_range)

    else:
        key = fp32_key

        def save(target: Path) -> None:
            _write_onnx(model, example, target, max_batch)

    path, seconds, reused, _ = _export_once(file_name, key, save, reuse, path)
    return _finish(kind, path, lambda: _onnx_runner(path), inputs, reference, model, _note("", reused), seconds)


def export_onnx_static_int8(
    model: nn.Module,
    inputs: torch.Tensor,
    calibration: torch.Tensor,
    path: str | Path | None = None,
    reference: torch.Tensor | None = None,
    reuse: bool = True,
    max_batch: int = MAX_BATCH,
) -> Artifact:
    """ONNX Runtime static int8: ``quantize_static`` in QDQ format, per-channel weights, calibrated on real inputs.

    ``calibration`` (an N×C×H×W batch, fed one image at a time by a ``CalibrationDataReader``)
    fixes every activation's int8 range ahead of time; parity is measured on ``inputs``.
    """
    kind = "ONNX Runtime int8 static (QDQ)"
    if (missing := unavailable(kind, "ONNX export + ONNX Runtime")) is not None:
        return missing
    calibration = check_inputs(calibration)
    model, inputs, file_name, fingerprint = _prepare(model, inputs, ".onnx", "onnx-int8-static")
    fp32_key = {"model": fingerprint, "quantize": False, "max_batch": max_batch, "shape": list(inputs.shape[1:])}
    reduce_range = onnx_reduce_range()
    calibration_hash = hashlib.sha256(calibration.numpy().tobytes()).hexdigest()[:16]
    key = {**fp32_key, "quantize": "static-qdq", "reduce_range": reduce_range, "calibration": calibration_hash}
    example = _export_example(inputs)

    def save(target: Path) -> None:
        write_fp32 = lambda fp32: _write_onnx(model, example, fp32, max_batch)  # noqa: E731
        source, *_ = _export_once(f"onnx-fp32-{fingerprint}.onnx", fp32_key, write_fp32, reuse)  # made once
        _quantize_onnx_static(source, target, calibration, reduce_range)

    path, seconds, reused, _ = _export_once(file_name, key, save, reuse, path)
    note = _note(f"calibrated on {len(calibration)} inputs", reused)
    return _finish(kind, path, lambda: _onnx_runner(path), inputs, reference, model, note, seconds)


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path, max_batch: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            dynamic_shapes=_dynamic_batch(max_batch),
            external_data=False,
            verbose=False,
        )


def onnx_reduce_range() -> bool:
    """7-bit weights for ONNX Runtime int8 on x86 CPUs without VNNI (ORT's advice).

    Without VNNI, the u8×s8 multiply-add instruction saturates at 16 bits; one bit
    less of weight range avoids that overflow (PyTorch's fbgemm does the same).
    """
    from deitlab.env import cpu_features

    features = cpu_features()
    return "VNNI" in features and not features["VNNI"]


@contextlib.contextmanager
def _without_onnx_quantization_notices() -> Iterator[None]:
    """Drop ONNX Runtime quantization's info/warning records (e.g. "consider pre-processing") for the block only.

    ORT logs them with module-level ``logging.warning`` on the root logger, so a filter on the
    root logger that matches records from files of ``onnxruntime.quantization`` is the narrowest
    scope. The root logger's level is left alone, and a temporary ``NullHandler`` stops
    ``logging.warning`` from installing a stderr handler for the whole process (``basicConfig``).
    """
    import logging

    import onnxruntime.quantization

    package = str(Path(onnxruntime.quantization.__file__).parent)

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.pathname.startswith(package)

    root = logging.getLogger()
    placeholder = logging.NullHandler() if not root.handlers else None
    root.addFilter(keep)
    if placeholder is not None:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeFilter(keep)
        if placeholder is not None:
            root.removeHandler(placeholder)


def _quantize_onnx(source: Path, target: Path, reduce_range: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _without_onnx_quantization_notices():
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range
        )


def _quantize_onnx_static(source: Path, target: Path, calibration: torch.Tensor, reduce_range: bool) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    input_name = onnx.load(str(source), load_external_data=False).graph.input[0].name

    class ImageReader(CalibrationDataReader):
        """Feeds the calibration images one at a time."""

        def __init__(self) -> None:
            self.rows = iter(calibration.split(1))

        def get_next(self) -> dict | None:
            row = next(self.rows, None)
            return None if row is None else {input_name: np.ascontiguousarray(row.numpy())}

    with _without_onnx_quantization_notices():
        quantize_static(
            str(source),
            str(target),
            ImageReader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
