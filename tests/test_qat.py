"""Unit tests for deitlab.qat and the notebook-05 self-checks (tiny models, CPU, seconds)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deitlab import qat
from deitlab.checks import CheckFailed, check_fake_quant, check_fusion_groups, check_partial_quantization
from deitlab.measure import state_dict_size_mb
from deitlab.models import SmallCNN

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(width=4).eval()


@pytest.fixture
def loader() -> DataLoader:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,)))
    return DataLoader(data, batch_size=8)


# --- eager mode --------------------------------------------------------------------


def test_fusion_groups_of_small_cnn(model):
    groups = qat.fusion_groups(model)
    assert groups == [[f"block{i}.conv", f"block{i}.bn", f"block{i}.relu"] for i in (1, 2, 3)]


def test_fusion_groups_rejects_model_without_blocks():
    with pytest.raises(ValueError, match="no ConvBNReLU"):
        qat.fusion_groups(nn.Linear(2, 2))


def test_eager_qconfig_engines():
    x86 = qat.eager_qconfig("x86")
    assert x86.weight().qscheme == torch.per_channel_symmetric
    assert torch.backends.quantized.engine == "x86"
    ptq = qat.eager_qconfig("x86", qat=False)
    assert not isinstance(ptq.activation(), torch.ao.quantization.FakeQuantizeBase)
    with pytest.raises(ValueError, match="unknown quantization engine"):
        qat.eager_qconfig("tpu")


def test_lowbit_qconfig_ranges():
    config = qat.lowbit_qconfig(4, 8, per_channel=False)
    weight, activation = config.weight(), config.activation()
    assert (weight.quant_min, weight.quant_max) == (-8, 7)
    assert weight.qscheme == torch.per_tensor_symmetric
    assert (activation.quant_min, activation.quant_max) == (0, 255)
    with pytest.raises(ValueError, match="weight_bits"):
        qat.lowbit_qconfig(1)
    with pytest.raises(ValueError, match="activation_bits"):
        qat.lowbit_qconfig(4, 9)


def test_prepare_eager_qat_inserts_fake_quant_and_keeps_original(model):
    prepared = qat.prepare_eager(model, qat.eager_qconfig("x86"))
    assert isinstance(prepared, qat.QuantizableCNN)
    assert prepared.training
    fake_quants = [m for m in prepared.modules() if isinstance(m, torch.ao.quantization.FakeQuantizeBase)]
    assert len(fake_quants) >= 7  # 4 weights + activations after the stub, 3 blocks and fc
    assert isinstance(model.block1.bn, nn.BatchNorm2d), "the original model must not be fused"
    out = prepared(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)


def test_prepare_eager_bad_input(model):
    with pytest.raises(TypeError, match="QConfig"):
        qat.prepare_eager(model, "x86")
    with pytest.raises(ValueError, match="no block named 'block9'"):
        qat.prepare_eager(model, qat.eager_qconfig("x86"), float_blocks=["block9"])


def test_ptq_calibrate_convert_and_partial_quantization(model, loader):
    prepared = qat.calibrate(qat.prepare_eager(model, qat.eager_qconfig("x86", qat=False), qat=False), loader, 2)
    int8 = qat.convert_eager(prepared)
    names = qat.quantized_module_names(int8)
    assert {"model.block1.conv", "model.fc"} <= set(names)
    x = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        assert int8(x).shape == (4, 10)
    partial = qat.prepare_eager(model, qat.eager_qconfig("x86", qat=False), qat=False, float_blocks=["block1"])
    assert isinstance(partial.model.block1, qat.FloatIsland)
    converted = qat.convert_eager(qat.calibrate(partial, loader, 1))
    assert "model.block1.block.conv" not in qat.quantized_module_names(converted)
    assert "model.block2.conv" in qat.quantized_module_names(converted)
    with torch.inference_mode():
        assert converted(x).shape == (4, 10)


def test_calibrate_and_convert_reject_bad_input(model, loader):
    with pytest.raises(ValueError, match="batches"):
        qat.calibrate(model, loader, 0)
    with pytest.raises(ValueError, match="not prepared"):
        qat.convert_eager(model)


def test_freeze_after_freezes_observers_and_bn(model):
    prepared = qat.prepare_eager(model, qat.eager_qconfig("x86"))
    hook = qat.freeze_after(2)
    hook(prepared, 0)
    assert prepared.quant.activation_post_process.observer_enabled.item() == 1
    hook(prepared, 1)
    assert prepared.quant.activation_post_process.observer_enabled.item() == 0
    assert prepared.model.block1.conv.freeze_bn
    with pytest.raises(ValueError, match="epochs"):
        qat.freeze_after(0)


def test_state_dict_of_prepared_model_round_trips(model, loader):
    """cached_training reloads a prepared model from its state dict."""
    prepared = qat.prepare_eager(model, qat.eager_qconfig("x86"))
    prepared(torch.randn(4, 1, 28, 28))
    fresh = qat.prepare_eager(model, qat.eager_qconfig("x86"))
    fresh.load_state_dict(prepared.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(fresh.eval()(x), prepared.eval()(x))


# --- PT2E --------------------------------------------------------------------------


def test_pt2e_prepare_train_convert(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = qat.prepare_pt2e_qat(model, (torch.randn(2, 1, 28, 28),))
        assert prepared.train() is prepared  # train()/eval() return the module, as nn.Module's do
        loss = prepared(torch.randn(5, 1, 28, 28)).sum()  # another batch size works (dynamic batch)
        loss.backward()
        assert prepared.eval() is prepared
        converted = qat.convert_pt2e_model(prepared)
    assert all(v.dtype != torch.float32 for k, v in converted.state_dict().items() if k.endswith("conv.weight"))
    assert not any(k.startswith("block1.bn.") for k in converted.state_dict()), "unused BN statistics are dropped"
    ops = {str(node.target) for node in converted.graph.nodes}
    assert any("quantize_per_tensor" in op for op in ops)
    with torch.inference_mode():
        assert converted.eval()(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_pt2e_bad_input(model):
    with pytest.raises(TypeError, match="tuple"):
        qat.prepare_pt2e_qat(model, torch.randn(2, 1, 28, 28))
    with pytest.raises(TypeError, match="graph module"):
        qat.convert_pt2e_model(model)


# --- measurements ------------------------------------------------------------------


def test_converted_int8_state_dict_is_smaller(model, loader):
    int8 = qat.convert_eager(qat.calibrate(qat.prepare_eager(model, qat.eager_qconfig("x86", False), False), loader))
    assert 0 < state_dict_size_mb(int8) < state_dict_size_mb(model)


# --- self-checks -------------------------------------------------------------------


def test_check_fake_quant():
    def good(x, scale, bits):
        return torch.clamp(torch.round(x / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) * scale

    assert "05.1" in repr(check_fake_quant(good))
    with pytest.raises(CheckFailed, match="None"):
        check_fake_quant(lambda x, s, b: None)
    with pytest.raises(CheckFailed, match="values differ"):
        check_fake_quant(lambda x, s, b: x)  # no rounding
    with pytest.raises(CheckFailed, match="distinct values"):
        check_fake_quant(lambda x, s, b: x if b < 8 else torch.round(x / s) * s)  # 3 bits, 97 levels
    with pytest.raises(CheckFailed):
        check_fake_quant(lambda x, s, b: torch.round(x / s) * s)  # no clamping


def test_check_fusion_groups(model):
    assert "05.2" in repr(check_fusion_groups(qat.fusion_groups(model), model))
    with pytest.raises(CheckFailed, match="3 Conv-BN-ReLU"):
        check_fusion_groups([["block1.conv", "block1.bn", "block1.relu"]], model)
    with pytest.raises(CheckFailed, match="not module names"):
        check_fusion_groups([["conv1", "bn1", "relu1"]] * 3, model)
    with pytest.raises(CheckFailed, match="order"):
        check_fusion_groups([[f"block{i}.bn", f"block{i}.conv", f"block{i}.relu"] for i in (1, 2, 3)], model)


def test_check_partial_quantization(model, loader):
    config = qat.eager_qconfig("x86", qat=False)
    partial = qat.convert_eager(qat.calibrate(qat.prepare_eager(model, config, False, float_blocks=["fc"]), loader))
    assert "05.3" in repr(check_partial_quantization(partial))
    full = qat.convert_eager(qat.calibrate(qat.prepare_eager(model, config, False), loader))
    with pytest.raises(CheckFailed, match="was quantized"):
        check_partial_quantization(full)
    with pytest.raises(CheckFailed, match="quantized convolution"):
        check_partial_quantization(model)
