"""The trained models the notebooks share, each cached after its first training."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from deitlab.data import mnist_loaders
from deitlab.models import SmallCNN
from deitlab.train import cached_training, fit, seed_everything


def trained_small_cnn(seed: int = 0, epochs: int = 4, retrain: bool = False) -> tuple[nn.Module, list[dict]]:
    """The small CNN trained on the MNIST subset (teacher in 03, QAT subject in 05)."""
    recipe = {
        "seed": seed,
        "epochs": epochs,
        "lr": 3e-3,
        "weight_decay": 0.05,
        "batch_size": 64,
        "data": "mnist_subset, test_fraction 0.2",
        "split_seed": 0,
        "shuffle_seed": 0,
    }

    def build() -> nn.Module:
        seed_everything(seed)
        return SmallCNN()

    def train(model: nn.Module) -> list[dict]:
        train_loader, test_loader = mnist_loaders(
            batch_size=recipe["batch_size"], seed=recipe["shuffle_seed"], split_seed=recipe["split_seed"]
        )
        return fit(
            model,
            train_loader,
            epochs,
            lr=recipe["lr"],
            weight_decay=recipe["weight_decay"],
            test_loader=test_loader,
            desc="small CNN",
        )

    return cached_training("small_cnn", build, train, retrain, recipe=recipe)


def trained_tiny_deit(seed: int = 0, epochs: int | None = None, retrain: bool = False) -> tuple[nn.Module, list[dict]]:
    """The tiny DeiT of notebooks 04–07: the DeiT⚗ student distilled from :func:`trained_small_cnn`.

    It is trained with the "hard + distillation token" loss of notebook 03: a
    ``VisionTransformerDistilled`` whose eval-mode forward returns one logits tensor
    (the mean of its class and distillation heads), ready for quantization and export.
    ``epochs`` overrides the recipe's (default 10).
    """
    from deitlab.distill import RECIPE, TOKEN_METHOD, train_student

    recipe = RECIPE if epochs is None else replace(RECIPE, epochs=epochs)
    teacher, _ = trained_small_cnn()
    return train_student(TOKEN_METHOD, teacher, seed=seed, recipe=recipe, retrain=retrain)
