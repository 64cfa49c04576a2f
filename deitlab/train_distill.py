"""Notebook 03's distillation recipe as a script, on one process or data-parallel under ``torchrun``.

One process::

    python -m deitlab.train_distill --mode hard --epochs 2

N processes on one machine (CPU: ``gloo``; one GPU per process: ``nccl``)::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m deitlab.train_distill --mode hard --epochs 2

Every process runs this same file: it builds the same student (same seed), runs the
frozen teacher under ``no_grad`` on its own batches and calls
:func:`deitlab.distill.distillation_step` on a ``DistributedDataParallel`` student,
whose ``backward()`` averages the gradients of all processes. A ``DistributedSampler``
gives each process a different ``1/N`` of every epoch (re-shuffled by ``set_epoch``).
``--batch-size`` is per process: the effective batch is ``N × batch``, and
``--lr-scale linear`` (the default) multiplies the recipe's learning rate by ``N``
(Goyal et al., 2017; DeiT scales ``5e-4 × batch / 512`` the same way). Metrics are summed
over processes with ``all_reduce``; only rank 0 prints and writes the checkpoint
(atomically, each epoch), and ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from deitlab.cache import atomic_write
from deitlab.data import DataFolderError, image_folder_datasets, image_folder_roots, mnist_subset
from deitlab.distill import MODES, RECIPE, Recipe, distillation_step, random_shift
from deitlab.env import cache_dir
from deitlab.measure import clock
from deitlab.train import seed_everything

PROG = "deitlab.train_distill"
TOKEN_MODE = "token"  # hard distillation with a distillation token (the DeiT⚗ student)
CHECKPOINT_NAME = "checkpoint.pt"
#: Settings a resumed run must share with the checkpoint it continues.
RESUME_KEYS = ("mode", "student", "optimizer", "data", "train_samples", "image_size", "seed", "recipe")


class UsageError(ValueError):
    """A command-line argument is unusable; reported as one line before any process group starts."""


@dataclass(frozen=True)
class Processes:
    """Where this process sits in the job: rank, world size, device and backend."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: a single process without a process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` (or another launcher) set the ``WORLD_SIZE``/``RANK`` variables."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def start_processes(timeout_s: float) -> Processes:
    """Join the process group of a ``torchrun`` job (``nccl`` with GPUs, else ``gloo``), or run alone.

    ``timeout_s`` bounds every collective: a process whose peer died fails instead of waiting forever.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if not launched_by_torchrun():
        return Processes(0, 1, 0, device, None)
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return Processes(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def scaled_lr(lr: float, world_size: int, rule: str) -> float:
    """Learning rate for ``world_size`` processes: ``linear`` multiplies by the world size, ``none`` keeps it."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if rule == "linear":
        return lr * world_size
    if rule == "none":
        return lr
    raise ValueError(f"unknown lr-scaling rule {rule!r}; choose linear or none")


def parse_recipe(overrides: list[str], base: Recipe = RECIPE) -> Recipe:
    """``distill.Recipe`` with ``KEY=VALUE`` overrides, e.g. ``["epochs=2", "lr=1e-3"]``."""
    types = {field.name: type(getattr(base, field.name)) for field in dataclasses.fields(base)}
    changes: dict[str, object] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise UsageError(f"--recipe {item!r}: expected KEY=VALUE with KEY in {', '.join(types)}")
        try:
            changes[key] = types[key](value)
        except ValueError:
            raise UsageError(f"--recipe {item!r}: {value!r} is not a valid {types[key].__name__}") from None
    return dataclasses.replace(base, **changes)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the entry point (also used by ``deitlab distill``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the kit's distilled tiny DeiT (notebooks 04–07) on one process or data-parallel (torchrun).",
    )
    parser.add_argument("--mode", choices=(*MODES, TOKEN_MODE), default=TOKEN_MODE, help="distillation loss")
    parser.add_argument(
        "--recipe", nargs="*", default=[], metavar="KEY=VALUE", help="override fields of deitlab.distill.RECIPE"
    )
    parser.add_argument("--epochs", type=int, help="shortcut for --recipe epochs=N")
    parser.add_argument("--batch-size", type=int, help="batch size PER PROCESS (effective batch = N × this)")
    parser.add_argument("--lr", type=float, help="learning rate for one process (shortcut for --recipe lr=X)")
    parser.add_argument("--lr-scale", choices=("linear", "none"), default="linear", help="lr × N processes, or not")
    parser.add_argument(
        "--optimizer",
        choices=("adamw", "sgd"),
        default="adamw",
        help="adamw (the recipe) or sgd with momentum 0.9 (its update scales with the gradient)",
    )
    parser.add_argument(
        "--student",
        default="tiny",
        help="'tiny' (the kit's tiny DeiT, convolutional stem with BatchNorm), 'tiny-linear' "
        "(linear patch embedding, no BatchNorm) or a timm model name",
    )
    parser.add_argument(
        "--teacher",
        default="kit",
        help="'kit' (the kit's cached MNIST SmallCNN), a SmallCNN weights file, or a timm model name",
    )
    parser.add_argument("--teacher-epochs", type=int, default=4, help="epochs of the kit teacher if not cached")
    parser.add_argument("--data", type=Path, help="ImageFolder dataset (root, or train/ + val/); default: MNIST subset")
    parser.add_argument("--image-size", type=int, default=224, help="image size for --data")
    parser.add_argument("--train-samples", type=int, help="train on N training images (a fixed random subset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="checkpoint folder (default $DEITLAB_CACHE/train_distill/<mode>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a stuck collective fails")
    return parser


def resolve_settings(args: argparse.Namespace) -> argparse.Namespace:
    """Check every argument and fill in the recipe and the output folder (before any process group)."""
    recipe = parse_recipe(args.recipe)
    shortcuts = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in shortcuts.items() if v is not None})
    if recipe.epochs < 1 or recipe.batch_size < 1 or recipe.lr <= 0:
        raise UsageError(f"epochs and batch size must be >= 1 and lr > 0, got {recipe}")
    if args.train_samples is not None and args.train_samples < 1:
        raise UsageError(f"--train-samples must be >= 1, got {args.train_samples}")
    if args.data is not None:
        try:
            image_folder_roots(args.data)
        except DataFolderError as exc:
            raise UsageError(f"--data {exc}") from None
        if args.teacher == "kit" and args.mode != "none":
            raise UsageError("--teacher kit is the MNIST teacher; with --data pass a timm --teacher or --mode none")
    teacher_path = Path(args.teacher).expanduser()
    if args.teacher.endswith((".pt", ".pth", ".safetensors")) and not teacher_path.is_file():
        raise UsageError(f"--teacher {teacher_path}: no such file")
    out = args.out or cache_dir() / "train_distill" / args.mode
    if args.resume and not (out / CHECKPOINT_NAME).is_file():
        raise UsageError(f"--resume: no checkpoint at {out / CHECKPOINT_NAME}")
    return argparse.Namespace(**{**vars(args), "recipe": recipe, "out": out})


def load_datasets(settings: argparse.Namespace) -> tuple[Dataset, Dataset | None, int]:
    """The training set, the test set (or None) and the number of classes: MNIST subset or ``--data``."""
    if settings.data is None:
        train, test = mnist_subset(seed=settings.recipe.split_seed)
        num_classes = 10
    else:
        train, test = image_folder_datasets(settings.data, settings.image_size)
        num_classes = len(train.classes)
    if settings.train_samples is not None:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.recipe.split_seed))
        train = Subset(train, order[: settings.train_samples].tolist())
    return train, test, num_classes


def build_student(name: str, token: bool, example: torch.Tensor, num_classes: int) -> nn.Module:
    """The student for images shaped like ``example`` (C×H×W): the kit's tiny DeiT or a timm model."""
    from timm.layers import PatchEmbed

    from deitlab.models import tiny_deit

    channels, size = example.shape[0], example.shape[-1]
    shape = dict(in_chans=channels, img_size=size, num_classes=num_classes)
    if name == "tiny":
        return tiny_deit(distilled=token, **shape)
    if name == "tiny-linear":
        return tiny_deit(distilled=token, embed_layer=PatchEmbed, **shape)
    import timm

    model = timm.create_model(name, in_chans=channels, num_classes=num_classes)
    if token and not hasattr(model, "set_distilled_training"):
        raise UsageError(
            f"--student {name}: --mode token needs a distilled model (e.g. deit_tiny_distilled_patch16_224)"
        )
    return model


def load_teacher(spec: str, epochs: int, num_classes: int) -> nn.Module:
    """The frozen teacher in eval mode: the kit's SmallCNN (cached), a SmallCNN weights file, or a timm model."""
    from deitlab.models import SmallCNN, load_model, load_state_dict_file

    if spec == "kit":
        from deitlab.zoo import trained_small_cnn

        teacher, _ = trained_small_cnn(epochs=epochs)
    elif spec.endswith((".pt", ".pth", ".safetensors")):
        teacher = SmallCNN(num_classes)
        teacher.load_state_dict(load_state_dict_file(spec))
    else:
        teacher = load_model(spec, num_classes=num_classes).model
    return teacher.eval().requires_grad_(False)


def make_optimizer(name: str, parameters, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``adamw`` (the recipe's) or ``sgd`` with momentum 0.9.

    Adam's update barely changes when every gradient is scaled by the same factor, so only
    SGD can tell averaged gradients from summed ones (the equivalence test uses it).
    """
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose adamw or sgd")


def reduce_sums(values: list[float], procs: Processes) -> list[float]:
    """Sum ``values`` over all processes (``all_reduce``); unchanged on a single process."""
    if procs.backend is None:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=procs.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


@torch.inference_mode()
def count_correct(model: nn.Module, dataset: Dataset, procs: Processes, batch_size: int = 512) -> tuple[int, int]:
    """Hits and images of this process's share (every N-th image) of ``dataset``, in eval mode."""
    share = Subset(dataset, range(procs.rank, len(dataset), procs.world_size))
    model.eval()
    correct = seen = 0
    for images, labels in DataLoader(share, batch_size=batch_size):
        logits = model(images.to(procs.device))
        correct += int((logits.argmax(1).cpu() == labels).sum())
        seen += len(labels)
    return correct, seen


def save_checkpoint(path: Path, state: dict) -> None:
    """Write the checkpoint atomically (a crash mid-write leaves the previous one intact)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def train(settings: argparse.Namespace, procs: Processes) -> list[dict]:
    """Run the recipe; returns the per-epoch history (the same on every process)."""
    recipe: Recipe = settings.recipe
    train_set, test_set, num_classes = load_datasets(settings)
    example, _ = train_set[0]
    mode = "hard" if settings.mode == TOKEN_MODE else settings.mode
    token = settings.mode == TOKEN_MODE
    teacher = None if mode == "none" else load_teacher(settings.teacher, settings.teacher_epochs, num_classes)
    teacher = teacher.to(procs.device) if teacher is not None else None

    seed_everything(settings.seed)  # the same initial weights on every process
    student = build_student(settings.student, token, example, num_classes).to(procs.device)
    if token:
        student.set_distilled_training(True)
    if procs.backend == "nccl" and procs.world_size > 1:
        student = nn.SyncBatchNorm.convert_sync_batchnorm(student)  # CPU (gloo) has no SyncBatchNorm
    # DDP warns when a gradient's strides differ from its bucket's; for the 1-channel stem's
    # 24×1×3×3 kernel they differ only along the size-1 dimension, which changes no element.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    model = student if procs.backend is None else DistributedDataParallel(student, device_ids=_device_ids(procs))

    sampler = DistributedSampler(train_set, procs.world_size, procs.rank, shuffle=True, seed=settings.seed)
    loader = DataLoader(train_set, batch_size=recipe.batch_size, sampler=sampler)
    lr = scaled_lr(recipe.lr, procs.world_size, settings.lr_scale)
    optimizer = make_optimizer(settings.optimizer, model.parameters(), lr, recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=recipe.epochs * len(loader), pct_start=0.15
    )
    config = {key: getattr(settings, key) for key in RESUME_KEYS}
    config.update(data=str(settings.data), recipe=dataclasses.asdict(recipe))
    checkpoint_file = settings.out / CHECKPOINT_NAME
    start_epoch, history = 0, []
    if settings.resume:
        start_epoch, history = _resume(checkpoint_file, config, student, optimizer, scheduler, procs)
    if procs.is_main:
        print(
            f"{PROG}: {procs.world_size} process(es), backend {procs.backend or 'none'}, device {procs.device}; "
            f"mode {settings.mode}, student {settings.student}, {len(train_set):,} training images; "
            f"batch {recipe.batch_size} per process → effective {recipe.batch_size * procs.world_size}, "
            f"lr {lr:.3g} ({settings.lr_scale} scaling of {recipe.lr:.3g}); epochs {start_epoch + 1}–{recipe.epochs}",
            flush=True,
        )
    for epoch in range(start_epoch, recipe.epochs):
        started = clock()
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every process
        seed_everything(settings.seed + 1000 * epoch + procs.rank)  # augmentation: per process, resumable
        model.train()
        sums = [0.0, 0.0, 0.0]  # loss × images, correct, images
        for images, labels in loader:
            images = random_shift(images.to(procs.device), recipe.max_shift)
            step = distillation_step(
                model, teacher, images, labels.to(procs.device), optimizer, mode, recipe.alpha, recipe.tau
            )
            scheduler.step()
            sums = [sums[0] + step["loss"] * step["count"], sums[1] + step["correct"], sums[2] + step["count"]]
        test_counts = count_correct(student, test_set, procs) if test_set is not None else (0, 0)
        loss_sum, correct, seen, test_correct, test_seen = reduce_sums([*sums, *test_counts], procs)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": 100.0 * correct / seen}
        if test_seen:
            row["test_acc"] = 100.0 * test_correct / test_seen
        row["seconds"] = clock() - started
        history.append(row)
        if procs.is_main:
            state = {
                "model": student.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1,
                "sampler": {"seed": settings.seed, "next_epoch": epoch + 1},
                "world_size": procs.world_size,
                "config": config,
                "history": history,
            }
            save_checkpoint(checkpoint_file, state)
            print(", ".join(f"{k} {v:.4g}" for k, v in row.items()) + f" → {checkpoint_file}", flush=True)
    return history


def _device_ids(procs: Processes) -> list[int] | None:
    return [procs.local_rank] if procs.device.type == "cuda" else None


def _resume(
    path: Path,
    config: dict,
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    procs: Processes,
) -> tuple[int, list[dict]]:
    """Load a checkpoint into the student, optimizer and scheduler; returns (completed epochs, history)."""
    state = torch.load(path, map_location=procs.device, weights_only=True)
    changed = [key for key in RESUME_KEYS if state["config"].get(key) != config[key]]
    if changed:
        raise UsageError(f"--resume: {path} was written with other settings ({', '.join(changed)})")
    student.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if procs.is_main:
        print(f"{PROG}: resuming from {path} after epoch {state['epoch']}", flush=True)
    return state["epoch"], state["history"]


def main(argv: list[str] | None = None) -> int:
    """Parse, validate (one error line, exit status 2), join the process group, train, leave the group."""
    args = build_parser().parse_args(argv)
    try:
        settings = resolve_settings(args)
    except UsageError as exc:
        if os.environ.get("RANK", "0") == "0":
            print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    procs = start_processes(settings.timeout)
    try:
        train(settings, procs)
    except UsageError as exc:
        if procs.is_main:
            print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    finally:
        if procs.backend is not None:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
