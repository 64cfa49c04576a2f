"""Honest CPU inference benchmarking: warm-up, repeats, medians and spread, parity first.

Every variant is built from the same eager model, its logits are compared with
eager fp32 on real inputs (:mod:`deitlab.export` parity), and only then timed:
``warmup`` untimed calls, then ``repeats`` timed calls under ``torch.inference_mode``
with a fixed thread count (:func:`deitlab.measure.time_call`). Results form a tidy :class:`pandas.DataFrame` (one row
per variant × batch size × thread count) that :func:`save_results` writes as CSV and
JSON together with the environment report.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from deitlab import compiled, export
from deitlab.env import cpu_features, report
from deitlab.measure import clock, fixed_threads, time_call
from deitlab.quant import legacy_dynamic_int8, torchao_config

Runner = Callable[[torch.Tensor], torch.Tensor]
#: (model, parity inputs, reference logits) -> a runner, or an exported Artifact that knows its parity
Builder = Callable[[nn.Module, torch.Tensor, torch.Tensor], "Runner | export.Artifact"]


class VariantUnavailable(RuntimeError):
    """A variant cannot run on this machine / build; the message says why."""


@dataclass(frozen=True)
class Variant:
    """One way of running the model, and how to build it from the eager fp32 model."""

    name: str
    label: str
    family: str  # "tutorial" or "modern"
    build: Builder
    thread_bound: bool = False  # the runner fixes its thread count when built (ONNX Runtime)
    precision: str = "fp32"  # the arithmetic of its matmuls: "fp32", "bf16" or "int8"
    parity_chunk: int = export.MAX_BATCH  # rows per call in the parity check (compiled variants: 1, one graph)


def _artifact_runner(artifact: export.Artifact) -> export.Artifact:
    """An exported artifact that runs here (it carries its own parity report)."""
    if artifact.runner is None:
        raise VariantUnavailable(artifact.reason)
    return artifact


def _quiet(fn: Callable[[], object]) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _eager(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> Runner:
    return model


def _scripted(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> export.Artifact:
    return _artifact_runner(export.export_torchscript(model, inputs, reference=reference))


def _scripted_int8(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> export.Artifact:
    return _artifact_runner(export.export_scripted_int8(model, inputs, reference=reference))


def _scripted_int8_mobile(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> export.Artifact:
    unavailable = export.unavailable("", "optimize_for_mobile")
    if unavailable is not None:
        raise VariantUnavailable(unavailable.reason)
    scripted = export.export_scripted_int8(model, inputs, reference=reference)
    return _artifact_runner(export.export_optimized_for_mobile(scripted, inputs, reference))


def _lite(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> export.Artifact:
    unavailable = export.unavailable("", "lite interpreter save+load")
    if unavailable is not None:
        raise VariantUnavailable(unavailable.reason)
    scripted = export.export_scripted_int8(model, inputs, reference=reference)
    return _artifact_runner(export.export_lite_interpreter(scripted, inputs, reference))


def _eager_int8(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> Runner:
    return legacy_dynamic_int8(model)[0]


def has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX) or a GPU is used."""
    features = cpu_features()
    return bool(features.get("BF16") or features.get("AMX"))


def _eager_bf16(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> Runner:
    if not has_fast_bf16():
        raise VariantUnavailable("this CPU has no AVX512-BF16/AMX: bf16 matmuls would be emulated, slower than fp32")
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    return lambda x: bf16(x.to(torch.bfloat16)).float()


def _compiled(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> Runner:
    return compiled.compile_frozen(copy.deepcopy(model))


def calibration_inputs(inputs: torch.Tensor) -> torch.Tensor:
    """The images static int8 variants calibrate on: the parity inputs mirrored left–right.

    The same kind of real images, but not the very tensors parity is then measured on.
    """
    return export.check_inputs(inputs).flip(-1).contiguous()


def _require_fast_bf16(what: str) -> None:
    if not has_fast_bf16():
        raise VariantUnavailable(
            f"this CPU has no AVX512-BF16/AMX: {what} would emulate bf16 matmuls, slower than fp32"
        )


def _compiled_bf16(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> Runner:
    _require_fast_bf16("bf16 autocast + torch.compile")
    return compiled.compile_frozen(copy.deepcopy(model), bf16=True)


def _pt2e(mixed_bf16: bool = False, max_autotune: bool = False) -> Builder:
    def build(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> Runner:
        if mixed_bf16:
            _require_fast_bf16("int8-mixed-bf16 (the non-quantized ops in bf16)")
        try:
            import torchao.quantization.pt2e  # noqa: F401
        except ModuleNotFoundError as exc:
            raise VariantUnavailable("torchao is not installed (pip install 'deitlab[deploy]')") from exc
        reduce_range = not cpu_features().get("VNNI", False)
        try:
            return compiled.pt2e_int8(model, calibration_inputs(inputs), reduce_range, mixed_bf16, max_autotune)
        except compiled.PT2EAnnotatedNothing as exc:
            raise VariantUnavailable(str(exc)) from exc

    return build


def _onnx_static(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> export.Artifact:
    return _artifact_runner(
        export.export_onnx_static_int8(model, inputs, calibration_inputs(inputs), reference=reference)
    )


#: A quantized layer this many times slower than fp32 means a fallback kernel: not worth timing.
SLOW_KERNEL_FACTOR = 5.0


def linear_slowdown(fp32_model: nn.Module, quantized_model: nn.Module, tokens: int = 197) -> float:
    """How many times slower the quantized model's largest ``Linear`` is than the fp32 one.

    Both layers run on ``tokens`` random rows (a ViT-B/16 sequence by default), median
    of five calls each. Used to skip quantized variants whose kernels fall back to a slow
    path on this CPU before spending minutes timing the whole model.
    """
    linears = {name: m for name, m in fp32_model.named_modules() if isinstance(m, nn.Linear)}
    if not linears:
        raise ValueError("the model has no nn.Linear layer to compare")
    name = max(linears, key=lambda n: linears[n].weight.numel())
    quantized_layer = quantized_model.get_submodule(name)
    x = torch.randn(tokens, linears[name].in_features)
    fp32_ms = time_call(linears[name], x, repeats=5, warmup=1).median_ms
    quantized_ms = time_call(quantized_layer, x, repeats=5, warmup=1).median_ms
    return quantized_ms / fp32_ms


def _torchao_quantized(model: nn.Module, variant: str) -> nn.Module:
    """A copy of ``model`` quantized by torchao (``variant`` as in :func:`deitlab.quant.torchao_config`).

    Unavailable when its int8 kernel is a fallback.
    """
    try:
        from torchao.quantization import quantize_
    except ModuleNotFoundError as exc:
        raise VariantUnavailable("torchao is not installed (pip install 'deitlab[deploy]')") from exc
    config = torchao_config(variant)
    quantized = copy.deepcopy(model)
    _quiet(lambda: quantize_(quantized, config))
    slowdown = linear_slowdown(model, quantized)
    if slowdown > SLOW_KERNEL_FACTOR:
        isa = ", ".join(name for name, present in cpu_features().items() if present) or "no SIMD features detected"
        raise VariantUnavailable(
            f"torchao's {type(config).__name__} linear runs {slowdown:.0f}× slower than fp32 on this CPU ({isa}): "
            "a fallback kernel, so the whole model is not timed"
        )
    return quantized


def _torchao(variant: str) -> Builder:
    def build(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> Runner:
        return _torchao_quantized(model, variant)

    return build


def _torchao_compiled(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> Runner:
    return compiled.compile_frozen(_torchao_quantized(model, "dynamic"))


def _onnx(quantize: bool) -> Builder:
    def build(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> export.Artifact:
        return _artifact_runner(export.export_onnx(model, inputs, quantize=quantize, reference=reference))

    return build


def _executorch(quantize: bool) -> Builder:
    def build(model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor) -> export.Artifact:
        return _artifact_runner(export.export_executorch(model, inputs, quantize=quantize, reference=reference))

    return build


#: Every variant the harness knows, the tutorial's five first (in its table order).
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("eager-fp32", "original model (eager fp32)", "tutorial", _eager),
        Variant("scripted", "scripted model (TorchScript)", "tutorial", _scripted),
        Variant("scripted-int8", "scripted & quantized (dynamic int8)", "tutorial", _scripted_int8, precision="int8"),
        Variant(
            "scripted-int8-mobile",
            "scripted & quantized & optimized",
            "tutorial",
            _scripted_int8_mobile,
            precision="int8",
        ),
        Variant("lite", "lite model (lite interpreter)", "tutorial", _lite, precision="int8"),
        Variant("eager-int8", "quantize_dynamic int8 (eager)", "modern", _eager_int8, precision="int8"),
        Variant("eager-bf16", "eager bf16", "modern", _eager_bf16, precision="bf16"),
        Variant("compile", "torch.compile (inductor)", "modern", _compiled, parity_chunk=1),
        Variant(
            "torchao-int8",
            "torchao int8 dynamic",
            "modern",
            _torchao("dynamic"),
            precision="int8",
        ),
        Variant("torchao-int8wo", "torchao int8 weight-only", "modern", _torchao("weight_only"), precision="int8"),
        Variant(
            "compile-bf16", "torch.compile bf16 autocast", "modern", _compiled_bf16, precision="bf16", parity_chunk=1
        ),
        Variant("pt2e-int8", "PT2E static int8 + compile", "modern", _pt2e(), precision="int8", parity_chunk=1),
        Variant(
            "pt2e-int8-bf16",
            "PT2E int8-mixed-bf16 + compile",
            "modern",
            _pt2e(mixed_bf16=True),
            precision="int8",
            parity_chunk=1,
        ),
        Variant(
            "pt2e-int8-bf16-autotune",
            "PT2E int8-mixed-bf16 + compile max-autotune",
            "modern",
            _pt2e(mixed_bf16=True, max_autotune=True),
            precision="int8",
            parity_chunk=1,
        ),
        Variant(
            "torchao-int8-compile",
            "torchao int8 dynamic + compile",
            "modern",
            _torchao_compiled,
            precision="int8",
            parity_chunk=1,
        ),
        Variant("ort-fp32", "ONNX Runtime fp32", "modern", _onnx(False), thread_bound=True),
        Variant("ort-int8", "ONNX Runtime int8", "modern", _onnx(True), thread_bound=True, precision="int8"),
        Variant(
            "ort-int8-static",
            "ONNX Runtime int8 static (QDQ)",
            "modern",
            _onnx_static,
            thread_bound=True,
            precision="int8",
        ),
        Variant("executorch-fp32", "ExecuTorch XNNPACK fp32", "modern", _executorch(False)),
        Variant("executorch-int8", "ExecuTorch XNNPACK int8", "modern", _executorch(True), precision="int8"),
    )
}
TUTORIAL_VARIANTS = tuple(name for name, v in VARIANTS.items() if v.family == "tutorial")
#: What ``deitlab bench --quick`` always runs: the baseline, the tutorial's int8 step and ONNX Runtime fp32/int8
#: (ExecuTorch is left out: lowering DeiT-B takes over two minutes on two cores).
QUICK_BASE = ("eager-fp32", "eager-int8", "ort-fp32", "ort-int8")
#: The fastest paths for each kind of x86 CPU, added by ``--quick`` (see :func:`quick_variants`).
QUICK_BY_CPU = {
    # DeiT-B, batch 1, 2 threads, on a 2-core Xeon with AMX (2026-12-04): max-autotune 26.8 ms (build 67 s),
    # without it 28.4 ms (build 18 s), PT2E int8 alone 35 ms, compile-bf16 38 ms; eager fp32 160 ms
    "AMX": ("pt2e-int8-bf16-autotune", "pt2e-int8-bf16", "compile-bf16"),
    "VNNI": ("pt2e-int8", "ort-int8-static"),
    "AVX2": ("pt2e-int8",),  # measured on DeiT-B: ONNX Runtime dynamic int8 (in QUICK_BASE) wins, PT2E int8 is close
}


def quick_cpu_kind(features: dict[str, bool] | None = None) -> str | None:
    """Which row of :data:`QUICK_BY_CPU` a CPU with these features (default: this one's) belongs to, if any."""
    features = cpu_features() if features is None else features
    if features.get("AMX") or features.get("BF16"):
        return "AMX"
    for kind in ("VNNI", "AVX2"):
        if features.get(kind):
            return kind
    return None


def quick_variants(features: dict[str, bool] | None = None) -> tuple[str, ...]:
    """The variants ``deitlab bench --quick`` runs on a CPU with ``features`` (default: probed here).

    :data:`QUICK_BASE` plus the best paths for the CPU: AMX or AVX512-BF16 → the compiled
    int8-mixed-bf16, int8 and bf16 paths; VNNI → PT2E int8 + compile and ONNX Runtime static
    int8; AVX2 only → PT2E int8 + compile (static ONNX Runtime int8 is no faster than dynamic
    there and costs a calibration run). bf16 is left out where it is emulated (slower than fp32).
    """
    kind = quick_cpu_kind(features)
    return QUICK_BASE + (QUICK_BY_CPU[kind] if kind else ())


BASELINE = "eager-fp32"


def resolve_variants(names: Iterable[str] | str | None) -> list[str]:
    """Validate variant names (a list, a comma-separated string, ``"all"`` or ``None`` = all)."""
    if names is None or names == "all":
        return list(VARIANTS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError(f"no variant names given; choose from: {', '.join(VARIANTS)}")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from: {', '.join(VARIANTS)}")
    return names


def batch_of(inputs: torch.Tensor, batch: int) -> torch.Tensor:
    """A batch of exactly ``batch`` inputs, repeating ``inputs`` when it has fewer rows."""
    if batch < 1:
        raise ValueError(f"batch size must be at least 1, got {batch}")
    reps = -(-batch // len(inputs))
    return inputs.repeat(reps, *([1] * (inputs.ndim - 1)))[:batch].contiguous()


def _row(model_name: str, variant: Variant, batch: int, threads: int, **values) -> dict:
    return {
        "model": model_name,
        "variant": variant.name,
        "label": variant.label,
        "family": variant.family,
        "precision": variant.precision,
        "batch": batch,
        "threads": threads,
        "device": "cpu",
        **values,
    }


def run_benchmark(
    model: nn.Module,
    inputs: torch.Tensor,
    variants: Iterable[str] | str | None = None,
    batch_sizes: Sequence[int] = (1,),
    threads: Sequence[int] = (2,),
    repeats: int = 20,
    warmup: int = 3,
    min_agreement: float = 0.9,
    model_name: str = "model",
    progress: bool = True,
) -> pd.DataFrame:
    """Parity-check then time each variant at each batch size and thread count.

    ``inputs`` is a batch of real inputs used for the parity check (and repeated to
    fill larger batches). A variant whose top-1 agreement with eager fp32 is below
    ``min_agreement`` is reported as ``parity failed`` and not timed. Variants that
    cannot run here are listed with ``status="unavailable"`` and the reason.
    Columns include median/IQR in ms, images per second, the speed-up over
    ``eager-fp32`` (same batch and threads) and the parity numbers.
    """
    from tqdm.auto import tqdm

    names = resolve_variants(variants)
    inputs = export.check_inputs(inputs)
    model = model.eval().cpu()
    batch_sizes = [int(b) for b in batch_sizes]
    for b in batch_sizes:
        batch_of(inputs, b)
    reference = export.reference_logits(model, inputs)
    rows, built = [], {}
    bar = tqdm(total=len(names) * len(threads), desc="benchmark", disable=not progress, leave=False)
    for thread_count in threads:
        with fixed_threads(thread_count):
            for name in names:
                variant = VARIANTS[name]
                bar.set_postfix_str(f"{name} @ {thread_count} threads")
                key = (name, thread_count) if variant.thread_bound else name
                if key not in built:
                    built[key] = _build(variant, model, inputs, reference)
                runner, build_s, check, error = built[key]
                for batch in batch_sizes:
                    base = {"build_s": build_s}
                    if check is not None:
                        base |= {"max_abs_diff": check.max_abs_diff, "top1_agreement": check.top1_agreement}
                    if error is not None:
                        rows.append(
                            _row(model_name, variant, batch, thread_count, status="unavailable", reason=error, **base)
                        )
                        continue
                    if check.top1_agreement < min_agreement:
                        why = f"top-1 agreement {100 * check.top1_agreement:.0f}% < {100 * min_agreement:.0f}%"
                        rows.append(
                            _row(model_name, variant, batch, thread_count, status="parity failed", reason=why, **base)
                        )
                        continue
                    timing = time_call(runner, batch_of(inputs, batch), repeats=repeats, warmup=warmup)
                    stats = timing.summary()
                    rows.append(
                        _row(
                            model_name,
                            variant,
                            batch,
                            thread_count,
                            status="ok",
                            reason="",
                            **base,
                            **stats,
                            images_per_s=batch / (stats["median_ms"] / 1e3),
                            repeats=repeats,
                            warmup=warmup,
                            samples_ms=[round(ms, 4) for ms in timing.samples_ms],
                        )
                    )
                bar.update()
    bar.close()
    return _add_speedup(pd.DataFrame(rows))


def _build(variant: Variant, model: nn.Module, inputs: torch.Tensor, reference: torch.Tensor):
    """(runner, build seconds, parity, error) for one variant; never raises for unavailable paths."""
    started = clock()
    try:
        runner = _quiet(lambda: variant.build(model, inputs, reference))
        if isinstance(runner, export.Artifact):  # already parity-checked on the same inputs
            runner, check = runner.runner, runner.parity
        else:
            with torch.inference_mode():
                candidate = _quiet(lambda: export.run_chunked(runner, inputs, variant.parity_chunk))
            check = export.parity(reference, candidate)
    except (VariantUnavailable, export.ExportUnavailable) as exc:
        return None, clock() - started, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken variant must not stop the benchmark
        return None, clock() - started, None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return runner, clock() - started, check, None


def build_runner(name: str, model: nn.Module, inputs: torch.Tensor) -> Runner | export.Artifact:
    """Build one variant outside the benchmark (e.g. to profile it): its runner, or its exported Artifact.

    Exports come from the cache when the same model was exported before. Raises
    :class:`VariantUnavailable` (with the reason) when the variant cannot run here.
    """
    variant = VARIANTS[resolve_variants([name])[0]]
    model, inputs = model.eval().cpu(), export.check_inputs(inputs)
    try:
        return _quiet(lambda: variant.build(model, inputs, export.reference_logits(model, inputs)))
    except export.ExportUnavailable as exc:
        raise VariantUnavailable(str(exc)) from exc


def _add_speedup(df: pd.DataFrame) -> pd.DataFrame:
    if "median_ms" not in df:
        df["median_ms"] = np.nan
    base = df[df.variant == BASELINE].set_index(["batch", "threads"])["median_ms"]
    keys = list(zip(df.batch, df.threads))
    df["speedup"] = [base.get(k, np.nan) / m if m == m else np.nan for k, m in zip(keys, df.median_ms)]
    return df


def tutorial_table(df: pd.DataFrame, batch: int = 1) -> pd.DataFrame:
    """The tutorial's five-row format: inference time and reduction vs the original model."""
    rows = df[(df.variant.isin(TUTORIAL_VARIANTS)) & (df.batch == batch)]
    rows = rows[rows.threads == rows.threads.max()]
    base = rows.loc[rows.variant == BASELINE, "median_ms"]
    if base.empty or base.isna().all():
        raise ValueError("the table needs a timed eager-fp32 row at this batch size")
    out = pd.DataFrame(
        {
            "Model": rows.label.values,
            "Inference Time (ms)": rows.median_ms.round(2).values,
            "Reduction": [
                f"{100 * (1 - m / base.iloc[0]):.2f}%" if m == m else f"— ({r})"
                for m, r in zip(rows.median_ms, rows.reason)
            ],
        }
    )
    return out


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """A compact view for printing: one line per variant × batch × threads, fastest first."""
    cols = ["variant", "batch", "threads", "status", "build_s", "median_ms", "iqr_ms", "images_per_s", "speedup",
            "max_abs_diff", "top1_agreement", "reason"]  # fmt: skip
    present = [c for c in cols if c in df]
    return df[present].sort_values(["batch", "threads", "median_ms"], na_position="last").reset_index(drop=True)


def save_results(df: pd.DataFrame, out_dir: str | Path, stem: str = "bench") -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (without the raw samples) and ``<stem>.json`` (everything + environment)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    df.drop(columns=["samples_ms"], errors="ignore").to_csv(csv_path, index=False)
    payload = {
        "environment": report().as_dict(),
        "torch_threads": torch.get_num_threads(),
        "results": json.loads(df.to_json(orient="records")),
    }
    json_path.write_text(json.dumps(payload, indent=1))
    return csv_path, json_path


def load_results(json_path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a results JSON back: the DataFrame and the environment report it was measured with."""
    payload = json.loads(Path(json_path).read_text())
    return pd.DataFrame(payload["results"]), payload["environment"]


def recommend(df: pd.DataFrame, batch: int = 1, max_abs_diff: float | None = None) -> dict:
    """The fastest parity-checked variant at ``batch`` and how it compares with eager fp32.

    Returns a dict with the winner, its median, its speed-up, the runner-up and the
    share of variants that could not run — the facts a recommendation is built from.
    """
    ok = df[(df.status == "ok") & (df.batch == batch)]
    ok = ok[ok.threads == ok.threads.max()] if not ok.empty else ok
    if max_abs_diff is not None:
        ok = ok[ok.max_abs_diff <= max_abs_diff]
    if ok.empty:
        raise ValueError(f"no variant was timed successfully at batch {batch}")
    ranked = ok.sort_values("median_ms")
    best, runner_up = ranked.iloc[0], ranked.iloc[1] if len(ranked) > 1 else None
    return {
        "variant": best.variant,
        "label": best.label,
        "median_ms": float(best.median_ms),
        "speedup": float(best.speedup),
        "top1_agreement": float(best.top1_agreement),
        "runner_up": None if runner_up is None else runner_up.variant,
        "runner_up_ms": None if runner_up is None else float(runner_up.median_ms),
        "threads": int(best.threads),
    }


#: The kit's own models that :func:`bench_model` (and ``deitlab bench --model``) builds besides timm/HF names.
KIT_MODELS: dict[str, str] = {
    "tiny-deit": "the kit's trained MNIST DeiT (notebooks 04–07)",
    "tiny-deit-random": "the same tiny DeiT, untrained (for quick tests)",
}


def check_model_name(name: str) -> None:
    """Raise :class:`deitlab.models.UnknownModelError` (with close names) unless :func:`bench_model` knows ``name``."""
    from deitlab.models import check_model_name as check_timm_or_hf_name

    check_timm_or_hf_name(name, extra_names=KIT_MODELS)


def bench_model(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A model to benchmark and a batch of real inputs for its parity check.

    ``"tiny-deit"`` is the kit's trained MNIST DeiT (inputs: 64 test digits),
    ``"tiny-deit-random"`` the same architecture untrained (for quick tests); any other
    name goes through :func:`deitlab.models.load_model` (random weights offline,
    seeded so that cached exports are reused) with the shipped photographs as inputs.
    An unknown name raises :class:`deitlab.models.UnknownModelError` before anything is built.
    """
    from deitlab.data import Preprocessing, mnist_subset, sample_images
    from deitlab.models import load_model, tiny_deit

    check_model_name(name)
    if name in KIT_MODELS:
        digits = mnist_subset()[1].tensors[0][:64]
        if name == "tiny-deit":
            from deitlab.zoo import trained_tiny_deit

            return trained_tiny_deit()[0], digits
        torch.manual_seed(seed)
        return tiny_deit().eval(), digits
    torch.manual_seed(seed)
    loaded = load_model(name)
    model = loaded.model if loaded.library == "timm" else LogitsOnly(loaded.model)
    prep = Preprocessing.for_model(loaded.model)
    return model.eval(), prep.batch([image.path for image in sample_images().values()])


class LogitsOnly(nn.Module):
    """Wrap a Hugging Face classifier so that it returns a plain logits tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits
