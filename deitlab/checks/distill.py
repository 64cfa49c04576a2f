"""Self-checks for notebook 03 (knowledge distillation): the hard-label loss and the token loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from deitlab.checks._core import CheckResult, passed, require, require_close
from deitlab.distill import hard_distillation_loss

__all__ = ["check_hard_distillation", "check_token_loss"]


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class logits, distillation logits, teacher logits and labels of a batch where the teacher
    disagrees with the labels on about half the images (so a loss that ignores it is caught)."""
    generator = torch.Generator().manual_seed(seed)
    class_logits = torch.randn(8, 10, generator=generator) * 2
    dist_logits = torch.randn(8, 10, generator=generator) * 2
    teacher = torch.randn(8, 10, generator=generator) * 3
    labels = torch.randint(0, 10, (8,), generator=generator)
    return class_logits, dist_logits, teacher, labels


def _require_scalar(result: object, exercise: str) -> None:
    require(
        isinstance(result, torch.Tensor) and result.ndim == 0,
        exercise,
        f"return one scalar tensor (the batch mean); got {type(result).__name__}"
        + (f" of shape {tuple(result.shape)}" if isinstance(result, torch.Tensor) else ""),
    )


def check_hard_distillation(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """``fn(student_logits, teacher_logits, labels)`` must be ½ CE(student, y) + ½ CE(student, argmax teacher)."""
    exercise = "Exercise 03.1 (hard-label distillation)"
    for seed in (0, 1, 2):
        student, _, teacher, labels = _batch(seed)
        result = fn(student, teacher, labels)
        _require_scalar(result, exercise)
        expected = hard_distillation_loss(student, teacher, labels)
        soft_teacher = 0.5 * F.cross_entropy(student, labels) + 0.5 * F.cross_entropy(student, teacher.softmax(1))
        require(
            not torch.allclose(result.detach(), soft_teacher, atol=1e-5),
            exercise,
            "the teacher's label is its top class (argmax of its logits), not its probabilities",
        )
        require(
            not torch.allclose(result.detach(), F.cross_entropy(student, labels), atol=1e-5),
            exercise,
            "this is the plain cross-entropy with the labels: add the term with the teacher's top class",
        )
        require_close(result.detach(), expected, exercise, atol=1e-5)
    agreeing = hard_distillation_loss(student, F.one_hot(labels, 10).float() * 5, labels)
    require_close(fn(student, F.one_hot(labels, 10).float() * 5, labels).detach(), agreeing, exercise, atol=1e-5)
    return passed(exercise, "matches ½ CE(student, y) + ½ CE(student, argmax teacher) on 4 batches")


def check_token_loss(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """``fn(class_logits, dist_logits, teacher_logits, labels)`` must be
    ½ CE(class head, y) + ½ CE(distillation head, argmax teacher)."""
    exercise = "Exercise 03.2 (the distillation token's loss)"
    for seed in (3, 4, 5):
        class_logits, dist_logits, teacher, labels = _batch(seed)
        result = fn(class_logits, dist_logits, teacher, labels)
        _require_scalar(result, exercise)
        swapped = hard_distillation_loss(dist_logits, teacher, labels, class_logits)
        require(
            not torch.allclose(result.detach(), swapped, atol=1e-5),
            exercise,
            "the heads are swapped: the true label trains the class head, the teacher's label the distillation head",
        )
        one_head = hard_distillation_loss(class_logits, teacher, labels)
        require(
            not torch.allclose(result.detach(), one_head, atol=1e-5),
            exercise,
            "both terms use the class head: the teacher's term belongs to the distillation head",
        )
        require_close(result.detach(), hard_distillation_loss(class_logits, teacher, labels, dist_logits), exercise)
    return passed(exercise, "matches ½ CE(class head, y) + ½ CE(distillation head, argmax teacher) on 3 batches")
