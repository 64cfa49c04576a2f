import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from deitlab import viz


def test_topk_uses_imagenet_names_for_1000_classes():
    logits = torch.zeros(1, 1000)
    logits[0, 281] = 10
    ((best, *_rest),) = viz.topk(logits, k=3)
    assert best[0] == "tabby" and best[1] > 0.9


def test_topk_custom_labels_and_errors():
    logits = torch.tensor([[0.0, 2.0, 1.0]])
    assert [name for name, _ in viz.topk(logits, k=2, labels=["a", "b", "c"])[0]] == ["b", "c"]
    with pytest.raises(ValueError, match="expected N×C logits"):
        viz.topk(torch.zeros(3))
    with pytest.raises(ValueError, match="2 labels for 3 classes"):
        viz.topk(logits, labels=["a", "b"])


def test_image_grid_and_bars():
    fig = viz.image_grid([np.zeros((4, 4)), np.ones((4, 4, 3))], titles=["a", "b"], ncols=4)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="at least one image"):
        viz.image_grid([])
    ax = viz.topk_bars([("cat", 0.7), ("dog", 0.2)], title="t")
    assert ax.get_title() == "t" and len(ax.patches) == 2


def test_vit_pipeline_diagram_draws_the_tokens():
    fig = viz.vit_pipeline_diagram(np.zeros((40, 60, 3), dtype=np.uint8), tokens_shown=3)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "[CLS]" in texts and "[DIST]" not in texts and "196" in texts and "p196" in texts
    assert any("197 tokens" in t for t in texts)
    distilled = [t.get_text() for t in viz.vit_pipeline_diagram(distillation_token=True).axes[0].texts]
    assert "[DIST]" in distilled and "p197" in distilled and any("198 tokens" in t for t in distilled)
    assert any("distillation head" in t for t in distilled)


def test_vit_pipeline_diagram_bad_input():
    with pytest.raises(ValueError, match="patch_size 15 does not divide image_size 224"):
        viz.vit_pipeline_diagram(patch_size=15)
    with pytest.raises(ValueError, match="tokens_shown must be at least 1"):
        viz.vit_pipeline_diagram(tokens_shown=0)


def test_deit_distillation_diagram_adds_the_teacher_and_the_losses():
    fig = viz.deit_distillation_diagram(np.zeros((28, 28), dtype=np.uint8))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "[CLS]" in texts and "[DIST]" in texts and any("18 tokens" in t for t in texts)
    assert any("CNN teacher" in t for t in texts) and any("½ CE(distillation head" in t for t in texts)
    assert any("the 7×7 conv, stride 7" in t for t in texts)
    with pytest.raises(ValueError, match="patch_size 5 does not divide image_size 28"):
        viz.deit_distillation_diagram(patch_size=5)
