"""Tests of deitlab.vit and deitlab.checks.vit on tiny models."""

from __future__ import annotations

import ast
import copy
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn

from deitlab import checks
from deitlab.checks import CheckFailed
from deitlab.vit import (
    attention_explorer,
    attention_maps,
    attention_rollout,
    draw_patch_grid,
    locality_score,
    overlay_heatmap,
    position_similarity,
    similarity_mosaic,
    use_eager_attention,
    vit_image_processor,
    vit_weights,
)


@pytest.fixture(scope="module")
def tiny_vit():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        num_labels=10,
    )
    return ViTForImageClassification(config).eval()


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _forward(w, x):
    """A reference forward pass from ViTWeights (what notebook 01 writes out)."""
    f = nn.functional
    x = f.conv2d(x, w.patch_weight, w.patch_bias, stride=w.patch_size).flatten(2).transpose(1, 2)
    x = torch.cat([w.cls_token.expand(x.shape[0], -1, -1), x], 1) + w.position_embeddings
    batch, tokens, dim = x.shape
    for b in w.blocks:
        h = f.layer_norm(x, (dim,), b.ln1_weight, b.ln1_bias, w.layer_norm_eps)

        def heads(t):
            return t.view(batch, tokens, w.num_heads, -1).transpose(1, 2)

        q = heads(f.linear(h, b.q_weight, b.q_bias))
        k = heads(f.linear(h, b.k_weight, b.k_bias))
        v = heads(f.linear(h, b.v_weight, b.v_bias))
        a = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1)
        x = x + f.linear((a @ v).transpose(1, 2).reshape(batch, tokens, dim), b.out_weight, b.out_bias)
        h = f.layer_norm(x, (dim,), b.ln2_weight, b.ln2_bias, w.layer_norm_eps)
        x = x + f.linear(f.gelu(f.linear(h, b.fc1_weight, b.fc1_bias)), b.fc2_weight, b.fc2_bias)
    x = f.layer_norm(x, (dim,), w.final_ln_weight, w.final_ln_bias, w.layer_norm_eps)
    return f.linear(x[:, 0], w.head_weight, w.head_bias)


def test_vit_weights_rebuild_the_forward_pass(tiny_vit, pixels):
    w = vit_weights(tiny_vit)
    assert len(w.blocks) == 2 and w.num_heads == 4 and w.patch_size == 8
    assert w.position_embeddings.shape == (1, 17, 32)
    with torch.inference_mode():
        expected = tiny_vit(pixel_values=pixels).logits
        assert (_forward(w, pixels) - expected).abs().max() < 1e-5


NOTEBOOK_01 = Path(__file__).parents[1] / "notebooks" / "01_vit_transformers.ipynb"


def _notebook_functions(notebook: Path, *names: str) -> str:
    """The source of the functions ``names`` that the notebook's code cells define."""
    found = {}
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not any(f"def {name}(" in source for name in names):
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.name in names:
                found[node.name] = ast.get_source_segment(source, node)
    assert sorted(found) == sorted(names), f"{notebook.name} no longer defines {set(names) - set(found)}"
    return "\n\n".join(found.values())


def test_notebook_01_forward_pass_by_hand_runs_where_the_model_runs(tiny_vit, pixels):
    """Notebook 01 on a GPU, on this CPU machine: FakeTensorMode gives tensors the device "cuda" without a
    GPU (and without values) and raises on any operation that mixes devices."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    code = _notebook_functions(NOTEBOOK_01, "embed", "self_attention", "block", "vit_forward_by_hand")
    model = copy.deepcopy(tiny_vit)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model.to("cuda")  # as the notebook does: vit.to(device), inputs.to(device)
        batch = pixels.to("cuda")
        namespace = {"F": nn.functional, "math": math, "torch": torch, "W": vit_weights(model)}
        exec(code, namespace)
        by_hand = namespace["vit_forward_by_hand"](batch)
        library = model(pixel_values=batch).logits
        assert by_hand.device.type == "cuda" and by_hand.shape == library.shape
        assert (by_hand - library).abs().max().device.type == "cuda"  # the notebook's comparison, on one device
        use_eager_attention(model)
        attentions = torch.stack(model(pixel_values=batch, output_attentions=True).attentions).cpu()
        assert attention_rollout(attentions).device.type == "cpu"  # the plots' side of the notebook
        with pytest.raises(RuntimeError, match="device"):  # what the notebook would hit with a batch left on the CPU
            namespace["vit_forward_by_hand"](pixels)


def test_vit_weights_rejects_other_models():
    with pytest.raises(TypeError, match="ViTForImageClassification"):
        vit_weights(nn.Linear(2, 2))


def test_attention_maps_need_eager_then_work(tiny_vit, pixels):
    tiny_vit.set_attn_implementation("sdpa")
    with pytest.raises(RuntimeError, match="use_eager_attention"):
        attention_maps(tiny_vit, pixels)
    use_eager_attention(tiny_vit)
    maps = attention_maps(tiny_vit, pixels)
    assert maps.shape == (2, 2, 4, 17, 17)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, 4, 17), atol=1e-5)
    with pytest.raises(ValueError, match="B×C×H×W"):
        attention_maps(tiny_vit, pixels[0])


def test_attention_rollout_rows_are_distributions():
    attentions = torch.rand(3, 2, 4, 5, 5).softmax(-1)
    rollout = attention_rollout(attentions)
    assert rollout.shape == (2, 5, 5)
    assert torch.allclose(rollout.sum(-1), torch.ones(2, 5), atol=1e-5)
    # one layer of identity attention: rollout is the identity
    assert torch.allclose(attention_rollout(torch.eye(5).expand(1, 1, 2, 5, 5)), torch.eye(5)[None])
    assert attention_rollout(attentions, head_fusion="max").shape == (2, 5, 5)


def test_attention_rollout_bad_input():
    with pytest.raises(ValueError, match="layers×batch×heads"):
        attention_rollout(torch.rand(2, 5, 5))
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(torch.rand(1, 1, 1, 3, 3), head_fusion="median")


def test_position_similarity_and_locality():
    side = 6
    ii, jj = torch.meshgrid(torch.arange(float(side)), torch.arange(float(side)), indexing="ij")
    # smooth embeddings: sin/cos of the coordinates, so neighbours are similar
    freqs = torch.tensor([0.3, 0.5, 0.7])
    smooth = torch.cat(
        [
            torch.sin(ii[..., None] * freqs),
            torch.cos(ii[..., None] * freqs),
            torch.sin(jj[..., None] * freqs),
            torch.cos(jj[..., None] * freqs),
        ],
        -1,
    ).view(side * side, -1)
    pos = torch.cat([torch.zeros(1, smooth.shape[1]), smooth])[None]
    sim = position_similarity(pos)
    assert sim.shape == (side, side, side, side)
    assert torch.allclose(sim[2, 3, 2, 3], torch.tensor(1.0))
    assert locality_score(sim) > 0.2
    random_sim = position_similarity(torch.randn(1 + 14 * 14, 768, generator=torch.Generator().manual_seed(0)))
    assert abs(locality_score(random_sim)) < 0.05
    with pytest.raises(ValueError, match="square"):
        position_similarity(torch.randn(1, 11, 4))
    with pytest.raises(ValueError, match="T×D"):
        position_similarity(torch.randn(4))
    with pytest.raises(ValueError, match="g×g×g×g"):
        locality_score(torch.rand(3, 3))


def test_similarity_mosaic_layout():
    sim = torch.rand(3, 3, 3, 3)
    mosaic = similarity_mosaic(sim, gap=1)
    assert mosaic.shape == (11, 11)
    assert np.isnan(mosaic[3, 0]) and mosaic[4, 4] == pytest.approx(float(sim[1, 1, 0, 0]))
    with pytest.raises(ValueError):
        similarity_mosaic(torch.rand(3, 3))


def test_drawing_helpers():
    image = Image.new("RGB", (32, 32), "gray")
    fig, ax = plt.subplots()
    draw_patch_grid(ax, image, patch_size=8, numbers=True)
    assert len(ax.lines) == 10 and len(ax.texts) == 16
    with pytest.raises(ValueError, match="does not split"):
        draw_patch_grid(ax, Image.new("RGB", (30, 32)), patch_size=8)
    overlay_heatmap(ax, image, torch.rand(4, 4), title="t")
    overlay_heatmap(ax, image, torch.zeros(4, 4))
    with pytest.raises(ValueError, match="2-D"):
        overlay_heatmap(ax, image, torch.rand(4))
    plt.close(fig)


def test_vit_image_processor_offline():
    processor, where = vit_image_processor()
    assert where in {"hf-cache", "built-in config"}
    out = processor(images=Image.new("RGB", (300, 200), "red"), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 224, 224)
    assert torch.allclose(out[0, 0], torch.ones(224, 224))  # red → (1 - 0.5) / 0.5
    with pytest.raises(ValueError, match="no image processor"):
        vit_image_processor("someone/unknown-vit")


def test_attention_explorer_builds_and_validates():
    images = {"a": Image.new("RGB", (32, 32)), "b": Image.new("RGB", (32, 32))}
    explorer = attention_explorer(images, torch.rand(2, 2, 4, 4, 4), torch.rand(2, 4, 4))
    controls = {c.description: c for c in explorer.children[:-1]}
    assert set(controls) == {"image", "layer", "head"} and controls["layer"].max == 1
    plt.close("all")
    with pytest.raises(ValueError, match="cls_attention"):
        attention_explorer(images, torch.rand(2, 3, 4, 4, 4), torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="rollout"):
        attention_explorer(images, torch.rand(2, 2, 4, 4, 4), torch.rand(3, 4, 4))


# --- self-checks ------------------------------------------------------------------


def test_check_token_count():
    assert "577" in repr(checks.check_token_count(384, 16, 577))
    with pytest.raises(CheckFailed, match="counted the patches"):
        checks.check_token_count(384, 16, 576)
    with pytest.raises(CheckFailed):
        checks.check_token_count(224, 16, 200)


def test_check_patchify():
    def good(x, p):
        b, c, _, _ = x.shape
        return x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)

    def channels_last(x, p):  # wrong feature order
        b, c, _, _ = x.shape
        return x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 4, 5, 1).reshape(b, -1, c * p * p)

    assert "convolution" in repr(checks.check_patchify(good))
    with pytest.raises(CheckFailed, match="values differ"):
        checks.check_patchify(channels_last)
    with pytest.raises(CheckFailed, match="shape"):
        checks.check_patchify(lambda x, p: x.flatten(2))


def test_check_attention_head(tiny_vit, pixels):
    use_eager_attention(tiny_vit)
    reference = attention_maps(tiny_vit, pixels[:1])[1, 0, 2]
    assert "match" in repr(checks.check_attention_head(tiny_vit, pixels, 1, 2, reference.clone()))
    with pytest.raises(CheckFailed, match="sum to 1"):
        checks.check_attention_head(tiny_vit, pixels, 1, 2, reference * 2)
    with pytest.raises(CheckFailed, match="values differ"):
        checks.check_attention_head(tiny_vit, pixels, 0, 2, reference)


@pytest.fixture(scope="module")
def tiny_distilled():
    torch.manual_seed(0)
    return timm.create_model(
        "deit_tiny_distilled_patch16_224", img_size=32, embed_dim=32, depth=1, num_heads=2, num_classes=1000
    ).eval()


def test_check_preprocess(tiny_distilled):
    import timm.data

    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=tiny_distilled))
    assert "timm" in repr(checks.check_preprocess(transform, tiny_distilled))
    with pytest.raises(CheckFailed):
        checks.check_preprocess(lambda image: transform(image) * 1.01, tiny_distilled)


def _deit_parameters(embed_dim, depth, num_classes=1000, patch_size=16, image_size=224, distilled=False):
    special = 2 if distilled else 1
    positions = ((image_size // patch_size) ** 2 + special) * embed_dim
    block = 12 * embed_dim**2 + 13 * embed_dim
    patch_embedding = 3 * patch_size**2 * embed_dim + embed_dim
    heads = special * (embed_dim * num_classes + num_classes)
    return patch_embedding + special * embed_dim + positions + depth * block + 2 * embed_dim + heads


def test_check_parameter_formula_accepts_the_exact_count():
    assert "86,567,656 × 4 B = 346.3 MB" in repr(checks.check_parameter_formula(_deit_parameters))


def test_check_parameter_formula_names_the_first_wrong_case():
    def without_distillation_head(embed_dim, depth, num_classes=1000, patch_size=16, image_size=224, distilled=False):
        count = _deit_parameters(embed_dim, depth, num_classes, patch_size, image_size, distilled)
        return count - (embed_dim * num_classes + num_classes if distilled else 0)

    with pytest.raises(CheckFailed, match="distilled: timm builds 5,910,800 parameters.*off by -193,000"):
        checks.check_parameter_formula(without_distillation_head)
    with pytest.raises(CheckFailed, match="whole number"):
        checks.check_parameter_formula(lambda *args, **kwargs: 5.7e6)
