"""Self-checks for notebook 07 (benchmarking)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from deitlab.checks._core import CheckResult, passed, require, require_close

__all__ = ["check_median_iqr", "check_percent_of_peak", "check_fastest_variant"]


def check_median_iqr(samples_ms: Sequence[float], answer: tuple[float, float]) -> CheckResult:
    """Exercise 07.1: the median and the inter-quartile range (p75 − p25) of timing samples."""
    exercise = "07.1 median and IQR"
    require(answer is not None and len(answer) == 2, exercise, "answer with a pair (median, iqr) in ms")
    p25, median, p75 = np.percentile(np.asarray(samples_ms, dtype=float), [25, 50, 75])
    require(abs(answer[0] - np.mean(samples_ms)) > 1e-9 or median == np.mean(samples_ms), exercise,
            "that is the mean: the median is the middle value, robust to the first-run outlier")  # fmt: skip
    require_close(float(answer[0]), median, exercise, atol=1e-6, rtol=1e-6)
    require_close(float(answer[1]), p75 - p25, exercise, atol=1e-6, rtol=1e-6)
    return passed(exercise, f"median {median:.1f} ms, IQR {p75 - p25:.1f} ms")


def check_percent_of_peak(flops: float, median_ms: float, peak_gflops: float, answer: float) -> CheckResult:
    """Exercise 07.2: achieved GFLOP/s as a percentage of the measured matmul peak."""
    exercise = "07.2 share of peak"
    require(answer is not None, exercise, "answer with a percentage")
    expected = 100.0 * flops / (median_ms / 1e3) / 1e9 / peak_gflops
    require(abs(float(answer) - expected / 100) > 1e-6 or expected == 0, exercise, "multiply the fraction by 100")
    require_close(float(answer), expected, exercise, atol=1e-3, rtol=1e-3)
    return passed(exercise, f"{expected:.0f}% of the measured peak")


def check_fastest_variant(df: pd.DataFrame, answer: str, batch: int = 1) -> CheckResult:
    """Exercise 07.3: the name of the fastest variant that passed its parity check at ``batch``."""
    exercise = "07.3 fastest variant"
    require(isinstance(answer, str), exercise, "answer with a variant name from the `variant` column")
    ok = df[(df.status == "ok") & (df.batch == batch)]
    best = ok.sort_values("median_ms").variant.iloc[0]
    require(answer in set(df.variant), exercise, f"{answer!r} is not a variant in the table")
    require(answer == best, exercise, "sort the rows that passed parity by median time (not by mean or minimum)")
    return passed(exercise, f"{best} is the fastest at batch {batch}")
