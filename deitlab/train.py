"""Short, seeded training loops and a checkpoint cache shared by the notebooks."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from deitlab.env import cache_dir
from deitlab.measure import clock

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and GPU) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cross_entropy_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain cross-entropy of the model's logits (the default loss of :func:`fit`)."""
    return nn.functional.cross_entropy(model(images), labels)


@torch.inference_mode()
def predict(
    model: nn.Module, loader: DataLoader, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels over a whole loader (model switched to eval mode)."""
    model.eval()
    logits, labels = [], []
    for images, targets in loader:
        out = model(images.to(device))
        logits.append((out[0] if isinstance(out, tuple) else out).float().cpu())
        labels.append(targets)
    return torch.cat(logits), torch.cat(labels)


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy in percent."""
    logits, labels = predict(model, loader, device)
    return 100.0 * (logits.argmax(1) == labels).float().mean().item()


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    epochs: int,
    lr: float = 1e-3,
    loss_fn: LossFn = cross_entropy_loss,
    test_loader: DataLoader | None = None,
    weight_decay: float = 0.05,
    device: torch.device | str = "cpu",
    desc: str = "training",
    on_epoch_end: Callable[[nn.Module, int], None] | None = None,
    progress_bar: bool = True,
) -> list[dict]:
    """Train with AdamW and a one-cycle schedule; returns one metrics dict per epoch.

    ``loss_fn(model, images, labels)`` returns the loss, so distillation and QAT
    reuse the same loop. A ``tqdm`` bar shows batches (unless ``progress_bar=False``,
    e.g. in a worker process whose output nobody sees); each epoch's train loss,
    train accuracy (when the model returns plain logits) and test accuracy are recorded.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * len(train_loader), pct_start=0.15
    )
    history = []
    bar = tqdm(total=epochs * len(train_loader), desc=desc, leave=False, disable=not progress_bar)
    for epoch in range(epochs):
        model.train()
        started, total_loss, seen = clock(), 0.0, 0
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            loss = loss_fn(model, images, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(labels)
            seen += len(labels)
            bar.update()
        if on_epoch_end is not None:
            on_epoch_end(model, epoch)
        row = {"epoch": epoch + 1, "train_loss": total_loss / seen, "seconds": clock() - started}
        if test_loader is not None:
            row["test_acc"] = evaluate(model, test_loader, device)
        history.append(row)
        bar.set_postfix({k: round(v, 3) for k, v in row.items() if k != "epoch"})
    bar.close()
    return history


def checkpoint_path(name: str) -> Path:
    """Where :func:`cached_training` keeps the weights of checkpoint ``name``."""
    return checkpoint_dir() / f"{name}.pt"


def is_cached(name: str) -> bool:
    """True when :func:`cached_training` would load ``name`` instead of training it."""
    weights = checkpoint_path(name)
    return weights.exists() and weights.with_suffix(".json").exists()


def checkpoint_dir() -> Path:
    """Folder of cached trained checkpoints (``$DEITLAB_CACHE/checkpoints``)."""
    path = cache_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_training(
    name: str,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], list[dict]],
    retrain: bool = False,
) -> tuple[nn.Module, list[dict]]:
    """Load ``name`` from the checkpoint cache, or build, train and cache it.

    ``train(model)`` returns the history, which is cached beside the weights. A file
    lock makes parallel notebooks wait for one training instead of racing.
    Returns the model in eval mode and its training history.
    """
    weights = checkpoint_path(name)
    history_file = weights.with_suffix(".json")
    with FileLock(str(weights) + ".lock"):
        model = build()
        if is_cached(name) and not retrain:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            history = json.loads(history_file.read_text())
        else:
            history = train(model)
            torch.save(model.state_dict(), weights)
            history_file.write_text(json.dumps(history, indent=1))
    return model.eval(), history
