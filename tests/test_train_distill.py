"""The distillation entry point: one step, the settings, and real ``torchrun`` jobs on this CPU (gloo).

The ``torchrun`` tests start 2 worker processes each; every subprocess has a timeout so
that a hang fails the test instead of blocking the suite.
"""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from image_folders import UNUSABLE, unusable_folder

from deitlab import distill, train_distill
from deitlab.models import SmallCNN, save_weights, tiny_deit

REPO = Path(__file__).resolve().parents[1]
JOB_TIMEOUT_S = 240
# A short, deterministic run: no augmentation, SGD (whose update scales with the gradient,
# unlike Adam's), the student without BatchNorm (gloo has no SyncBatchNorm).
EXACT = ["--student", "tiny-linear", "--mode", "hard", "--recipe", "max_shift=0", "--optimizer", "sgd", "--lr", "0.05"]
EQUIVALENCE_TOLERANCE = 1e-5


def _env(cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "DEITLAB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


def _torchrun(nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]


def _entry(*args: str) -> list[str]:
    return ["-m", "deitlab.train_distill", *args]


def _start(command: list[str], cache: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _finish(job: subprocess.Popen, timeout: float = JOB_TIMEOUT_S) -> subprocess.CompletedProcess:
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
        pytest.fail(f"{job.args} did not finish within {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(job.args, job.returncode, out, err)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / train_distill.CHECKPOINT_NAME, weights_only=True)["model"]


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_weights(SmallCNN(), tmp_path_factory.mktemp("teacher") / "teacher.pt")


@pytest.fixture(scope="module")
def equivalence_runs(tmp_path_factory, teacher_file):
    """2 processes × batch 16 and 1 process × batch 32 (plain ``python -m``), same steps, run side by side."""
    root = tmp_path_factory.mktemp("equivalence")
    common = [*EXACT, "--teacher", str(teacher_file), "--train-samples", "256", "--epochs", "2", "--lr-scale", "none"]
    started = time.perf_counter()
    two = _start([*_torchrun(2), *_entry(*common, "--batch-size", "16", "--out", str(root / "two"))], root)
    one = _start([sys.executable, *_entry(*common, "--batch-size", "32", "--out", str(root / "one"))], root)
    two, one = _finish(two), _finish(one)
    print(f"equivalence runs: {time.perf_counter() - started:.0f} s")
    return root, two, one


# --- (a) a short 2-process run ------------------------------------------------------------


def test_two_process_run_finishes_and_rank_zero_writes_one_checkpoint(equivalence_runs):
    root, two, _ = equivalence_runs
    assert two.returncode == 0, two.stderr
    assert [p.name for p in (root / "two").iterdir()] == [train_distill.CHECKPOINT_NAME]
    state = torch.load(root / "two" / train_distill.CHECKPOINT_NAME, weights_only=True)
    assert state["epoch"] == 2 and state["world_size"] == 2
    assert "2 process(es), backend gloo" in two.stdout
    written = f"→ {root / 'two' / train_distill.CHECKPOINT_NAME}"
    assert two.stdout.count(written) == 2, "only rank 0 reports (and writes) each epoch's checkpoint"


# --- (b) gradients are averaged -----------------------------------------------------------


def test_two_processes_give_the_weights_of_one_process_with_twice_the_batch(equivalence_runs):
    root, two, one = equivalence_runs
    assert two.returncode == 0 and one.returncode == 0, two.stderr + one.stderr
    ddp, single = _weights(root / "two"), _weights(root / "one")
    torch.manual_seed(0)
    initial = train_distill.build_student("tiny-linear", False, torch.zeros(1, 28, 28), 10).state_dict()
    assert max((ddp[k] - initial[k]).abs().max().item() for k in ddp) > 1e-2, "training must move the weights"
    gap = max((ddp[k] - single[k]).abs().max().item() for k in ddp)
    print(f"largest weight difference, 2×16 vs 1×32: {gap:.2e}")
    assert gap < EQUIVALENCE_TOLERANCE


# --- (c) a killed rank fails the job; --resume continues ------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def _rank_of(pid: int) -> str | None:
    try:
        variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [v.split(b"=", 1)[1].decode() for v in variables if v.startswith(b"RANK=")]
    return ranks[0] if ranks else None


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker processes through /proc (Linux)")
def test_killing_a_rank_fails_the_job_cleanly_and_resume_finishes(tmp_path, teacher_file):
    args = [*EXACT, "--teacher", str(teacher_file), "--train-samples", "1024", "--epochs", "4", "--batch-size", "16"]
    args += ["--out", str(tmp_path / "run"), "--timeout", "60"]
    checkpoint = tmp_path / "run" / train_distill.CHECKPOINT_NAME
    job = _start([*_torchrun(2), *_entry(*args)], tmp_path)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), _finish(job, 5).stderr
    rank1 = [pid for pid in _children(job.pid) if _rank_of(pid) == "1"]
    assert rank1, "rank 1 must still be running after the first checkpoint"
    os.kill(rank1[0], signal.SIGKILL)
    killed_at = time.monotonic()
    failed = _finish(job, timeout=120)
    print(f"job failed {time.monotonic() - killed_at:.1f} s after the kill")
    assert failed.returncode != 0
    completed = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= completed < 4

    resumed = _finish(_start([*_torchrun(2), *_entry(*args, "--resume")], tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {checkpoint} after epoch {completed}" in resumed.stdout
    state = torch.load(checkpoint, weights_only=True)
    assert state["epoch"] == 4 and [row["epoch"] for row in state["history"]] == [1, 2, 3, 4]


# --- (d) bad --data: one error line before any process group ------------------------------


@pytest.mark.parametrize("layout", UNUSABLE)
def test_bad_data_is_one_error_line_before_any_process_group(tmp_path, monkeypatch, capsys, layout):
    data = unusable_folder(tmp_path / "data", layout)

    def no_process_group(_timeout):
        raise AssertionError("the process group must not start")

    monkeypatch.setattr(train_distill, "start_processes", no_process_group)
    assert train_distill.main(["--data", str(data), "--mode", "none", "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deitlab.train_distill: --data ") and str(data) in lines[0]


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--recipe", "epochs"], "expected KEY=VALUE"),
        (["--recipe", "speed=3"], "expected KEY=VALUE"),
        (["--recipe", "lr=fast"], "not a valid float"),
        (["--epochs", "0"], "must be >= 1"),
        (["--train-samples", "0"], "--train-samples"),
        (["--teacher", "missing.pt"], "no such file"),
        (["--resume"], "no checkpoint"),
    ],
)
def test_bad_arguments_are_one_error_line(tmp_path, capsys, argv, message):
    assert train_distill.main([*argv, "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_kit_teacher_needs_mnist(tmp_path, capsys):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "cat" / "a.png").write_bytes(b"")
    assert train_distill.main(["--data", str(tmp_path / "data"), "--mode", "hard"]) == 2
    assert "--teacher kit is the MNIST teacher" in capsys.readouterr().err


def test_parse_recipe_overrides_fields_with_their_types():
    recipe = train_distill.parse_recipe(["epochs=2", "lr=1e-3", "max_shift=0"])
    assert (recipe.epochs, recipe.lr, recipe.max_shift, recipe.tau) == (2, 1e-3, 0, distill.RECIPE.tau)


def test_scaled_lr_follows_the_linear_rule():
    assert train_distill.scaled_lr(1e-3, 8, "linear") == pytest.approx(8e-3)
    assert train_distill.scaled_lr(1e-3, 8, "none") == 1e-3
    with pytest.raises(ValueError, match="world_size"):
        train_distill.scaled_lr(1e-3, 0, "linear")
    with pytest.raises(ValueError, match="lr-scaling rule"):
        train_distill.scaled_lr(1e-3, 2, "sqrt")


def test_make_optimizer_rejects_unknown_names():
    assert isinstance(
        train_distill.make_optimizer("sgd", [torch.zeros(1, requires_grad=True)], 0.1, 0.0), torch.optim.SGD
    )
    assert isinstance(
        train_distill.make_optimizer("adamw", [torch.zeros(1, requires_grad=True)], 0.1, 0.0), torch.optim.AdamW
    )
    with pytest.raises(ValueError, match="unknown optimizer"):
        train_distill.make_optimizer("lamb", [torch.zeros(1, requires_grad=True)], 0.1, 0.0)


def test_build_student_variants():
    example = torch.zeros(1, 28, 28)
    has_batchnorm = lambda m: any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    assert has_batchnorm(train_distill.build_student("tiny", False, example, 10))
    linear = train_distill.build_student("tiny-linear", True, example, 10)
    assert not has_batchnorm(linear) and distill.has_distillation_token(linear)
    with pytest.raises(train_distill.UsageError, match="needs a distilled model"):
        train_distill.build_student("resnet18", True, torch.zeros(3, 32, 32), 10)


def test_load_teacher_from_a_weights_file_is_frozen_and_in_eval_mode(teacher_file):
    teacher = train_distill.load_teacher(str(teacher_file), epochs=1, num_classes=10)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


# --- distillation_step -----------------------------------------------------------------------


def _batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 28, 28, generator=generator), torch.arange(n) % 10


@pytest.mark.parametrize("mode, token", [("none", False), ("soft", False), ("hard", False), ("hard", True)])
def test_distillation_step_takes_one_optimizer_step(mode, token):
    torch.manual_seed(0)
    student, teacher = tiny_deit(distilled=token).train(), SmallCNN().eval()
    if token:
        student.set_distilled_training(True)
    images, labels = _batch()
    with torch.no_grad():
        expected = distill.distillation_loss(student(images), labels, teacher(images), mode, 0.5, 3.0).item()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    result = distill.distillation_step(student, teacher, images, labels, optimizer, mode, alpha=0.5, tau=3.0)
    assert math.isfinite(result["loss"]) and result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["count"] == 8 and 0 <= result["correct"] <= 8
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items()), "the student must change"
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters()), "the teacher runs under no_grad"


def test_distillation_step_without_teacher_in_mode_none_and_bad_modes():
    torch.manual_seed(0)
    student = tiny_deit().train()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    images, labels = _batch()
    assert math.isfinite(distill.distillation_step(student, None, images, labels, optimizer, "none")["loss"])
    with pytest.raises(ValueError, match="needs a teacher"):
        distill.distillation_step(student, None, images, labels, optimizer, "hard")
    with pytest.raises(ValueError, match="unknown distillation mode"):
        distill.distillation_step(student, SmallCNN().eval(), images, labels, optimizer, "token")


def test_one_process_trains_on_an_image_folder(tmp_path, capsys):
    from PIL import Image

    for split in ("train", "val"):
        for label, colour in enumerate(((250, 10, 10), (10, 10, 250))):
            folder = tmp_path / "data" / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (36, 36), tuple(c + 2 * i for c in colour)).save(folder / f"{i}.png")
    argv = ["--data", str(tmp_path / "data"), "--image-size", "28", "--mode", "none", "--epochs", "1"]
    assert train_distill.main([*argv, "--batch-size", "4", "--out", str(tmp_path / "out")]) == 0
    state = torch.load(tmp_path / "out" / train_distill.CHECKPOINT_NAME, weights_only=True)
    assert state["epoch"] == 1 and state["model"]["head.weight"].shape == (2, 96)
    assert "backend none" in capsys.readouterr().out and "test_acc" in state["history"][0]
