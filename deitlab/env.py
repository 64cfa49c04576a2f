"""Facts about the machine the kit runs on: versions, CPU, threads, network."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import shutil
import sysconfig
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from deitlab.device import default_device as default_device  # the notebooks import it from here
from deitlab.device import describe, mps_available
from deitlab.i18n.runtime import t

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
    network: str = ""  # :func:`network_status`: the same answer with the hub address tried

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
            f"network    {self.network or ('online' if self.online else 'offline')}",
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
    if mps_available():
        return "Apple MPS"
    return None


def cache_dir() -> Path:
    """Where the kit keeps checkpoints, probe results and exported artifacts.

    ``DEITLAB_CACHE`` overrides the default ``~/.cache/deitlab``.
    """
    path = Path(os.environ.get("DEITLAB_CACHE") or Path.home() / ".cache" / "deitlab")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _offline_variable() -> str | None:
    """The environment variable that switches the hub off, if one is set."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DEITLAB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return var
    return None


def hub_endpoint() -> str:
    """The model hub address huggingface_hub uses (``HF_ENDPOINT`` when set, e.g. a mirror)."""
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def _hub_answers(endpoint: str, timeout: float) -> bool:
    """True when ``endpoint`` answers an HTTP request within ``timeout`` seconds.

    The request goes through huggingface_hub's own HTTP session, so its proxies
    (``HTTPS_PROXY``) and certificates apply. Any answer below 500 counts: the hub's
    front page may redirect or refuse a HEAD request, a proxy error may not. The
    request runs in a daemon thread that is abandoned at the deadline, because DNS
    resolution cannot be given a timeout portably.
    """
    from huggingface_hub.utils import get_session

    result: list[bool] = []

    def attempt() -> None:
        try:
            response = get_session().head(endpoint + "/", timeout=timeout)
            result.append(response.status_code < 500)
        except Exception:  # noqa: BLE001 - any transport error (DNS, refused, TLS, proxy) means unreachable
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


_online_lock = threading.Lock()
_online_cache: dict[str, bool] = {}


def is_online(timeout: float = 2.5) -> bool:
    """Whether the model hub (:func:`hub_endpoint`) is reachable; answers within ``timeout`` seconds.

    ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE`` / ``DEITLAB_OFFLINE``) means
    offline without any network access. The answer is cached per endpoint for the
    process; nothing is written to ``os.environ`` (the kit's loaders pass
    ``local_files_only`` themselves), so :func:`reset_online_cache` can report online again.
    """
    if _offline_variable():
        return False
    endpoint = hub_endpoint()
    with _online_lock:
        if endpoint not in _online_cache:
            _online_cache[endpoint] = _hub_answers(endpoint, timeout)
        return _online_cache[endpoint]


def reset_online_cache() -> None:
    """Forget the cached :func:`is_online` answers (for tests and reconnects)."""
    with _online_lock:
        _online_cache.clear()


def network_status() -> str:
    """``online``/``offline`` with the reason and the hub address tried, for banners."""
    variable = _offline_variable()
    if variable:
        return t("offline (hub disabled by {variable}=1; random weights where needed)").format(variable=variable)
    endpoint = hub_endpoint()
    if is_online():
        return t("online ({endpoint})").format(endpoint=endpoint)
    return t("offline ({endpoint} unreachable; random weights where needed)").format(endpoint=endpoint)


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
        network=network_status(),
    )


def status_line() -> str:
    """One line for the top of every notebook: versions, where the work runs, threads, network.

    The device is :func:`default_device`'s (what the notebooks train and infer on);
    on a GPU the line adds that int8 kernels and exports still run on the CPU.
    """
    versions = package_versions(("torch", "timm", "transformers"))
    where = default_device()
    device = f"CPU ({cpu_model()})" if where.type == "cpu" else f"{describe(where)}; int8 and exports on the CPU"
    network = network_status()
    packages = " · ".join(f"{k} {v}" for k, v in versions.items())
    return f"deitlab · {packages} · {device} · {torch.get_num_threads()} {t('threads')} · {network}"


def use_environment_flatc() -> str | None:
    """Point ExecuTorch at the ``flatc`` its wheel installed beside this interpreter; the path, or None.

    ExecuTorch 1.2 and 1.3 (the releases for torch 2.11 and 2.12) write ``.pte`` files by
    running ``flatc`` from ``PATH`` (or ``FLATC_EXECUTABLE``). Their wheel puts it in the
    environment's scripts folder, which is not on ``PATH`` when the environment was not
    activated (a kernel started as ``.venv/bin/jupyter lab``). Sets ``FLATC_EXECUTABLE``
    to that file when nothing else provides a ``flatc``; later releases carry their own.
    """
    beside = Path(sysconfig.get_path("scripts")) / "flatc"
    if os.environ.get("FLATC_EXECUTABLE") or shutil.which("flatc") or not beside.is_file():
        return None
    os.environ["FLATC_EXECUTABLE"] = str(beside)
    return str(beside)


use_environment_flatc()  # before any ExecuTorch export: the kit's modules and notebooks import this one
