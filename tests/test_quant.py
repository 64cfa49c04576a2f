"""Unit tests for deitlab.quant, on exact small tensors and tiny models."""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings

import pytest
import torch
from torch import nn

from deitlab import quant


def small_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def calibration() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(16, 8, generator=generator) for _ in range(3)]


def test_integer_range():
    assert quant.integer_range(8) == (-128, 127)
    assert quant.integer_range(8, symmetric=False) == (0, 255)
    assert quant.integer_range(2) == (-2, 1)
    with pytest.raises(ValueError, match="bits"):
        quant.integer_range(1)


def test_symmetric_per_tensor_exact():
    x = torch.tensor([-3.0, -1.5, 0.0, 1.0, 3.0])
    params = quant.qparams(x, bits=3)
    assert params.scale.item() == 1.0 and params.zero_point.item() == 0
    q = quant.quantize(x, params)
    assert q.tolist() == [-3, -2, 0, 1, 3]  # round half to even: -1.5 → -2
    assert quant.dequantize(q, params).tolist() == [-3.0, -2.0, 0.0, 1.0, 3.0]


def test_asymmetric_zero_point_exact():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0])
    params = quant.qparams(x, bits=2, symmetric=False)
    assert params.scale.item() == 1.0 and params.zero_point.item() == 1
    q = quant.quantize(x, params)
    assert q.tolist() == [0, 1, 2, 3]
    assert quant.dequantize(q, params).tolist() == x.tolist()


def test_per_channel_exact():
    x = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    params = quant.qparams(x, bits=3, axis=0)
    torch.testing.assert_close(params.scale, torch.tensor([2 / 3, 0.5 / 3]))
    q = quant.quantize(x, params)
    assert q.tolist() == [[2, -3], [3, 2]]
    torch.testing.assert_close(quant.dequantize(q, params), torch.tensor([[4 / 3, -2.0], [0.5, 1 / 3]]))


def test_per_channel_beats_per_tensor_when_rows_differ_in_range():
    x = torch.tensor([[100.0, -50.0, 25.0], [0.3, -0.2, 0.1]])
    per_tensor = quant.quantize_dequantize(x, bits=4)
    per_channel = quant.quantize_dequantize(x, bits=4, axis=0)
    assert per_tensor[1].abs().sum() == 0  # small row collapses to zero with one shared scale
    assert quant.sqnr(x[1], per_channel[1]) > quant.sqnr(x[1], per_tensor[1])


def test_rounding_error_is_at_most_half_a_step():
    x = torch.linspace(-1, 1, 101)
    params = quant.qparams(x, bits=8)
    error = (quant.dequantize(quant.quantize(x, params), params) - x).abs().max()
    assert error <= params.scale.item() / 2 + 1e-7


def test_clip_shrinks_the_range_and_saturates():
    x = torch.tensor([-4.0, 0.0, 1.0, 4.0])
    full = quant.qparams(x, bits=3)
    half = quant.qparams(x, bits=3, clip=0.5)
    assert half.scale.item() == pytest.approx(full.scale.item() / 2)
    assert quant.quantize(x, half).tolist() == [-4, 0, 2, 3]  # 4/(2/3) = 6 saturates at 3; -6 at -4


def test_qparams_bad_input():
    with pytest.raises(TypeError, match="floating-point"):
        quant.qparams(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="empty"):
        quant.qparams(torch.tensor([]))
    with pytest.raises(ValueError, match="axis 2 out of range"):
        quant.qparams(torch.ones(2, 2), axis=2)
    with pytest.raises(ValueError, match="clip"):
        quant.qparams(torch.ones(3), clip=1.5)
    with pytest.raises(TypeError, match="integer tensor"):
        quant.dequantize(torch.ones(3), quant.qparams(torch.ones(3)))


def test_fake_quantize_range_formula_exact():
    x = torch.tensor([-1.0, -0.3, 0.26, 0.9, 2.0])
    # s/2^(b-1) · clamp(round(2^(b-1)·x/s), -2^(b-1), 2^(b-1)-1) with s=1, b=2
    assert quant.fake_quantize_range(x, 1.0, 2).tolist() == [-1.0, -0.5, 0.5, 0.5, 0.5]
    assert quant.fake_quantize_range(x, 2.0, 3).tolist() == [-1.0, -0.5, 0.5, 1.0, 1.5]
    # the same grid given by its step size: scale = s / 2^(b-1)
    assert torch.equal(quant.fake_quantize_range(x, 2.0, 3), quant.fake_quantize(x, 0.5, 3))


def test_fake_quantize_range_per_channel_and_levels():
    x = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    s = x.abs().amax(dim=1, keepdim=True)
    y = quant.fake_quantize_range(x, s, 3)
    for row in range(4):
        assert len(torch.unique(y[row])) <= 2**3
        assert y[row].abs().max() <= s[row] + 1e-6


def test_fake_quantize_matches_torch_forward_and_gradient():
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    y = quant.fake_quantize(x, 0.25, 4)
    y.sum().backward()
    ref_x = x.detach().clone().requires_grad_()
    ref = torch.fake_quantize_per_tensor_affine(ref_x, 0.25, 0, -8, 7)
    ref.sum().backward()
    assert torch.equal(y, ref)  # bit-exact forward values, not only close
    torch.testing.assert_close(x.grad, ref_x.grad)
    assert y.unique().numel() <= 16
    assert x.grad[x.detach().abs() < 1.5].eq(1).all() and x.grad[x.detach() > 2].eq(0).all()


def test_fake_quantize_per_channel_step():
    x = torch.tensor([[0.3, -0.7], [3.0, -7.0]])
    y = quant.fake_quantize(x, torch.tensor([[0.5], [5.0]]), 8)
    assert y.tolist() == [[0.5, -0.5], [5.0, -5.0]]


@pytest.mark.parametrize(
    ("fn", "x", "scale", "bits", "error", "match"),
    [
        (quant.fake_quantize, torch.ones(3), 0.0, 8, ValueError, "scale"),
        (quant.fake_quantize, torch.ones(3), torch.tensor([0.1, -0.1, 0.1]), 8, ValueError, "scale"),
        (quant.fake_quantize, torch.ones(3), 0.1, 1, ValueError, "bits"),
        (quant.fake_quantize, torch.ones(3, dtype=torch.int64), 0.1, 8, TypeError, "floating-point"),
        (quant.fake_quantize, [1.0, 2.0], 0.1, 8, TypeError, "floating-point"),
        (quant.fake_quantize_range, torch.ones(3), 0.0, 8, ValueError, "clipping range"),
        (quant.fake_quantize_range, torch.ones(3), 1.0, 1, ValueError, "bits"),
        (quant.fake_quantize_range, [1.0, 2.0], 1.0, 8, TypeError, "floating-point"),
    ],
)
def test_fake_quantize_bad_input(fn, x, scale, bits, error, match):
    with pytest.raises(error, match=match):
        fn(x, scale, bits)


def test_mse_and_sqnr_exact():
    x, x_hat = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])
    assert quant.mse(x, x_hat) == 0.5
    assert quant.sqnr(x, x_hat) == pytest.approx(10 * math.log10(2))
    assert quant.sqnr(x, x) == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        quant.sqnr(x, torch.ones(3))
    with pytest.raises(ValueError, match="shapes differ"):
        quant.mse(x, torch.ones(3))


def test_scripted_size_mb(tmp_path):
    model = nn.Sequential(nn.Linear(256, 256))
    int8, _ = quant.legacy_dynamic_int8(model)
    fp32_mb = quant.scripted_size_mb(model)
    assert fp32_mb >= 256 * 257 * 4 / 1e6
    assert quant.scripted_size_mb(int8) / fp32_mb < 0.4
    kept = tmp_path / "m.pt"
    size = quant.scripted_size_mb(model, keep=kept)
    assert kept.exists() and size == kept.stat().st_size / 1e6


def test_legacy_dynamic_int8_swaps_linears_and_records_warnings():
    model = small_mlp()
    quantized, caught = quant.legacy_dynamic_int8(model)
    assert quant.module_types(quantized) == {"torch.ao.nn.quantized.dynamic.Linear": 2, "torch.nn.ReLU": 1}
    assert quant.module_types(model) == {"torch.nn.Linear": 2, "torch.nn.ReLU": 1}  # original untouched
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    x = calibration()[0]
    with torch.inference_mode():
        assert quant.sqnr(model(x), quantized(x)) > 25
    with pytest.raises(TypeError, match="nn.Module"):
        quant.legacy_dynamic_int8("model")


def test_linear_names():
    assert quant.linear_names(small_mlp()) == ["0", "2"]


@pytest.mark.parametrize("variant", quant.TORCHAO_VARIANTS)
def test_torchao_int8(variant):
    model = small_mlp()
    quantized = quant.torchao_int8(model, variant, skip={"2"})
    assert type(quantized[2].weight) is nn.Parameter
    assert type(quantized[0].weight) is not nn.Parameter
    assert type(model[0].weight) is nn.Parameter  # a copy was quantized
    x = calibration()[0]
    with torch.inference_mode():
        assert quant.sqnr(model(x), quantized(x)) > 25


@pytest.mark.parametrize("variant", quant.TORCHAO_VARIANTS)
def test_torchao_config_asks_for_version_2_where_the_default_is_older(variant, monkeypatch):
    tq = pytest.importorskip("torchao.quantization")
    name = {"dynamic": "Int8DynamicActivationInt8WeightConfig", "weight_only": "Int8WeightOnlyConfig"}[variant]

    @dataclasses.dataclass
    class Version1Default(getattr(tq, name)):  # torchao 0.17's default: small Linears stay fp32
        version: int = 1

    monkeypatch.setattr(tq, name, Version1Default)
    assert quant.torchao_config(variant).version == 2


def test_torchao_config_without_a_version_field_uses_the_default(monkeypatch):
    tq = pytest.importorskip("torchao.quantization")

    @dataclasses.dataclass
    class Unversioned:
        layout: str = "plain"

    monkeypatch.setattr(tq, "Int8WeightOnlyConfig", Unversioned)
    assert quant.torchao_config("weight_only") == Unversioned()


def test_torchao_bad_variant():
    with pytest.raises(ValueError, match="unknown torchao variant"):
        quant.torchao_config("int4")


def test_activation_ranges_exact():
    model = small_mlp()
    batches = calibration()
    ranges = quant.activation_ranges(model, [(b, None) for b in batches], names=["0"])
    assert ranges == {"0": max(b.abs().max().item() for b in batches)}
    with pytest.raises(ValueError, match="no batches"):
        quant.activation_ranges(model, [])


def test_fake_quant_model_levels_and_hooks():
    model = small_mlp()
    fake = quant.fake_quant_model(model, bits=2, names=["0"])
    for row in fake[0].weight:
        assert len(torch.unique(row)) <= 4
    assert torch.equal(fake[2].weight, model[2].weight)
    assert not torch.equal(fake[0].weight, model[0].weight)
    ranges = quant.activation_ranges(model, calibration())
    x = calibration()[0]
    with torch.inference_mode():
        snr8 = quant.sqnr(model(x), quant.fake_quant_model(model, 8, act_ranges=ranges)(x))
        snr3 = quant.sqnr(model(x), quant.fake_quant_model(model, 3, act_ranges=ranges)(x))
    assert snr8 > snr3 + 10
    with pytest.raises(KeyError, match="no calibrated activation range"):
        quant.fake_quant_model(model, 8, act_ranges={"0": 1.0})


def test_layer_sensitivity_exact():
    scores = {"a": 0.9, "b": 0.5}
    drops = quant.layer_sensitivity(["a", "b"], lambda name: name, lambda m: scores[m], baseline=1.0, progress=False)
    assert drops == pytest.approx({"a": 0.1, "b": 0.5})
    with pytest.raises(ValueError, match="no layer names"):
        quant.layer_sensitivity([], str, float, 1.0)


def test_check_per_channel_int8():
    from deitlab.checks import CheckFailed, check_per_channel_int8

    def right(w):
        scales = w.abs().amax(dim=1, keepdim=True) / 127
        return torch.clamp(torch.round(w / scales), -128, 127).to(torch.int8), scales

    def per_tensor(w):
        scale = w.abs().max() / 127
        return torch.round(w / scale).to(torch.int8), scale.repeat(w.shape[0])

    assert "04.3" in repr(check_per_channel_int8(right))
    with pytest.raises(CheckFailed, match="values differ"):
        check_per_channel_int8(per_tensor)
    with pytest.raises(CheckFailed, match="integer tensor"):
        check_per_channel_int8(lambda w: (right(w)[0].float(), right(w)[1]))
    with pytest.raises(CheckFailed, match="returned None"):
        check_per_channel_int8(lambda w: None)


def test_baseline_and_compare_exact():
    model = small_mlp()
    x = calibration()[0]
    reference = quant.baseline(model, x)
    same = quant.compare(reference, copy.deepcopy(model))
    assert same.sqnr_db == math.inf and same.max_abs_diff == 0 and same.top1_agreement == 1 and same.n == 16
    assert same.size_ratio == pytest.approx(1.0)
    int8, _ = quant.legacy_dynamic_int8(model)
    report = quant.compare(reference, int8)
    assert 20 < report.sqnr_db < math.inf and report.size_mb == pytest.approx(report.size_ratio * reference.size_mb)
    assert "of fp32" in str(report) and "top-1 agreement" in str(report)


def test_baseline_and_compare_bad_input():
    model = small_mlp()
    with pytest.raises(TypeError, match="inputs"):
        quant.baseline(model, torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="nn.Module"):
        quant.baseline("model", calibration()[0])
    with pytest.raises(ValueError, match="N×C logits"):
        quant.baseline(nn.Flatten(0), calibration()[0])
    reference = quant.baseline(model, calibration()[0])
    with pytest.raises(TypeError, match="Baseline"):
        quant.compare(model, model)
    with pytest.raises(ValueError, match="differ in shape"):
        quant.compare(reference, nn.Sequential(nn.Linear(8, 3)))


def test_cached_result_computes_once_per_key_and_code():
    calls = []

    def compute():
        calls.append(1)
        return {"8": 0.5, "layers": [1.0, 2.0]}

    first = quant.cached_result("unit", {"model": "m"}, compute)
    again = quant.cached_result("unit", {"model": "m"}, compute)
    assert first == again == {"8": 0.5, "layers": [1.0, 2.0]} and len(calls) == 1
    quant.cached_result("unit", {"model": "other"}, compute)
    assert len(calls) == 2

    def edited():
        calls.append(1)
        return {"8": 0.25}

    assert quant.cached_result("unit", {"model": "m"}, edited) == {"8": 0.25} and len(calls) == 3


def test_cached_result_bad_input():
    with pytest.raises(TypeError, match="compute"):
        quant.cached_result("unit", {}, 3)
    with pytest.raises(TypeError, match="key"):
        quant.cached_result("unit", ["m"], dict)


def test_check_dynamic_mlp_only():
    from deitlab.checks import CheckFailed, check_dynamic_mlp_only
    from deitlab.models import tiny_deit

    model = tiny_deit(distilled=True).eval()
    mlp = {name for name in quant.linear_names(model) if ".mlp." in name}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        right = torch.ao.quantization.quantize_dynamic(model, mlp, dtype=torch.qint8)
        everything = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        float16 = torch.ao.quantization.quantize_dynamic(model, mlp, dtype=torch.float16)
    assert "04.1" in repr(check_dynamic_mlp_only(model, right))
    with pytest.raises(CheckFailed, match="quantized too"):
        check_dynamic_mlp_only(model, everything)
    with pytest.raises(CheckFailed, match="still Linear"):
        check_dynamic_mlp_only(model, copy.deepcopy(model))
    with pytest.raises(CheckFailed, match="qint8"):
        check_dynamic_mlp_only(model, float16)
    with pytest.raises(CheckFailed, match="the model quantize_dynamic returned"):
        check_dynamic_mlp_only(model, None)


def _integer_linear(q_x, s_x, z_x, q_w, s_w, bias, s_y, z_y, shift_codes=False):
    acc = (q_x.to(torch.int32) - z_x) @ q_w.to(torch.int32).T
    q_b = torch.round(bias.double() / (s_x * s_w)).to(torch.int32)
    codes = torch.round((acc + q_b) * (s_x * s_w / s_y)) + z_y
    return torch.clamp(codes + (2 if shift_codes else 0), 0, 255).to(torch.uint8)


def test_check_integer_linear():
    from deitlab.checks import CheckFailed, check_integer_linear

    assert "04.2" in repr(check_integer_linear(_integer_linear))

    def uint8_wraps(q_x, s_x, z_x, q_w, s_w, bias, s_y, z_y):
        return _integer_linear((q_x - z_x).to(torch.int32) + z_x, s_x, z_x, q_w, s_w, bias, s_y, z_y)

    with pytest.raises(CheckFailed, match="torch.int32"):
        check_integer_linear(uint8_wraps)
    with pytest.raises(CheckFailed, match="differ from torch's by up to 2"):
        check_integer_linear(lambda **kw: _integer_linear(**kw, shift_codes=True))
    with pytest.raises(CheckFailed, match="integer codes"):
        check_integer_linear(lambda **kw: _integer_linear(**kw).float())
    with pytest.raises(CheckFailed, match="shape"):
        check_integer_linear(lambda **kw: _integer_linear(**kw)[:1])
    with pytest.raises(CheckFailed, match="returned None"):
        check_integer_linear(lambda **kw: None)


def test_check_integer_linear_counts_exact_codes():
    from deitlab.checks import CheckFailed, check_integer_linear

    def floor_instead_of_round(q_x, s_x, z_x, q_w, s_w, bias, s_y, z_y):
        acc = (q_x.to(torch.int32) - z_x) @ q_w.to(torch.int32).T
        q_b = torch.round(bias.double() / (s_x * s_w)).to(torch.int32)
        return torch.clamp(torch.floor((acc + q_b) * (s_x * s_w / s_y)) + z_y, 0, 255).to(torch.uint8)

    with pytest.raises(CheckFailed, match="identical"):
        check_integer_linear(floor_instead_of_round)
