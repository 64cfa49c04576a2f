"""Run-time probes: which deployment paths work with *this* PyTorch build.

Each probe exercises a feature on a tiny module in a fresh subprocess, so that a
crash, a hang or a missing package in one probe can never take the caller down.
Run one probe by hand with ``python -m deitlab.capabilities <name>``.

``DEITLAB_DISABLE=executorch,onnx`` (short names in :data:`DISABLE_NAMES`, or full probe
names) reports those paths as missing, as on a host whose torch has no ExecuTorch release:
the way to see the notebooks' fallbacks on a machine where everything works.
"""

from __future__ import annotations

import concurrent.futures
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

from deitlab import cache
from deitlab.env import onednn_int8_matmul, package_versions


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
    from torchao.quantization import quantize_

    from deitlab.quant import torchao_config

    model = _TinyNet()
    quantize_(model, torchao_config("dynamic"))
    if type(model.linear.weight) is torch.nn.Parameter:
        raise RuntimeError("quantize_ left the Linear weights in fp32")
    model(*_example())
    kernel = "oneDNN (AVX512-VNNI)" if onednn_int8_matmul() else "a slow reference loop (no AVX512-VNNI or no oneDNN)"
    return f"quantize_ with int8 dynamic activations + int8 weights ran; in eager mode its int8 matmul runs {kernel}"


def _probe_pt2e(workdir: str) -> str:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from deitlab.compiled import quantize_steps, require_quantize_steps, x86_quantizer_module

    xiq = x86_quantizer_module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(torch.export.export(_TinyNet().eval(), _example()).module(), quantizer)
    prepared(*_example())
    converted = require_quantize_steps(convert_pt2e(prepared))
    return f"X86InductorQuantizer put {quantize_steps(converted)} quantize/dequantize ops into an exported graph"


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
    "PT2E int8 (X86InductorQuantizer)": _probe_pt2e,
    "ExecuTorch + XNNPACK": _probe_executorch,
    "ONNX export + ONNX Runtime": _probe_onnx,
}


_TIMED_OUT = "probe did not finish within"

#: Short names accepted by ``DEITLAB_DISABLE`` → the probe each one switches off.
DISABLE_NAMES = {
    "torchscript": "TorchScript script/save/load",
    "mobile": "optimize_for_mobile",
    "lite": "lite interpreter save+load",
    "compile": "torch.compile",
    "export": "torch.export",
    "torchao": "torchao int8",
    "pt2e": "PT2E int8 (X86InductorQuantizer)",
    "executorch": "ExecuTorch + XNNPACK",
    "onnx": "ONNX export + ONNX Runtime",
}


def disabled_probes() -> set[str]:
    """The probe names that ``DEITLAB_DISABLE`` (comma-separated) switches off; a name it lacks is a ValueError."""
    wanted = [w.strip() for w in os.environ.get("DEITLAB_DISABLE", "").split(",") if w.strip()]
    unknown = [w for w in wanted if w.lower() not in DISABLE_NAMES and w not in PROBES]
    if unknown:
        raise ValueError(f"DEITLAB_DISABLE: unknown name(s) {unknown}; use {', '.join(DISABLE_NAMES)}")
    return {DISABLE_NAMES.get(w.lower(), w) for w in wanted}


def _apply_disabled(results: tuple[Capability, ...]) -> tuple[Capability, ...]:
    off = disabled_probes()
    return tuple(Capability(c.name, False, "switched off by DEITLAB_DISABLE") if c.name in off else c for c in results)


def section_runs(capability: Capability) -> bool:
    """Whether a notebook section that needs ``capability`` can run; when not, print one line saying why."""
    if not capability.available:
        print(f"skipped: {capability.name} is not available here ({capability.reason})")
    return capability.available


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
    if isinstance(exc, FileNotFoundError) and exc.filename == "flatc":
        return "this ExecuTorch runs `flatc` to write .pte files and none is on PATH (set FLATC_EXECUTABLE)"
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
        return Capability(name, False, f"{_TIMED_OUT} {timeout:.0f} s")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return Capability(**json.loads(line))
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return Capability(name, False, f"probe process died (exit {done.returncode}): {tail[:160]}")


#: The data file of the capabilities cache entry.
RESULTS = "capabilities.json"

_in_process: dict[str, tuple[Capability, ...]] = {}  # cache key (JSON) -> results of this process


def _cache_key() -> dict:
    """What the probe results depend on: this interpreter, the installed versions and the probes."""
    return {"python": sys.executable, "packages": package_versions(), "probes": list(PROBES)}


def _probe_all(timeout: float) -> tuple[Capability, ...]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return tuple(pool.map(lambda n: _probe_in_subprocess(n, timeout), PROBES))


class _ProbeTimedOut(Exception):
    """A probe hit its time limit (a busy machine, not a verdict): the results are not cached."""

    def __init__(self, results: tuple[Capability, ...]) -> None:
        super().__init__("a probe timed out")
        self.results = results


def _probe_and_save(timeout: float) -> Callable[[Path], None]:
    def build(staging: Path) -> None:
        results = _probe_all(timeout)
        if any(c.reason.startswith(_TIMED_OUT) for c in results):
            raise _ProbeTimedOut(results)
        (staging / RESULTS).write_text(json.dumps([asdict(c) for c in results], indent=1))

    return build


def _read_results(path: Path) -> tuple[Capability, ...]:
    return tuple(Capability(**row) for row in json.loads(path.read_text()))


def capabilities(timeout: float = 120.0, refresh: bool = False) -> tuple[Capability, ...]:
    """Probe every deployment path, two at a time in subprocesses.

    Results are cached for the process and as an entry of :mod:`deitlab.cache` (keyed by
    the interpreter and the installed versions), so only the first call on a machine
    takes ~30 s. ``refresh=True`` probes again, every time it is passed. A cache that
    cannot be written is announced in one line; the probes then run without it. The paths
    named in ``DEITLAB_DISABLE`` are reported missing (never cached that way).
    """
    key = _cache_key()
    memo = json.dumps(key, sort_keys=True)
    if not refresh and memo in _in_process:
        return _apply_disabled(_in_process[memo])
    try:
        entry = cache.get_or_build("capabilities", "probes", key, _probe_and_save(timeout), [RESULTS], rebuild=refresh)
        try:
            results = _read_results(entry.path(RESULTS))
        except (ValueError, TypeError) as exc:  # hashed, but not what this version of the kit writes
            print(
                f"deitlab cache: {entry.path(RESULTS)} is unreadable ({type(exc).__name__}); probing again",
                file=sys.stderr,
            )
            entry = cache.get_or_build("capabilities", "probes", key, _probe_and_save(timeout), [RESULTS], rebuild=True)
            results = _read_results(entry.path(RESULTS))
    except cache.CacheError as exc:
        print(f"{exc} (probing without the cache)", file=sys.stderr)
        results = _probe_all(timeout)
    except _ProbeTimedOut as timed_out:
        slow = ", ".join(c.name for c in timed_out.results if c.reason.startswith(_TIMED_OUT))
        print(f"deitlab capabilities: {slow} timed out; these results are kept for this process only", file=sys.stderr)
        results = timed_out.results
    _in_process[memo] = results
    return _apply_disabled(results)


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
