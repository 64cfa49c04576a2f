"""Self-checks for notebooks 01 (ViT with transformers) and 02 (DeiT classification with timm)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deitlab.checks._core import CheckResult, passed, require, require_close

__all__ = [
    "check_attention_head",
    "check_parameter_formula",
    "check_patchify",
    "check_preprocess",
    "check_token_count",
]


def check_token_count(image_size: int, patch_size: int, answer: int) -> CheckResult:
    """Exercise 01.1: tokens a ViT sees for a square image — the patches plus [CLS]."""
    exercise = "01.1 token count"
    require(image_size % patch_size == 0, exercise, f"{patch_size} does not divide {image_size}: pick a valid pair")
    require(isinstance(answer, int), exercise, "answer with a whole number of tokens")
    patches = (image_size // patch_size) ** 2
    require(answer != patches, exercise, "you counted the patches; one more token joins them")
    require(answer == patches + 1, exercise, "tokens = (image size / patch size)² patches + 1 [CLS] token")
    return passed(exercise, f"{image_size}px / {patch_size}px patches → {answer} tokens")


def check_patchify(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Exercise 01.2: ``fn(pixels, p)`` cuts ``B×C×H×W`` into ``B×N×(C·p·p)`` rows that a
    linear layer with the convolution's flattened weight turns into the patch embeddings."""
    exercise = "01.2 patchify"
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 3, 32, 48, generator=generator)
    weight = torch.randn(5, 3, 8, 8, generator=generator)
    expected = nn.functional.conv2d(pixels, weight, stride=8).flatten(2).transpose(1, 2)
    patches = fn(pixels, 8)
    require(isinstance(patches, torch.Tensor), exercise, "return a tensor")
    require(
        tuple(patches.shape) == (2, 24, 3 * 8 * 8),
        exercise,
        f"a 2×3×32×48 batch with 8-pixel patches gives shape (2, 24, 192), got {tuple(patches.shape)}",
    )
    require_close(patches @ weight.flatten(1).T, expected, exercise, atol=1e-4)
    return passed(exercise, "patch rows × flattened convolution weight = the convolution")


def check_attention_head(
    model: nn.Module, pixel_values: torch.Tensor, layer: int, head: int, answer: torch.Tensor
) -> CheckResult:
    """Exercise 01.3: the ``T×T`` attention weights of one head, for the first image of the batch."""
    from deitlab.vit import attention_maps

    exercise = "01.3 one attention head by hand"
    require(isinstance(answer, torch.Tensor), exercise, "answer with a T×T tensor")
    reference = attention_maps(model, pixel_values[:1])[layer, 0, head]
    require(answer.shape == reference.shape, exercise, f"expected shape {tuple(reference.shape)}")
    rows = answer.detach().float().sum(-1)
    require(torch.allclose(rows, torch.ones_like(rows), atol=1e-4), exercise, "each row must sum to 1 (softmax)")
    require_close(answer.detach(), reference, exercise, atol=1e-4)
    return passed(exercise, f"layer {layer}, head {head}: {reference.shape[0]}×{reference.shape[1]} weights match")


def check_preprocess(fn: Callable, model: nn.Module) -> CheckResult:
    """Exercise 02.1: a hand-written eval transform equal to timm's for ``model``."""
    import timm.data

    from deitlab.data import load_image, sample_image_path

    exercise = "02.1 preprocessing by hand"
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    for name in ("cat", "wall_clock"):
        image = load_image(sample_image_path(name))
        mine = fn(image)
        require(isinstance(mine, torch.Tensor), exercise, "return a 3×H×W float tensor")
        require_close(mine, transform(image), exercise, atol=1e-5, rtol=0)
    return passed(exercise, "identical to timm.data.create_transform on two photos")


def _timm_deit(embed_dim: int, depth: int, num_classes: int, patch_size: int, image_size: int, distilled: bool):
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer

    architecture = VisionTransformerDistilled if distilled else VisionTransformer
    heads = max(1, embed_dim // 64)
    return architecture(
        img_size=image_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads,
        num_classes=num_classes,
    )


#: (embed_dim, depth, num_classes, patch_size, image_size, distilled) the check builds with timm
_FORMULA_CASES = (
    (192, 12, 1000, 16, 224, False),  # DeiT-Ti
    (192, 12, 1000, 16, 224, True),  # DeiT-Ti distilled
    (128, 3, 10, 8, 32, False),
    (64, 2, 7, 4, 28, True),
)


def check_parameter_formula(fn: Callable[..., int]) -> CheckResult:
    """Exercise 02.2: ``fn(embed_dim, depth, num_classes, patch_size, image_size, distilled)`` counts a
    DeiT's parameters without building it; compared with models timm builds."""
    exercise = "02.2 parameters from the architecture"
    for embed_dim, depth, classes, patch, size, distilled in _FORMULA_CASES:
        answer = fn(embed_dim, depth, num_classes=classes, patch_size=patch, image_size=size, distilled=distilled)
        require(isinstance(answer, int), exercise, f"return a whole number of parameters, got {type(answer).__name__}")
        expected = sum(p.numel() for p in _timm_deit(embed_dim, depth, classes, patch, size, distilled).parameters())
        what = f"embed_dim={embed_dim}, depth={depth}, {classes} classes, patch {patch}, image {size}" + (
            ", distilled" if distilled else ""
        )
        require(
            answer == expected,
            exercise,
            f"{what}: timm builds {expected:,} parameters, your formula gives {answer:,} "
            f"(off by {answer - expected:+,})",
        )
    deit_b = fn(768, 12)
    return passed(
        exercise, f"exact on {len(_FORMULA_CASES)} timm models; DeiT-B: {deit_b:,} × 4 B = {deit_b * 4 / 1e6:.1f} MB"
    )
