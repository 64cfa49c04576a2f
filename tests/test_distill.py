import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deitlab import distill, train
from deitlab.models import tiny_deit

LN = math.log
# Two classes. Student logits [ln 3, 0] → p = (3/4, 1/4); teacher [0, 5] → hard label 1.
STUDENT = torch.tensor([[LN(3), 0.0]])
TEACHER = torch.tensor([[0.0, 5.0]])
UNIFORM_TEACHER = torch.tensor([[0.0, 0.0]])
LABEL0 = torch.tensor([0])


def test_none_mode_is_cross_entropy():
    loss = distill.distillation_loss(STUDENT, LABEL0, mode="none")
    assert loss.item() == pytest.approx(LN(4 / 3))


def test_none_mode_with_two_heads_averages_both_cross_entropies():
    dist = torch.tensor([[0.0, 0.0]])  # CE = ln 2
    loss = distill.distillation_loss((STUDENT, dist), LABEL0, mode="none")
    assert loss.item() == pytest.approx(0.5 * (LN(4 / 3) + LN(2)))


def test_hard_mode_without_token_uses_the_same_logits_twice():
    # ½·CE(student, y=0) + ½·CE(student, teacher's argmax = 1) = ½·ln(4/3) + ½·ln 4
    loss = distill.distillation_loss(STUDENT, LABEL0, TEACHER, mode="hard")
    assert loss.item() == pytest.approx(0.5 * LN(4 / 3) + 0.5 * LN(4))


def test_hard_mode_with_token_sends_teacher_labels_to_the_distillation_head():
    dist = torch.tensor([[0.0, LN(3)]])  # p(class 1) = 3/4 → CE = ln(4/3)
    loss = distill.distillation_loss((STUDENT, dist), LABEL0, TEACHER, mode="hard")
    assert loss.item() == pytest.approx(0.5 * LN(4 / 3) + 0.5 * LN(4 / 3))


def test_soft_mode_at_temperature_one():
    # KL(uniform ‖ (3/4, 1/4)) = ½·ln(½ / ¾) + ½·ln(½ / ¼) = ½·ln(4/3)
    loss = distill.distillation_loss(STUDENT, LABEL0, UNIFORM_TEACHER, mode="soft", alpha=0.5, tau=1.0)
    assert loss.item() == pytest.approx(0.5 * LN(4 / 3) + 0.5 * 0.5 * LN(4 / 3))


def test_soft_mode_at_temperature_two_scales_the_kl_by_tau_squared():
    # student / 2 = [ln √3, 0] → p = (√3, 1) / (1 + √3)
    r3 = math.sqrt(3)
    kl = 0.5 * LN(0.5 * (1 + r3) / r3) + 0.5 * LN(0.5 * (1 + r3))
    loss = distill.soft_distillation_loss(STUDENT, UNIFORM_TEACHER, LABEL0, alpha=0.1, tau=2.0)
    assert loss.item() == pytest.approx(0.9 * LN(4 / 3) + 0.1 * 4 * kl)


def test_soft_mode_with_token_puts_the_kl_on_the_distillation_head():
    dist = torch.tensor([[0.0, 0.0]])  # equals the uniform teacher → KL = 0
    loss = distill.distillation_loss((STUDENT, dist), LABEL0, UNIFORM_TEACHER, mode="soft", alpha=0.5, tau=3.0)
    assert loss.item() == pytest.approx(0.5 * LN(4 / 3))


def test_soft_loss_equals_cross_entropy_when_alpha_is_zero_and_is_batch_averaged():
    student = torch.tensor([[LN(3), 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    loss = distill.soft_distillation_loss(student, torch.randn(2, 2), labels, alpha=0.0)
    assert loss.item() == pytest.approx(0.5 * (LN(4 / 3) + LN(2)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="medium"), "unknown distillation mode"),
        (dict(mode="soft"), "needs teacher_logits"),
        (dict(mode="hard", teacher_logits=torch.zeros(1, 3)), "teacher_logits"),
    ],
)
def test_distillation_loss_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        distill.distillation_loss(STUDENT, LABEL0, **kwargs)


def test_soft_loss_rejects_bad_hyperparameters_and_shapes():
    with pytest.raises(ValueError, match="tau"):
        distill.soft_distillation_loss(STUDENT, TEACHER, LABEL0, tau=0)
    with pytest.raises(ValueError, match="alpha"):
        distill.soft_distillation_loss(STUDENT, TEACHER, LABEL0, alpha=1.5)
    with pytest.raises(ValueError, match="labels must have shape"):
        distill.soft_distillation_loss(STUDENT, TEACHER, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="N×C"):
        distill.hard_distillation_loss(torch.zeros(2), TEACHER, LABEL0)
    with pytest.raises(ValueError, match="returns"):
        distill.split_heads((STUDENT, STUDENT, STUDENT))


def test_random_shift_moves_a_pixel_by_at_most_max_shift_and_keeps_background():
    torch.manual_seed(0)
    images = torch.full((16, 1, 8, 8), -1.0)
    images[:, 0, 4, 4] = 5.0
    shifted = distill.random_shift(images, max_shift=2)
    assert shifted.shape == images.shape
    for image in shifted:
        (row, col) = (image[0] == 5.0).nonzero()[0].tolist()
        assert abs(row - 4) <= 2 and abs(col - 4) <= 2
        assert (image == -1.0).sum() == 63
    assert torch.equal(distill.random_shift(images, max_shift=0), images)
    with pytest.raises(ValueError, match="N×C×H×W"):
        distill.random_shift(torch.zeros(8, 8))


def test_distillation_loss_callable_runs_the_teacher_and_checks_arguments():
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    loss_fn = distill.DistillationLoss(teacher, "soft", max_shift=1)
    loss = loss_fn(student, torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]))
    assert loss.ndim == 0 and loss.requires_grad
    assert not any(p.requires_grad and p.grad is not None for p in teacher.parameters())
    with pytest.raises(ValueError, match="needs a teacher"):
        distill.DistillationLoss(None, "hard")
    with pytest.raises(ValueError, match="unknown distillation mode"):
        distill.DistillationLoss(teacher, "warm")


def _small_student(distilled: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    return tiny_deit(distilled=distilled, embed_dim=16, depth=2, num_heads=2, patch_size=7)


def _use_small_students(monkeypatch) -> None:
    """Train a smaller student (fast), cached under another key than the real one (its architecture differs)."""
    monkeypatch.setattr(distill, "tiny_deit", lambda distilled: _small_student(distilled))


def test_train_student_trains_caches_and_returns_one_tensor(monkeypatch):
    torch.manual_seed(0)
    images, labels = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    data = TensorDataset(images, labels)
    splits = []

    def loaders(batch_size, seed, split_seed):
        splits.append((seed, split_seed))
        return DataLoader(data, batch_size=16), DataLoader(data)

    monkeypatch.setattr(distill, "mnist_loaders", loaders)
    _use_small_students(monkeypatch)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    recipe = distill.Recipe(epochs=1)
    model, history = distill.train_student(distill.TOKEN_METHOD, teacher, seed=1, recipe=recipe, progress_bar=False)
    assert len(history) == 1 and splits == [(1, 0)]  # every seed is tested on split 0
    assert not model.training and not model.distilled_training
    assert isinstance(model(images[:2]), torch.Tensor)
    again, _ = distill.train_student(distill.TOKEN_METHOD, teacher, seed=1, recipe=recipe)
    assert torch.equal(again.head.weight, model.head.weight) and len(splits) == 1  # loaded from the cache
    with pytest.raises(ValueError, match="needs a teacher"):
        distill.train_student(distill.TOKEN_METHOD, None)
    method = distill.METHODS[0]
    assert distill.student_recipe(method, None, recipe=distill.Recipe(split_seed=1)) != distill.student_recipe(
        method, None
    )


def test_student_key_follows_the_stem_architecture(monkeypatch):
    """The old fingerprint serialised the stem as the string "ConvStem": a changed activation kept the key."""
    method, recipe = distill.METHODS[0], distill.student_recipe(distill.METHODS[0], None)
    build = distill._build_student(method, 0)
    before = train.training_key("student", build(), recipe)
    monkeypatch.setattr(torch.nn, "ReLU", torch.nn.GELU)  # ConvStem builds its activation from nn.ReLU
    assert train.training_key("student", build(), recipe) != before
    with pytest.raises(ValueError, match="needs a teacher"):
        distill.student_recipe(distill.METHODS[1], None)
