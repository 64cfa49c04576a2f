"""``deitlab bench``: a quick run on the tiny DeiT, and argument errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

import pandas as pd
import pytest

from deitlab import bench, capabilities
from deitlab.cli import build_parser, main


@pytest.fixture(autouse=True)
def _no_probes(monkeypatch):
    caps = tuple(capabilities.Capability(n, n != "optimize_for_mobile", "probe") for n in capabilities.PROBES)
    monkeypatch.setattr(capabilities, "capabilities", lambda *a, **k: caps)


def test_quick_run_on_tiny_model_writes_csv_and_json(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        ["bench", "--model", "tiny-deit-random", "--variants", "eager-fp32,eager-int8,scripted-int8-mobile",
         "--batch", "1,2", "--threads", "1", "--quick", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "eager-int8" in printed and "unavailable" in printed and "bench.json" in printed
    df = pd.read_csv(out / "bench.csv")
    assert len(df) == 6 and set(df.batch) == {1, 2} and set(df.threads) == {1}
    assert (df[df.status == "ok"].repeats == 5).all()
    payload = json.loads((out / "bench.json").read_text())
    assert {"cpu", "cpu_features", "packages", "threads"} <= set(payload["environment"])
    assert len(payload["results"][0]["samples_ms"]) == 5


def test_list_variants_marks_the_quick_ones_for_this_cpu(monkeypatch, capsys):
    monkeypatch.setattr(bench, "cpu_features", lambda: {"AVX2": True, "VNNI": True, "BF16": True, "AMX": True})
    assert main(["bench", "--list"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == set(bench.VARIANTS)
    assert {name for name, words in lines.items() if "quick" in words} == set(bench.quick_variants())
    assert lines["compile-bf16"][2] == "bf16" and lines["pt2e-int8"][2] == "int8"


@pytest.mark.parametrize(
    "features",
    [{"AVX2": True, "VNNI": False, "BF16": False, "AMX": False}, {"AVX2": True, "VNNI": True, "AMX": True}],
)
def test_quick_runs_the_variants_chosen_for_the_probed_cpu(features, monkeypatch, tmp_path):
    seen = {}

    def fake_run(model, inputs, variants, *args, **kwargs):
        seen["variants"] = variants
        return pd.DataFrame({"variant": variants, "batch": 1, "threads": 1, "status": "ok", "median_ms": 1.0})

    monkeypatch.setattr(bench, "cpu_features", lambda: features)
    monkeypatch.setattr(bench, "run_benchmark", fake_run)
    assert main(["bench", "--model", "tiny-deit-random", "--quick", "--out", str(tmp_path)]) == 0
    assert seen["variants"] == list(bench.quick_variants(features))
    assert ("pt2e-int8-bf16" in seen["variants"]) == bool(features.get("AMX"))


def test_unknown_variant_is_a_clear_error(capsys):
    assert main(["bench", "--model", "tiny-deit-random", "--variants", "nope"]) == 2
    assert "unknown variant" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--batch", "0"], ["--threads", "two"]])
def test_bad_numbers_are_rejected(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", *bad])
    assert "integers" in capsys.readouterr().err


def _never_build(*args, **kwargs):
    raise AssertionError("a model was built although the arguments are wrong")


def _one_line_error(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert all(needle in captured.err for needle in needles), captured.err
    return captured.err


@pytest.mark.parametrize(
    "bad",
    [
        ["--repeats", "0"],
        ["--repeats", "-3"],
        ["--warmup", "0"],
        ["--warmup", "x"],
        ["--variants", ""],
        ["--variants", " , "],
        ["--batch", ""],
    ],
)
def test_bad_arguments_are_rejected_before_any_work(bad, monkeypatch, capsys):
    monkeypatch.setattr(bench, "bench_model", _never_build)
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--model", "tiny-deit-random", *bad])
    assert exit_.value.code == 2
    _one_line_error(capsys, bad[0])


@pytest.mark.parametrize(("model", "hint"), [("tiny", "tiny-deit"), ("deit_tiny_patch16_22", "deit_tiny_patch16_224")])
def test_unknown_model_is_one_line_with_close_names_and_nothing_built(model, hint, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("deitlab.models.load_model", _never_build)
    monkeypatch.setattr("deitlab.models.tiny_deit", _never_build)
    assert main(["bench", "--model", model, "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "--model", repr(model), hint)


def test_unknown_variant_is_rejected_before_the_model_is_built(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "bench_model", _never_build)
    assert main(["bench", "--model", "tiny-deit-random", "--variants", "eager-fp32,nope", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "--variants", "nope")


def test_help_names_exactly_the_model_names_that_work(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    model_help = help_text.rsplit("--model MODEL", 1)[1].split("--variants", 1)[0]
    quoted = set(re.findall(r"'([a-z][\w-]*)'", model_help))
    assert quoted == set(bench.KIT_MODELS)
    for name in quoted:
        bench.check_model_name(name)


def test_unwritable_out_fails_at_once_without_building(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "bench_model", _never_build)
    not_a_folder = tmp_path / "results.txt"
    not_a_folder.write_text("")
    assert main(["bench", "--model", "tiny-deit-random", "--quick", "--out", str(not_a_folder)]) == 2
    _one_line_error(capsys, "--out", str(not_a_folder))


def test_out_under_proc_fails_in_a_subprocess_with_exit_2():
    done = subprocess.run(
        [sys.executable, "-m", "deitlab", "bench", "--out", "/proc/deitlab-x", "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "/proc/deitlab-x" in done.stderr and "Traceback" not in done.stderr


def test_results_that_cannot_be_saved_are_printed_and_saved_in_a_named_fallback(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench"
    (out / "bench.csv").mkdir(parents=True)  # the folder is writable, but the results file cannot be written
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    argv = ["bench", "--model", "tiny-deit-random", "--variants", "eager-fp32", "--quick", "--out", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "eager-fp32" in captured.out  # the table
    (fallback,) = (tmp_path / "tmp").iterdir()
    assert str(fallback) in captured.err and str(out) in captured.err
    assert json.loads((fallback / "bench.json").read_text())["results"][0]["variant"] == "eager-fp32"


def test_damaged_cached_weights_are_one_line_naming_the_file_with_exit_1(tmp_path):
    import timm

    repo = timm.create_model("deit_tiny_patch16_224", pretrained=False).pretrained_cfg["hf_hub_id"]
    entry = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text("0" * 40)
    weights = entry / "snapshots" / ("0" * 40) / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"\0" * 1000)  # a zero-filled download
    done = subprocess.run(
        [sys.executable, "-m", "deitlab", "bench", "--model", "deit_tiny_patch16_224", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and f"{weights}:" in done.stderr and "Traceback" not in done.stderr
