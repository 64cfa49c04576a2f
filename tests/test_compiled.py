"""deitlab.compiled on a tiny model: settings are scoped, runners return float32 logits close to eager."""

from __future__ import annotations

import pytest
import torch
import torch._inductor.config as inductor_config
from torch import nn

from deitlab import compiled

#: PT2E's X86InductorQuantizer annotates nothing on torch 2.11 (deitlab.compiled.require_quantize_steps raises).
needs_pt2e = pytest.mark.skipif(
    tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 12),
    reason=f"PT2E int8 needs torch >= 2.12 (this is {torch.__version__})",
)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    return model, torch.randn(6, 1, 8, 8)


def test_inductor_settings_apply_inside_and_restore_after():
    before = inductor_config.freezing
    with compiled.inductor_settings({"freezing": not before}):
        assert inductor_config.freezing is (not before)
    assert inductor_config.freezing is before
    with (
        pytest.raises(ValueError, match="unknown inductor option.*warp_speed"),
        compiled.inductor_settings({"warp_speed": True}),
    ):
        pass


@pytest.mark.parametrize("bf16", [False, True])
def test_compile_frozen_matches_eager_and_returns_float32(tiny, bf16):
    model, x = tiny
    runner = compiled.compile_frozen(model, bf16=bf16)
    with torch.inference_mode():
        out, expected = runner(x), model(x)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert torch.allclose(out, expected, atol=0.05 if bf16 else 1e-4)
    assert inductor_config.freezing is False


def test_importing_the_x86_quantizer_leaves_the_global_pass_alone():
    pytest.importorskip("torchao")
    before = inductor_config.pre_grad_custom_pass
    module = compiled.x86_quantizer_module()
    assert hasattr(module, "X86InductorQuantizer") and inductor_config.pre_grad_custom_pass is before


@needs_pt2e
@pytest.mark.parametrize("mixed_bf16", [False, True])
def test_pt2e_int8_runs_any_batch_size_close_to_eager(tiny, mixed_bf16):
    pytest.importorskip("torchao")
    model, x = tiny
    before = inductor_config.pre_grad_custom_pass
    runner = compiled.pt2e_int8(model, x.flip(-1), reduce_range=True, mixed_bf16=mixed_bf16)
    assert runner.options["pre_grad_custom_pass"] is not None and runner.options["freezing"] is True
    with torch.inference_mode():
        for batch in (1, 4):
            out, expected = runner(x[:batch]), model(x[:batch])
            assert out.dtype == torch.float32 and out.shape == expected.shape
            assert (out - expected).abs().max() < 0.1 * expected.abs().max()
    assert inductor_config.pre_grad_custom_pass is before and inductor_config.freezing is False


@needs_pt2e
@pytest.mark.parametrize("max_autotune", [False, True])
def test_only_the_max_autotune_runner_silences_the_autotune_report(tiny, max_autotune):
    pytest.importorskip("torchao")
    model, x = tiny
    runner = compiled.pt2e_int8(model, x, reduce_range=True, max_autotune=max_autotune)  # compiles at first call
    quiet = {k: runner.options.get(k) for k in compiled.QUIET_AUTOTUNE}
    assert (quiet == compiled.QUIET_AUTOTUNE) is max_autotune
    with compiled.inductor_settings(runner.options):  # every option name is one inductor knows
        shown = inductor_config.autotune_num_choices_displayed
    assert (shown == 0) is max_autotune


def test_pt2e_int8_rejects_an_empty_calibration_batch(tiny):
    pytest.importorskip("torchao")
    model, x = tiny
    with pytest.raises(ValueError, match="calibration must be a non-empty batch"):
        compiled.pt2e_int8(model, x[:0], reduce_range=True)


@pytest.fixture
def quantizer_annotates_nothing(monkeypatch):
    """X86InductorQuantizer as on torch 2.11 with torchao 0.17: it marks no node."""
    pytest.importorskip("torchao")
    xiq = compiled.x86_quantizer_module()
    monkeypatch.setattr(xiq.X86InductorQuantizer, "annotate", lambda self, model: model)
    monkeypatch.setattr(torch, "__version__", "2.11.0+cu128")


def test_pt2e_int8_refuses_a_graph_the_quantizer_left_in_fp32(tiny, quantizer_annotates_nothing):
    model, x = tiny
    with pytest.raises(compiled.PT2EAnnotatedNothing, match=r"needs torch ≥ 2\.12 .*\(this is torch 2\.11\.0\+cu128\)"):
        compiled.pt2e_int8(model, x, reduce_range=True)


def test_quantize_steps_counts_the_quantize_ops_of_a_graph():
    graph = torch.fx.symbolic_trace(nn.Sequential(nn.Linear(4, 4)))
    assert compiled.quantize_steps(graph) == 0
    with pytest.raises(compiled.PT2EAnnotatedNothing, match="quantized no op"):
        compiled.require_quantize_steps(graph)
