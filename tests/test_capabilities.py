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


def test_torchao_probe_fails_when_quantize_leaves_the_weights_in_fp32(monkeypatch):
    tq = pytest.importorskip("torchao.quantization")
    monkeypatch.setattr(tq, "quantize_", lambda model, config: model)
    result = caps.run_probe("torchao int8")
    assert not result.available and "left the Linear weights in fp32" in result.reason


def test_torchao_probe_sees_int8_weights():
    pytest.importorskip("torchao")
    assert caps.run_probe("torchao int8").available


def test_pt2e_probe_sees_quantize_steps_and_fails_when_the_quantizer_annotates_nothing(monkeypatch):
    pytest.importorskip("torchao")
    from deitlab import compiled

    assert caps.run_probe("PT2E int8 (X86InductorQuantizer)").available
    xiq = compiled.x86_quantizer_module()
    monkeypatch.setattr(xiq.X86InductorQuantizer, "annotate", lambda self, model: model)  # as on torch 2.11
    result = caps.run_probe("PT2E int8 (X86InductorQuantizer)")
    assert not result.available and "needs torch ≥ 2.12" in result.reason


def test_missing_flatc_reason_says_how_to_provide_one(monkeypatch):
    def needs_flatc(workdir):
        raise FileNotFoundError(2, "No such file or directory", "flatc")

    monkeypatch.setitem(caps.PROBES, "needs flatc", needs_flatc)
    assert "set FLATC_EXECUTABLE" in caps.run_probe("needs flatc").reason


def test_unknown_probe_name_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown capability probe"):
        caps.run_probe("teleportation")


def test_subprocess_probe_survives_a_dying_process(monkeypatch):
    result = caps._probe_in_subprocess("no such probe at all", timeout=60)
    assert not result.available
    assert "probe process died" in result.reason


@pytest.fixture
def fake_probes(monkeypatch, tmp_path):
    """Probes that record their calls, a private cache and an empty per-process memo."""
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(caps, "_in_process", {})
    calls = []

    def fake(name, timeout):
        calls.append(name)
        return caps.Capability(name, True, "fake")

    monkeypatch.setattr(caps, "_probe_in_subprocess", fake)
    return calls


def _results_file(tmp_path):
    [path] = (tmp_path / "capabilities").glob(f"probes-*/{caps.RESULTS}")
    return path


def test_capabilities_are_cached_on_disk(fake_probes, monkeypatch, tmp_path):
    first = caps.capabilities()
    assert [c.name for c in first] == list(caps.PROBES) and len(fake_probes) == len(caps.PROBES)
    assert len(json.loads(_results_file(tmp_path).read_text())) == len(caps.PROBES)
    monkeypatch.setattr(caps, "_in_process", {})  # a new process
    fake_probes.clear()
    second = caps.capabilities()
    assert second == first and fake_probes == []
    assert "fake" in caps.capability_table(second)


def test_refresh_probes_again_every_time(fake_probes):
    caps.capabilities()
    caps.capabilities()
    assert len(fake_probes) == len(caps.PROBES)  # the second call came from the process memo
    caps.capabilities(refresh=True)
    caps.capabilities(refresh=True)
    assert len(fake_probes) == 3 * len(caps.PROBES)


@pytest.mark.parametrize("garbage", ["", '[{"name": ', "\x00\xff garbled"])
def test_a_garbled_capabilities_file_is_probed_again_with_a_notice(fake_probes, monkeypatch, tmp_path, capfd, garbage):
    caps.capabilities()
    path = _results_file(tmp_path)
    path.write_text(garbage)
    monkeypatch.setattr(caps, "_in_process", {})
    capfd.readouterr()
    again = caps.capabilities()
    [notice] = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert str(path) in notice and "rebuilding" in notice
    assert len(again) == len(caps.PROBES) and len(fake_probes) == 2 * len(caps.PROBES)


def test_a_timed_out_probe_is_not_cached(fake_probes, monkeypatch, tmp_path, capfd):
    def slow(name, timeout):
        fake_probes.append(name)
        return caps.Capability(name, False, f"probe did not finish within {timeout:.0f} s")

    monkeypatch.setattr(caps, "_probe_in_subprocess", slow)
    assert not any(c.available for c in caps.capabilities())
    assert "timed out; these results are kept for this process only" in capfd.readouterr().err
    assert not list(tmp_path.glob("capabilities/probes-*/*"))
    monkeypatch.setattr(caps, "_in_process", {})  # a new process, on a machine that is idle again
    monkeypatch.setattr(caps, "_probe_in_subprocess", lambda name, timeout: caps.Capability(name, True, "ok"))
    assert all(c.available for c in caps.capabilities())


def test_an_unwritable_cache_still_probes(fake_probes, monkeypatch, capfd):
    def unwritable(*args, **kwargs):
        raise caps.cache.CacheError("deitlab cache: /x is not writable")

    monkeypatch.setattr(caps.cache, "get_or_build", unwritable)
    assert len(caps.capabilities()) == len(caps.PROBES)
    assert "/x is not writable (probing without the cache)" in capfd.readouterr().err


def test_is_available_rejects_unknown_names(monkeypatch):
    monkeypatch.setattr(caps, "capabilities", lambda: (caps.Capability("x", True, "ok"),))
    assert caps.is_available("x") is True
    with pytest.raises(KeyError):
        caps.is_available("y")


def test_deitlab_disable_reports_the_named_paths_missing_but_caches_the_truth(fake_probes, monkeypatch, tmp_path):
    monkeypatch.setenv("DEITLAB_DISABLE", "executorch, ONNX export + ONNX Runtime")
    results = {c.name: c for c in caps.capabilities()}
    assert not results["ExecuTorch + XNNPACK"].available
    assert results["ExecuTorch + XNNPACK"].reason == "switched off by DEITLAB_DISABLE"
    assert not results["ONNX export + ONNX Runtime"].available
    assert results["torch.export"].available
    assert all(row["available"] for row in json.loads(_results_file(tmp_path).read_text()))
    monkeypatch.delenv("DEITLAB_DISABLE")
    assert all(c.available for c in caps.capabilities())  # the memo holds the probed truth too


def test_deitlab_disable_rejects_an_unknown_name(monkeypatch):
    monkeypatch.setenv("DEITLAB_DISABLE", "executorch,teleportation")
    with pytest.raises(ValueError, match=r"DEITLAB_DISABLE: unknown name\(s\) \['teleportation'\]"):
        caps.disabled_probes()


def test_deitlab_disable_unset_switches_nothing_off(monkeypatch):
    monkeypatch.delenv("DEITLAB_DISABLE", raising=False)
    assert caps.disabled_probes() == set()


def test_missing_executorch_module_makes_the_section_skip_with_the_probe_reason(monkeypatch, capsys):
    import sys

    # As on a host where ExecuTorch cannot be imported. Submodules that an earlier test in this
    # worker imported would otherwise still be found in sys.modules, so they are hidden too.
    for name in {"executorch", *(m for m in sys.modules if m.startswith("executorch."))}:
        monkeypatch.setitem(sys.modules, name, None)
    missing = caps.run_probe("ExecuTorch + XNNPACK")
    assert not missing.available and missing.reason.startswith("not installed: executorch")
    assert caps.section_runs(missing) is False
    assert capsys.readouterr().out == f"skipped: ExecuTorch + XNNPACK is not available here ({missing.reason})\n"


def test_section_runs_is_silent_when_the_path_works(capsys):
    assert caps.section_runs(caps.Capability("torch.export", True, "ok")) is True
    assert capsys.readouterr().out == ""
