"""Run-time probes: which deployment paths work with *this* PyTorch build.

Each probe exercises a feature on a tiny module in a fresh subprocess, so that a
crash, a hang or a missing package in one probe can never take the caller down.
Run one probe by hand with ``python -m deitlab.capabilities <name>``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from deitlab.env import cache_dir, onednn_int8_matmul, package_versions


@dataclass(frozen=True)
class Capability:
    """Outcome of one probe."""

    name: str
    available: bool
    reason: str

    def __str__(self) -> str:
        return f"{'yes' if self.available else 'no ':3}  {self.name:28} {self.reason}"


class _TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


def _example() -> tuple[torch.Tensor]:
    return (torch.randn(2, 8),)


def _probe_torchscript(workdir: str) -> str:
    path = os.path.join(workdir, "tiny.pt")
    torch.jit.script(_TinyNet()).save(path)
    torch.jit.load(path)(*_example())
    return "script, save and load work (deprecated API: FutureWarning)"


def _probe_optimize_for_mobile(workdir: str) -> str:
    from torch.utils.mobile_optimizer import optimize_for_mobile

    optimize_for_mobile(torch.jit.script(_TinyNet().eval()))
    return "works: this torch build includes XNNPACK"


def _probe_lite_interpreter(workdir: str) -> str:
    from torch.jit.mobile import _load_for_lite_interpreter

    path = os.path.join(workdir, "tiny.ptl")
    torch.jit.script(_TinyNet().eval())._save_for_lite_interpreter(path)
    _load_for_lite_interpreter(path)(*_example())
    return "save and load with the lite-interpreter loader work"


def _probe_torch_compile(workdir: str) -> str:
    compiled = torch.compile(_TinyNet())
    compiled(*_example())
    return "the inductor backend compiled and ran a module"


def _probe_torch_export(workdir: str) -> str:
    torch.export.export(_TinyNet(), _example())
    return "torch.export produced an ExportedProgram"


def _probe_torchao(workdir: str) -> str:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    model = _TinyNet()
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    model(*_example())
    kernel = "oneDNN (AVX512-VNNI)" if onednn_int8_matmul() else "a slow reference loop (no AVX512-VNNI or no oneDNN)"
    return f"quantize_ with int8 dynamic activations + int8 weights ran; in eager mode its int8 matmul runs {kernel}"


def _probe_executorch(workdir: str) -> str:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    program = torch.export.export(_TinyNet().eval(), _example())
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    path = os.path.join(workdir, "tiny.pte")
    with open(path, "wb") as f:
        f.write(lowered.to_executorch().buffer)
    method = Runtime.get().load_program(path).load_method("forward")
    method.execute(list(_example()))
    return "exported, lowered to XNNPACK and ran in the ExecuTorch runtime"


def _probe_onnx(workdir: str) -> str:
    import onnxruntime

    path = os.path.join(workdir, "tiny.onnx")
    torch.onnx.export(_TinyNet().eval(), _example(), path, dynamo=True, verbose=False)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    session.run(None, {session.get_inputs()[0].name: _example()[0].numpy()})
    return f"dynamo export + ONNX Runtime {onnxruntime.__version__} ran"


PROBES: dict[str, Callable[[str], str]] = {
    "TorchScript script/save/load": _probe_torchscript,
    "optimize_for_mobile": _probe_optimize_for_mobile,
    "lite interpreter save+load": _probe_lite_interpreter,
    "torch.compile": _probe_torch_compile,
    "torch.export": _probe_torch_export,
    "torchao int8": _probe_torchao,
    "ExecuTorch + XNNPACK": _probe_executorch,
    "ONNX export + ONNX Runtime": _probe_onnx,
}


def _short_reason(exc: BaseException) -> str:
    """First meaningful line of an exception, trimmed for a table cell."""
    if isinstance(exc, ModuleNotFoundError) and exc.name == "executorch":
        from deitlab.compat import tied_requirements

        pins = [pin for pin in tied_requirements(torch.__version__) if pin.startswith("executorch")]
        if not pins:
            return f"not installed: no ExecuTorch release is built for torch {torch.__version__} (deitlab/compat.py)"
        return f"not installed: executorch (pip install '{pins[0]}', the release built for this torch)"
    if isinstance(exc, ModuleNotFoundError):
        return f"not installed: {exc.name} (pip install 'deitlab[deploy]')"
    text = " ".join(str(exc).split())
    if "XNNPACK" in text and "Mobile optimization" in text:
        return "this torch build ships without XNNPACK (official wheels since 2.13)"
    return f"{type(exc).__name__}: {text[:160]}"


def run_probe(name: str) -> Capability:
    """Run one probe in this process and report the outcome (never raises)."""
    if name not in PROBES:
        raise KeyError(f"unknown capability probe {name!r}; known: {', '.join(PROBES)}")
    with tempfile.TemporaryDirectory() as workdir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Capability(name, True, PROBES[name](workdir))
        except BaseException as exc:  # noqa: BLE001 - a probe must never crash its caller
            return Capability(name, False, _short_reason(exc))


def _probe_in_subprocess(name: str, timeout: float) -> Capability:
    cmd = [sys.executable, "-m", "deitlab.capabilities", name]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Capability(name, False, f"probe did not finish within {timeout:.0f} s")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return Capability(**json.loads(line))
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return Capability(name, False, f"probe process died (exit {done.returncode}): {tail[:160]}")


def _disk_cache_path() -> Path:
    """Cache file for the probe results of this interpreter and these package versions."""
    key = json.dumps([sys.executable, sorted(package_versions().items())])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"capabilities-{digest}.json"


@functools.cache
def capabilities(timeout: float = 120.0, refresh: bool = False) -> tuple[Capability, ...]:
    """Probe every deployment path, two at a time in subprocesses.

    Results are cached for the process and on disk (keyed by the interpreter and the
    installed versions), so only the first call on a machine takes ~30 s.
    """
    cache_file = _disk_cache_path()
    if cache_file.exists() and not refresh:
        return tuple(Capability(**row) for row in json.loads(cache_file.read_text()))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = tuple(pool.map(lambda n: _probe_in_subprocess(n, timeout), PROBES))
    cache_file.write_text(json.dumps([asdict(c) for c in results], indent=1))
    return results


def capability_table(caps: tuple[Capability, ...] | None = None) -> str:
    """The probes as an aligned text table."""
    caps = capabilities() if caps is None else caps
    return "\n".join(str(c) for c in caps)


def is_available(name: str) -> bool:
    """Whether the probe called ``name`` succeeded on this machine."""
    for cap in capabilities():
        if cap.name == name:
            return cap.available
    raise KeyError(f"unknown capability probe {name!r}; known: {', '.join(PROBES)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m deitlab.capabilities <probe name>")
    capability = run_probe(sys.argv[1])
    print(json.dumps({"name": capability.name, "available": capability.available, "reason": capability.reason}))
