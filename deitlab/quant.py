"""Post-training quantization: the arithmetic, the error metrics, and the PyTorch APIs.

Three layers, from the formula up:

* tensors — :func:`qparams`, :func:`quantize`, :func:`dequantize`, :func:`fake_quantize`
  (the kit's one fake quantizer: ``scale`` is the step size, as in PyTorch) and
  :func:`fake_quantize_range` (the same grid given by its clipping range), the error
  metrics :func:`mse` / :func:`sqnr`;
* whole models — the tutorial's size on disk (:func:`scripted_size_mb`; other sizes are in
  :mod:`deitlab.measure`), the parity and size of a quantized copy against its fp32 original
  (:func:`baseline`, :func:`compare`), the
  legacy eager API (:func:`legacy_dynamic_int8`) and the
  torchao API (:func:`torchao_int8`);
* experiments — fake-quantized copies of a model (:func:`fake_quant_model`),
  per-layer sensitivity (:func:`layer_sensitivity`) and the cache for their slow scans
  (:func:`cached_result`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import types
import warnings
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from deitlab.device import cpu_only
from deitlab.measure import file_size_mb, saved_size_mb, state_dict_size_mb

TORCHAO_VARIANTS = ("dynamic", "weight_only")


@dataclass(frozen=True)
class QParams:
    """Scale and zero-point of an affine integer grid ``x ≈ scale · (q − zero_point)``.

    ``axis`` is the channel dimension for per-channel parameters (``None``: one
    scale for the whole tensor). ``qmin``/``qmax`` bound the integer codes.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor
    qmin: int
    qmax: int
    axis: int | None = None

    def _shaped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.axis is None:
            return self.scale, self.zero_point
        shape = [1] * x.ndim
        shape[self.axis] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}")


def _check_float(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")


def integer_range(bits: int, symmetric: bool = True) -> tuple[int, int]:
    """Integer codes of a ``bits``-bit grid: signed ``[-2^(b-1), 2^(b-1)-1]`` or unsigned ``[0, 2^b-1]``."""
    _check_bits(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)


def qparams(
    x: torch.Tensor,
    bits: int = 8,
    symmetric: bool = True,
    axis: int | None = None,
    clip: float | None = None,
) -> QParams:
    """Scale and zero-point that map the range of ``x`` onto a ``bits``-bit grid.

    Symmetric: ``scale = max|x| / (2^(b-1) − 1)``, zero-point 0 (signed codes).
    Asymmetric: ``scale = (max − min) / (2^b − 1)`` over a range that includes 0,
    zero-point ``round(−min / scale)`` (unsigned codes). With ``axis`` the range is
    taken per slice along that dimension (per-channel). ``clip`` in ``(0, 1]``
    shrinks the range to that fraction of the observed one (clipping outliers).
    """
    _check_float(x)
    _check_bits(bits)
    if clip is not None and not 0 < clip <= 1:
        raise ValueError(f"clip must be a fraction in (0, 1], got {clip}")
    if axis is not None:
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"axis {axis} out of range for a tensor of shape {tuple(x.shape)}")
        axis = axis % x.ndim
        flat = x.detach().movedim(axis, 0).reshape(x.shape[axis], -1)
        low, high = flat.min(dim=1).values, flat.max(dim=1).values
    else:
        low, high = x.detach().min(), x.detach().max()
    low, high = low.clamp(max=0).float(), high.clamp(min=0).float()
    if clip is not None:
        low, high = low * clip, high * clip
    qmin, qmax = integer_range(bits, symmetric)
    tiny = torch.finfo(torch.float32).tiny
    if symmetric:
        scale = (torch.maximum(-low, high) / qmax).clamp(min=tiny)
        zero_point = torch.zeros_like(scale, dtype=torch.int64)
    else:
        scale = ((high - low) / (qmax - qmin)).clamp(min=tiny)
        zero_point = (qmin - torch.round(low / scale)).clamp(qmin, qmax).to(torch.int64)
    return QParams(scale, zero_point, qmin, qmax, axis)


def quantize(x: torch.Tensor, params: QParams) -> torch.Tensor:
    """Integer codes ``clamp(round(x / scale) + zero_point, qmin, qmax)`` (int64)."""
    _check_float(x)
    scale, zero_point = params._shaped(x)
    return (torch.round(x / scale) + zero_point).clamp(params.qmin, params.qmax).to(torch.int64)


def dequantize(q: torch.Tensor, params: QParams) -> torch.Tensor:
    """Back to real numbers: ``scale · (q − zero_point)`` (float32)."""
    if not isinstance(q, torch.Tensor) or q.is_floating_point():
        raise TypeError("q must be an integer tensor of codes (the output of quantize)")
    scale, zero_point = params._shaped(q)
    return (q - zero_point).float() * scale


def quantize_dequantize(
    x: torch.Tensor, bits: int = 8, symmetric: bool = True, axis: int | None = None, clip: float | None = None
) -> torch.Tensor:
    """``dequantize(quantize(x))`` with parameters from :func:`qparams`: what the network sees."""
    params = qparams(x, bits, symmetric, axis, clip)
    return dequantize(quantize(x, params), params).to(x.dtype)


def fake_quantize(x: torch.Tensor, scale: float | torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Symmetric fake quantization ``scale · clamp(round(x / scale), −2^(b−1), 2^(b−1) − 1)``.

    ``scale`` is the **step size** between neighbouring levels, as in
    ``torch.fake_quantize_per_tensor_affine`` (a positive number, or a tensor broadcastable
    to ``x`` for per-channel steps). Values stay floating point but take only ``2^b`` levels.
    Backward: the straight-through estimator — gradient 1 inside the representable range,
    0 where the value was clipped, as PyTorch's fake quantizers do.
    """
    _check_float(x)
    _check_bits(bits)
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    if not (scale > 0).all():
        raise ValueError(f"scale (the step size) must be positive, got {scale.min().item()}")
    qmin, qmax = integer_range(bits)
    rounded = torch.round(x / scale)
    quantized = rounded.clamp(qmin, qmax) * scale
    passthrough = x * ((rounded >= qmin) & (rounded <= qmax)).to(x.dtype)
    return quantized.detach() + (passthrough - passthrough.detach())  # forward: exactly the grid values


def fake_quantize_range(x: torch.Tensor, s: float | torch.Tensor, bits: int) -> torch.Tensor:
    """Fake quantization given the clipping range ``s``: :func:`fake_quantize` with step ``s / 2^(b−1)``.

    The form the Vietnamese write-up uses: ``s/2^(b−1) · clamp(round(2^(b−1)·x/s), −2^(b−1), 2^(b−1)−1)``
    (``s`` a positive number, or a tensor broadcastable to ``x`` for per-channel ranges).
    """
    _check_bits(bits)
    s = torch.as_tensor(s)
    if not (s > 0).all():
        raise ValueError(f"the clipping range s must be positive, got {s.min().item()}")
    return fake_quantize(x, s / 2 ** (bits - 1), bits)


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean squared error between a tensor and its (de)quantized version."""
    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    return torch.mean((x.double() - x_hat.double()) ** 2).item()


def sqnr(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10·log10(Σx² / Σ(x − x̂)²)`` (inf if exact)."""
    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    noise = torch.sum((x.double() - x_hat.double()) ** 2)
    signal = torch.sum(x.double() ** 2)
    if noise == 0:
        return float("inf")
    return (10 * torch.log10(signal / noise)).item()


# --- the tutorial's size on disk ------------------------------------------------------


def scripted_size_mb(model: nn.Module, keep: str | Path | None = None) -> float:
    """Size in MB (10^6 bytes) of ``torch.jit.script(model).save(...)``, the tutorial's measure.

    The file goes to a temporary directory that is deleted afterwards, unless
    ``keep`` names a path to save it to. TorchScript's deprecation warning is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
        scripted = torch.jit.script(model)
        if keep is not None:
            scripted.save(str(keep))
            return file_size_mb(keep)
        return saved_size_mb(lambda path: scripted.save(str(path)))


# --- parity and size of a quantized model ---------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """The fp32 model's logits on fixed inputs and its ``state_dict`` size: what quantized copies are held to."""

    inputs: torch.Tensor
    logits: torch.Tensor
    size_mb: float


@dataclass(frozen=True)
class QuantReport:
    """How a quantized copy compares with its fp32 baseline: size, and its logits on the same inputs."""

    size_mb: float
    size_ratio: float  # quantized / fp32 state_dict size
    sqnr_db: float  # of the logits
    max_abs_diff: float
    top1_agreement: float  # fraction of inputs with the same arg-max class
    n: int

    def __str__(self) -> str:
        return (
            f"{self.size_mb:.2f} MB ({self.size_ratio:.1%} of fp32) · logits SQNR {self.sqnr_db:.1f} dB, "
            f"max |Δlogit| {self.max_abs_diff:.3g}, top-1 agreement {self.top1_agreement:.1%} (n={self.n})"
        )


def _logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    with torch.inference_mode():
        logits = model(inputs)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ValueError("the model must return one N×C logits tensor (eval mode)")
    return logits.float()


def baseline(model: nn.Module, inputs: torch.Tensor) -> Baseline:
    """Run the fp32 ``model`` once on ``inputs`` (a batch) and measure its ``state_dict`` size."""
    _check_float(inputs, "inputs")
    return Baseline(inputs, _logits(model, inputs), state_dict_size_mb(model))


def compare(reference: Baseline, candidate: nn.Module) -> QuantReport:
    """Size and logit parity of ``candidate`` (a quantized copy) against ``reference`` (see :func:`baseline`)."""
    if not isinstance(reference, Baseline):
        raise TypeError(f"reference must be a Baseline (from quant.baseline), got {type(reference).__name__}")
    logits = _logits(candidate, reference.inputs)
    if logits.shape != reference.logits.shape:
        raise ValueError(f"candidate logits {tuple(logits.shape)} differ in shape from {tuple(reference.logits.shape)}")
    size = state_dict_size_mb(candidate)
    agreement = (logits.argmax(1) == reference.logits.argmax(1)).float().mean().item()
    return QuantReport(
        size_mb=size,
        size_ratio=size / reference.size_mb,
        sqnr_db=sqnr(reference.logits, logits),
        max_abs_diff=(logits - reference.logits).abs().max().item(),
        top1_agreement=agreement,
        n=len(logits),
    )


# --- the legacy eager API (torch.ao.quantization, deprecated) -------------------------


def legacy_dynamic_int8(model: nn.Module) -> tuple[nn.Module, list[warnings.WarningMessage]]:
    """The tutorial's step: ``quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)`` on a copy.

    Returns the quantized copy and the warnings the call raised (recorded, not shown),
    so a notebook can print the deprecation notice in a controlled way.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    model = cpu_only(model, "eager int8 (torch.ao)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=False)
    return quantized.eval(), list(caught)


def linear_names(model: nn.Module) -> list[str]:
    """Qualified names of every ``nn.Linear`` in ``model``, in definition order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def _check_names(model: nn.Module, names: Iterable[str]) -> set[str]:
    names = set(names)
    unknown = names - set(linear_names(model))
    if unknown:
        raise KeyError(f"not nn.Linear layers of this model: {', '.join(sorted(unknown))}")
    return names


def module_types(model: nn.Module) -> dict[str, int]:
    """How many modules of each type do the work, so you can see what was quantized and what was not.

    Counts leaf modules and the quantized modules of ``torch.ao.nn`` (whose packed
    weights are an internal child), keyed by a short qualified type name such as
    ``torch.nn.LayerNorm`` or ``torch.ao.nn.quantized.dynamic.Linear``.
    """
    counts: dict[str, int] = {}
    inside_quantized: set[int] = set()
    for module in model.modules():
        if id(module) in inside_quantized:
            continue
        path = type(module).__module__
        is_quantized = path.startswith("torch.ao.nn.")
        if is_quantized:
            inside_quantized.update(id(child) for child in module.modules() if child is not module)
        if is_quantized or next(module.children(), None) is None:
            kind = f"{path.split('.modules')[0]}.{type(module).__name__}"
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


# --- the 2026 API (torchao) ------------------------------------------------------------


def torchao_config(variant: str):
    """The torchao config for ``"dynamic"`` (int8 activations × int8 weights) or ``"weight_only"``.

    Always the config's ``version=2`` (weights become ``Int8Tensor``), torchao 0.18's default:
    torchao 0.17 (the release for torch 2.11 and 2.12) still defaults to version 1, whose
    dynamic config silently leaves every Linear with ≤ 16 input features in fp32.
    """
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    configs = {"dynamic": Int8DynamicActivationInt8WeightConfig, "weight_only": Int8WeightOnlyConfig}
    if variant not in configs:
        raise ValueError(f"unknown torchao variant {variant!r}; choose one of {', '.join(TORCHAO_VARIANTS)}")
    config = configs[variant]
    return config(version=2) if "version" in {f.name for f in fields(config)} else config()


def torchao_int8(
    model: nn.Module, variant: str = "dynamic", skip: Collection[str] = (), inplace: bool = False
) -> nn.Module:
    """``torchao.quantization.quantize_`` with an int8 config, on a copy unless ``inplace``.

    ``skip`` names Linear layers to leave in fp32 (through quantize_'s ``filter_fn``).
    """
    from torchao.quantization import quantize_

    config = torchao_config(variant)
    skip = _check_names(model, skip)
    target = cpu_only(model, "torchao int8", inplace=inplace)
    if target is model and not inplace:
        target = copy.deepcopy(model)
    names = {id(module): name for name, module in target.named_modules()}

    def keep_fp32_filter(module: nn.Module, fqn: str) -> bool:
        return isinstance(module, nn.Linear) and names.get(id(module), fqn) not in skip

    quantize_(target, config, filter_fn=keep_fp32_filter)
    return target.eval()


# --- experiments: fake-quantized copies and sensitivity -----------------------------------


class _InputFakeQuant:
    """A forward pre-hook that fake-quantizes a Linear's input with a fixed, calibrated range."""

    def __init__(self, bits: int, s: float) -> None:
        self.bits, self.s = bits, s

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        return (fake_quantize_range(args[0], self.s, self.bits), *args[1:])


def activation_ranges(
    model: nn.Module, calibration: Iterable, names: Collection[str] | None = None
) -> dict[str, float]:
    """Largest absolute input seen by each named Linear over the calibration batches."""
    names = _check_names(model, names if names is not None else linear_names(model))
    ranges: dict[str, float] = {}
    hooks = []
    for name, module in model.named_modules():
        if name in names:

            def record(module: nn.Module, args: tuple, name: str = name) -> None:
                ranges[name] = max(ranges.get(name, 0.0), args[0].detach().abs().max().item())

            hooks.append(module.register_forward_pre_hook(record))
    try:
        with torch.inference_mode():
            for batch in calibration:
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        for hook in hooks:
            hook.remove()
    if not ranges:
        raise ValueError("calibration gave no batches: pass a few batches of typical inputs")
    return ranges


def fake_quant_model(
    model: nn.Module,
    bits: int,
    names: Collection[str] | None = None,
    per_channel: bool = True,
    act_ranges: dict[str, float] | None = None,
    act_bits: int | None = None,
) -> nn.Module:
    """A copy whose chosen Linear layers simulate ``bits``-bit quantization.

    Weights go through :func:`fake_quantize_range` with symmetric ranges (one per output
    channel, or one per tensor). With ``act_ranges`` (from :func:`activation_ranges`)
    each layer's input is fake-quantized too, at ``act_bits`` (default ``bits``) —
    static quantization simulated in floating point. ``names`` defaults to every Linear.
    """
    _check_bits(bits)
    names = _check_names(model, names if names is not None else linear_names(model))
    target = copy.deepcopy(model).eval()
    for name, module in target.named_modules():
        if name not in names:
            continue
        weight = module.weight.data
        s = weight.abs().amax(dim=1, keepdim=True) if per_channel else weight.abs().max()
        module.weight.data = fake_quantize_range(weight, s.clamp(min=1e-12), bits)
        if act_ranges is not None:
            if name not in act_ranges:
                raise KeyError(f"no calibrated activation range for {name!r}")
            module.register_forward_pre_hook(_InputFakeQuant(act_bits or bits, max(act_ranges[name], 1e-12)))
    return target


def layer_sensitivity(
    names: Iterable[str],
    quantize_one: Callable[[str], nn.Module],
    score: Callable[[nn.Module], float],
    baseline: float,
    progress: bool = True,
) -> dict[str, float]:
    """Drop of ``score`` when only one layer is quantized: ``{name: baseline − score(quantize_one(name))}``."""
    from tqdm.auto import tqdm

    names = list(names)
    if not names:
        raise ValueError("no layer names given")
    return {
        name: baseline - score(quantize_one(name))
        for name in tqdm(names, desc="one layer at a time", disable=not progress, leave=False)
    }


def _code_digest(code: types.CodeType) -> str:
    """A digest of what a function does (its bytecode, names and constants), not of where it was defined."""
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        parts.append(_code_digest(const).encode() if isinstance(const, types.CodeType) else repr(const).encode())
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def cached_result(name: str, key: dict, compute: Callable[[], object]) -> object:
    """``compute()`` once, then its stored JSON result for as long as ``key`` and ``compute``'s code stay the same.

    For scans that take seconds (one evaluation per layer, per bit-width) in cells an
    instructor re-runs: ``key`` (a JSON-able dict) names everything the result depends on
    besides the code — the model's fingerprint, the data, the settings; the torch version and
    a digest of ``compute``'s bytecode are added to it, so editing the function recomputes.
    Stored in the kit's cache (kind ``results``). Dict keys come back as strings (JSON).
    """
    from deitlab import cache

    if not callable(compute):
        raise TypeError(f"compute must be a function without arguments, got {type(compute).__name__}")
    if not isinstance(key, dict):
        raise TypeError(f"key must be a dict naming what the result depends on, got {type(key).__name__}")
    code = getattr(compute, "__code__", None)
    full_key = {**key, "torch": torch.__version__, "code": _code_digest(code) if code is not None else repr(compute)}

    def build(staging: Path) -> None:
        (staging / "result.json").write_text(json.dumps(compute()))

    entry = cache.get_or_build("results", name, full_key, build, ["result.json"])
    return json.loads(entry.path("result.json").read_text())
