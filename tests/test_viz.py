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
