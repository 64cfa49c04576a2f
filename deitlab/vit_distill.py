"""Notebook 03's experiment: a pure ViT student distilled from a CNN teacher on a few digits.

The data are a fixed, stratified subset of the shipped MNIST-5k (a data-limited regime),
augmented on the fly with random affine transforms and random erasing. For a given seed
every loss mode sees the same augmented batches in the same order and starts from the same
weights (:func:`paired_students`), so the modes can be compared seed by seed.

:func:`training_step` is the one step every student of the notebook runs — in the
notebook's process or in the worker processes of :func:`train_in_workers`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from deitlab.data import MNIST_MEAN, MNIST_STD, mnist_subset
from deitlab.models import SmallCNN
from deitlab.parallel import run_in_processes
from deitlab.train import cached_training, is_cached

#: The loss modes of the ablation. ``token`` is hard distillation on the distillation head.
MODES = ("none", "soft", "hard", "token")


@dataclass(frozen=True)
class Regime:
    """Everything that shapes one training of the experiment (data, student, augmentation, losses)."""

    n_train: int = 1000  # training digits, stratified, drawn once from the non-test pool
    test_fraction: float = 0.6  # of the 5,000 digits held out for testing (3,000)
    patch: int = 7  # ViT patch size: a 4×4 grid of 7×7 patches
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    epochs: int = 60
    lr: float = 5e-3
    weight_decay: float = 0.05
    batch_size: int = 64
    warmup_epochs: int = 3
    rotate: float = 15.0  # degrees
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 0.12  # fraction of the image side
    shear: float = 10.0  # degrees
    erase_prob: float = 0.25
    erase_area: tuple[float, float] = (0.05, 0.25)
    soft_lambda: float = 0.5  # λ of soft distillation
    tau: float = 3.0  # temperature of soft distillation
    teacher_width: int = 16  # SmallCNN width of the teacher (and of the CNN it is compared with)
    teacher_epochs: int = 30
    teacher_lr: float = 2e-3


REGIME = Regime()


# --- data --------------------------------------------------------------------------------


def digits(regime: Regime = REGIME, fraction: float = 1.0) -> tuple[torch.Tensor, ...]:
    """``(train_images, train_labels, test_images, test_labels)``, images in [0, 1], 1×28×28.

    The test split is ``regime.test_fraction`` of the 5,000 digits (split seed 0); the training
    set is ``regime.n_train`` digits drawn once from the rest, stratified. ``fraction`` keeps the
    first share of each digit's training images, so smaller sets are nested in larger ones.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    train, test = mnist_subset(test_fraction=regime.test_fraction, seed=0)
    (train_x, train_y), (test_x, test_y) = train.tensors, test.tensors
    rng = np.random.default_rng(12345)
    keep = []
    for digit in range(10):
        candidates = np.flatnonzero(train_y.numpy() == digit)
        chosen = np.sort(rng.choice(candidates, size=min(regime.n_train // 10, len(candidates)), replace=False))
        keep.extend(chosen[: max(1, round(len(chosen) * fraction))])
    keep = np.sort(np.array(keep))
    unnormalise = lambda x: x * MNIST_STD + MNIST_MEAN  # noqa: E731 - back to [0, 1]: padding is background 0
    return unnormalise(train_x[keep]), train_y[keep], unnormalise(test_x), test_y


def normalise(images: torch.Tensor) -> torch.Tensor:
    """MNIST normalisation of images in [0, 1] (what every model of the experiment reads)."""
    return (images - MNIST_MEAN) / MNIST_STD


def random_affine(images: torch.Tensor, generator: torch.Generator, regime: Regime = REGIME) -> torch.Tensor:
    """Rotate, scale, shear and translate each image at random (bilinear, zero = background padding)."""
    if images.ndim != 4:
        raise ValueError(f"expected N×C×H×W images, got shape {tuple(images.shape)}")
    n = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-regime.rotate, regime.rotate) * math.pi / 180
    scale = uniform(*regime.scale)
    shear = uniform(-regime.shear, regime.shear) * math.pi / 180
    shift_x = uniform(-regime.translate, regime.translate) * 2
    shift_y = uniform(-regime.translate, regime.translate) * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)  # maps output coordinates to input coordinates
    theta[:, 0, 0] = cos / scale
    theta[:, 0, 1] = (-sin + torch.tan(shear) * cos) / scale
    theta[:, 1, 0] = sin / scale
    theta[:, 1, 1] = (cos + torch.tan(shear) * sin) / scale
    theta[:, 0, 2], theta[:, 1, 2] = shift_x, shift_y
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def random_erasing(images: torch.Tensor, generator: torch.Generator, regime: Regime = REGIME) -> torch.Tensor:
    """Replace a random rectangle of each image (probability ``regime.erase_prob``) by uniform noise."""
    if images.ndim != 4:
        raise ValueError(f"expected N×C×H×W images, got shape {tuple(images.shape)}")
    n, _, h, w = images.shape
    chosen = torch.rand(n, generator=generator) < regime.erase_prob
    low, high = regime.erase_area
    area = (low + (high - low) * torch.rand(n, generator=generator)) * h * w
    aspect = torch.exp((torch.rand(n, generator=generator) * 2 - 1) * math.log(3))
    height = torch.sqrt(area * aspect).round().clamp(1, h).long()
    width = torch.sqrt(area / aspect).round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - height + 1).float()).long()
    left = (torch.rand(n, generator=generator) * (w - width + 1).float()).long()
    noise = torch.rand(images.shape, generator=generator)
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (rows >= top.view(n, 1, 1)) & (rows < (top + height).view(n, 1, 1))
    inside = inside & (cols >= left.view(n, 1, 1)) & (cols < (left + width).view(n, 1, 1))
    mask = (inside & chosen.view(n, 1, 1)).unsqueeze(1).to(images.device)
    return torch.where(mask, noise.to(images.device), images)


def epoch_batches(
    images: torch.Tensor, labels: torch.Tensor, seed: int, epoch: int, regime: Regime = REGIME
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The augmented, normalised batches of one epoch — the same for every loss mode given (seed, epoch)."""
    generator = torch.Generator().manual_seed(100003 * (seed + 1) + epoch)
    order = torch.randperm(len(images), generator=generator)
    for start in range(0, max(len(images) - regime.batch_size, 0) + 1, regime.batch_size):
        index = order[start : start + regime.batch_size]
        batch = random_erasing(random_affine(images[index], generator, regime), generator, regime)
        yield normalise(batch), labels[index]


# --- models ------------------------------------------------------------------------------


def vit_kwargs(regime: Regime = REGIME) -> dict:
    """Keyword arguments of the student ViT: linear patch embedding, no convolutional stem."""
    return dict(
        img_size=28,
        patch_size=regime.patch,
        in_chans=1,
        num_classes=10,
        embed_dim=regime.dim,
        depth=regime.depth,
        num_heads=regime.heads,
        mlp_ratio=regime.mlp_ratio,
    )


def paired_students(seed: int, regime: Regime = REGIME) -> tuple[VisionTransformer, VisionTransformerDistilled]:
    """A plain ViT and a DeiT⚗ student (distillation token) with the same initial weights.

    The token student is drawn from ``seed``; the plain one receives every weight they share
    (the position embeddings without the distillation token's).
    """
    torch.manual_seed(seed)
    token = VisionTransformerDistilled(**vit_kwargs(regime))
    plain = VisionTransformer(**vit_kwargs(regime))
    shared = token.state_dict()
    shared["pos_embed"] = torch.cat([shared["pos_embed"][:, :1], shared["pos_embed"][:, 2:]], dim=1)
    missing, _ = plain.load_state_dict(shared, strict=False)
    if missing:
        raise RuntimeError(f"the plain ViT misses weights of the token ViT: {missing}")
    return plain, token


def build_student(mode: str, seed: int, regime: Regime = REGIME) -> nn.Module:
    """The student of ``mode`` (the token ViT for ``token``, else the plain ViT) for ``seed``."""
    _check_mode(mode)
    plain, token = paired_students(seed, regime)
    return token if mode == "token" else plain


def build_cnn(seed: int, regime: Regime = REGIME) -> SmallCNN:
    """A ``SmallCNN`` of the teacher's width, initialised from ``seed``."""
    torch.manual_seed(seed)
    return SmallCNN(width=regime.teacher_width)


def epochs_for(epochs: int, fraction: float) -> int:
    """Epochs on ``fraction`` of the digits that show the model as many images as ``epochs`` on all of them."""
    return max(1, round(epochs / fraction))


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


# --- the training step and loop ----------------------------------------------------------


def training_step(
    student: nn.Module,
    teacher: nn.Module | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    mode: str,
    regime: Regime = REGIME,
) -> float:
    """One optimisation step of ``mode`` on one augmented batch; returns the loss."""
    if mode == "none":
        loss = F.cross_entropy(student(images), labels)
    else:
        with torch.no_grad():  # the frozen teacher sees the same augmented images
            teacher_logits = teacher(images)
        if mode == "soft":  # (1 - λ) CE(student, y) + λ τ² KL(teacher_τ ‖ student_τ)
            logits, tau = student(images), regime.tau
            kl = F.kl_div(
                F.log_softmax(logits / tau, dim=1),
                F.log_softmax(teacher_logits / tau, dim=1),
                reduction="batchmean",
                log_target=True,
            )
            loss = (1 - regime.soft_lambda) * F.cross_entropy(logits, labels) + regime.soft_lambda * tau**2 * kl
        elif mode == "hard":  # ½ CE(student, y) + ½ CE(student, teacher's top class)
            logits = student(images)
            loss = 0.5 * F.cross_entropy(logits, labels) + 0.5 * F.cross_entropy(logits, teacher_logits.argmax(1))
        elif mode == "token":  # class head ← y, distillation head ← teacher's top class
            class_logits, dist_logits = student(images)  # two heads (set_distilled_training(True))
            loss = 0.5 * F.cross_entropy(class_logits, labels) + 0.5 * F.cross_entropy(
                dist_logits, teacher_logits.argmax(1)
            )
        else:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def make_optimizer(model: nn.Module, regime: Regime = REGIME, lr: float | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices only (not on biases, norms, tokens, positions)."""

    def decays(name: str, parameter: nn.Parameter) -> bool:
        return parameter.ndim > 1 and "token" not in name and "pos_embed" not in name

    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if decays(n, p)], "weight_decay": regime.weight_decay},
        {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=regime.lr if lr is None else lr)


def cosine_lr(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then a cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * step / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train(
    model: nn.Module,
    mode: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
    teacher: nn.Module | None = None,
    regime: Regime = REGIME,
    epochs: int | None = None,
    lr: float | None = None,
    report: Callable[[], None] | None = None,
) -> list[dict]:
    """Run :func:`training_step` over ``epochs`` of :func:`epoch_batches`; returns the mean loss per epoch.

    The model trains on the device of its parameters. ``report()`` is called after each epoch.
    """
    _check_mode(mode)
    if mode != "none" and teacher is None:
        raise ValueError(f"mode {mode!r} needs a teacher model")
    epochs = regime.epochs if epochs is None else epochs
    peak = regime.lr if lr is None else lr
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, regime, peak)
    steps_per_epoch = max(len(images) // regime.batch_size, 1)
    total, warmup = epochs * steps_per_epoch, regime.warmup_epochs * steps_per_epoch
    if teacher is not None:
        teacher.eval()
    if mode == "token":
        model.set_distilled_training(True)
    model.train()
    history, step = [], 0
    try:
        for epoch in range(epochs):
            losses = []
            for batch, targets in epoch_batches(images, labels, seed, epoch, regime):
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(step, total, warmup, peak)
                batch, targets = batch.to(device), targets.to(device)
                losses.append(training_step(model, teacher, batch, targets, optimizer, mode, regime))
                step += 1
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses))})
            if report is not None:
                report()
    finally:
        if mode == "token":
            model.set_distilled_training(False)
        model.eval()
    return history


# --- cached trainings, in worker processes ------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One training of the experiment: a ViT student (``mode``) or a CNN (``mode="cnn"``)."""

    mode: str
    seed: int
    fraction: float = 1.0


def _cache_entry(job: Job, regime: Regime) -> tuple[str, Callable[[], nn.Module]]:
    """Cache name and model builder of ``job``."""
    if job.mode == "cnn":
        return "vit_distill-cnn", lambda: build_cnn(job.seed, regime)
    return f"vit_distill-{job.mode}", lambda: build_student(job.mode, job.seed, regime)


def _recipe(job: Job, regime: Regime) -> dict:
    return {"experiment": "vit_distill", "regime": asdict(regime), **asdict(job)}


def is_trained(job: Job, regime: Regime = REGIME) -> bool:
    """True when ``job``'s model is in the cache."""
    return is_cached(*_cache_entry(job, regime), _recipe(job, regime))


def cached_cnn(
    seed: int,
    regime: Regime = REGIME,
    fraction: float = 1.0,
    retrain: bool = False,
    report: Callable[[], None] | None = None,
) -> tuple[SmallCNN, list[dict]]:
    """A ``SmallCNN`` trained without a teacher on the ``fraction`` of the training digits (cached).

    A smaller ``fraction`` trains for more epochs (:func:`epochs_for`): the same number of images seen.
    """
    images, labels, _, _ = digits(regime, fraction)
    epochs = epochs_for(regime.teacher_epochs, fraction)

    def fit(model: nn.Module) -> list[dict]:
        return train(model, "none", images, labels, seed, None, regime, epochs, regime.teacher_lr, report)

    return cached_training(
        *_cache_entry(Job("cnn", seed, fraction), regime),
        fit,
        retrain,
        recipe=_recipe(Job("cnn", seed, fraction), regime),
    )


def cached_student(
    mode: str,
    seed: int,
    regime: Regime = REGIME,
    fraction: float = 1.0,
    retrain: bool = False,
    report: Callable[[], None] | None = None,
) -> tuple[nn.Module, list[dict]]:
    """The ViT student of ``mode`` and ``seed`` trained on ``fraction`` of the digits (cached).

    The teacher of the distillation modes is ``cached_cnn(0, regime)`` (trained on all the
    training digits: in DeiT, too, the teacher saw the student's data). A smaller ``fraction``
    trains for more epochs (:func:`epochs_for`).
    """
    _check_mode(mode)
    images, labels, _, _ = digits(regime, fraction)
    teacher = None if mode == "none" else cached_cnn(0, regime)[0]
    epochs = epochs_for(regime.epochs, fraction)

    def fit(model: nn.Module) -> list[dict]:
        return train(model, mode, images, labels, seed, teacher, regime, epochs, report=report)

    job = Job(mode, seed, fraction)
    return cached_training(*_cache_entry(job, regime), fit, retrain, recipe=_recipe(job, regime))


def _progress(report: Callable[[], None] | None, epochs: int, steps: int) -> Callable[[], None] | None:
    """A per-epoch callback that calls ``report()`` ``steps`` times in all over ``epochs`` epochs."""
    if report is None:
        return None
    done = [0]

    def epoch_end() -> None:
        before = done[0] * steps // epochs
        done[0] += 1
        for _ in range(done[0] * steps // epochs - before):
            report()

    return epoch_end


def _run_job(job: Job, regime: Regime, retrain: bool, report: Callable[[], None] | None = None) -> None:
    """Train ``job`` into the cache (the function the worker processes run); ``report()`` ``regime.epochs`` times."""
    if job.mode == "cnn":
        epochs = epochs_for(regime.teacher_epochs, job.fraction)
        cached_cnn(job.seed, regime, job.fraction, retrain, _progress(report, epochs, regime.epochs))
    else:
        epochs = epochs_for(regime.epochs, job.fraction)
        cached_student(job.mode, job.seed, regime, job.fraction, retrain, _progress(report, epochs, regime.epochs))


def load(job: Job, regime: Regime = REGIME) -> nn.Module:
    """The trained model of ``job`` from the cache (trains it here when it is missing)."""
    if job.mode == "cnn":
        return cached_cnn(job.seed, regime, job.fraction)[0]
    return cached_student(job.mode, job.seed, regime, job.fraction)[0]


def train_in_workers(jobs: Sequence[Job], regime: Regime = REGIME, workers: int = 2, retrain: bool = False) -> None:
    """Train every job into the cache, ``workers`` at a time in one-thread worker processes.

    The teacher (``Job("cnn", 0)``) is trained first, here, since the distillation jobs need it
    (again with ``retrain`` only when it is among ``jobs``).
    """
    cached_cnn(0, regime, retrain=retrain and Job("cnn", 0) in jobs)
    todo = [job for job in jobs if job != Job("cnn", 0) and (retrain or not is_trained(job, regime))]
    if not todo:
        return
    if workers <= 1:
        for job in todo:
            _run_job(job, regime, retrain)
        return
    jobs_args = [(job, regime, retrain) for job in todo]
    run_in_processes(_run_job, jobs_args, workers, regime.epochs, desc=f"{len(todo)} trainings, {workers} at a time")


# --- reading the students ----------------------------------------------------------------


@torch.inference_mode()
def predictions(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> dict[str, torch.Tensor]:
    """Predicted classes of each head for images in [0, 1]: ``class``; a token student adds
    ``distillation`` and ``both`` (the paper's rule: the argmax of the sum of the two softmaxes)."""
    model.eval()
    device = next(model.parameters()).device
    outputs: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(images), batch_size):
        batch = normalise(images[start : start + batch_size]).to(device)
        if isinstance(model, VisionTransformerDistilled):
            tokens = model.forward_features(batch)
            class_logits, dist_logits = model.head(tokens[:, 0]), model.head_dist(tokens[:, 1])
            heads = {
                "class": class_logits,
                "distillation": dist_logits,
                "both": class_logits.softmax(1) + dist_logits.softmax(1),
            }
        else:
            heads = {"class": model(batch)}
        for name, values in heads.items():
            outputs.setdefault(name, []).append(values.argmax(1).cpu())
    return {name: torch.cat(values) for name, values in outputs.items()}


def paired_differences(accuracies: dict[str, Sequence[float]], baseline: str = "none") -> dict[str, np.ndarray]:
    """Per-seed differences ``row - baseline`` for every other row (lists in seed order)."""
    if baseline not in accuracies:
        raise ValueError(f"no {baseline!r} row among {sorted(accuracies)}")
    base = np.asarray(accuracies[baseline], dtype=float)
    differences = {}
    for name, values in accuracies.items():
        values = np.asarray(values, dtype=float)
        if values.shape != base.shape:
            raise ValueError(f"row {name!r} has {values.size} seeds, the baseline {base.size}")
        if name != baseline:
            differences[name] = values - base
    return differences
