"""Plumbing for notebook 05 (quantization-aware training on the small CNN).

The lesson's calls — ``QuantStub``/``DeQuantStub``, ``fuse_modules_qat``, the qconfig,
``prepare_qat``, the training loop, ``convert``, ``torch.export`` + ``prepare_qat_pt2e`` /
``convert_pt2e`` and torchao's ``QATConfig`` — stand in the notebook. This module holds
what the notebook needs besides them: a low-bit qconfig for the simulation sweep, the list
of quantized modules, trimming a converted PT2E graph to the weights it reads, and two
caches (an exported program, a dict of numbers) that keep slow steps out of warm re-runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.ao.quantization as tq
from torch import nn

from deitlab import cache

__all__ = [
    "TrainableGraph",
    "cached_exported_program",
    "cached_numbers",
    "drop_unread_weights",
    "lowbit_qconfig",
    "quantized_module_names",
]

PROGRAM = "program.pt2"
NUMBERS = "numbers.json"


def lowbit_qconfig(weight_bits: int, activation_bits: int = 8, per_channel: bool = True) -> tq.QConfig:
    """A fake-quantize qconfig with ``weight_bits``-bit signed weights and unsigned activations.

    No int4 or int2 kernels exist in eager mode: models prepared with this qconfig are
    evaluated with fake quantization (a faithful simulation of the arithmetic), not converted.
    """
    for name, bits in (("weight_bits", weight_bits), ("activation_bits", activation_bits)):
        if not 2 <= bits <= 8:
            raise ValueError(f"{name} must be between 2 and 8, got {bits}")
    weight = tq.FakeQuantize.with_args(
        observer=tq.MovingAveragePerChannelMinMaxObserver if per_channel else tq.MovingAverageMinMaxObserver,
        quant_min=-(2 ** (weight_bits - 1)),
        quant_max=2 ** (weight_bits - 1) - 1,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric,
    )
    activation = tq.FakeQuantize.with_args(
        observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=2**activation_bits - 1, dtype=torch.quint8
    )
    return tq.QConfig(activation=activation, weight=weight)


def quantized_module_names(model: nn.Module) -> dict[str, str]:
    """Module name → class name for the modules of an eager-converted model that run quantized kernels."""
    return {
        name: type(module).__name__ for name, module in model.named_modules() if "quantized" in type(module).__module__
    }


class TrainableGraph(nn.Module):
    """An exported (PT2E-prepared) graph with ``nn.Module``'s ``train()``/``eval()``.

    Exported graphs refuse ``.train()``/``.eval()``; torchao's ``move_exported_model_to_train``/
    ``_eval`` switch their BatchNorm and dropout ops instead. This wrapper calls them, so
    training loops, :func:`deitlab.train.evaluate` and the checkpoint cache work unchanged
    (torchao's ``allow_exported_model_train_eval`` does the switch too, but its ``eval()``
    returns None where ``nn.Module.eval()`` returns the module). The graph is ``.graph``.
    """

    def __init__(self, graph: torch.fx.GraphModule) -> None:
        super().__init__()
        if not isinstance(graph, torch.fx.GraphModule):
            raise TypeError(f"expected the torch.fx.GraphModule from prepare_qat_pt2e, got {type(graph).__name__}")
        self.graph = graph

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.graph(*inputs)

    def train(self, mode: bool = True) -> TrainableGraph:
        from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self.graph)
        self.training = mode
        return self


def drop_unread_weights(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Delete the parameters and buffers a graph never reads (in place); returns the graph.

    ``convert_pt2e`` reads int8 copies of the weights but keeps the float originals and the
    folded BatchNorm statistics as attributes: without this, the int8 model's state dict
    would be larger than the fp32 one.
    """
    if not isinstance(graph, torch.fx.GraphModule):
        raise TypeError(f"expected a torch.fx.GraphModule (from convert_pt2e), got {type(graph).__name__}")
    read = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
    called = tuple(f"{node.target}." for node in graph.graph.nodes if node.op == "call_module")
    for name, _ in [*graph.named_parameters(), *graph.named_buffers()]:
        if name not in read and not name.startswith(called):
            owner, _, attribute = name.rpartition(".")
            delattr(graph.get_submodule(owner), attribute)
    return graph


def cached_exported_program(
    name: str, key: dict, export: Callable[[], torch.export.ExportedProgram], rebuild: bool = False
) -> torch.fx.GraphModule:
    """The module of an exported program saved in the kit's cache under ``name``/``key``, built by ``export()``.

    ``key`` (a JSON-able dict) names everything the program depends on. The program is
    written with ``torch.export.save`` and read back with ``torch.export.load(...).module()``.
    """

    def build(staging: Path) -> dict:
        program = export()
        if not isinstance(program, torch.export.ExportedProgram):
            raise TypeError(f"export() must return a torch.export.ExportedProgram, got {type(program).__name__}")
        torch.export.save(program, staging / PROGRAM)
        return {}

    entry = cache.get_or_build("programs", name, key, build, [PROGRAM], rebuild=rebuild)
    return torch.export.load(entry.path(PROGRAM)).module()


def cached_numbers(name: str, key: dict, compute: Callable[[], dict], rebuild: bool = False) -> dict:
    """A JSON-able dict of results (accuracies of a sweep…) from the kit's cache, computed by ``compute()`` once.

    ``key`` names everything the numbers depend on. JSON turns dict keys into strings:
    use string keys in ``compute()`` so a cached result reads the same as a fresh one.
    """

    def build(staging: Path) -> dict:
        numbers = compute()
        if not isinstance(numbers, dict):
            raise TypeError(f"compute() must return a dict, got {type(numbers).__name__}")
        (staging / NUMBERS).write_text(json.dumps(numbers, indent=1, sort_keys=True))
        return {}

    entry = cache.get_or_build("results", name, key, build, [NUMBERS], rebuild=rebuild)
    return json.loads(entry.path(NUMBERS).read_text())
