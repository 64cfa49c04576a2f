"""Device logic on a CPU-only machine: explicit devices, the override, a fake CUDA GPU and a fake Apple MPS."""

import pytest
import torch
from torch import nn

from deitlab import device as dev
from deitlab import export, quant


@pytest.fixture
def no_accelerator(monkeypatch):
    """A machine with neither CUDA nor MPS, and no override."""
    monkeypatch.delenv(dev.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch, no_accelerator):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake T4")


@pytest.fixture
def fake_mps(monkeypatch, no_accelerator):
    monkeypatch.setattr(dev, "mps_available", lambda: True)


def test_cpu_when_there_is_no_accelerator(no_accelerator):
    assert dev.default_device() == torch.device("cpu")


def test_cuda_first_then_mps(fake_cuda, monkeypatch):
    assert dev.default_device() == torch.device("cuda")
    monkeypatch.setattr(dev, "mps_available", lambda: True)
    assert dev.default_device() == torch.device("cuda")


def test_mps_when_there_is_no_cuda(fake_mps):
    assert dev.default_device() == torch.device("mps")


def test_argument_and_environment_override_the_choice(fake_mps, monkeypatch):
    assert dev.default_device("cpu") == torch.device("cpu")
    assert dev.default_device(torch.device("meta")) == torch.device("meta")
    monkeypatch.setenv(dev.DEVICE_ENV, "cpu")
    assert dev.default_device() == torch.device("cpu")
    assert dev.default_device("mps") == torch.device("mps")  # the argument wins over the variable


@pytest.mark.parametrize(
    ("choice", "message"),
    [("gpu", "is not a device"), ("cuda", "no CUDA GPU"), ("cuda:1", "no CUDA GPU"), ("mps", "MPS is not available")],
)
def test_a_device_that_is_not_here_is_one_line(no_accelerator, choice, message):
    with pytest.raises(ValueError, match=f"device argument: .*{message}"):
        dev.default_device(choice)


def test_a_bad_override_names_the_variable(no_accelerator, monkeypatch):
    monkeypatch.setenv(dev.DEVICE_ENV, "tpu-please")
    with pytest.raises(ValueError, match=f"^{dev.DEVICE_ENV}: 'tpu-please' is not a device"):
        dev.default_device()


def test_describe_says_where_work_runs(fake_cuda):
    assert dev.describe(torch.device("cuda")) == "CUDA GPU (Fake T4)"
    assert dev.describe(torch.device("mps")) == "Apple MPS GPU"
    assert dev.describe(torch.device("cpu")) == "CPU"


def test_module_device_reads_parameters_or_buffers():
    assert dev.module_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")
    assert dev.module_device(nn.BatchNorm1d(2, affine=False, device="meta")) == torch.device("meta")  # buffers only
    assert dev.module_device(nn.ReLU()) == torch.device("cpu")


@pytest.fixture
def on_fake_gpu(monkeypatch):
    """Every model looks like it sits on cuda:0 (they stay on the CPU, so the CPU copy can be made)."""
    monkeypatch.setattr(dev, "module_device", lambda model: torch.device("cuda:0"))


def test_cpu_only_leaves_a_cpu_model_alone(capsys):
    model = nn.Linear(2, 2)
    assert dev.cpu_only(model, "step") is model
    assert capsys.readouterr().out == ""


def test_cpu_only_copies_or_moves_a_gpu_model_and_says_so(on_fake_gpu, capsys):
    model = nn.Linear(2, 2)
    copied = dev.cpu_only(model, "int8 kernels")
    assert copied is not model and torch.equal(copied.weight, model.weight)
    assert capsys.readouterr().out == (
        "int8 kernels runs on the CPU only: it uses a CPU copy of the model (the model stays on cuda:0)\n"
    )
    assert dev.cpu_only(model, "int8 kernels", inplace=True) is model
    assert "the model moves from cuda:0 to the CPU" in capsys.readouterr().out


def test_int8_helpers_work_on_a_cpu_copy_of_a_gpu_model(on_fake_gpu, capsys):
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    quantized, _ = quant.legacy_dynamic_int8(model)
    assert "eager int8 (torch.ao) runs on the CPU only" in capsys.readouterr().out
    assert type(model[0]) is nn.Linear and type(quantized[0]) is not nn.Linear  # the original is untouched
    torchao = quant.torchao_int8(model)
    assert "torchao int8 runs on the CPU only" in capsys.readouterr().out and torchao is not model


def test_exports_say_they_use_a_cpu_copy(on_fake_gpu, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(export, "unavailable", lambda kind, capability: None)  # no capability probes
    model = nn.Sequential(nn.Conv2d(3, 4, 4, stride=4), nn.Flatten(), nn.Linear(4 * 2 * 2, 3)).eval()
    artifact = export.export_torchscript(model, torch.randn(2, 3, 8, 8), method="trace")
    assert "the torchscript-trace export runs on the CPU only" in capsys.readouterr().out
    assert artifact.parity is not None and artifact.parity.top1_agreement == 1.0
