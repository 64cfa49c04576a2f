"""deitlab.measure: the one timer, size unit and fingerprint (no timing assertions)."""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from deitlab import measure
from deitlab.quant import legacy_dynamic_int8


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


# --- timing ------------------------------------------------------------------------------


def test_clock_is_monotonic():
    first = measure.clock()
    assert measure.clock() >= first


def test_fixed_threads_restores_and_rejects_bad_counts():
    before = torch.get_num_threads()
    with measure.fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be a positive integer"), measure.fixed_threads(bad):
            pass
    assert torch.get_num_threads() == before


def test_time_call_counts_warmup_and_repeats_under_inference_mode():
    calls = []

    def fn(x, y):
        calls.append(torch.is_inference_mode_enabled())
        return x + y

    timing = measure.time_call(fn, torch.ones(2), torch.ones(2), repeats=4, warmup=2)
    assert len(calls) == 6 and all(calls)
    assert len(timing.samples_s) == 4 and all(s >= 0 for s in timing.samples_s)
    assert timing.warmup == 2 and timing.device == "cpu" and timing.threads == torch.get_num_threads()


def test_time_call_fixes_threads_for_the_measurement_only():
    before = torch.get_num_threads()
    seen = []
    timing = measure.time_call(lambda: seen.append(torch.get_num_threads()), repeats=2, warmup=1, threads=1)
    assert seen == [1, 1, 1] and timing.threads == 1 and torch.get_num_threads() == before


def test_time_call_synchronises_on_cuda(monkeypatch):
    syncs = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: syncs.append(1))
    timing = measure.time_call(lambda x: x, torch.ones(1), repeats=3, warmup=1, device="cuda")
    assert len(syncs) == 4 and timing.device == "cuda"  # once after warm-up, once per timed call
    measure.time_call(lambda x: x, torch.ones(1), repeats=3, warmup=1)
    assert len(syncs) == 4  # a CPU input is never synchronised


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"repeats": 0}, ValueError, "repeats must be an integer >= 1, got 0"),
        ({"repeats": 2.5}, ValueError, "repeats"),
        ({"warmup": -1}, ValueError, "warmup must be an integer >= 0, got -1"),
        ({"threads": 0}, ValueError, "threads"),
    ],
)
def test_time_call_rejects_bad_arguments(kwargs, error, match):
    calls = []
    with pytest.raises(error, match=match):
        measure.time_call(calls.append, torch.ones(1), **kwargs)
    assert not calls, "nothing runs before the arguments are valid"


def test_time_call_rejects_a_non_callable():
    with pytest.raises(TypeError, match="fn must be callable, got Tensor"):
        measure.time_call(torch.ones(1), torch.ones(1))


def test_timing_summary_and_str():
    timing = measure.Timing((0.001, 0.002, 0.003, 0.004, 0.100), warmup=1, threads=2)
    assert timing.median_ms == pytest.approx(3.0)
    assert timing.p25_ms == pytest.approx(2.0) and timing.p75_ms == pytest.approx(4.0)
    assert timing.iqr_ms == pytest.approx(2.0)
    assert timing.min_ms == pytest.approx(1.0) and timing.max_ms == pytest.approx(100.0)
    assert timing.samples_ms == pytest.approx([1.0, 2.0, 3.0, 4.0, 100.0])
    assert timing.summary() == pytest.approx(
        {"median_ms": 3.0, "p25_ms": 2.0, "p75_ms": 4.0, "iqr_ms": 2.0, "min_ms": 1.0, "max_ms": 100.0}
    )
    text = str(timing)
    assert "3.000 ms median" in text and "5 runs" in text and "2 threads" in text and "cpu" in text


# --- sizes -------------------------------------------------------------------------------


def test_file_size_mb_is_decimal(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1_500_000)
    assert measure.file_size_mb(path) == 1.5
    assert measure.file_size_mb(str(path)) == 1.5
    with pytest.raises(FileNotFoundError, match="missing.bin: no such file"):
        measure.file_size_mb(tmp_path / "missing.bin")
    with pytest.raises(FileNotFoundError, match="no such file"):
        measure.file_size_mb(tmp_path)


def test_saved_size_mb(tmp_path):
    assert measure.saved_size_mb(lambda path: path.write_bytes(b"x" * 250_000)) == 0.25
    with pytest.raises(ValueError, match="wrote no file"):
        measure.saved_size_mb(lambda path: None)
    with pytest.raises(TypeError, match="save must be a callable"):
        measure.saved_size_mb(tmp_path / "f.bin")


def test_state_dict_size_mb_matches_the_file(mlp, tmp_path):
    path = tmp_path / "model.bin"  # torch.save's archive records carry the file's stem: same name, same bytes
    torch.save(mlp.state_dict(), path)
    assert measure.state_dict_size_mb(mlp) == path.stat().st_size / 1e6
    int8, _ = legacy_dynamic_int8(nn.Sequential(nn.Linear(256, 256)))
    assert measure.state_dict_size_mb(int8) < measure.state_dict_size_mb(nn.Sequential(nn.Linear(256, 256))) / 2
    with pytest.raises(TypeError, match="expected an nn.Module, got OrderedDict"):
        measure.state_dict_size_mb(mlp.state_dict())


# --- fingerprints ------------------------------------------------------------------------


def test_fingerprint_is_stable_and_tracks_one_weight(mlp):
    first = measure.model_fingerprint(mlp)
    assert len(first) == 16 and int(first, 16) >= 0
    assert measure.model_fingerprint(mlp) == first
    assert measure.model_fingerprint(copy.deepcopy(mlp)) == first
    with torch.no_grad():
        mlp[2].weight[0, 0] += 1e-3
    assert measure.model_fingerprint(mlp) != first


def test_fingerprint_sees_dtype_shape_and_class():
    torch.manual_seed(0)
    linear = nn.Linear(4, 4)
    assert measure.model_fingerprint(copy.deepcopy(linear).half()) != measure.model_fingerprint(linear)
    assert measure.model_fingerprint(copy.deepcopy(linear).bfloat16())  # no numpy bf16: hashed as raw bytes
    assert measure.model_fingerprint(nn.Sequential(linear)) != measure.model_fingerprint(linear)


def test_fingerprint_of_a_dynamic_int8_model(mlp):
    """Regression: state_dict of quantize_dynamic holds a torch.dtype and packed params (AttributeError before)."""
    int8, _ = legacy_dynamic_int8(mlp)
    first = measure.model_fingerprint(int8)
    assert first == measure.model_fingerprint(int8) == measure.model_fingerprint(legacy_dynamic_int8(mlp)[0])
    assert first != measure.model_fingerprint(mlp)
    with torch.no_grad():
        mlp[2].weight[0, 0] += 0.5
    assert measure.model_fingerprint(legacy_dynamic_int8(mlp)[0]) != first


def test_fingerprint_of_static_per_channel_int8():
    import torch.ao.quantization as tq

    def convert(scale_input: float) -> nn.Module:
        torch.manual_seed(0)
        model = nn.Sequential(tq.QuantStub(), nn.Linear(8, 4), tq.DeQuantStub()).eval()
        model.qconfig = tq.get_default_qconfig("x86")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tq.prepare(model, inplace=True)
            model(torch.randn(16, 8) * scale_input)
            return tq.convert(model)

    a, b = convert(1.0), convert(2.0)  # same weights, other activation range: other scale/zero-point
    assert measure.model_fingerprint(a) == measure.model_fingerprint(convert(1.0))
    assert measure.model_fingerprint(a) != measure.model_fingerprint(b)


def test_fingerprint_of_torchao_int8_tensor_subclasses(mlp):
    pytest.importorskip("torchao")
    from deitlab.quant import torchao_int8

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weight_only, dynamic = torchao_int8(mlp, "weight_only"), torchao_int8(mlp, "dynamic")
        again = torchao_int8(mlp, "weight_only")
    fingerprints = {measure.model_fingerprint(m) for m in (mlp, weight_only, dynamic)}
    assert len(fingerprints) == 3  # same int8 codes, other activation settings: another fingerprint
    assert measure.model_fingerprint(again) == measure.model_fingerprint(weight_only)


def test_fingerprint_is_the_same_in_another_process(mlp):
    code = (
        "import torch; from torch import nn; from deitlab import measure;"
        "from deitlab.quant import legacy_dynamic_int8;"
        "torch.manual_seed(0); m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval();"
        "print(measure.model_fingerprint(m), measure.model_fingerprint(legacy_dynamic_int8(m)[0]))"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True)
    here = [measure.model_fingerprint(mlp), measure.model_fingerprint(legacy_dynamic_int8(mlp)[0])]
    assert out.stdout.split() == here


def test_fingerprint_rejects_a_non_module(mlp):
    with pytest.raises(TypeError, match="expected an nn.Module, got OrderedDict"):
        measure.model_fingerprint(mlp.state_dict())
