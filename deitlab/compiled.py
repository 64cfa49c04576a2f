"""Models compiled by inductor with freezing: fp32 or bf16 autocast, and PT2E static int8 (``X86InductorQuantizer``).

:func:`compile_frozen` and :func:`pt2e_int8` return a :class:`CompiledRunner`.
Compilation is lazy (the first call of each batch size compiles, ``dynamic=False``) and
runs inside :func:`inductor_settings`, so inductor options such as ``freezing`` are set
for that runner only and restored after every call: nothing leaks into other models
compiled in the same process. Every build starts from a fresh dynamo cache
(:func:`torch.compiler.reset`), so its compile time is measured cold and no earlier
variant's graphs count against dynamo's recompile limit.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
from collections.abc import Iterator
from types import ModuleType

import torch
from torch import nn

#: Inductor options every compiled variant uses: constant-fold the weights (oneDNN prepacks them).
FREEZING = {"freezing": True}
#: ``max-autotune`` writes every kernel choice's timing to stderr (dozens of lines per model) unless told not to.
QUIET_AUTOTUNE = {"autotune_num_choices_displayed": 0, "max_autotune_report_choices_stats": False}


@functools.cache
def _inductor_option_names() -> frozenset[str]:
    import torch._inductor.config as inductor_config

    return frozenset(inductor_config.get_config_copy())  # a deep copy: ~0.25 ms, so once per process


@contextlib.contextmanager
def inductor_settings(options: dict[str, object]) -> Iterator[None]:
    """Apply ``torch._inductor.config`` ``options`` inside the block and restore the old values after."""
    import torch._inductor.config as inductor_config

    unknown = sorted(set(options) - _inductor_option_names())
    if unknown:
        raise ValueError(f"unknown inductor option(s) {unknown}")
    with inductor_config.patch(options):
        yield


class CompiledRunner:
    """A ``torch.compile``-d model called under its own inductor options (and bf16 autocast if asked).

    Returns float32 logits whatever the compute precision, like the other variants.
    """

    def __init__(
        self, model: nn.Module, options: dict[str, object], autocast_bf16: bool = False, mode: str | None = None
    ) -> None:
        self.options = dict(options)
        self.autocast_bf16 = autocast_bf16
        self.compiled = torch.compile(model, mode=mode, dynamic=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast_bf16 else contextlib.nullcontext()
        with inductor_settings(self.options), autocast:
            return self.compiled(x).float()


def compile_frozen(model: nn.Module, bf16: bool = False) -> CompiledRunner:
    """``torch.compile`` of ``model`` (eval mode) with freezing; ``bf16=True`` runs it under bf16 autocast.

    The model itself is compiled, not a copy: pass a copy if the eager model must stay untouched.
    """
    torch.compiler.reset()
    return CompiledRunner(model.eval(), FREEZING, autocast_bf16=bf16)


def x86_quantizer_module() -> ModuleType:
    """``torchao.quantization.pt2e.quantizer.x86_inductor_quantizer``, imported without its global side effect.

    Importing it sets ``torch._inductor.config.pre_grad_custom_pass`` for the whole process;
    the old value is put back here and the PT2E runners set the pass only for themselves.
    """
    import torch._inductor.config as inductor_config

    before = inductor_config.pre_grad_custom_pass
    try:
        return importlib.import_module("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer")
    finally:
        inductor_config.pre_grad_custom_pass = before


class PT2EAnnotatedNothing(RuntimeError):
    """The PT2E quantizer marked no node of the graph, so the "quantized" model is still fp32."""


def quantize_steps(graph: torch.fx.GraphModule) -> int:
    """How many quantize/dequantize ops a converted PT2E graph holds (0: nothing was quantized)."""
    return sum("quantize_per" in str(node.target) for node in graph.graph.nodes)


def require_quantize_steps(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``graph`` if PT2E put quantize/dequantize ops into it, else :class:`PT2EAnnotatedNothing`.

    On torch 2.11 (with torchao 0.17, the release built for it) X86InductorQuantizer annotates
    no node of an exported graph; torch 2.12 with the same torchao does (tested 2026-12-03).
    """
    if quantize_steps(graph) == 0:
        import torchao

        raise PT2EAnnotatedNothing(
            f"X86InductorQuantizer quantized no op: PT2E int8 needs torch ≥ 2.12 with torchao {torchao.__version__}"
            f" (this is torch {torch.__version__})"
        )
    return graph


def pt2e_int8(
    model: nn.Module,
    calibration: torch.Tensor,
    reduce_range: bool,
    mixed_bf16: bool = False,
    max_autotune: bool = False,
    max_batch: int = 64,
) -> CompiledRunner:
    """PT2E static int8: ``torch.export`` → ``prepare_pt2e(X86InductorQuantizer)`` → calibrate → convert → compile.

    ``calibration`` is a batch of real inputs, run one at a time through the observed
    model. ``reduce_range`` uses 7-bit activations (for CPUs without VNNI, where the
    u8×s8 multiply-add saturates). ``mixed_bf16`` runs the ops that stay in floating
    point under bf16 autocast (int8-mixed-bf16); ``max_autotune`` compiles with
    ``mode="max-autotune"`` (it benchmarks kernel choices: much longer builds). The graph
    is captured with a dynamic batch dimension of up to ``max_batch`` rows.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if calibration.ndim < 2 or len(calibration) == 0:
        raise ValueError(f"calibration must be a non-empty batch of inputs, got shape {tuple(calibration.shape)}")
    xiq = x86_quantizer_module()
    torch.compiler.reset()
    quantizer = xiq.X86InductorQuantizer().set_global(
        xiq.get_default_x86_inductor_quantization_config(reduce_range=reduce_range)
    )
    with torch.no_grad():
        example = calibration[:1].expand(2, *calibration.shape[1:]).contiguous()  # a batch of 2: not specialised to 1
        batch = {0: torch.export.Dim("batch", min=1, max=max_batch)}
        captured = torch.export.export(copy.deepcopy(model).eval(), (example,), dynamic_shapes=(batch,)).module()
        observed = prepare_pt2e(captured, quantizer)
        for row in calibration.split(1):
            observed(row)
        quantized = require_quantize_steps(convert_pt2e(observed))
    options = {**FREEZING, "pre_grad_custom_pass": xiq.quant_lift_up, **(QUIET_AUTOTUNE if max_autotune else {})}
    return CompiledRunner(quantized, options, autocast_bf16=mixed_bf16, mode="max-autotune" if max_autotune else None)
