import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import huggingface_hub.constants
import huggingface_hub.utils
import pytest
import torch

from deitlab import env


def test_package_versions_lists_installed_and_skips_missing():
    versions = env.package_versions(("torch", "surely-not-a-real-package"))
    assert versions == {"torch": torch.__version__.split("+")[0]} or versions["torch"].startswith(
        torch.__version__.split("+")[0]
    )
    assert "surely-not-a-real-package" not in versions


def test_cpu_features_report_booleans_for_known_names():
    features = env.cpu_features()
    assert features and all(isinstance(v, bool) for v in features.values())
    assert set(features) <= set(env.SPEED_FEATURES)


def test_onednn_int8_matmul_needs_onednn_enabled():
    was_enabled = torch.backends.mkldnn.enabled
    with env.onednn_disabled():
        assert torch.backends.mkldnn.enabled is False
        assert env.onednn_int8_matmul() is False
    assert torch.backends.mkldnn.enabled is was_enabled


def test_onednn_disabled_restores_the_setting_after_an_error():
    was_enabled = torch.backends.mkldnn.enabled
    with pytest.raises(KeyError), env.onednn_disabled():
        raise KeyError("boom")
    assert torch.backends.mkldnn.enabled is was_enabled


def test_onednn_int8_matmul_follows_torchs_vnni_check(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False, raising=False)
    assert env.onednn_int8_matmul() is False
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: True, raising=False)
    assert env.onednn_int8_matmul() is True


@pytest.mark.parametrize(("flags", "expected"), [("avx2 avx512_vnni", True), ("avx2 avx_vnni", False)])
def test_onednn_int8_matmul_reads_cpuinfo_without_torchs_probe(monkeypatch, flags, expected):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.delattr(torch.cpu, "_is_vnni_supported", raising=False)
    monkeypatch.setattr(env, "_cpuinfo_text", lambda: f"flags\t\t: {flags}\n")
    assert env.onednn_int8_matmul() is expected


def test_cpu_model_is_a_non_empty_string():
    assert env.cpu_model().strip()


ONLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DEITLAB_OFFLINE")


@pytest.fixture
def hub_allowed(monkeypatch):
    """No offline switch set, a fresh online cache before and after the test."""
    for var in ONLINE_SWITCHES:
        monkeypatch.delenv(var, raising=False)
    env.reset_online_cache()
    yield
    env.reset_online_cache()


class FakeSession:
    """Stands in for huggingface_hub's HTTP session; records the addresses asked."""

    def __init__(self, status: int = 200, hang: threading.Event | None = None):
        self.status, self.hang, self.urls = status, hang, []

    def head(self, url, timeout):
        self.urls.append(url)
        if self.hang is not None:
            self.hang.wait(30)  # a DNS lookup that never answers
            raise OSError("simulated network timeout")
        return SimpleNamespace(status_code=self.status)


def _use_session(monkeypatch, session: FakeSession) -> None:
    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: session)


def test_hf_hub_offline_means_offline_without_network(monkeypatch):
    env.reset_online_cache()
    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: pytest.fail("network touched while offline"))
    assert env.is_online() is False
    assert "HF_HUB_OFFLINE=1" in env.network_status()


def test_is_online_gives_up_within_its_timeout(monkeypatch, hub_allowed):
    release = threading.Event()
    _use_session(monkeypatch, FakeSession(hang=release))
    started = time.perf_counter()
    try:
        assert env.is_online(timeout=0.5) is False
        assert time.perf_counter() - started < 2
    finally:
        release.set()  # let the abandoned worker thread finish inside this test


def test_is_online_asks_the_configured_endpoint_once_per_process(monkeypatch, hub_allowed):
    session = FakeSession()
    _use_session(monkeypatch, session)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://mirror.example/")
    assert env.is_online() is True
    assert env.is_online() is True
    assert session.urls == ["https://mirror.example/"]
    assert env.network_status() == "online (https://mirror.example)"


def test_server_errors_count_as_offline_and_name_the_endpoint(monkeypatch, hub_allowed):
    _use_session(monkeypatch, FakeSession(status=502))  # e.g. a proxy that cannot reach the hub
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://mirror.example")
    assert env.is_online() is False
    assert "https://mirror.example unreachable" in env.network_status()


def test_offline_answer_leaves_the_environment_alone_and_reset_allows_online_again(monkeypatch, hub_allowed):
    _use_session(monkeypatch, FakeSession(hang=threading.Event()))
    assert env.is_online(timeout=0.2) is False
    assert "HF_HUB_OFFLINE" not in os.environ  # regression: the old probe set it for the whole process
    _use_session(monkeypatch, FakeSession())
    assert env.is_online() is False  # still the cached answer
    env.reset_online_cache()
    assert env.is_online() is True


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with 200 and remembers its request line (loopback only)."""

    seen: list[str] = []

    def do_HEAD(self):  # noqa: N802 - the http.server naming
        type(self).seen.append(self.requestline)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    _HubHandler.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _probe_in_subprocess(**variables: str) -> tuple[str, float]:
    """``network_status()`` in a fresh interpreter (huggingface_hub reads HF_ENDPOINT at import)."""
    clean = {k: v for k, v in os.environ.items() if k not in ONLINE_SWITCHES and "proxy" not in k.lower()}
    code = "import time; from deitlab import env; t = time.perf_counter(); s = env.network_status(); "
    code += "print(s); print(time.perf_counter() - t)"
    result = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **variables}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    status, seconds = result.stdout.strip().splitlines()[-2:]
    return status, float(seconds)


def test_a_mirror_set_by_hf_endpoint_is_online(local_server):
    status, _ = _probe_in_subprocess(HF_ENDPOINT=local_server)
    assert status == f"online ({local_server})"
    assert _HubHandler.seen and _HubHandler.seen[0].startswith("HEAD / ")


def test_the_hub_is_reached_through_an_http_proxy(local_server):
    status, _ = _probe_in_subprocess(HF_ENDPOINT="http://hub.invalid", HTTP_PROXY=local_server)
    assert status == "online (http://hub.invalid)"
    assert _HubHandler.seen[0].startswith("HEAD http://hub.invalid/ ")  # the proxy got the hub's address


def test_nothing_listening_is_offline_within_three_seconds():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, seconds = _probe_in_subprocess(HF_ENDPOINT=f"http://127.0.0.1:{port}")
    assert status == f"offline (http://127.0.0.1:{port} unreachable; random weights where needed)"
    assert seconds <= 3


def test_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path / "here"))
    assert env.cache_dir() == tmp_path / "here"
    assert env.cache_dir().is_dir()


def test_report_contains_versions_cpu_threads_and_network():
    report = env.report()
    text = str(report)
    assert report.packages["torch"]
    assert report.threads == torch.get_num_threads()
    assert report.online is False
    for word in ("python", "torch", "threads", "offline", "cpu"):
        assert word in text
    assert report.as_dict()["cpu"] == report.cpu


def test_status_line_mentions_threads_and_offline():
    line = env.status_line()
    assert "threads" in line and "offline" in line and line.startswith("deitlab")


def test_default_device_is_cpu_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("GPU present")
    assert env.default_device().type == "cpu"
    assert env.gpu_name() is None


def test_status_line_names_the_device_the_notebooks_use(monkeypatch):
    from deitlab import device

    monkeypatch.setattr(device, "mps_available", lambda: True)  # a Mac...
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(device.DEVICE_ENV, "cpu")  # ...told to stay on the CPU
    assert f"CPU ({env.cpu_model()})" in env.status_line() and "MPS" not in env.status_line()
    monkeypatch.delenv(device.DEVICE_ENV)
    assert "Apple MPS GPU; int8 and exports on the CPU" in env.status_line()


@pytest.fixture
def scripts_folder(tmp_path, monkeypatch):
    """An environment whose scripts folder is ``tmp_path/bin``, an empty PATH and no FLATC_EXECUTABLE."""
    scripts = tmp_path / "bin"
    scripts.mkdir()
    monkeypatch.setattr(env.sysconfig, "get_path", lambda name: str(scripts) if name == "scripts" else "")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("FLATC_EXECUTABLE", raising=False)
    return scripts


def _executable(path):
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_use_environment_flatc_points_executorch_at_the_one_beside_python(scripts_folder):
    flatc = _executable(scripts_folder / "flatc")
    assert env.use_environment_flatc() == str(flatc)
    assert os.environ["FLATC_EXECUTABLE"] == str(flatc)


def test_use_environment_flatc_leaves_a_flatc_on_path_alone(scripts_folder, tmp_path, monkeypatch):
    _executable(scripts_folder / "flatc")
    monkeypatch.setenv("PATH", str(_executable(tmp_path / "flatc").parent))
    assert env.use_environment_flatc() is None and "FLATC_EXECUTABLE" not in os.environ


def test_use_environment_flatc_keeps_a_chosen_flatc(scripts_folder, monkeypatch):
    _executable(scripts_folder / "flatc")
    monkeypatch.setenv("FLATC_EXECUTABLE", "/opt/flatbuffers/flatc")
    assert env.use_environment_flatc() is None and os.environ["FLATC_EXECUTABLE"] == "/opt/flatbuffers/flatc"


def test_use_environment_flatc_does_nothing_without_one(scripts_folder):
    assert env.use_environment_flatc() is None and "FLATC_EXECUTABLE" not in os.environ
