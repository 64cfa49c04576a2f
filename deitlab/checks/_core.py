"""The self-check harness behind every exercise."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deitlab.i18n.runtime import N_, t


class CheckFailed(AssertionError):
    """An exercise answer is not right yet; the message says what to look at."""


@dataclass(frozen=True)
class CheckResult:
    """A passed self-check (failed ones raise :class:`CheckFailed`)."""

    exercise: str
    detail: str

    def __repr__(self) -> str:
        return t("✅ {exercise}: {detail}").format(exercise=self.exercise, detail=t(self.detail))


def passed(exercise: str, detail: str) -> CheckResult:
    """Report success of a self-check (prints as ``✅ exercise: detail``)."""
    return CheckResult(exercise, detail)


def require(condition: bool, exercise: str, hint: str) -> None:
    """Raise :class:`CheckFailed` with a hint (in the learner's language) when ``condition`` is false."""
    if not condition:
        raise CheckFailed(t("❌ {exercise}: {hint}").format(exercise=exercise, hint=t(hint)))


def require_close(
    actual: torch.Tensor | float, expected: torch.Tensor | float, exercise: str, atol: float = 1e-5, rtol: float = 1e-4
) -> None:
    """Raise :class:`CheckFailed` unless ``actual`` matches ``expected`` (shape and values).

    ``actual`` moves to the device of ``expected`` first, so an answer computed on the
    CPU compares with a reference computed on a GPU (and the other way round).
    """
    expected_t = torch.as_tensor(expected).detach()
    # float64 for the comparison, except on Apple MPS, which has no float64
    dtype = torch.float32 if expected_t.device.type == "mps" else torch.float64
    expected_t = expected_t.to(dtype)
    actual_t = torch.as_tensor(actual).detach().to(expected_t.device, dtype)
    require(
        actual_t.shape == expected_t.shape,
        exercise,
        t(N_("expected shape {expected}, got {actual}")).format(
            expected=tuple(expected_t.shape), actual=tuple(actual_t.shape)
        ),
    )
    diff = (actual_t - expected_t).abs().max().item() if actual_t.numel() else 0.0
    require(
        torch.allclose(actual_t, expected_t, atol=atol, rtol=rtol),
        exercise,
        t(N_("values differ from the reference (max abs difference {diff:.3g})")).format(diff=diff),
    )
