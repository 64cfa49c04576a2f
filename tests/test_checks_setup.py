import pytest
import torch

from deitlab import checks
from deitlab.checks._core import require_close
from deitlab.data import imagenet_classes


def test_check_top5_accepts_the_right_answer_and_explains_wrong_ones():
    logits = torch.arange(1000, dtype=torch.float32).unsqueeze(0)
    right = [imagenet_classes()[i] for i in (999, 998, 997, 996, 995)]
    assert "✅" in repr(checks.check_top5(logits, right))
    with pytest.raises(checks.CheckFailed, match="order"):
        checks.check_top5(logits, right[::-1])
    with pytest.raises(checks.CheckFailed, match="five class names"):
        checks.check_top5(logits, right[:4])
    with pytest.raises(checks.CheckFailed, match="1×1000"):
        checks.check_top5(torch.zeros(2, 1000), right)


def test_require_close_reports_shape_and_value_problems():
    require_close(torch.ones(2), [1.0, 1.0], "ex")
    with pytest.raises(checks.CheckFailed, match="expected shape"):
        require_close(torch.ones(3), [1.0, 1.0], "ex")
    with pytest.raises(checks.CheckFailed, match="max abs difference"):
        require_close(torch.ones(2), [1.0, 2.0], "ex")


def test_require_close_moves_the_answer_to_the_reference_device(monkeypatch):
    moved_to = []
    original_to = torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        moved_to.append(args[0] if args else kwargs.get("device"))
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", recording_to)
    require_close(torch.ones(2), torch.ones(2, dtype=torch.float16), "ex")
    assert torch.device("cpu") in moved_to  # the answer went to the reference's device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_require_close_compares_a_cpu_answer_with_a_gpu_reference():
    require_close(torch.ones(2), torch.ones(2, device="cuda"), "ex")
    with pytest.raises(checks.CheckFailed, match="values differ"):
        require_close(torch.zeros(2), torch.ones(2, device="cuda"), "ex")
