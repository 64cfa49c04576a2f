"""``deitlab bench``: a quick run on the tiny DeiT, and argument errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from deitlab import capabilities
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


def test_list_variants(capsys):
    assert main(["bench", "--list"]) == 0
    assert "executorch-int8" in capsys.readouterr().out


def test_unknown_variant_is_a_clear_error(capsys):
    assert main(["bench", "--model", "tiny-deit-random", "--variants", "nope"]) == 2
    assert "unknown variant" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--batch", "0"], ["--threads", "two"]])
def test_bad_numbers_are_rejected(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", *bad])
    assert "integers" in capsys.readouterr().err
