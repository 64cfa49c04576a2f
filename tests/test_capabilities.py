import json

import pytest

from deitlab import capabilities as caps


def test_run_probe_reports_a_working_path():
    result = caps.run_probe("TorchScript script/save/load")
    assert result.available and result.reason


def test_run_probe_turns_an_exception_into_a_reason(monkeypatch):
    def broken(workdir):
        raise RuntimeError("boom happened")

    monkeypatch.setitem(caps.PROBES, "broken", broken)
    result = caps.run_probe("broken")
    assert not result.available
    assert "boom happened" in result.reason


def test_missing_package_reason_names_the_extra(monkeypatch):
    def missing(workdir):
        raise ModuleNotFoundError("No module named 'nothing'", name="nothing")

    monkeypatch.setitem(caps.PROBES, "missing", missing)
    assert "deitlab[deploy]" in caps.run_probe("missing").reason


@pytest.mark.parametrize(
    ("torch_version", "reason"),
    [("2.11.0+cu128", "pip install 'executorch==1.2.0'"), ("2.7.1", "no ExecuTorch release is built for torch 2.7.1")],
)
def test_missing_executorch_reason_follows_the_torch_table(monkeypatch, torch_version, reason):
    def missing(workdir):
        raise ModuleNotFoundError("No module named 'executorch'", name="executorch")

    monkeypatch.setitem(caps.PROBES, "missing", missing)
    monkeypatch.setattr(caps.torch, "__version__", torch_version)
    assert reason in caps.run_probe("missing").reason


def test_unknown_probe_name_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown capability probe"):
        caps.run_probe("teleportation")


def test_subprocess_probe_survives_a_dying_process(monkeypatch):
    result = caps._probe_in_subprocess("no such probe at all", timeout=60)
    assert not result.available
    assert "probe process died" in result.reason


def test_capabilities_are_cached_on_disk(monkeypatch):
    calls = []

    def fake(name, timeout):
        calls.append(name)
        return caps.Capability(name, True, "fake")

    monkeypatch.setattr(caps, "_probe_in_subprocess", fake)
    caps.capabilities.cache_clear()
    first = caps.capabilities(refresh=True)
    assert [c.name for c in first] == list(caps.PROBES)
    cached = json.loads(caps._disk_cache_path().read_text())
    assert len(cached) == len(caps.PROBES)
    caps.capabilities.cache_clear()
    calls.clear()
    second = caps.capabilities()
    assert second == first and calls == []
    assert "fake" in caps.capability_table(second)
    caps.capabilities.cache_clear()


def test_is_available_rejects_unknown_names(monkeypatch):
    monkeypatch.setattr(caps, "capabilities", lambda: (caps.Capability("x", True, "ok"),))
    assert caps.is_available("x") is True
    with pytest.raises(KeyError):
        caps.is_available("y")
