"""Plumbing for notebooks 01 and 02: ViT weights by name, attention maps and rollout,
position-embedding similarity, patch grids, heat-map overlays and the attention explorer.

The teaching code (patchify, attention, the forward pass) is written out in the
notebooks; this module only hides what differs between library versions and the
plotting boilerplate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from torch import nn

__all__ = [
    "BlockWeights",
    "ViTWeights",
    "attention_explorer",
    "attention_maps",
    "attention_rollout",
    "draw_patch_grid",
    "locality_score",
    "overlay_heatmap",
    "position_similarity",
    "similarity_mosaic",
    "use_eager_attention",
    "vit_image_processor",
    "vit_weights",
]

#: The preprocessing of ``google/vit-base-patch16-224`` (its ``preprocessor_config.json``),
#: used to build the processor when the hub is unreachable.
VIT_BASE_PROCESSOR_CONFIG = dict(
    do_resize=True,
    size={"height": 224, "width": 224},
    resample=2,  # PIL bilinear
    do_rescale=True,
    rescale_factor=1 / 255,
    do_normalize=True,
    image_mean=[0.5, 0.5, 0.5],
    image_std=[0.5, 0.5, 0.5],
)


@dataclass(frozen=True)
class BlockWeights:
    """The tensors of one pre-norm encoder block (``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``)."""

    ln1_weight: torch.Tensor
    ln1_bias: torch.Tensor
    q_weight: torch.Tensor
    q_bias: torch.Tensor
    k_weight: torch.Tensor
    k_bias: torch.Tensor
    v_weight: torch.Tensor
    v_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    ln2_weight: torch.Tensor
    ln2_bias: torch.Tensor
    fc1_weight: torch.Tensor
    fc1_bias: torch.Tensor
    fc2_weight: torch.Tensor
    fc2_bias: torch.Tensor


@dataclass(frozen=True)
class ViTWeights:
    """Every tensor a ViT classifier's forward pass needs, under library-independent names."""

    patch_weight: torch.Tensor  # D × C × p × p (the patch projection is a strided convolution)
    patch_bias: torch.Tensor
    cls_token: torch.Tensor  # 1 × 1 × D
    position_embeddings: torch.Tensor  # 1 × (1 + N) × D
    blocks: tuple[BlockWeights, ...]
    final_ln_weight: torch.Tensor
    final_ln_bias: torch.Tensor
    head_weight: torch.Tensor  # classes × D
    head_bias: torch.Tensor
    num_heads: int
    patch_size: int
    layer_norm_eps: float


def _linear(module: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    bias = module.bias if module.bias is not None else torch.zeros(module.out_features, device=module.weight.device)
    return module.weight.detach(), bias.detach()


def _block_weights(layer: nn.Module) -> BlockWeights:
    attention = layer.attention
    if hasattr(attention, "q_proj"):  # transformers ≥ 5
        q, k, v, out = attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj
        fc1, fc2 = layer.mlp.fc1, layer.mlp.fc2
    else:  # transformers 4.x
        q, k, v = attention.attention.query, attention.attention.key, attention.attention.value
        out = attention.output.dense
        fc1, fc2 = layer.intermediate.dense, layer.output.dense
    tensors = {}
    for prefix, module in (("q", q), ("k", k), ("v", v), ("out", out), ("fc1", fc1), ("fc2", fc2)):
        tensors[f"{prefix}_weight"], tensors[f"{prefix}_bias"] = _linear(module)
    return BlockWeights(
        ln1_weight=layer.layernorm_before.weight.detach(),
        ln1_bias=layer.layernorm_before.bias.detach(),
        ln2_weight=layer.layernorm_after.weight.detach(),
        ln2_bias=layer.layernorm_after.bias.detach(),
        **tensors,
    )


def vit_weights(model: nn.Module) -> ViTWeights:
    """The weights of a transformers ``ViTForImageClassification`` under plain names.

    Works with the module names of transformers 4.x (``encoder.layer[i].attention.attention.query``)
    and 5.x (``layers[i].attention.q_proj``), so notebook code does not depend on either.
    """
    vit = getattr(model, "vit", None)
    if vit is None or not hasattr(model, "classifier"):
        raise TypeError(f"expected a transformers ViTForImageClassification, got {type(model).__name__}")
    layers = vit.layers if hasattr(vit, "layers") else vit.encoder.layer
    config = model.config
    embeddings = vit.embeddings
    projection = embeddings.patch_embeddings.projection
    head_weight, head_bias = _linear(model.classifier)
    return ViTWeights(
        patch_weight=projection.weight.detach(),
        patch_bias=projection.bias.detach(),
        cls_token=embeddings.cls_token.detach(),
        position_embeddings=embeddings.position_embeddings.detach(),
        blocks=tuple(_block_weights(layer) for layer in layers),
        final_ln_weight=vit.layernorm.weight.detach(),
        final_ln_bias=vit.layernorm.bias.detach(),
        head_weight=head_weight,
        head_bias=head_bias,
        num_heads=config.num_attention_heads,
        patch_size=config.patch_size,
        layer_norm_eps=config.layer_norm_eps,
    )


def use_eager_attention(model: nn.Module) -> nn.Module:
    """Switch a transformers model to the eager attention path (the one that returns weights)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:  # older transformers
        model.config._attn_implementation = "eager"
    return model


@torch.inference_mode()
def attention_maps(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Attention weights of every layer: a ``layers × batch × heads × tokens × tokens`` tensor.

    Needs a transformers model on the eager attention path (see :func:`use_eager_attention`):
    fused SDPA kernels never materialise the weights, so they cannot return them.
    """
    if pixel_values.ndim != 4:
        raise ValueError(f"expected a B×C×H×W batch, got shape {tuple(pixel_values.shape)}")
    output = model(pixel_values=pixel_values, output_attentions=True)
    attentions = output.attentions
    if not attentions or any(a is None for a in attentions):
        implementation = getattr(model.config, "_attn_implementation", "?")
        raise RuntimeError(
            f"the model returned no attention weights (attention implementation {implementation!r}); "
            "call deitlab.vit.use_eager_attention(model) first"
        )
    return torch.stack(attentions)


def attention_rollout(attentions: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token draws on each input token.

    Per layer, heads are fused (``mean``/``max``/``min``), the identity is added for the
    residual connection and rows are renormalised; the layers' matrices are multiplied
    from the first to the last. Input ``layers × batch × heads × T × T``; output ``batch × T × T``.
    """
    if attentions.ndim != 5 or attentions.shape[-1] != attentions.shape[-2]:
        raise ValueError(f"expected layers×batch×heads×T×T attention weights, got shape {tuple(attentions.shape)}")
    fusions = {"mean": lambda a: a.mean(dim=2), "max": lambda a: a.amax(dim=2), "min": lambda a: a.amin(dim=2)}
    if head_fusion not in fusions:
        raise ValueError(f"unknown head_fusion {head_fusion!r}; use one of {', '.join(fusions)}")
    fused = fusions[head_fusion](attentions.float())
    tokens = fused.shape[-1]
    eye = torch.eye(tokens, dtype=fused.dtype, device=fused.device)
    rollout = eye.expand_as(fused[0]).clone()
    for layer in fused:
        with_residual = layer + eye
        with_residual = with_residual / with_residual.sum(dim=-1, keepdim=True)
        rollout = with_residual @ rollout
    return rollout


def position_similarity(position_embeddings: torch.Tensor, extra_tokens: int = 1) -> torch.Tensor:
    """Cosine similarity of every patch's position embedding with every other: ``g × g × g × g``.

    ``result[i, j]`` is the similarity map of the patch in row ``i``, column ``j``.
    Accepts ``1 × T × D`` or ``T × D`` with ``T = extra_tokens + g²``.
    """
    if position_embeddings.ndim == 3:
        position_embeddings = position_embeddings[0]
    if position_embeddings.ndim != 2:
        raise ValueError(f"expected T×D or 1×T×D position embeddings, got shape {tuple(position_embeddings.shape)}")
    patches = position_embeddings[extra_tokens:].detach().float()
    side = math.isqrt(patches.shape[0])
    if patches.shape[0] == 0 or side * side != patches.shape[0]:
        raise ValueError(f"{patches.shape[0]} patch positions do not form a square grid")
    unit = torch.nn.functional.normalize(patches, dim=-1)
    return (unit @ unit.T).reshape(side, side, side, side)


def locality_score(similarity: torch.Tensor, far: int = 4) -> float:
    """Mean similarity to the 4 direct neighbours minus mean similarity to patches ≥ ``far`` away.

    Near 0 for random position embeddings; clearly positive when the model has learned
    that neighbouring patches are related.
    """
    if similarity.ndim != 4 or similarity.shape[0] != similarity.shape[2]:
        raise ValueError(f"expected a g×g×g×g similarity tensor, got shape {tuple(similarity.shape)}")
    side = similarity.shape[0]
    rows = torch.arange(side, device=similarity.device)
    di = (rows.view(side, 1, 1, 1) - rows.view(1, 1, side, 1)).abs()
    dj = (rows.view(1, side, 1, 1) - rows.view(1, 1, 1, side)).abs()
    distance = (di + dj).expand_as(similarity)
    near = similarity[distance == 1].mean()
    far_mask = torch.maximum(di, dj).expand_as(similarity) >= far
    return float(near - similarity[far_mask].mean())


def similarity_mosaic(similarity: torch.Tensor, gap: int = 1) -> np.ndarray:
    """One image of all ``g × g`` similarity maps, tiled in patch order with NaN gaps between tiles."""
    if similarity.ndim != 4:
        raise ValueError(f"expected a g×g×g×g similarity tensor, got shape {tuple(similarity.shape)}")
    side = similarity.shape[0]
    tile = similarity.shape[2]
    size = side * tile + (side - 1) * gap
    mosaic = np.full((size, size), np.nan, dtype=np.float32)
    values = similarity.detach().cpu().numpy()
    for i in range(side):
        for j in range(side):
            top, left = i * (tile + gap), j * (tile + gap)
            mosaic[top : top + tile, left : left + tile] = values[i, j]
    return mosaic


def draw_patch_grid(ax: plt.Axes, image: Image.Image | np.ndarray, patch_size: int = 16, numbers: bool = False) -> None:
    """Show ``image`` with the ViT patch grid drawn over it (optionally numbering the patches)."""
    array = np.asarray(image)
    height, width = array.shape[:2]
    if height % patch_size or width % patch_size:
        raise ValueError(f"a {width}×{height} image does not split into {patch_size}×{patch_size} patches")
    ax.imshow(array)
    for x in range(0, width + 1, patch_size):
        ax.axvline(x - 0.5, color="white", linewidth=0.6)
    for y in range(0, height + 1, patch_size):
        ax.axhline(y - 0.5, color="white", linewidth=0.6)
    if numbers:
        columns = width // patch_size
        for index in range(columns * (height // patch_size)):
            row, col = divmod(index, columns)
            ax.text(
                col * patch_size + patch_size / 2,
                row * patch_size + patch_size / 2,
                str(index),
                color="yellow",
                fontsize=4,
                ha="center",
                va="center",
            )
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_heatmap(
    ax: plt.Axes, image: Image.Image | np.ndarray, heat: torch.Tensor | np.ndarray, alpha: float = 0.55, title: str = ""
) -> None:
    """Draw ``image`` with a coarse ``g × g`` heat map stretched over it (bilinear)."""
    heat = torch.as_tensor(np.asarray(heat, dtype=np.float32))
    if heat.ndim != 2:
        raise ValueError(f"expected a 2-D heat map, got shape {tuple(heat.shape)}")
    array = np.asarray(image)
    height, width = array.shape[:2]
    up = torch.nn.functional.interpolate(heat[None, None], size=(height, width), mode="bilinear", align_corners=False)
    up = up[0, 0].numpy()
    span = up.max() - up.min()
    up = (up - up.min()) / span if span > 0 else np.zeros_like(up)
    ax.imshow(array)
    ax.imshow(up, cmap="inferno", alpha=alpha)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)


def vit_image_processor(name: str = "google/vit-base-patch16-224"):
    """The model's image processor: from the hub or local cache, else from the known config.

    Returns ``(processor, where)`` with ``where`` one of ``"hub"``, ``"hf-cache"`` or
    ``"built-in config"`` (only for ``google/vit-base-patch16-224``).
    """
    from transformers import AutoImageProcessor, ViTImageProcessor

    from deitlab.env import is_online

    online = is_online()
    try:
        processor = AutoImageProcessor.from_pretrained(name, local_files_only=not online)
        return processor, "hub" if online else "hf-cache"
    except (OSError, ValueError) as exc:
        if name != "google/vit-base-patch16-224":
            raise ValueError(f"no image processor for {name!r} reachable offline") from exc
    return ViTImageProcessor(**VIT_BASE_PROCESSOR_CONFIG), "built-in config"


def attention_explorer(
    images: Mapping[str, Image.Image | np.ndarray], cls_attention: torch.Tensor, rollout: torch.Tensor
):
    """An ipywidgets explorer: pick an image, a layer and a head; see where [CLS] looks.

    ``images`` are the model-sized inputs by name (in batch order), ``cls_attention`` the
    [CLS] rows as ``layers × batch × heads × g × g`` and ``rollout`` the ``batch × g × g``
    rollout maps. Returns an ``ipywidgets.interactive`` whose plot re-renders on change.
    """
    import ipywidgets as widgets

    names = list(images)
    if cls_attention.ndim != 5 or cls_attention.shape[1] != len(names):
        raise ValueError(
            f"cls_attention must be layers×batch×heads×g×g with batch = {len(names)} images, "
            f"got shape {tuple(cls_attention.shape)}"
        )
    if rollout.ndim != 3 or rollout.shape[0] != len(names):
        raise ValueError(f"rollout must be batch×g×g with batch = {len(names)}, got shape {tuple(rollout.shape)}")
    layers, _, heads = cls_attention.shape[:3]

    def show(image: str, layer: int, head: int) -> None:
        index = names.index(image)
        heat = cls_attention[layer, index].mean(0) if head < 0 else cls_attention[layer, index, head]
        fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
        axes[0].imshow(np.asarray(images[image]))
        axes[0].set_title(image, fontsize=9)
        axes[0].axis("off")
        which = "mean of heads" if head < 0 else f"head {head}"
        overlay_heatmap(axes[1], images[image], heat, title=f"[CLS] attention · layer {layer} · {which}")
        overlay_heatmap(axes[2], images[image], rollout[index], title="rollout (all layers)")
        fig.tight_layout()
        plt.show()

    return widgets.interactive(
        show,
        image=widgets.Dropdown(options=names, value=names[0], description="image"),
        layer=widgets.IntSlider(value=layers - 1, min=0, max=layers - 1, description="layer"),
        head=widgets.Dropdown(
            options=[("mean of heads", -1)] + [(f"head {h}", h) for h in range(heads)], value=-1, description="head"
        ),
    )
