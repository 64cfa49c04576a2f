"""Where the work runs: the notebooks' device, a model's device, and the steps that run on the CPU only."""

from __future__ import annotations

import copy
import os

import torch
from torch import nn

#: Environment variable that overrides :func:`default_device` (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
DEVICE_ENV = "DEITLAB_DEVICE"


def mps_available() -> bool:
    """Whether PyTorch can run on Apple's Metal GPU (MPS) here."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _checked(choice: str | torch.device, origin: str) -> torch.device:
    """``choice`` as a device that exists here; anything else is a one-line ``ValueError`` naming ``origin``."""
    try:
        device = torch.device(choice)
    except (RuntimeError, TypeError):
        raise ValueError(f"{origin}: {choice!r} is not a device; use cpu, cuda, cuda:1 or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{origin}: {choice!r} asked for, but torch finds no CUDA GPU here; use cpu")
    if device.type == "mps" and not mps_available():
        raise ValueError(f"{origin}: {choice!r} asked for, but Apple MPS is not available here; use cpu")
    return device


def default_device(device: str | torch.device | None = None) -> torch.device:
    """The device the notebooks train and infer on.

    ``device`` when given, else ``$DEITLAB_DEVICE`` when set, else the CUDA GPU, else
    Apple MPS, else the CPU. Asking for a device that is not there is a one-line ``ValueError``.
    """
    if device is not None:
        return _checked(device, "device argument")
    if os.environ.get(DEVICE_ENV, "").strip():
        return _checked(os.environ[DEVICE_ENV].strip(), DEVICE_ENV)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe(device: torch.device) -> str:
    """Where ``device`` runs, for status lines: ``CUDA GPU (Tesla T4)``, ``Apple MPS GPU`` or ``CPU``."""
    if device.type == "cuda":
        return f"CUDA GPU ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple MPS GPU"
    return device.type.upper()


def module_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model without any."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def cpu_only(model: nn.Module, step: str, inplace: bool = False) -> nn.Module:
    """``model`` ready for a step that runs on the CPU only (int8 kernels, ExecuTorch, ONNX Runtime).

    A model already on the CPU comes back as it is. Otherwise one line says so and the
    step gets a CPU copy (the model stays where it is), or with ``inplace=True`` the
    model itself is moved to the CPU.
    """
    device = module_device(model)
    if device.type == "cpu":
        return model
    if inplace:
        print(f"{step} runs on the CPU only: the model moves from {device} to the CPU")
        return model.to("cpu")
    print(f"{step} runs on the CPU only: it uses a CPU copy of the model (the model stays on {device})")
    return copy.deepcopy(model).to("cpu")
