"""Plotting helpers so notebook cells stay about the idea, not the boilerplate."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from deitlab.data import imagenet_classes


def topk(logits: torch.Tensor, k: int = 5, labels: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
    """Top-``k`` (class name, probability) pairs for each row of an ``N×C`` logit tensor."""
    if logits.ndim != 2:
        raise ValueError(f"expected N×C logits, got shape {tuple(logits.shape)}")
    labels = labels or (imagenet_classes() if logits.shape[1] == 1000 else [str(i) for i in range(logits.shape[1])])
    if len(labels) != logits.shape[1]:
        raise ValueError(f"{len(labels)} labels for {logits.shape[1]} classes")
    probs = logits.detach().float().softmax(dim=1)
    values, indices = probs.topk(k, dim=1)
    return [[(labels[i], v) for i, v in zip(row_i.tolist(), row_v.tolist())] for row_i, row_v in zip(indices, values)]


def image_grid(
    images: Sequence[Image.Image | np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    size: float = 2.6,
) -> plt.Figure:
    """Show images in a grid with optional titles; returns the figure."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    nrows = -(-len(images) // ncols)
    ncols = min(ncols, len(images))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(image, cmap="gray" if np.asarray(image).ndim == 2 else None)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def topk_bars(predictions: list[tuple[str, float]], ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """Horizontal bar chart of (label, probability) pairs, best at the top."""
    ax = ax or plt.gca()
    names = [name for name, _ in predictions][::-1]
    values = [p for _, p in predictions][::-1]
    ax.barh(names, values, color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title, fontsize=10)
    return ax
