import math

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deitlab import distill, train
from deitlab.models import SmallCNN, tiny_deit

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


def test_head_logits_of_a_token_student_fuse_the_softmaxes():
    model = _small_student(distilled=True)
    images = torch.randn(3, 1, 28, 28)
    heads = distill.head_logits(model, images)
    assert list(heads) == ["class", "distillation", "class + distillation"]
    fused = (heads["class"].softmax(1) + heads["distillation"].softmax(1)) / 2
    assert torch.allclose(heads["class + distillation"].exp(), fused, atol=1e-6)
    with torch.inference_mode():  # timm's eval forward averages the two heads' logits
        assert torch.allclose(model(images), (heads["class"] + heads["distillation"]) / 2, atol=1e-5)
    assert list(distill.head_logits(_small_student(False), images)) == ["class"]
    with pytest.raises(ValueError, match="N×C×H×W"):
        distill.head_logits(model, torch.zeros(28, 28))


def test_head_accuracies_and_agreement():
    model = _small_student(distilled=True)
    images = torch.randn(10, 1, 28, 28)
    predicted = distill.head_logits(model, images)["class"].argmax(1)
    loader = DataLoader(TensorDataset(images, predicted), batch_size=4)
    accuracies = distill.head_accuracies(model, loader)
    assert accuracies["class"] == pytest.approx(100.0)
    assert set(accuracies) == {"class", "distillation", "class + distillation"}
    assert distill.agreement(model, model, loader) == pytest.approx(100.0)


def test_token_cosine_by_layer_has_one_value_per_layer_plus_input():
    model = _small_student(distilled=True)
    images = torch.randn(4, 1, 28, 28)
    cosines = distill.token_cosine_by_layer(model, images)
    assert len(cosines) == len(model.blocks) + 1
    assert all(-1.0 <= c <= 1.0 for c in cosines)
    assert len(model.blocks[0]._forward_pre_hooks) == 0  # hooks removed
    with pytest.raises(ValueError, match="no distillation token"):
        distill.token_cosine_by_layer(_small_student(False), images)


def test_softened_flattens_with_temperature():
    logits = torch.tensor([4.0, 1.0, 0.0])
    cold, hot = distill.softened(logits, 1.0), distill.softened(logits, 10.0)
    assert cold.sum().item() == pytest.approx(1.0) and hot.sum().item() == pytest.approx(1.0)
    assert hot.max() < cold.max()
    with pytest.raises(ValueError, match="positive"):
        distill.softened(logits, -1.0)


def test_ablation_table_summarises_seeds_beside_the_paper():
    accuracies = pd.DataFrame(
        {
            "method": ["no distillation"] * 3 + ["hard distillation"] * 3 + ["mine"],
            "seed": [0, 1, 2, 0, 1, 2, 0],
            "accuracy": [90.0, 92.0, 94.0, 95.0, 95.0, 95.0, 50.0],
        }
    )
    table = distill.ablation_table(accuracies)
    assert list(table.index) == ["no distillation", "hard distillation", "mine"]
    assert table.loc["no distillation", "ours: mean (%)"] == pytest.approx(92.0)
    assert table.loc["no distillation", "ours: std"] == pytest.approx(2.0)
    assert table.loc["hard distillation", "per seed"] == "95.0 / 95.0 / 95.0"
    assert table.loc["hard distillation", "paper DeiT-Ti (%)"] == 74.3
    assert math.isnan(table.loc["mine", "paper DeiT-B (%)"])
    with pytest.raises(ValueError, match="no accuracies"):
        distill.ablation_table(accuracies.iloc[:0])


def test_run_ablation_trains_caches_and_tabulates(monkeypatch):
    torch.manual_seed(0)
    images, labels = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    data = TensorDataset(images, labels)
    monkeypatch.setattr(
        distill,
        "mnist_loaders",
        lambda batch_size, seed, split_seed: (DataLoader(data, batch_size=16), DataLoader(data)),
    )
    _use_small_students(monkeypatch)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    recipe = distill.Recipe(epochs=1)
    methods = (distill.METHODS[0], distill.TOKEN_METHOD)
    runs = distill.run_ablation(teacher, seeds=(0, 1), methods=methods, recipe=recipe, workers=1)
    assert [(r.method.slug, r.seed) for r in runs] == [("none", 0), ("none", 1), ("hard-token", 0), ("hard-token", 1)]
    token_model = runs[-1].model
    assert not token_model.training and not token_model.distilled_training
    assert isinstance(token_model(images[:2]), torch.Tensor)
    again = distill.run_ablation(teacher, seeds=(1,), methods=methods[1:], recipe=recipe, workers=2)
    assert torch.equal(again[0].model.head.weight, token_model.head.weight)  # loaded from the cache
    table = distill.ablation_table(distill.ablation_accuracies(runs, DataLoader(data, batch_size=8)))
    assert list(table.index) == [
        "no distillation",
        "token: class head only",
        "token: distillation head only",
        "token: class + distillation",
    ]
    assert (table["seeds"] == 2).all()
    assert set(distill.learning_curves(runs)["method"]) == {"no distillation", "hard + distillation token"}
    with pytest.raises(ValueError, match="at least one seed"):
        distill.run_ablation(teacher, seeds=())
    with pytest.raises(ValueError, match="needs a teacher"):
        distill.train_student(distill.TOKEN_METHOD, None)


def _fake_students(monkeypatch) -> list:
    """Replace the student and the data by small ones; returns the log of worker batches."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    monkeypatch.setattr(
        distill,
        "mnist_loaders",
        lambda batch_size, seed, split_seed: (DataLoader(data, batch_size=16), DataLoader(data)),
    )
    _use_small_students(monkeypatch)
    batches = []

    def in_this_process(function, jobs, workers, steps_per_job, desc):
        batches.append({"jobs": [(job[0].slug, job[2]) for job in jobs], "workers": workers, "steps": steps_per_job})
        reports = []
        for job in jobs:
            function(*job, report=lambda: reports.append(1))
        assert len(reports) == len(jobs) * steps_per_job  # one report per epoch

    monkeypatch.setattr(distill, "run_in_processes", in_this_process)
    return batches


def test_every_student_is_tested_on_the_same_held_out_digits(monkeypatch):
    splits = []
    data = TensorDataset(torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))

    def loaders(batch_size, seed, split_seed):
        splits.append((seed, split_seed))
        return DataLoader(data, batch_size=16), DataLoader(data)

    monkeypatch.setattr(distill, "mnist_loaders", loaders)
    _use_small_students(monkeypatch)
    distill.run_ablation(
        None, seeds=(0, 1, 2), methods=distill.METHODS[:1], recipe=distill.Recipe(epochs=1), retrain=True, workers=1
    )
    assert splits == [(0, 0), (1, 0), (2, 0)]
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


def test_run_ablation_sends_only_uncached_students_to_the_workers(monkeypatch):
    batches = _fake_students(monkeypatch)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    recipe = distill.Recipe(epochs=2, lr=1e-3)
    methods = (distill.METHODS[0], distill.METHODS[2])
    distill.run_ablation(teacher, seeds=(0,), methods=methods, recipe=recipe, workers=2)
    assert batches == [{"jobs": [("none", 0), ("hard", 0)], "workers": 2, "steps": 2}]
    runs = distill.run_ablation(teacher, seeds=(0, 1), methods=methods, recipe=recipe, workers=2)
    assert batches[1]["jobs"] == [("none", 1), ("hard", 1)]  # seed 0 came from the cache
    assert [len(run.history) for run in runs] == [2, 2, 2, 2]
    distill.run_ablation(teacher, seeds=(0,), methods=methods, recipe=recipe, workers=2)
    assert len(batches) == 2  # all cached: no workers
    distill.run_ablation(teacher, seeds=(0,), methods=methods, recipe=recipe, workers=2, retrain=True)
    assert batches[2]["jobs"] == [("none", 0), ("hard", 0)]


def test_run_ablation_trains_in_this_process_when_workers_cannot_rebuild_the_teacher(monkeypatch, capsys):
    batches = _fake_students(monkeypatch)
    notebook_class = type("NotebookTeacher", (torch.nn.Sequential,), {"__module__": "__main__"})
    teacher = notebook_class(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    runs = distill.run_ablation(
        teacher, seeds=(0, 1), methods=distill.METHODS[1:2], recipe=distill.Recipe(epochs=1), workers=2
    )
    assert batches == [] and len(runs) == 2
    assert "NotebookTeacher is defined in this notebook" in capsys.readouterr().out


def test_run_ablation_trains_real_students_in_two_worker_processes():
    recipe = distill.Recipe(epochs=1)
    runs = distill.run_ablation(SmallCNN(), seeds=(0, 1), methods=distill.METHODS[:1], recipe=recipe, workers=2)
    assert [(run.seed, len(run.history)) for run in runs] == [(0, 1), (1, 1)]
    assert runs[0].history[0]["test_acc"] > 10  # one epoch of the real recipe beats chance
    assert not torch.equal(runs[0].model.head.weight, runs[1].model.head.weight)  # seeds differ
