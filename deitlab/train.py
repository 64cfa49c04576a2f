"""Short, seeded training loops and the cached trainings the notebooks share."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from deitlab import cache
from deitlab.device import default_device, module_device
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
    model: nn.Module, loader: DataLoader, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels (on the CPU) over a whole loader, model switched to eval mode.

    The batches go to ``device``, by default the model's own (:func:`deitlab.device.module_device`).
    """
    device = module_device(model) if device is None else device
    model.eval()
    logits, labels = [], []
    for images, targets in loader:
        out = model(images.to(device))
        logits.append((out[0] if isinstance(out, tuple) else out).float().cpu())
        labels.append(targets)
    return torch.cat(logits), torch.cat(labels)


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str | None = None) -> float:
    """Top-1 accuracy in percent (batches on ``device``, by default the model's)."""
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


#: The weights file of a checkpoint entry (its history is in the entry's metadata).
WEIGHTS = "weights.pt"


def training_key(name: str, model: nn.Module, recipe: dict) -> dict:
    """Everything that shapes a trained checkpoint: the recipe, the architecture and the torch version.

    The architecture is ``repr(model)`` of the freshly built model (memory addresses
    dropped), so a changed layer or activation changes the key.
    """
    if not isinstance(recipe, dict):
        raise TypeError(f"recipe must be a dict of everything that shapes the training, got {type(recipe).__name__}")
    architecture = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(model))
    return {"name": name, "recipe": recipe, "architecture": architecture, "torch": torch.__version__}


def is_cached(name: str, build: Callable[[], nn.Module], recipe: dict) -> bool:
    """True when :func:`cached_training` would load ``name`` instead of training it (calls ``build()``)."""
    return cache.lookup("checkpoints", name, training_key(name, build(), recipe)) is not None


def cached_training(
    name: str,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], list[dict]],
    retrain: bool = False,
    *,
    recipe: dict,
    device: torch.device | str | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Load ``name`` from the checkpoint cache, or build, train and cache it.

    ``recipe`` (a JSON-able dict) names everything ``train`` depends on (epochs, lr,
    data, seed, parent weights...); with the architecture of ``build()`` and the torch
    version it is the cache key (:func:`training_key`). ``train(model)`` returns the
    history, which is committed together with the weights as one entry of
    :mod:`deitlab.cache`: an interrupted training or save leaves the previous entry
    whole, and parallel notebooks wait for one training instead of racing.
    Returns the model in eval mode on ``device`` (default: :func:`deitlab.env.default_device`),
    whether it was trained now or loaded, and its training history.
    """
    device = default_device(device)
    model = build()
    trained = []

    def train_and_save(staging: Path) -> dict:
        history = train(model)
        torch.save(model.state_dict(), staging / WEIGHTS)
        trained.append(True)
        return {"history": history}

    key = training_key(name, model, recipe)
    entry = cache.get_or_build("checkpoints", name, key, train_and_save, [WEIGHTS], rebuild=retrain)
    if not trained:
        model.load_state_dict(torch.load(entry.path(WEIGHTS), map_location="cpu", weights_only=True))
    return model.to(device).eval(), entry.payload["history"]
