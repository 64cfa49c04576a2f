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


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, colour: str, fontsize: float = 8) -> None:
    ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", linewidth=0.8))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], text: str = "") -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color="black", linewidth=1))
    if text:
        ax.text((start[0] + end[0]) / 2 + 1, (start[1] + end[1]) / 2, text, fontsize=8, va="center")


def vit_pipeline_diagram(
    image: Image.Image | np.ndarray | None = None,
    image_size: int = 224,
    patch_size: int = 16,
    tokens_shown: int = 6,
    distillation_token: bool = False,
) -> plt.Figure:
    """The ViT pipeline as a picture: patches → linear projection → [CLS] (+ [DIST]) and patch tokens
    plus position embeddings → transformer encoder → classifier head(s).

    ``image`` (any size, resized to ``image_size``) fills the picture and its patches; without one a
    grey gradient stands in. ``distillation_token=True`` draws DeiT's extra token and second head.
    """
    if image_size % patch_size:
        raise ValueError(f"patch_size {patch_size} does not divide image_size {image_size}")
    if tokens_shown < 1:
        raise ValueError(f"tokens_shown must be at least 1, got {tokens_shown}")
    if image is None:
        pixels = np.tile(np.linspace(0.2, 0.9, image_size), (image_size, 1))[..., None].repeat(3, axis=2)
    else:
        picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        pixels = np.asarray(picture.convert("RGB").resize((image_size, image_size))) / 255.0
    side = image_size // patch_size
    patches = side * side
    fig, ax = plt.subplots(figsize=(13, 7))
    ax.set_xlim(0, 130)
    ax.set_ylim(0, 70)
    ax.set_aspect("equal")
    ax.axis("off")

    # the image with its patch grid, then a few of its patches as a sequence
    ax.imshow(pixels, extent=(0, 22, 40, 62))
    for k in range(side + 1):
        ax.plot([k * 22 / side] * 2, [40, 62], color="white", linewidth=0.4)
        ax.plot([0, 22], [40 + k * 22 / side] * 2, color="white", linewidth=0.4)
    ax.text(11, 63.5, f"image {image_size}×{image_size}", ha="center", fontsize=9)
    row = side // 2  # a row through the middle of the image
    first_x = 32.0
    specials = ["[CLS]"] + (["[DIST]"] if distillation_token else [])
    step = 7.5
    for i in range(tokens_shown):
        tile = pixels[row * patch_size : (row + 1) * patch_size, i * patch_size : (i + 1) * patch_size]
        x = first_x + (len(specials) + i) * step
        ax.imshow(tile, extent=(x, x + 5, 2, 7))
    dots_x = first_x + (len(specials) + tokens_shown) * step
    ax.text(dots_x + 2.5, 4.5, "…", ha="center", va="center", fontsize=14)
    _arrow(ax, (11, 39), (first_x - 1, 5))
    ax.text(
        3,
        20,
        f"cut into {side}×{side} = {patches}\npatches of {patch_size}×{patch_size}×3,\nnumbered row by row\n"
        f"(shown: row {row + 1})",
        fontsize=8,
    )

    # linear projection to tokens, special tokens, position embeddings
    token_y, position_y = 16.0, 23.5
    for i in range(tokens_shown):
        x = first_x + (len(specials) + i) * step
        _arrow(ax, (x + 2.5, 7.5), (x + 2.5, token_y - 0.2))
    ax.text(
        dots_x + 6,
        11.5,
        f"linear projection\n(the {patch_size}×{patch_size} conv, stride {patch_size})",
        fontsize=8,
        va="center",
    )
    colours = {"[CLS]": "#f4a261", "[DIST]": "#8ac926"}
    first_patch = row * side  # numbering patches from 1, row by row
    labels = specials + [str(first_patch + i + 1) for i in range(tokens_shown)] + ["…", str(patches)]
    positions = list(range(len(specials))) + [len(specials) + first_patch + i for i in range(tokens_shown)]
    positions += [-1, len(specials) + patches - 1]
    for i, label in enumerate(labels):
        x = first_x + i * step
        colour = colours.get(label, "#a8dadc")
        if label == "…":
            ax.text(x + 2.5, token_y + 2.5, "…", ha="center", va="center", fontsize=14)
            continue
        _box(ax, x, token_y, 5, 5, label, colour, fontsize=7)
        ax.text(x + 2.5, token_y + 6.2, "+", ha="center", va="center", fontsize=9)
        _box(ax, x, position_y + 0.5, 5, 3, f"p{positions[i]}", "#cdb4db", fontsize=7)
    last_x = first_x + (len(labels) - 1) * step + 5
    ax.text(last_x + 1.5, token_y + 2.5, f"{patches + len(specials)} tokens\n× embedding dim", fontsize=8, va="center")
    ax.text(last_x + 1.5, position_y + 2, "+ learned position\n  embeddings", fontsize=8, va="center")
    ax.text(first_x - 1, token_y - 3, "learned token(s)", fontsize=7, color="#b5651d")

    # encoder and head(s)
    encoder_y = 33.0
    _box(
        ax,
        first_x,
        encoder_y,
        last_x - first_x,
        9,
        "transformer encoder: L × [ LayerNorm → multi-head self-attention → + residual,\n"
        "LayerNorm → MLP → + residual ]   (every token attends to every token)",
        "#e9ecef",
        fontsize=8.5,
    )
    for i in range(len(labels)):
        if labels[i] != "…":
            x = first_x + i * step + 2.5
            _arrow(ax, (x, position_y + 3.6), (x, encoder_y - 0.1))
    heads = [("[CLS]", "LayerNorm → Linear\n= class head", "class logits")]
    if distillation_token:
        heads.append(("[DIST]", "LayerNorm → Linear\n= distillation head", "teacher's label\n(training)"))
    for i, (_, head, output) in enumerate(heads):
        x = first_x + i * step + 2.5
        _arrow(ax, (x, encoder_y + 9.1), (x + i * 8, 47.5))
        _box(ax, x - 4 + i * 8, 47.5, 13, 6, head, colours[specials[i]], fontsize=7.5)
        _arrow(ax, (x + 2.5 + i * 8, 53.6), (x + 2.5 + i * 8, 58.5))
        ax.text(x + 2.5 + i * 8, 59.5, output, ha="center", va="bottom", fontsize=8)
    ax.text(
        first_x + 30,
        50,
        "only the special token(s) feed a classifier;\nthe patch tokens' outputs are not used",
        fontsize=8,
        va="center",
    )
    fig.tight_layout()
    return fig


def deit_distillation_diagram(
    image: Image.Image | np.ndarray | None = None, image_size: int = 28, patch_size: int = 7
) -> plt.Figure:
    """DeiT's distillation token beside the class token, with where each head's training target comes from.

    :func:`vit_pipeline_diagram` with ``distillation_token=True``, plus the frozen CNN teacher
    whose top class on the same (augmented) image is the distillation head's label, and the
    hard-label loss of the two heads.
    """
    fig = vit_pipeline_diagram(image, image_size, patch_size, tokens_shown=4, distillation_token=True)
    ax = fig.axes[0]
    ax.set_ylim(0, 76)
    _box(ax, 92, 62, 34, 8, "CNN teacher (frozen, no gradients)\nreads the same augmented image", "#ffd6a5", 8)
    _arrow(ax, (92, 64), (57, 64.5))
    ax.text(74, 66, "argmax → teacher's label $y_t$", fontsize=8, ha="center", va="bottom")
    ax.text(37, 70.5, "true label $y$", fontsize=8, ha="center", color="#b5651d")
    ax.text(
        30,
        73.5,
        "training loss: ½ CE(class head, $y$) + ½ CE(distillation head, $y_t$)   ·   "
        "inference: the paper adds the two softmaxes, timm averages the two logits",
        fontsize=8.5,
        ha="left",
    )
    return fig
