"""Knowledge distillation as in DeiT: soft and hard-label losses, the distillation token,
the one-batch step of ``deitlab.train_distill``, and the kit's cached tiny DeiT student
(conv stem) of notebooks 04–07. Notebook 03's pure-ViT experiment is :mod:`deitlab.vit_distill`.

A student either returns plain logits, or — a timm ``VisionTransformerDistilled`` with
``set_distilled_training(True)`` in train mode — a ``(class_logits, distillation_logits)``
pair. In eval mode that model returns the average of its two heads' logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deitlab.data import mnist_loaders
from deitlab.measure import model_fingerprint
from deitlab.models import tiny_deit
from deitlab.train import cached_training, fit, seed_everything

MODES = ("none", "soft", "hard")

#: DeiT paper (Touvron et al., ICML 2021, arXiv:2012.12877), Table 3: ImageNet top-1 (%)
#: at 224×224 with a RegNetY-16GF teacher, for DeiT-Ti and DeiT-B.
PAPER_TABLE3: dict[str, dict[str, float]] = {
    "no distillation": {"DeiT-Ti": 72.2, "DeiT-B": 81.8},
    "soft distillation": {"DeiT-Ti": 72.2, "DeiT-B": 81.8},
    "hard distillation": {"DeiT-Ti": 74.3, "DeiT-B": 83.0},
    "token: class head only": {"DeiT-Ti": 73.9, "DeiT-B": 83.0},
    "token: distillation head only": {"DeiT-Ti": 74.6, "DeiT-B": 83.1},
    "token: class + distillation": {"DeiT-Ti": 74.5, "DeiT-B": 83.4},
}


def _check_logits(name: str, logits: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{name} must be an N×C tensor of logits, got {shape}")
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != logits.shape[0]):
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match {name}, got {tuple(labels.shape)}")


def _check_teacher(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> None:
    _check_logits("teacher_logits", teacher_logits)
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits {tuple(teacher_logits.shape)} must match the student's {tuple(student_logits.shape)}"
        )


def split_heads(outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(class_logits, distillation_logits)`` of a student; a plain-logit student uses its logits for both."""
    if isinstance(outputs, (tuple, list)):
        if len(outputs) != 2:
            raise ValueError(f"a distilled student returns (class_logits, distillation_logits), got {len(outputs)}")
        return outputs[0], outputs[1]
    return outputs, outputs


def soft_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 0.5,
    tau: float = 3.0,
) -> torch.Tensor:
    """``(1-α)·CE(student, y) + α·τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ))`` (batch mean).

    ``α`` is the paper's λ. The KL goes from the teacher's softened distribution to the
    student's (PyTorch's ``kl_div(log q_student, p_teacher)``); the ``τ²`` keeps its
    gradient on the same scale as the cross-entropy's whatever the temperature.
    The DeiT reference code divides the summed KL by batch × classes instead (its
    issue 61), which makes its effective λ ``num_classes`` times smaller.
    """
    _check_logits("student_logits", student_logits, labels)
    _check_teacher(teacher_logits, student_logits)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if tau <= 0:
        raise ValueError(f"tau (temperature) must be positive, got {tau}")
    ce = F.cross_entropy(student_logits, labels)
    kl = F.kl_div(
        F.log_softmax(student_logits / tau, dim=1),
        F.log_softmax(teacher_logits / tau, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - alpha) * ce + alpha * tau**2 * kl


def hard_distillation_loss(
    class_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    dist_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """``½·CE(class, y) + ½·CE(dist, argmax teacher)``; without a distillation head ``dist = class``."""
    _check_logits("class_logits", class_logits, labels)
    _check_teacher(teacher_logits, class_logits)
    dist_logits = class_logits if dist_logits is None else dist_logits
    _check_logits("dist_logits", dist_logits, labels)
    teacher_labels = teacher_logits.argmax(dim=1)
    return 0.5 * F.cross_entropy(class_logits, labels) + 0.5 * F.cross_entropy(dist_logits, teacher_labels)


def distillation_loss(
    outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    mode: str = "hard",
    alpha: float = 0.5,
    tau: float = 3.0,
) -> torch.Tensor:
    """The loss of one batch for ``mode`` in ``none`` / ``soft`` / ``hard``.

    ``outputs`` are the student's logits or its ``(class, distillation)`` pair. With a pair,
    ``none`` trains both heads on the labels, ``soft`` puts the KL term on the distillation
    head and the cross-entropy on the class head, ``hard`` the teacher's labels on the
    distillation head (the DeiT⚗ recipe).
    """
    if mode not in MODES:
        raise ValueError(f"unknown distillation mode {mode!r}; choose one of {', '.join(MODES)}")
    class_logits, dist_logits = split_heads(outputs)
    if mode == "none":
        _check_logits("student logits", class_logits, labels)
        ce = F.cross_entropy(class_logits, labels)
        return ce if dist_logits is class_logits else 0.5 * (ce + F.cross_entropy(dist_logits, labels))
    if teacher_logits is None:
        raise ValueError(f"mode {mode!r} needs teacher_logits")
    if mode == "hard":
        return hard_distillation_loss(class_logits, teacher_logits, labels, dist_logits)
    if dist_logits is class_logits:
        return soft_distillation_loss(class_logits, teacher_logits, labels, alpha, tau)
    ce = F.cross_entropy(class_logits, labels)
    kl = soft_distillation_loss(dist_logits, teacher_logits, labels, alpha=1.0, tau=tau)
    return (1 - alpha) * ce + alpha * kl


def random_shift(images: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero padding in normalised units = background)."""
    if images.ndim != 4:
        raise ValueError(f"expected N×C×H×W images, got shape {tuple(images.shape)}")
    if max_shift == 0:
        return images
    n, _, h, w = images.shape
    background = images.amin(dim=(1, 2, 3), keepdim=True)
    padded = F.pad(images - background, (max_shift,) * 4) + background
    dy = torch.randint(0, 2 * max_shift + 1, (n,))
    dx = torch.randint(0, 2 * max_shift + 1, (n,))
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(images.device)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(images.device)
    index = torch.arange(n, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class DistillationLoss:
    """A ``loss_fn(model, images, labels)`` for :func:`deitlab.train.fit`.

    Augments the batch (random shifts), runs the frozen teacher on the *same* augmented
    images (as DeiT does), and applies :func:`distillation_loss`.
    """

    def __init__(
        self,
        teacher: nn.Module | None,
        mode: str = "hard",
        alpha: float = 0.5,
        tau: float = 3.0,
        max_shift: int = 2,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown distillation mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode != "none" and teacher is None:
            raise ValueError(f"mode {mode!r} needs a teacher model")
        self.teacher = teacher.eval() if teacher is not None else None
        self.mode, self.alpha, self.tau, self.max_shift = mode, alpha, tau, max_shift

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = random_shift(images, self.max_shift)
        loss, _ = teacher_student_loss(model, self.teacher, images, labels, self.mode, self.alpha, self.tau)
        return loss


def teacher_student_loss(
    student: nn.Module,
    teacher: nn.Module | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    mode: str = "hard",
    alpha: float = 0.5,
    tau: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits (under ``no_grad``), the student's forward pass and the loss of ``mode``.

    Returns ``(loss, class_logits)``; ``class_logits`` are the student's class head, for accuracy.
    The teacher must be in eval mode (its BatchNorm then uses its running statistics);
    ``mode="none"`` does not run it and accepts ``teacher=None``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown distillation mode {mode!r}; choose one of {', '.join(MODES)}")
    teacher_logits = None
    if mode != "none":
        if teacher is None:
            raise ValueError(f"mode {mode!r} needs a teacher model")
        with torch.no_grad():
            teacher_logits = teacher(images)
    outputs = student(images)
    loss = distillation_loss(outputs, labels, teacher_logits, mode, alpha, tau)
    return loss, split_heads(outputs)[0]


def distillation_step(
    student: nn.Module,
    teacher: nn.Module | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    mode: str = "hard",
    alpha: float = 0.5,
    tau: float = 3.0,
) -> dict[str, float]:
    """One optimisation step of DeiT distillation on one batch; returns its loss and accuracy counts.

    Teacher forward (no gradients), student forward, the loss of ``mode``
    (:func:`distillation_loss`), ``backward()`` and ``optimizer.step()``. Augment ``images``
    before the call; the student must be in train mode (a DeiT⚗ student with
    ``set_distilled_training(True)``). Under ``DistributedDataParallel`` pass the wrapped
    student: its ``backward()`` averages the gradients of all processes before the step.
    Returns ``{"loss": batch-mean loss, "correct": class-head hits, "count": batch size}``.
    """
    loss, class_logits = teacher_student_loss(student, teacher, images, labels, mode, alpha, tau)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    correct = int((class_logits.detach().argmax(dim=1) == labels).sum())
    return {"loss": loss.item(), "correct": correct, "count": len(labels)}


# --- looking inside a student ------------------------------------------------------


def has_distillation_token(model: nn.Module) -> bool:
    """True for a DeiT⚗ student (a distillation token and a second head)."""
    return getattr(model, "dist_token", None) is not None and hasattr(model, "head_dist")


# --- the kit's tiny DeiT (conv stem), distilled from the small CNN -----------------------


@dataclass(frozen=True)
class Method:
    """One row group of the ablation: a loss mode, with or without a distillation token."""

    name: str
    mode: str
    token: bool = False

    @property
    def slug(self) -> str:
        return self.mode + ("-token" if self.token else "")


METHODS: tuple[Method, ...] = (
    Method("no distillation", "none"),
    Method("soft distillation", "soft"),
    Method("hard distillation", "hard"),
    Method("hard + distillation token", "hard", token=True),
)
TOKEN_METHOD = METHODS[-1]


@dataclass(frozen=True)
class Recipe:
    """How every student of the ablation is trained (one recipe for all rows)."""

    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 64
    weight_decay: float = 0.05
    max_shift: int = 2  # random-shift augmentation, pixels
    alpha: float = 0.1  # λ of soft distillation (the DeiT paper's value)
    tau: float = 3.0  # temperature of soft distillation (the DeiT paper's value)
    split_seed: int = 0  # the train/test split of every student, whatever its seed


RECIPE = Recipe()


def student_recipe(method: Method, teacher: nn.Module | None, seed: int = 0, recipe: Recipe = RECIPE) -> dict:
    """The cache recipe of one student: method, seed, the training recipe and — for the
    distillation modes — a fingerprint of the teacher's weights, so changing any of them retrains.
    (The student's architecture joins the key in :func:`deitlab.train.training_key`.)"""
    if method.mode != "none" and teacher is None:
        raise ValueError(f"{method.name!r} needs a teacher model")
    teacher_tag = None if method.mode == "none" else model_fingerprint(teacher)
    return {"method": asdict(method), "seed": seed, "recipe": asdict(recipe), "teacher": teacher_tag}


def _student_name(method: Method) -> str:
    return f"distill03-{method.slug}"


def _build_student(method: Method, seed: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        seed_everything(seed)
        return tiny_deit(distilled=method.token)

    return build


def train_student(
    method: Method,
    teacher: nn.Module | None,
    seed: int = 0,
    recipe: Recipe = RECIPE,
    retrain: bool = False,
    on_epoch_end: Callable[[nn.Module, int], None] | None = None,
    progress_bar: bool = True,
) -> tuple[nn.Module, list[dict]]:
    """Train (or load from the cache) one tiny-DeiT student of the ablation.

    The cache recipe is :func:`student_recipe`. ``on_epoch_end`` and ``progress_bar``
    go to :func:`deitlab.train.fit`. The returned model is in eval mode and returns one
    logits tensor.
    """
    cache_recipe = student_recipe(method, teacher, seed, recipe)

    def train(model: nn.Module) -> list[dict]:
        train_loader, test_loader = mnist_loaders(batch_size=recipe.batch_size, seed=seed, split_seed=recipe.split_seed)
        loss = DistillationLoss(teacher, method.mode, recipe.alpha, recipe.tau, recipe.max_shift)
        if method.token:
            model.set_distilled_training(True)
        try:
            return fit(
                model,
                train_loader,
                recipe.epochs,
                lr=recipe.lr,
                loss_fn=loss,
                test_loader=test_loader,
                weight_decay=recipe.weight_decay,
                desc=f"{method.name}, seed {seed}",
                on_epoch_end=on_epoch_end,
                progress_bar=progress_bar,
            )
        finally:
            if method.token:
                model.set_distilled_training(False)

    return cached_training(_student_name(method), _build_student(method, seed), train, retrain, recipe=cache_recipe)
