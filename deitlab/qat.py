"""Quantization-aware training plumbing for the small CNN (notebook 05).

Two routes to an int8 model, side by side:

* **eager mode** (``torch.ao.quantization``, deprecated since torch 2.10 but still
  shipped): fuse Conv+BN+ReLU, wrap the network in ``QuantStub``/``DeQuantStub``,
  attach a ``qconfig``, ``prepare_qat`` → train → ``convert``;
* **PT2E** (``torchao.quantization.pt2e``): ``torch.export`` the model,
  ``prepare_qat_pt2e`` with the x86 quantizer → train → ``convert_pt2e``.

Plus the pieces around them: low-bit qconfigs and freezing BN statistics and observers.
The straight-through fake quantizer is :func:`deitlab.quant.fake_quantize`; sizes, latencies
and fingerprints come from :mod:`deitlab.measure`.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable, Iterable

import torch
import torch.ao.quantization as tq
from torch import nn
from torch.utils.data import DataLoader

from deitlab.models import ConvBNReLU

__all__ = [
    "FloatIsland",
    "QuantizableCNN",
    "calibrate",
    "convert_eager",
    "convert_pt2e_model",
    "eager_qconfig",
    "freeze_observers_and_bn",
    "freeze_after",
    "fusion_groups",
    "lowbit_qconfig",
    "prepare_eager",
    "prepare_pt2e_qat",
    "quantized_module_names",
]

ENGINES = ("x86", "fbgemm", "qnnpack", "onednn")


# --- eager mode (torch.ao.quantization) -----------------------------------------------


class QuantizableCNN(nn.Module):
    """Wrap a float model: ``QuantStub`` → model → ``DeQuantStub``.

    The stubs mark where tensors become quantized and where they become float again;
    ``convert`` turns them into real ``Quantize``/``DeQuantize`` modules.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.model = model
        self.dequant = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.model(self.quant(x)))


class FloatIsland(nn.Module):
    """Run one block in fp32 inside a quantized model: dequantize → block → quantize.

    The block gets ``qconfig = None`` so ``prepare``/``convert`` leave it in float.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.dequant = tq.DeQuantStub()
        self.block = block
        self.block.qconfig = None
        self.quant = tq.QuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.block(self.dequant(x)))


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """The ``[conv, bn, relu]`` name triples of every ``ConvBNReLU`` block, for ``fuse_modules``."""
    groups = [
        [f"{name}.conv", f"{name}.bn", f"{name}.relu"]
        for name, module in model.named_modules()
        if isinstance(module, ConvBNReLU)
    ]
    if not groups:
        raise ValueError(f"{type(model).__name__} has no ConvBNReLU block to fuse")
    return groups


def _set_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown quantization engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine not in torch.backends.quantized.supported_engines:
        supported = ", ".join(torch.backends.quantized.supported_engines)
        raise RuntimeError(f"engine {engine!r} is not compiled into this torch build (has: {supported})")
    torch.backends.quantized.engine = engine


def eager_qconfig(engine: str = "x86", qat: bool = True) -> tq.QConfig:
    """The default eager qconfig for ``engine`` (``x86`` on Intel/AMD, ``qnnpack`` on ARM).

    Also selects ``engine`` as the backend of the quantized kernels. ``qat=True``
    gives fake-quantize modules (for ``prepare_qat``), ``False`` plain observers
    (for post-training calibration with ``prepare``).
    """
    _set_engine(engine)
    return tq.get_default_qat_qconfig(engine) if qat else tq.get_default_qconfig(engine)


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


def prepare_eager(
    model: nn.Module, qconfig: tq.QConfig, qat: bool = True, float_blocks: Iterable[str] = ()
) -> QuantizableCNN:
    """Fuse, wrap and prepare a copy of ``model`` for eager-mode quantization.

    ``qat=True``: ``fuse_modules_qat`` + ``prepare_qat`` (fake quantization, trainable).
    ``qat=False``: ``fuse_modules`` + ``prepare`` (observers for PTQ calibration).
    ``float_blocks`` names top-level children to keep in fp32 (``qconfig = None``).
    The original model is not modified.
    """
    if not isinstance(qconfig, tq.QConfig):
        raise TypeError(f"qconfig must be a torch.ao.quantization.QConfig, got {type(qconfig).__name__}")
    model = copy.deepcopy(model)
    model.train(qat)
    fuse = tq.fuse_modules_qat if qat else tq.fuse_modules
    fuse(model, fusion_groups(model), inplace=True)
    children = dict(model.named_children())
    for name in float_blocks:
        if name not in children:
            raise ValueError(f"no block named {name!r}; the model has {', '.join(children)}")
        setattr(model, name, FloatIsland(children[name]))
    wrapped = QuantizableCNN(model).train(qat)
    wrapped.qconfig = qconfig
    return tq.prepare_qat(wrapped, inplace=True) if qat else tq.prepare(wrapped, inplace=True)


@torch.no_grad()
def calibrate(model: nn.Module, loader: DataLoader, batches: int = 10) -> nn.Module:
    """Feed ``batches`` batches through a prepared model in eval mode so observers see real ranges."""
    if batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    model.eval()
    for index, (images, _labels) in enumerate(loader):
        if index >= batches:
            break
        model(images)
    return model


def freeze_observers_and_bn(model: nn.Module) -> nn.Module:
    """Stop updating quantization ranges and BatchNorm running statistics (last QAT epochs)."""
    model.apply(tq.disable_observer)
    model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
    return model


def freeze_after(epochs: int) -> Callable[[nn.Module, int], None]:
    """An ``on_epoch_end`` hook for :func:`deitlab.train.fit` that freezes after ``epochs`` epochs."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")

    def hook(model: nn.Module, epoch: int) -> None:
        if epoch + 1 == epochs:
            freeze_observers_and_bn(model)

    return hook


def convert_eager(prepared: nn.Module) -> nn.Module:
    """A real int8 model from a prepared/trained one (the prepared model is left untouched)."""
    if not any(hasattr(m, "activation_post_process") for m in prepared.modules()):
        raise ValueError("the model is not prepared: call prepare_eager first")
    return tq.convert(copy.deepcopy(prepared).eval().cpu())


def quantized_module_names(model: nn.Module) -> dict[str, str]:
    """Leaf module name → class name for the modules that run quantized kernels."""
    return {
        name: type(module).__name__
        for name, module in model.named_modules()
        if type(module).__module__.startswith("torch.ao.nn.quantized") or "quantized" in type(module).__module__
    }


# --- PT2E (torchao) -------------------------------------------------------------------


def prepare_pt2e_qat(model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> torch.fx.GraphModule:
    """``torch.export`` a copy of ``model`` and insert fake quantization for the x86 backend.

    The returned graph module can be trained with any loop that calls
    ``model.train()``/``model.eval()`` (switched to the exported-model versions).
    """
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    if not isinstance(example_inputs, tuple):
        raise TypeError("example_inputs must be a tuple of tensors, e.g. (torch.randn(2, 1, 28, 28),)")
    model = copy.deepcopy(model).train()
    batch = {0: torch.export.Dim.DYNAMIC}  # any batch size, not only the example's
    graph = torch.export.export(model, example_inputs, dynamic_shapes=(batch,) * len(example_inputs)).module()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=True))
    return _with_train_eval(prepare_qat_pt2e(graph, quantizer))


def _with_train_eval(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Make ``train()``/``eval()`` switch the exported BatchNorm ops and return the module, like nn.Module's."""
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    def train(self: torch.fx.GraphModule, mode: bool = True) -> torch.fx.GraphModule:
        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self)
        return self

    def evaluate(self: torch.fx.GraphModule) -> torch.fx.GraphModule:
        return train(self, False)

    graph.train = types.MethodType(train, graph)
    graph.eval = types.MethodType(evaluate, graph)
    return graph


def convert_pt2e_model(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``convert_pt2e`` a trained PT2E model: fake quantizers become quantize/dequantize ops, weights int8.

    Float parameters the converted graph no longer reads are removed, so its state dict holds what it runs on.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    if not isinstance(prepared, torch.fx.GraphModule):
        raise TypeError("expected the graph module returned by prepare_pt2e_qat")
    prepared = copy.deepcopy(prepared)
    move_exported_model_to_eval(prepared)
    converted = convert_pt2e(prepared)
    # The graph now reads int8 constants; drop the float weights and BN statistics it no longer uses.
    used = {node.target for node in converted.graph.nodes if node.op == "get_attr"}
    for name, _ in [*converted.named_parameters(), *converted.named_buffers()]:
        if name not in used:
            owner, _, attribute = name.rpartition(".")
            delattr(converted.get_submodule(owner), attribute)
    return _with_train_eval(converted)
