"""Unit tests for deitlab.qat and the notebook-05 self-checks (tiny models, CPU, seconds)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.ao.quantization as tq
from torch import nn

from deitlab import qat
from deitlab.checks import CheckFailed, check_fake_quant, check_qat_stub_placement
from deitlab.measure import state_dict_size_mb
from deitlab.models import SmallCNN

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

FUSION_LIST = [[f"block{i}.conv", f"block{i}.bn", f"block{i}.relu"] for i in (1, 2, 3)]


class StubbedCNN(SmallCNN):
    """SmallCNN with QuantStub/DeQuantStub; ``float_head`` dequantizes before ``fc``."""

    def __init__(self, float_head: bool) -> None:
        super().__init__(width=4)
        self.float_head = float_head
        self.quant = tq.QuantStub()
        self.dequant = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.pool3(self.block3(self.pool2(self.block2(self.pool1(self.block1(self.quant(x))))))))
        return self.fc(self.dequant(x)) if self.float_head else self.dequant(self.fc(x))


def prepared_stubbed(float_head: bool, qconfig: tq.QConfig, fc_float: bool) -> nn.Module:
    torch.manual_seed(0)
    model = StubbedCNN(float_head).train()
    tq.fuse_modules_qat(model, FUSION_LIST, inplace=True)
    torch.backends.quantized.engine = "x86"
    model.qconfig = qconfig
    if fc_float:
        model.fc.qconfig = None
    prepared = tq.prepare_qat(model)
    prepared(torch.randn(8, 1, 28, 28))  # observers see one batch
    return prepared


def converted(prepared: nn.Module) -> nn.Module:
    return tq.convert(copy.deepcopy(prepared).eval())


# --- lowbit_qconfig, quantized_module_names ----------------------------------------------


def test_lowbit_qconfig_ranges():
    config = qat.lowbit_qconfig(4, 8, per_channel=False)
    weight, activation = config.weight(), config.activation()
    assert (weight.quant_min, weight.quant_max) == (-8, 7)
    assert weight.qscheme == torch.per_tensor_symmetric
    assert (activation.quant_min, activation.quant_max) == (0, 255)
    assert qat.lowbit_qconfig(2).weight().qscheme == torch.per_channel_symmetric
    with pytest.raises(ValueError, match="weight_bits"):
        qat.lowbit_qconfig(1)
    with pytest.raises(ValueError, match="activation_bits"):
        qat.lowbit_qconfig(4, 9)


def test_quantized_module_names_lists_int8_modules_only():
    int8 = converted(prepared_stubbed(False, tq.get_default_qat_qconfig("x86"), fc_float=False))
    names = qat.quantized_module_names(int8)
    assert names["block1.conv"] == "ConvReLU2d" and names["fc"] == "Linear" and names["quant"] == "Quantize"
    assert "pool1" not in names
    assert qat.quantized_module_names(SmallCNN(width=4)) == {}


# --- drop_unread_weights -----------------------------------------------------------------


class WithSpare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 2)
        self.spare = nn.Linear(1000, 1000)  # never called in forward
        self.register_buffer("spare_stats", torch.zeros(1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def test_drop_unread_weights_removes_what_the_graph_never_reads():
    graph = torch.fx.symbolic_trace(WithSpare())
    x = torch.randn(3, 4)
    before = graph(x)
    assert qat.drop_unread_weights(graph) is graph
    assert set(graph.state_dict()) == {"used.weight", "used.bias"}
    torch.testing.assert_close(graph(x), before)
    assert state_dict_size_mb(graph) < 0.01


def test_drop_unread_weights_rejects_plain_modules():
    with pytest.raises(TypeError, match="GraphModule"):
        qat.drop_unread_weights(nn.Linear(2, 2))


# --- TrainableGraph ------------------------------------------------------------------------


def test_trainable_graph_switches_exported_batchnorm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    graph = torch.export.export(model, (torch.randn(4, 1, 8, 8),)).module()
    wrapped = qat.TrainableGraph(graph)
    x = torch.randn(4, 1, 8, 8) * 3 + 1
    assert wrapped.train() is wrapped and wrapped.training
    wrapped(x)  # training mode: batch statistics, running statistics updated
    assert not torch.equal(graph.state_dict()["1.running_mean"], torch.zeros(2))
    assert wrapped.eval() is wrapped and not wrapped.training
    model.eval()
    model.load_state_dict({k: v for k, v in graph.state_dict().items()}, strict=False)
    torch.testing.assert_close(wrapped(x), model(x))  # eval mode: running statistics, like the eager model


def test_trainable_graph_rejects_plain_modules():
    with pytest.raises(TypeError, match="GraphModule"):
        qat.TrainableGraph(nn.Linear(2, 2))


# --- the two caches -----------------------------------------------------------------------


def test_cached_exported_program_builds_once_and_reloads():
    calls = []
    model = nn.Linear(3, 2).eval()
    x = torch.randn(4, 3)

    def export() -> torch.export.ExportedProgram:
        calls.append(1)
        return torch.export.export(model, (x,))

    first = qat.cached_exported_program("tiny", {"v": 1}, export)
    second = qat.cached_exported_program("tiny", {"v": 1}, export)
    assert len(calls) == 1
    torch.testing.assert_close(second(x), model(x))
    torch.testing.assert_close(first(x), second(x))
    qat.cached_exported_program("tiny", {"v": 1}, export, rebuild=True)
    assert len(calls) == 2


def test_cached_exported_program_rejects_a_module():
    with pytest.raises(TypeError, match="ExportedProgram"):
        qat.cached_exported_program("bad", {"v": 1}, lambda: nn.Linear(2, 2))


def test_cached_numbers_computes_once_per_key():
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"PTQ": {"8": 97.5}, "QAT": {"8": 98.0}}

    assert qat.cached_numbers("sweep", {"bits": [8]}, compute) == {"PTQ": {"8": 97.5}, "QAT": {"8": 98.0}}
    assert qat.cached_numbers("sweep", {"bits": [8]}, compute)["QAT"]["8"] == 98.0
    assert len(calls) == 1
    qat.cached_numbers("sweep", {"bits": [4]}, compute)
    assert len(calls) == 2
    with pytest.raises(TypeError, match="must return a dict"):
        qat.cached_numbers("bad", {"v": 1}, lambda: [1, 2])


# --- self-checks --------------------------------------------------------------------------


def good_fake_quant(x, scale, zero_point, bits):
    shifted = torch.round(x / scale) + zero_point
    y = (shifted.clamp(0, 2**bits - 1) - zero_point) * scale
    inside = (shifted >= 0) & (shifted <= 2**bits - 1)
    return torch.where(inside, x + (y - x).detach(), y.detach())


def test_check_fake_quant():
    assert "05.1" in repr(check_fake_quant(good_fake_quant))
    with pytest.raises(CheckFailed, match="None"):
        check_fake_quant(lambda x, s, z, b: None)
    with pytest.raises(CheckFailed, match="values differ"):
        check_fake_quant(lambda x, s, z, b: x)  # no rounding
    with pytest.raises(CheckFailed, match="values differ"):  # zero-point ignored
        check_fake_quant(lambda x, s, z, b: good_fake_quant(x, s, 0, b))
    with pytest.raises(CheckFailed, match="no gradient"):
        check_fake_quant(lambda x, s, z, b: good_fake_quant(x, s, z, b).detach())
    with pytest.raises(CheckFailed, match="gradients differ"):  # gradient 1 everywhere, also where clipped
        check_fake_quant(lambda x, s, z, b: x + (good_fake_quant(x, s, z, b) - x).detach())


def test_check_qat_stub_placement_accepts_the_solution():
    prepared = prepared_stubbed(True, tq.get_default_qat_qconfig("x86"), fc_float=True)
    assert "05.2" in repr(check_qat_stub_placement(prepared, converted(prepared)))


def test_check_qat_stub_placement_catches_a_post_training_qconfig():
    prepared = prepared_stubbed(True, tq.get_default_qconfig("x86"), fc_float=True)
    with pytest.raises(CheckFailed, match="get_default_qat_qconfig"):
        check_qat_stub_placement(prepared, converted(prepared))


@pytest.mark.parametrize(
    ("stub_before_fc", "fc_float", "hint"),
    [(False, False, "qconfig = None"), (False, True, "DeQuantStub before")],
    ids=["quantized head", "misplaced DeQuantStub"],
)
def test_check_qat_stub_placement_catches_a_wrong_head(stub_before_fc, fc_float, hint):
    prepared = prepared_stubbed(stub_before_fc, tq.get_default_qat_qconfig("x86"), fc_float=fc_float)
    with pytest.raises(CheckFailed, match=hint):
        check_qat_stub_placement(prepared, converted(prepared))


def test_check_qat_stub_placement_bad_input():
    prepared = prepared_stubbed(True, tq.get_default_qat_qconfig("x86"), fc_float=True)
    with pytest.raises(CheckFailed, match="prepared model"):
        check_qat_stub_placement(None, converted(prepared))
    with pytest.raises(CheckFailed, match="copy"):
        check_qat_stub_placement(prepared, prepared)
    with pytest.raises(CheckFailed, match="3 int8 convolutions"):
        check_qat_stub_placement(prepared, copy.deepcopy(prepared))
