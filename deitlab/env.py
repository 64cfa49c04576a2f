"""Facts about the machine the kit runs on: versions, CPU, threads, network."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import socket
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

#: Packages whose versions the report lists (optional ones only when installed).
REPORTED_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "torchao",
    "executorch",
    "onnxruntime",
    "onnx",
)

#: CPU features that decide which fast kernels a CPU can use, by /proc/cpuinfo flag.
SPEED_FEATURES = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "VNNI": ("avx512_vnni", "avx_vnni"),
    "BF16": ("avx512_bf16",),
    "AMX": ("amx_tile",),
    "NEON": ("asimd", "neon"),
}

_HUB_HOST = ("huggingface.co", 443)
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class EnvReport:
    """What :func:`report` found."""

    python: str
    packages: dict[str, str]
    cpu: str
    cpu_features: dict[str, bool]
    torch_cpu_capability: str
    threads: int
    gpu: str | None
    online: bool
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        features = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in self.cpu_features.items())
        versions = ", ".join(f"{k} {v}" for k, v in self.packages.items())
        lines = [
            f"python     {self.python}",
            f"packages   {versions}",
            f"cpu        {self.cpu} (torch kernels: {self.torch_cpu_capability})",
            f"features   {features}",
            f"threads    {self.threads}",
            f"gpu        {self.gpu or 'none'}",
            f"network    {'online' if self.online else 'offline'}",
        ]
        return "\n".join(lines)


def package_versions(names: tuple[str, ...] = REPORTED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names``; packages that are not installed are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@functools.cache
def _cpuinfo_text() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cpu_model() -> str:
    """Human-readable CPU model name."""
    for line in _cpuinfo_text().splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpu_flags() -> set[str]:
    flags: set[str] = set()
    for line in _cpuinfo_text().splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.split(":", 1)[1].split())
    return flags


def cpu_features() -> dict[str, bool]:
    """Which speed-relevant ISA extensions this CPU reports (Linux /proc/cpuinfo)."""
    flags = _cpu_flags()
    is_arm = platform.machine().lower() in {"arm64", "aarch64"}
    return {
        name: any(flag in flags for flag in names)
        for name, names in SPEED_FEATURES.items()
        if (name == "NEON") == is_arm
    }


def onednn_int8_matmul() -> bool:
    """Whether ``torch._int_mm`` — torchao's eager int8 × int8 matmul on CPU — runs oneDNN here.

    PyTorch takes oneDNN's int8 kernel only when oneDNN is built in and enabled
    (``torch.backends.mkldnn``) and the CPU has AVX512-VNNI; everywhere else it runs a
    plain reference loop, tens of times slower than an fp32 ``torch.mm``.
    """
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    torch_probe = getattr(torch.cpu, "_is_vnni_supported", None)  # the check PyTorch itself makes
    return bool(torch_probe()) if torch_probe is not None else "avx512_vnni" in _cpu_flags()


@contextlib.contextmanager
def onednn_disabled() -> Iterator[None]:
    """Switch oneDNN off inside the block, as on a build or CPU without it; restores the setting."""
    was_enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = was_enabled


def gpu_name() -> str | None:
    """Name of the first CUDA/MPS device, or None on a CPU-only machine."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple MPS"
    return None


def default_device() -> torch.device:
    """The device notebooks use: a GPU when present, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def cache_dir() -> Path:
    """Where the kit keeps checkpoints, probe results and exported artifacts.

    ``DEITLAB_CACHE`` overrides the default ``~/.cache/deitlab``.
    """
    path = Path(os.environ.get("DEITLAB_CACHE") or Path.home() / ".cache" / "deitlab")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _hub_disabled_by_env() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DEITLAB_OFFLINE")
    )


def _can_connect(host: str, port: int, timeout: float) -> bool:
    """True when a TCP connection to host:port opens within ``timeout`` seconds.

    DNS resolution cannot be given a timeout portably, so the whole attempt runs in
    a daemon thread that is abandoned when the deadline passes.
    """
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


_online_lock = threading.Lock()
_online_cache: bool | None = None


def is_online(timeout: float = 2.5) -> bool:
    """Whether the model hub is reachable; answers within ``timeout`` seconds.

    ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE`` / ``DEITLAB_OFFLINE``) means
    offline without any network access. The answer is cached for the process; when
    the network is down the kit also sets ``HF_HUB_OFFLINE=1`` so that libraries
    imported afterwards do not retry for minutes.
    """
    global _online_cache
    with _online_lock:
        if _hub_disabled_by_env():
            return False
        if _online_cache is None:
            _online_cache = _can_connect(*_HUB_HOST, timeout=timeout)
            if not _online_cache:
                os.environ["HF_HUB_OFFLINE"] = "1"
        return _online_cache


def reset_online_cache() -> None:
    """Forget the cached :func:`is_online` answer (for tests and reconnects)."""
    global _online_cache
    with _online_lock:
        _online_cache = None


def report() -> EnvReport:
    """Versions, CPU model and features, threads, GPU and network status."""
    return EnvReport(
        python=platform.python_version(),
        packages=package_versions(),
        cpu=cpu_model(),
        cpu_features=cpu_features(),
        torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads(),
        gpu=gpu_name(),
        online=is_online(),
    )


def status_line() -> str:
    """One line for the top of every notebook: versions, device, threads, network."""
    versions = package_versions(("torch", "timm", "transformers"))
    device = gpu_name() or f"CPU ({cpu_model()})"
    network = "online" if is_online() else "offline (hub disabled; random weights where needed)"
    packages = " · ".join(f"{k} {v}" for k, v in versions.items())
    return f"deitlab · {packages} · {device} · {torch.get_num_threads()} threads · {network}"
