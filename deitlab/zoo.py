"""The trained models the notebooks share, each cached after its first training."""

from __future__ import annotations

from torch import nn

from deitlab.data import mnist_loaders
from deitlab.models import SmallCNN, tiny_deit
from deitlab.train import cached_training, fit, seed_everything


def trained_small_cnn(seed: int = 0, epochs: int = 4, retrain: bool = False) -> tuple[nn.Module, list[dict]]:
    """The small CNN trained on the MNIST subset (teacher in 03, QAT subject in 05)."""

    def build() -> nn.Module:
        seed_everything(seed)
        return SmallCNN()

    def train(model: nn.Module) -> list[dict]:
        train_loader, test_loader = mnist_loaders(batch_size=64, seed=0)
        return fit(model, train_loader, epochs, lr=3e-3, test_loader=test_loader, desc="small CNN")

    return cached_training(f"small_cnn-s{seed}-e{epochs}", build, train, retrain)


def trained_tiny_deit(seed: int = 0, epochs: int = 10, retrain: bool = False) -> tuple[nn.Module, list[dict]]:
    """The tiny DeiT trained on the MNIST subset (the student of 03, reused in 04 and 06)."""

    def build() -> nn.Module:
        seed_everything(seed)
        return tiny_deit()

    def train(model: nn.Module) -> list[dict]:
        train_loader, test_loader = mnist_loaders(batch_size=64, seed=0)
        return fit(model, train_loader, epochs, lr=2e-3, test_loader=test_loader, desc="tiny DeiT")

    return cached_training(f"tiny_deit-s{seed}-e{epochs}", build, train, retrain)
