"""Self-checks for notebook 07 (benchmarking)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from deitlab.checks._core import CheckResult, passed, require, require_close

if TYPE_CHECKING:  # only the annotations name pandas; importing it costs notebooks without tables a second
    import pandas as pd

__all__ = ["check_timing_loop", "check_share_of_own_peak", "check_fastest_variant"]

#: DeiT-B's FLOPs for one 224×224 image (2 per multiply-accumulate), as notebook 07 counts them.
DEIT_B_GFLOP = 35.1


def check_timing_loop(timing_loop: Callable) -> CheckResult:
    """Exercise 07.1: ``timing_loop(fn, warmup, min_seconds)`` → ``(median_ms, iqr_ms, repeats)``.

    The check hands it a function that is slow (30 ms) for its first three calls and fast
    (2 ms) afterwards, and verifies that the warm-up calls were not timed, that the loop kept
    timing until ``min_seconds`` of timed calls had passed, and the median and IQR it returned.
    """
    exercise = "07.1 timing loop"
    require(callable(timing_loop), exercise, "define a function timing_loop(fn, warmup, min_seconds)")
    calls = []

    def fn() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.03 if len(calls) <= 3 else 0.002)

    result = timing_loop(fn, warmup=3, min_seconds=0.1)
    require(isinstance(result, tuple) and len(result) == 3, exercise, "return a tuple (median_ms, iqr_ms, repeats)")
    median_ms, iqr_ms, repeats = result
    require(isinstance(repeats, int) and repeats >= 1, exercise, "`repeats` is the number of timed calls, an int")
    require(len(calls) == 3 + repeats, exercise,
            f"fn ran {len(calls)} times for 3 warm-up + {repeats} timed calls: one call per repeat")  # fmt: skip
    require(calls[-1] - calls[3] + 0.002 >= 0.09, exercise,
            "keep timing until the timed calls add up to min_seconds")  # fmt: skip
    require(median_ms < 15, exercise,
            f"median {median_ms:.1f} ms: the 30 ms warm-up calls were timed, or the result is not in ms")  # fmt: skip
    require(median_ms >= 1.9, exercise, "the median is in milliseconds: (end - start) * 1000 per call")
    require(0 <= iqr_ms < 15, exercise, "IQR = 75th − 25th percentile of the timed calls, in ms")
    return passed(exercise, f"{repeats} timed calls after 3 warm-up calls, median {median_ms:.1f} ms")


def check_share_of_own_peak(df: pd.DataFrame, flops: float, peaks: dict, answer: float) -> CheckResult:
    """Exercise 07.2: the fastest int8 DeiT-B row at batch 1 as a percentage of the **int8** peak.

    ``df`` is the benchmark table (DeiT-B, batch 1), ``flops`` one image's FLOPs, ``peaks``
    the measured :class:`deitlab.roofline.Peak` per precision.
    """
    exercise = "07.2 share of its own peak"
    require(answer is not None, exercise, "answer with a percentage")
    require(abs(flops / 1e9 - DEIT_B_GFLOP) < 0.1, exercise, "use DeiT-B's FLOPs for one image (`total`)")
    require(set(df.model) == {"deit_base"}, exercise, "use notebook 07's DeiT-B table `df`")
    int8 = df[(df.status == "ok") & (df.precision == "int8") & (df.batch == 1)]
    require(not int8.empty, exercise, "the table has no timed int8 row at batch 1")
    best = int8.sort_values("median_ms").iloc[0]
    expected = 100.0 * flops / (best.median_ms / 1e3) / 1e9 / peaks["int8"].gflops
    if "fp32" in peaks:
        wrong_peak = 100.0 * flops / (best.median_ms / 1e3) / 1e9 / peaks["fp32"].gflops
        require(abs(float(answer) - wrong_peak) > 1e-3 * wrong_peak, exercise,
                "that is the share of the fp32 peak: an int8 variant is rated against the int8 peak")  # fmt: skip
    require(abs(float(answer) - expected / 100) > 1e-6 or expected == 0, exercise, "multiply the fraction by 100")
    require_close(float(answer), expected, exercise, atol=1e-3, rtol=1e-3)
    return passed(exercise, f"{best.variant}: {expected:.0f}% of the measured int8 peak")


def check_fastest_variant(df: pd.DataFrame, answer: str, batch: int = 1) -> CheckResult:
    """Exercise 07.3: the fastest DeiT-B variant that passed its parity check at ``batch``."""
    exercise = "07.3 fastest variant"
    require(isinstance(answer, str), exercise, "answer with a variant name from the `variant` column")
    require(set(df.model) == {"deit_base"}, exercise, "use notebook 07's DeiT-B table `df`")
    require((df.status != "ok").any(), exercise, "use the whole table, with the rows that could not run")
    ok = df[(df.status == "ok") & (df.batch == batch)]
    best = ok.sort_values("median_ms").variant.iloc[0]
    require(answer in set(df.variant), exercise, f"{answer!r} is not a variant in the table")
    require(answer == best, exercise, "sort the rows that passed parity by median time (not by mean or minimum)")
    return passed(exercise, f"{best} is the fastest at batch {batch}")
