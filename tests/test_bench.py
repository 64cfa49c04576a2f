"""deitlab.bench and deitlab.roofline on tiny models (fast variants only)."""

from __future__ import annotations

import copy
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from deitlab import bench, capabilities, roofline

#: PT2E's X86InductorQuantizer annotates nothing on torch 2.11 (deitlab.compiled.require_quantize_steps raises).
needs_pt2e = pytest.mark.skipif(
    tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 12),
    reason=f"PT2E int8 needs torch >= 2.12 (this is {torch.__version__})",
)


@pytest.fixture(autouse=True)
def _no_probes(monkeypatch):
    caps = tuple(capabilities.Capability(n, n != "optimize_for_mobile", "probe") for n in capabilities.PROBES)
    monkeypatch.setattr(capabilities, "capabilities", lambda *a, **k: caps)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    return model, torch.randn(8, 1, 8, 8)


def test_resolve_variants():
    assert bench.resolve_variants(None) == list(bench.VARIANTS)
    assert bench.resolve_variants("eager-fp32, eager-int8,eager-fp32") == ["eager-fp32", "eager-int8"]
    with pytest.raises(ValueError, match="unknown variant"):
        bench.resolve_variants(["eager-fp32", "warp-drive"])
    for nothing in ("", " , ", []):
        with pytest.raises(ValueError, match="no variant names given"):
            bench.resolve_variants(nothing)


def test_tutorial_variants_come_first_in_table_order():
    assert bench.TUTORIAL_VARIANTS == ("eager-fp32", "scripted", "scripted-int8", "scripted-int8-mobile", "lite")
    assert set(bench.QUICK_BASE) <= set(bench.VARIANTS) and all(
        set(v) <= set(bench.VARIANTS) for v in bench.QUICK_BY_CPU.values()
    )


def test_batch_of_repeats_inputs():
    x = torch.arange(3.0).view(3, 1, 1, 1)
    assert bench.batch_of(x, 7).flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert bench.batch_of(x, 2).shape[0] == 2
    with pytest.raises(ValueError, match="at least 1"):
        bench.batch_of(x, 0)


def test_run_benchmark_tidy_frame(tiny):
    model, x = tiny
    df = bench.run_benchmark(
        model, x, ["eager-fp32", "eager-int8", "eager-bf16", "scripted-int8-mobile"], batch_sizes=(1, 4),
        threads=(1,), repeats=3, warmup=1, min_agreement=0.5, progress=False,
    )  # fmt: skip
    assert len(df) == 8 and set(df.batch) == {1, 4}
    ok = df[df.status == "ok"]
    assert set(ok.variant) >= {"eager-fp32", "eager-int8"}
    assert (ok.median_ms > 0).all() and (ok.iqr_ms >= 0).all()
    base = ok[ok.variant == "eager-fp32"]
    assert np.allclose(base.speedup, 1.0) and (base.max_abs_diff == 0).all()
    mobile = df[df.variant == "scripted-int8-mobile"]
    assert (mobile.status == "unavailable").all() and (mobile.reason == "probe").all()
    bf16 = df[df.variant == "eager-bf16"].iloc[0]
    assert bf16.status == ("ok" if bench.has_fast_bf16() else "unavailable")
    assert dict(zip(df.variant, df.precision)) == {
        "eager-fp32": "fp32", "eager-int8": "int8", "eager-bf16": "bf16", "scripted-int8-mobile": "int8"
    }  # fmt: skip


def test_every_variant_names_its_precision():
    for name, variant in bench.VARIANTS.items():
        expected = "int8" if "int8" in name or name == "lite" else "bf16" if "bf16" in name else "fp32"
        assert variant.precision == expected, name


def test_parity_failure_is_not_timed(tiny, monkeypatch):
    model, x = tiny
    wrong = bench.Variant("wrong", "wrong answers", "modern", lambda m, i, r: lambda t: -m(t))
    monkeypatch.setitem(bench.VARIANTS, "wrong", wrong)
    df = bench.run_benchmark(model, x, ["eager-fp32", "wrong"], repeats=2, warmup=0, threads=(1,), progress=False)
    row = df[df.variant == "wrong"].iloc[0]
    assert row.status == "parity failed" and "top-1 agreement" in row.reason and np.isnan(row.median_ms)


def test_broken_variant_does_not_stop_the_run(tiny, monkeypatch):
    model, x = tiny

    def explode(m, i, r):
        raise RuntimeError("kaboom")

    monkeypatch.setitem(bench.VARIANTS, "broken", bench.Variant("broken", "broken", "modern", explode))
    df = bench.run_benchmark(model, x, ["eager-fp32", "broken"], repeats=2, warmup=0, threads=(1,), progress=False)
    assert "kaboom" in df[df.variant == "broken"].reason.iloc[0]


class _SlowLinear(nn.Linear):
    """Stands for a quantized layer whose kernel is a slow fallback."""


def test_linear_slowdown_compares_the_largest_linear_layer(monkeypatch):
    def fake_time_call(layer, x, repeats, warmup):  # wall-clock timing is noisy on a busy machine
        assert x.shape == (256, layer.in_features)
        return SimpleNamespace(median_ms=50.0 if isinstance(layer, _SlowLinear) else 1.0)

    monkeypatch.setattr(bench, "time_call", fake_time_call)
    model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).eval()
    slow = copy.deepcopy(model)
    slow[0] = _SlowLinear(512, 512)  # the larger of the two Linear layers
    assert bench.linear_slowdown(model, slow, tokens=256) == 50
    small_slow = copy.deepcopy(model)
    small_slow[2] = _SlowLinear(512, 10)  # the smaller one is not the one compared
    assert bench.linear_slowdown(model, small_slow, tokens=256) == 1
    with pytest.raises(ValueError, match="no nn.Linear"):
        bench.linear_slowdown(nn.ReLU(), nn.ReLU())


def test_torchao_variant_with_a_fallback_kernel_is_listed_not_timed(tiny, monkeypatch):
    pytest.importorskip("torchao")
    model, x = tiny
    monkeypatch.setattr(bench, "linear_slowdown", lambda fp32, quantized: 40.0)
    df = bench.run_benchmark(
        model, x, ["eager-fp32", "torchao-int8"], repeats=2, warmup=0, threads=(1,), progress=False
    )
    row = df[df.variant == "torchao-int8"].iloc[0]
    assert row.status == "unavailable" and "40× slower than fp32" in row.reason and np.isnan(row.median_ms)


def test_tables_recommend_and_save(tiny, tmp_path):
    model, x = tiny
    df = bench.run_benchmark(
        model, x, ["eager-fp32", "scripted", "scripted-int8", "scripted-int8-mobile", "eager-int8"],
        repeats=3, warmup=1, threads=(1,), min_agreement=0.5, progress=False,
    )  # fmt: skip
    table = bench.tutorial_table(df)
    assert list(table.columns) == ["Model", "Inference Time (ms)", "Reduction"] and len(table) == 4
    assert table.Reduction.iloc[0] == "0.00%" and table.Reduction.iloc[-1].startswith("—")
    best = bench.recommend(df)
    assert best["variant"] in set(df.variant) and best["median_ms"] == df.median_ms.min()
    assert not bench.summary_table(df).empty
    csv_path, json_path = bench.save_results(df, tmp_path)
    assert "samples_ms" not in pd.read_csv(csv_path).columns
    again, env = bench.load_results(json_path)
    assert len(again) == len(df) and "cpu" in env and "packages" in env


def test_tutorial_table_and_recommend_need_timed_rows():
    empty = pd.DataFrame(
        {"variant": ["eager-fp32"], "label": ["x"], "batch": [1], "threads": [1], "median_ms": [np.nan],
         "status": ["unavailable"], "reason": ["no"]}
    )  # fmt: skip
    with pytest.raises(ValueError, match="eager-fp32"):
        bench.tutorial_table(empty)
    with pytest.raises(ValueError, match="no variant"):
        bench.recommend(empty)


def test_bench_model_tiny_random():
    model, inputs = bench.bench_model("tiny-deit-random")
    assert inputs.shape == (64, 1, 28, 28) and model(inputs[:2]).shape == (2, 10)


def test_bench_model_and_its_name_check_agree_on_the_kit_models(monkeypatch):
    from deitlab.models import UnknownModelError

    for name in bench.KIT_MODELS:
        bench.check_model_name(name)
    monkeypatch.setattr("deitlab.models.tiny_deit", lambda: pytest.fail("built a model for a wrong name"))
    with pytest.raises(UnknownModelError, match="Did you mean: tiny-deit, tiny-deit-random"):
        bench.bench_model("tiny")


def test_count_flops_of_a_vit_by_group():
    from timm.models.vision_transformer import VisionTransformer

    # fixed architecture (independent of the kit's tuned tiny DeiT) so the counts are hand-computable
    vit = VisionTransformer(
        img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=96, depth=4, num_heads=3, mlp_ratio=2.0
    )
    model, x = vit.eval(), torch.zeros(1, 1, 28, 28)
    groups = roofline.count_flops(model, x)
    tokens, dim, hidden, depth = 50, 96, 192, 4
    linear = depth * 2 * tokens * dim * (3 * dim + dim + 2 * hidden) + 2 * dim * 10
    assert groups["linear layers"] == linear
    assert groups["attention matmuls (QKᵀ, AV)"] == depth * 4 * tokens * tokens * dim
    assert groups["patch embedding (conv)"] == 2 * 49 * dim * 16
    assert roofline.linear_flops(model, x) == linear + groups["patch embedding (conv)"]
    with pytest.raises(ValueError, match="N×C×H×W"):
        roofline.count_flops(model, torch.zeros(28, 28))


def test_matmul_layers_and_intensity():
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=96, depth=2, num_heads=3)
    layers = roofline.matmul_layers(vit.eval(), torch.zeros(1, 1, 28, 28))
    assert len(layers) == 1 + 2 * 4 + 1  # patch embedding, 4 linears per block, head
    first = layers.iloc[0]
    assert (first.kind, first.m, first.k, first.n) == ("Conv2d", 49, 16, 96)
    assert layers.flops.sum() == roofline.linear_flops(vit, torch.zeros(1, 1, 28, 28))
    assert roofline.intensity(2, 3, 4, "fp32") == pytest.approx(2 * 24 / ((6 + 12 + 8) * 4))
    assert roofline.intensity(2, 3, 4, "int8") == pytest.approx(4 * roofline.intensity(2, 3, 4, "fp32"))
    table = roofline.intensity_table(layers, batch_sizes=(1, 8))
    assert "whole model" in table.index and (table["batch 8"] > table["batch 1"]).all()
    with pytest.raises(ValueError, match="precision must be one of"):
        roofline.intensity(2, 3, 4, "fp8")
    with pytest.raises(ValueError, match="positive"):
        roofline.intensity(0, 3, 4)
    with pytest.raises(ValueError, match="no layers"):
        roofline.intensity_table(layers.iloc[:0])
    with pytest.raises(ValueError, match="batch sizes"):
        roofline.intensity_table(layers, batch_sizes=(0,))


def test_matmul_peak_per_precision_names_its_kernel():
    for precision in roofline.PRECISIONS:
        peak = roofline.matmul_peak(precision, m=8, k=16, n=16, repeats=2)
        assert peak.precision == precision and peak.gflops > 0
        assert peak.kernel in peak.candidates and peak.gflops == max(peak.candidates.values())
    assert "torch.mm fp32" in roofline.matmul_peak("fp32", m=8, k=16, n=16, repeats=1).candidates
    with pytest.raises(ValueError, match="precision must be one of"):
        roofline.matmul_peak("fp8")
    with pytest.raises(ValueError, match="positive"):
        roofline.matmul_peak("fp32", m=0)


def test_memory_bandwidth_and_roofline():
    assert roofline.memory_bandwidth(megabytes=8, repeats=2) > 0
    with pytest.raises(ValueError, match="positive"):
        roofline.memory_bandwidth(megabytes=0)
    assert roofline.attainable(1.0, peak_gflops=100.0, bandwidth_gbs=10.0) == 10.0
    assert roofline.attainable(50.0, peak_gflops=100.0, bandwidth_gbs=10.0) == 100.0
    with pytest.raises(ValueError, match="positive"):
        roofline.attainable(0.0, 1.0, 1.0)
    assert roofline.percent_of_peak(2e9, 1.0, 4.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="positive"):
        roofline.percent_of_peak(1.0, 0.0, 1.0)


def test_each_variant_is_placed_against_the_peak_of_its_own_precision():
    peaks = {p: roofline.Peak(p, gflops, "k") for p, gflops in (("fp32", 100.0), ("bf16", 400.0), ("int8", 800.0))}
    names = [n for n in bench.VARIANTS if n in ("eager-fp32", "eager-bf16", "eager-int8")]
    timed = pd.DataFrame({
        "variant": names, "label": names, "precision": [bench.VARIANTS[n].precision for n in names],
        "batch": 1, "median_ms": 1000.0,
    })  # fmt: skip
    placed = roofline.place_variants(timed, 50e9, peaks)
    assert list(placed["peak used"]) == [bench.VARIANTS[n].precision for n in names]
    assert list(placed["peak GFLOP/s"]) == [peaks[bench.VARIANTS[n].precision].gflops for n in names]
    bf16 = placed.set_index("variant").loc["eager-bf16"]
    assert bf16["% of own peak"] == pytest.approx(12.5)  # 50 GFLOP/s of the bf16 peak, not 50 % of the fp32 one
    with pytest.raises(ValueError, match=r"no measured peak for precision\(s\) \['bf16'\]"):
        roofline.place_variants(timed, 50e9, {"fp32": peaks["fp32"], "int8": peaks["int8"]})
    with pytest.raises(ValueError, match="flops"):
        roofline.place_variants(timed, 0, peaks)


def test_checks_for_notebook_07():
    from deitlab import checks

    def good_loop(fn, warmup, min_seconds):
        for _ in range(warmup):
            fn()
        samples = []
        while sum(samples) < min_seconds * 1e3:
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
        p25, median, p75 = np.percentile(samples, [25, 50, 75])
        return median, p75 - p25, len(samples)

    def no_warmup(fn, warmup, min_seconds):
        return good_loop(fn, 0, min_seconds)

    def fixed_count(fn, warmup, min_seconds):
        for _ in range(warmup):
            fn()
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
        return float(np.median(samples)), 0.0, 5

    assert "07.1" in repr(checks.check_timing_loop(good_loop))
    with pytest.raises(checks.CheckFailed, match="warm-up"):
        checks.check_timing_loop(no_warmup)
    with pytest.raises(checks.CheckFailed, match="min_seconds"):
        checks.check_timing_loop(fixed_count)

    peaks = {"fp32": roofline.Peak("fp32", 100.0, "k"), "int8": roofline.Peak("int8", 400.0, "k")}
    df = pd.DataFrame({"model": "deit_base", "variant": ["eager-fp32", "eager-int8", "ort-int8", "lite"],
                       "precision": ["fp32", "int8", "int8", "int8"], "status": ["ok", "ok", "ok", "unavailable"],
                       "batch": 1, "median_ms": [1000.0, 500.0, 351.0, np.nan]})  # fmt: skip
    flops = 35.1e9
    share = 100 * flops / 0.351 / 1e9 / 400.0
    assert "ort-int8" in repr(checks.check_share_of_own_peak(df, flops, peaks, share))
    with pytest.raises(checks.CheckFailed, match="fp32 peak"):
        checks.check_share_of_own_peak(df, flops, peaks, 100 * flops / 0.351 / 1e9 / 100.0)
    with pytest.raises(checks.CheckFailed, match="100"):
        checks.check_share_of_own_peak(df, flops, peaks, share / 100)
    with pytest.raises(checks.CheckFailed, match="FLOPs"):
        checks.check_share_of_own_peak(df, 1.3e9, peaks, share)
    with pytest.raises(checks.CheckFailed, match="DeiT-B table"):
        checks.check_share_of_own_peak(df.assign(model="deit_tiny"), flops, peaks, share)

    assert "ort-int8 is the fastest" in repr(checks.check_fastest_variant(df, "ort-int8"))
    with pytest.raises(checks.CheckFailed, match="median"):
        checks.check_fastest_variant(df, "eager-int8")
    with pytest.raises(checks.CheckFailed, match="DeiT-B table"):
        checks.check_fastest_variant(df.assign(model="custom"), "ort-int8")
    with pytest.raises(checks.CheckFailed, match="could not run"):
        checks.check_fastest_variant(df[df.status == "ok"], "ort-int8")


NEW_VARIANTS = ["compile-bf16", "pt2e-int8", "pt2e-int8-bf16", "torchao-int8-compile", "ort-int8-static"]


@needs_pt2e
def test_new_variants_build_pass_parity_and_report_their_build_time(tiny, monkeypatch):
    pytest.importorskip("torchao")
    model, x = tiny
    monkeypatch.setattr(bench, "has_fast_bf16", lambda: True)  # emulated bf16 still computes the right thing
    monkeypatch.setattr(bench, "linear_slowdown", lambda fp32, quantized: 1.0)
    df = bench.run_benchmark(
        model, x, ["eager-fp32", *NEW_VARIANTS], repeats=2, warmup=1, threads=(1,), min_agreement=0.75, progress=False
    )
    rows = df.set_index("variant")
    assert (rows.status == "ok").all(), rows.reason.to_dict()
    assert (rows.loc[NEW_VARIANTS, "build_s"] > 0).all() and (rows.loc[NEW_VARIANTS, "median_ms"] > 0).all()
    assert (rows.loc[NEW_VARIANTS, "top1_agreement"] >= 0.75).all()
    assert (rows.loc[NEW_VARIANTS, "max_abs_diff"] > 0).all()  # lower precision: not bit-identical to fp32
    assert rows.precision.to_dict() == {
        "eager-fp32": "fp32", "compile-bf16": "bf16", "pt2e-int8": "int8", "pt2e-int8-bf16": "int8",
        "torchao-int8-compile": "int8", "ort-int8-static": "int8",
    }  # fmt: skip
    assert "build_s" in bench.summary_table(df).columns


@needs_pt2e
def test_compiled_builds_leave_inductor_settings_as_they_were(tiny):
    import torch._inductor.config as inductor_config

    pytest.importorskip("torchao")
    model, x = tiny
    before = (inductor_config.freezing, inductor_config.pre_grad_custom_pass)
    df = bench.run_benchmark(model, x, ["pt2e-int8"], repeats=1, warmup=0, threads=(1,), progress=False)
    assert df.status.iloc[0] == "ok"
    assert (inductor_config.freezing, inductor_config.pre_grad_custom_pass) == before


def test_bf16_variants_are_skipped_with_the_reason_on_a_cpu_without_native_bf16(tiny, monkeypatch):
    model, x = tiny
    monkeypatch.setattr(bench, "has_fast_bf16", lambda: False)
    df = bench.run_benchmark(
        model, x, ["eager-fp32", "compile-bf16", "pt2e-int8-bf16"], repeats=1, warmup=0, threads=(1,), progress=False
    )
    skipped = df[df.variant != "eager-fp32"]
    assert (skipped.status == "unavailable").all() and skipped.reason.str.contains("no AVX512-BF16/AMX").all()


def test_torchao_compile_with_a_fallback_kernel_is_skipped_before_compiling(tiny, monkeypatch):
    pytest.importorskip("torchao")
    model, x = tiny
    monkeypatch.setattr(bench, "linear_slowdown", lambda fp32, quantized: 40.0)
    monkeypatch.setattr(bench.compiled, "compile_frozen", lambda *a, **k: pytest.fail("compiled a fallback kernel"))
    df = bench.run_benchmark(model, x, ["torchao-int8-compile"], repeats=1, warmup=0, threads=(1,), progress=False)
    assert df.status.iloc[0] == "unavailable" and "40× slower than fp32" in df.reason.iloc[0]


def test_pt2e_without_torchao_is_skipped_with_the_install_hint(tiny, monkeypatch):
    model, x = tiny
    monkeypatch.setitem(__import__("sys").modules, "torchao.quantization.pt2e", None)
    df = bench.run_benchmark(model, x, ["pt2e-int8"], repeats=1, warmup=0, threads=(1,), progress=False)
    assert df.status.iloc[0] == "unavailable" and "torchao is not installed" in df.reason.iloc[0]


def test_ort_static_is_skipped_when_onnx_runtime_cannot_run(tiny, monkeypatch):
    model, x = tiny
    missing = tuple(
        capabilities.Capability(n, n != "ONNX export + ONNX Runtime", "no onnxruntime here")
        for n in capabilities.PROBES
    )
    monkeypatch.setattr(capabilities, "capabilities", lambda *a, **k: missing)
    df = bench.run_benchmark(model, x, ["ort-int8-static"], repeats=1, warmup=0, threads=(1,), progress=False)
    assert df.status.iloc[0] == "unavailable" and df.reason.iloc[0] == "no onnxruntime here"


def test_calibration_inputs_are_real_images_other_than_the_parity_inputs():
    x = torch.arange(8.0).view(2, 1, 2, 2)
    calibration = bench.calibration_inputs(x)
    assert calibration.shape == x.shape and not torch.equal(calibration, x)
    assert torch.equal(calibration.flip(-1), x)
    with pytest.raises(ValueError, match="N×C×H×W"):
        bench.calibration_inputs(torch.zeros(3, 4))


@pytest.mark.parametrize(
    ("features", "kind", "added"),
    [
        ({"AVX2": True, "AVX-512": True, "VNNI": True, "BF16": True, "AMX": True}, "AMX", "pt2e-int8-bf16"),
        ({"AVX2": True, "AVX-512": True, "VNNI": True, "BF16": False, "AMX": False}, "VNNI", "pt2e-int8"),
        ({"AVX2": True, "AVX-512": False, "VNNI": False, "BF16": False, "AMX": False}, "AVX2", "pt2e-int8"),
        ({"NEON": True}, None, None),
    ],
)
def test_quick_variants_follow_the_cpu_features(features, kind, added, monkeypatch):
    assert bench.quick_cpu_kind(features) == kind
    chosen = bench.quick_variants(features)
    assert chosen[: len(bench.QUICK_BASE)] == bench.QUICK_BASE and set(chosen) <= set(bench.VARIANTS)
    assert chosen[len(bench.QUICK_BASE) :] == (bench.QUICK_BY_CPU[kind] if kind else ())
    if added:
        assert added in chosen
    monkeypatch.setattr(bench, "cpu_features", lambda: features)
    assert bench.quick_variants() == chosen
    bf16_paths = {name for name in chosen if bench.VARIANTS[name].precision == "bf16" or "bf16" in name}
    assert bool(bf16_paths) == (kind == "AMX")  # bf16 only where the CPU has native bf16


def test_build_runner_returns_a_runner_or_the_exported_artifact(tiny):
    model, x = tiny
    runner = bench.build_runner("eager-int8", model, x)
    assert runner(x).shape == (8, 10)
    onnx = bench.build_runner("ort-fp32", model, x)
    assert onnx.path.is_file() and torch.allclose(onnx(x), model(x), atol=1e-4)
    with pytest.raises(ValueError, match="unknown variant"):
        bench.build_runner("warp-drive", model, x)


def test_build_runner_says_why_a_variant_cannot_run(tiny, monkeypatch):
    model, x = tiny
    monkeypatch.setattr(bench, "has_fast_bf16", lambda: False)
    with pytest.raises(bench.VariantUnavailable, match="AVX512-BF16"):
        bench.build_runner("eager-bf16", model, x)


def test_pt2e_whose_quantizer_annotates_nothing_is_skipped_with_the_torch_it_needs(tiny, monkeypatch):
    pytest.importorskip("torchao")
    model, x = tiny
    xiq = bench.compiled.x86_quantizer_module()
    monkeypatch.setattr(xiq.X86InductorQuantizer, "annotate", lambda self, model: model)  # as on torch 2.11
    monkeypatch.setattr(torch, "__version__", "2.11.0")
    df = bench.run_benchmark(model, x, ["pt2e-int8"], repeats=1, warmup=0, threads=(1,), progress=False)
    assert df.status.iloc[0] == "unavailable"
    assert "needs torch ≥ 2.12" in df.reason.iloc[0] and "this is torch 2.11.0" in df.reason.iloc[0]


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_measure_machine_takes_the_best_of_its_repeats_and_shrinks_emulated_bf16(monkeypatch, fast_bf16):
    calls = []

    def fake_peak(precision, m, k, n, repeats):
        calls.append((precision, (m, k, n), repeats))
        return roofline.Peak(precision, 1.0, "fake")

    monkeypatch.setattr(roofline, "memory_bandwidth", lambda repeats: calls.append(("bandwidth", repeats)) or 20.0)
    monkeypatch.setattr(roofline, "matmul_peak", fake_peak)
    monkeypatch.setattr(roofline, "has_fast_bf16", lambda: fast_bf16)
    bandwidth, peaks = roofline.measure_machine(shape=(32, 64, 128), repeats=7)
    assert bandwidth == 20.0 and set(peaks) == set(roofline.PRECISIONS)
    assert ("bandwidth", 7) in calls and ("fp32", (32, 64, 128), 7) in calls and ("int8", (32, 64, 128), 7) in calls
    bf16 = ("bf16", (32, 64, 128), 7) if fast_bf16 else ("bf16", (2, 4, 8), 1)
    assert bf16 in calls
