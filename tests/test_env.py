import socket
import threading
import time

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


def test_hf_hub_offline_means_offline_without_network(monkeypatch):
    env.reset_online_cache()

    def no_network(*args, **kwargs):
        raise AssertionError("is_online must not touch the network when HF_HUB_OFFLINE=1")

    monkeypatch.setattr(socket, "create_connection", no_network)
    assert env.is_online() is False


def test_is_online_gives_up_within_its_timeout(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("DEITLAB_OFFLINE", raising=False)
    env.reset_online_cache()
    release = threading.Event()

    def hanging_connect(*args, **kwargs):
        release.wait(30)  # a DNS lookup that never answers
        raise OSError("simulated network timeout")

    monkeypatch.setattr(socket, "create_connection", hanging_connect)
    started = time.perf_counter()
    try:
        assert env.is_online(timeout=0.5) is False
        assert time.perf_counter() - started < 2
    finally:
        release.set()  # let the abandoned worker thread finish inside this test
        env.reset_online_cache()


def test_is_online_is_cached_for_the_process(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DEITLAB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    env.reset_online_cache()
    calls = []

    class FakeConnection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_connect(*args, **kwargs):
        calls.append(args)
        return FakeConnection()

    monkeypatch.setattr(socket, "create_connection", fake_connect)
    assert env.is_online() is True
    assert env.is_online() is True
    assert len(calls) == 1
    env.reset_online_cache()


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
