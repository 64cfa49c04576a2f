from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from deitlab import checks, distill, vit_distill
from deitlab.checks._core import CheckFailed
from deitlab.vit_distill import Job

SMALL = replace(vit_distill.REGIME, n_train=100, dim=16, depth=1, heads=2, epochs=2, teacher_epochs=1, batch_size=32)


def test_digits_are_stratified_nested_and_in_unit_range():
    images, labels, test_images, test_labels = vit_distill.digits(SMALL)
    assert images.shape == (100, 1, 28, 28) and labels.bincount().tolist() == [10] * 10
    assert test_images.shape == (3000, 1, 28, 28) and len(test_labels) == 3000
    assert images.min() >= -1e-6 and images.max() <= 1 + 1e-6
    half, half_labels, _, _ = vit_distill.digits(SMALL, fraction=0.5)
    assert half_labels.bincount().tolist() == [5] * 10
    assert all((images == digit).all(dim=(1, 2, 3)).any() for digit in half)  # nested in the full set
    with pytest.raises(ValueError, match="fraction"):
        vit_distill.digits(SMALL, fraction=0)


def test_augmentations_are_seeded_and_keep_the_shape():
    images = vit_distill.digits(SMALL)[0][:8]
    first = vit_distill.random_affine(images, torch.Generator().manual_seed(1), SMALL)
    again = vit_distill.random_affine(images, torch.Generator().manual_seed(1), SMALL)
    assert first.shape == images.shape and torch.equal(first, again) and not torch.equal(first, images)
    none_erased = vit_distill.random_erasing(images, torch.Generator(), replace(SMALL, erase_prob=0.0))
    assert torch.equal(none_erased, images)
    all_erased = vit_distill.random_erasing(images, torch.Generator().manual_seed(0), replace(SMALL, erase_prob=1.0))
    assert (all_erased != images).flatten(1).any(1).all()
    for augment in (vit_distill.random_affine, vit_distill.random_erasing):
        with pytest.raises(ValueError, match="N×C×H×W"):
            augment(torch.zeros(28, 28), torch.Generator(), SMALL)


def test_epoch_batches_are_the_same_for_every_mode_of_a_seed():
    images, labels, _, _ = vit_distill.digits(SMALL)
    first = list(vit_distill.epoch_batches(images, labels, seed=0, epoch=3, regime=SMALL))
    again = list(vit_distill.epoch_batches(images, labels, seed=0, epoch=3, regime=SMALL))
    other = list(vit_distill.epoch_batches(images, labels, seed=0, epoch=4, regime=SMALL))
    assert len(first) == 100 // 32
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0][0])


def test_paired_students_share_their_initial_weights():
    plain, token = vit_distill.paired_students(seed=3, regime=SMALL)
    assert plain.patch_embed.proj.kernel_size == (7, 7)  # a linear patch embedding, no conv stem
    assert torch.equal(plain.pos_embed[:, 1:], token.pos_embed[:, 2:])
    assert torch.equal(plain.cls_token, token.cls_token) and torch.equal(plain.head.weight, token.head.weight)
    again, _ = vit_distill.paired_students(seed=3, regime=SMALL)
    assert torch.equal(again.blocks[0].attn.qkv.weight, plain.blocks[0].attn.qkv.weight)
    assert vit_distill.build_student("token", 3, SMALL).dist_token is not None
    with pytest.raises(ValueError, match="unknown mode"):
        vit_distill.build_student("warm", 0, SMALL)


def test_training_step_computes_each_loss_and_moves_the_weights():
    torch.manual_seed(0)
    images, labels = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    for mode in vit_distill.MODES:
        student = vit_distill.build_student(mode, 0, SMALL).train()
        if mode == "token":
            student.set_distilled_training(True)
        before = student.head.weight.detach().clone()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.0)  # lr 0: the loss is the one of the start weights
        loss = vit_distill.training_step(student, teacher, images, labels, optimizer, mode, SMALL)
        with torch.no_grad():
            out, t = student(images), teacher(images)
        if mode == "none":
            assert loss == pytest.approx(F.cross_entropy(out, labels).item(), rel=1e-5)
        elif mode == "hard":
            assert loss == pytest.approx(distill.hard_distillation_loss(out, t, labels).item(), rel=1e-5)
        elif mode == "soft":
            expected = distill.soft_distillation_loss(out, t, labels, SMALL.soft_lambda, SMALL.tau)
            assert loss == pytest.approx(expected.item(), rel=1e-5)
        else:
            assert loss == pytest.approx(distill.hard_distillation_loss(*out[:1], t, labels, out[1]).item(), rel=1e-5)
        assert torch.equal(before, student.head.weight)
        vit_distill.training_step(student, teacher, images, labels, torch.optim.SGD(student.parameters(), 0.1), mode)
        assert not torch.equal(before, student.head.weight)
    with pytest.raises(ValueError, match="unknown mode"):
        vit_distill.training_step(student, teacher, images, labels, optimizer, "warm")


def test_schedule_and_optimizer_groups():
    assert vit_distill.cosine_lr(0, 100, 10, 1.0) == 0
    assert vit_distill.cosine_lr(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert vit_distill.cosine_lr(100, 100, 10, 1.0) == pytest.approx(0.0)
    decayed, plain = vit_distill.make_optimizer(vit_distill.build_student("token", 0, SMALL), SMALL).param_groups
    assert decayed["weight_decay"] == SMALL.weight_decay and plain["weight_decay"] == 0
    assert all(p.ndim > 1 for p in decayed["params"]) and any(p.ndim == 3 for p in plain["params"])  # tokens
    assert vit_distill.epochs_for(60, 0.25) == 240 and vit_distill.epochs_for(1, 0.9) == 1


def test_train_needs_a_teacher_and_resets_the_token_mode():
    images, labels, _, _ = vit_distill.digits(SMALL)
    student = vit_distill.build_student("token", 0, SMALL)
    with pytest.raises(ValueError, match="needs a teacher"):
        vit_distill.train(student, "token", images, labels, 0, None, SMALL)
    reports = []
    history = vit_distill.train(
        student, "token", images, labels, 0, vit_distill.build_cnn(0, SMALL), SMALL, report=lambda: reports.append(1)
    )
    assert len(history) == SMALL.epochs == len(reports)
    assert not student.training and not student.distilled_training


def test_cached_trainings_predictions_and_workers():
    vit_distill.train_in_workers([Job("none", 0), Job("token", 0), Job("cnn", 0, 0.5)], SMALL, workers=1)
    assert all(vit_distill.is_trained(job, SMALL) for job in (Job("cnn", 0), Job("token", 0), Job("cnn", 0, 0.5)))
    assert not vit_distill.is_trained(Job("hard", 0), SMALL)
    _, _, test_images, _ = vit_distill.digits(SMALL)
    token = vit_distill.load(Job("token", 0), SMALL)
    heads = vit_distill.predictions(token, test_images[:50], batch_size=20)
    assert list(heads) == ["class", "distillation", "both"] and heads["both"].shape == (50,)
    with torch.no_grad():
        tokens = token.forward_features(vit_distill.normalise(test_images[:50]))
        summed = token.head(tokens[:, 0]).softmax(1) + token.head_dist(tokens[:, 1]).softmax(1)
    assert torch.equal(heads["both"], summed.argmax(1))
    assert list(vit_distill.predictions(vit_distill.load(Job("cnn", 0), SMALL), test_images[:5])) == ["class"]


def test_train_in_workers_runs_the_jobs_in_two_processes():
    regime = replace(SMALL, epochs=1, n_train=60)
    vit_distill.train_in_workers([Job("none", 1), Job("hard", 1)], regime, workers=2)
    assert vit_distill.is_trained(Job("none", 1), regime) and vit_distill.is_trained(Job("hard", 1), regime)


def test_progress_reports_a_fixed_number_of_steps():
    reports = []
    epoch_end = vit_distill._progress(lambda: reports.append(1), epochs=7, steps=3)
    for _ in range(7):
        epoch_end()
    assert len(reports) == 3 and vit_distill._progress(None, 7, 3) is None


def test_paired_differences():
    differences = vit_distill.paired_differences({"none": [70, 80], "soft": [75, 79]})
    assert differences["soft"].tolist() == [5, -1] and list(differences) == ["soft"]
    with pytest.raises(ValueError, match="no .none. row"):
        vit_distill.paired_differences({"soft": [1]})
    with pytest.raises(ValueError, match="seeds"):
        vit_distill.paired_differences({"none": [1, 2], "soft": [1]})


def test_hard_distillation_check_accepts_the_loss_and_explains_mistakes():
    assert "matches" in repr(checks.check_hard_distillation(distill.hard_distillation_loss))
    with pytest.raises(CheckFailed, match="top class"):
        checks.check_hard_distillation(
            lambda s, t, y: 0.5 * F.cross_entropy(s, y) + 0.5 * F.cross_entropy(s, t.softmax(1))
        )
    with pytest.raises(CheckFailed, match="plain cross-entropy"):
        checks.check_hard_distillation(lambda s, t, y: F.cross_entropy(s, y))
    with pytest.raises(CheckFailed, match="scalar"):
        checks.check_hard_distillation(lambda s, t, y: F.cross_entropy(s, y, reduction="none"))


def test_token_loss_check_accepts_the_loss_and_explains_mistakes():
    def right(c, d, t, y):
        return 0.5 * F.cross_entropy(c, y) + 0.5 * F.cross_entropy(d, t.argmax(1))

    assert "matches" in repr(checks.check_token_loss(right))
    with pytest.raises(CheckFailed, match="swapped"):
        checks.check_token_loss(lambda c, d, t, y: right(d, c, t, y))
    with pytest.raises(CheckFailed, match="class head"):
        checks.check_token_loss(lambda c, d, t, y: right(c, c, t, y))
