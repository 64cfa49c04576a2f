"""Self-checks for notebook 03 (knowledge distillation)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from deitlab.checks._core import CheckResult, passed, require, require_close
from deitlab.distill import soft_distillation_loss, softened

__all__ = ["check_soft_distillation", "check_temperature"]

#: A temperature is useful when the softened teacher still ranks its answer first with a
#: clear margin but shows the other classes: mean top-1 probability below this …
MAX_TOP1 = 0.9
#: … and mean entropy below this fraction of the uniform distribution's ``ln C``.
MAX_ENTROPY_FRACTION = 0.8


def check_soft_distillation(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """Compare ``fn(student_logits, teacher_logits, labels, alpha, tau)`` with the kit's soft-distillation loss."""
    exercise = "Exercise 03.1 (soft distillation)"
    generator = torch.Generator().manual_seed(3)
    student = torch.randn(6, 10, generator=generator) * 3
    teacher = torch.randn(6, 10, generator=generator) * 3
    labels = torch.randint(0, 10, (6,), generator=generator)
    for alpha, tau in [(0.0, 1.0), (1.0, 1.0), (0.1, 3.0), (0.5, 7.0)]:
        result = fn(student, teacher, labels, alpha, tau)
        require(
            isinstance(result, torch.Tensor) and result.ndim == 0,
            exercise,
            f"return one scalar tensor (the batch mean); got {type(result).__name__}"
            + (f" of shape {tuple(result.shape)}" if isinstance(result, torch.Tensor) else ""),
        )
        expected = soft_distillation_loss(student, teacher, labels, alpha, tau)
        hint = {
            (0.0, 1.0): "with alpha=0 the loss is the plain cross-entropy with the labels",
            (1.0, 1.0): "with alpha=1, tau=1 it is KL(softmax(teacher) ‖ softmax(student)), averaged over the batch",
            (0.1, 3.0): "divide both logits by tau before the softmax, and multiply the KL term by tau²",
            (0.5, 7.0): "check the weights (1 - alpha) and alpha·tau²",
        }[(alpha, tau)]
        try:
            require_close(result.detach(), expected, exercise, atol=1e-4)
        except AssertionError as failure:
            raise type(failure)(f"{failure} at alpha={alpha}, tau={tau}: {hint}") from None
    return passed(exercise, "matches deitlab.distill.soft_distillation_loss for 4 (alpha, tau) pairs")


def check_temperature(tau: float, teacher_logits: torch.Tensor) -> CheckResult:
    """A temperature that reveals the teacher's second choices without flattening its answer."""
    exercise = "Exercise 03.2 (temperature)"
    require(isinstance(tau, (int, float)) and tau > 0, exercise, f"tau must be a positive number, got {tau!r}")
    require(teacher_logits.ndim == 2, exercise, "pass the teacher's N×C logits")
    probs = softened(teacher_logits.float(), float(tau))
    top1 = probs.max(dim=1).values.mean().item()
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1).mean().item()
    limit = MAX_ENTROPY_FRACTION * math.log(teacher_logits.shape[1])
    require(
        top1 < MAX_TOP1,
        exercise,
        f"at tau={tau} the teacher is still almost one-hot (mean top-1 probability {top1:.2f} ≥ {MAX_TOP1}): "
        "the other classes carry no signal — try a higher temperature",
    )
    require(
        entropy < limit,
        exercise,
        f"at tau={tau} the distribution is nearly flat (entropy {entropy:.2f} ≥ {limit:.2f} nats): "
        "the teacher's answer is drowned — try a lower temperature",
    )
    return passed(exercise, f"tau={tau:g}: mean top-1 probability {top1:.2f}, entropy {entropy:.2f} nats")
