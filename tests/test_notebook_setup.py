import logging
import os
import re
import subprocess
import sys
import warnings

import pytest
import torch

from deitlab import notebook


def test_setup_notebook_prints_status_and_seeds(capsys):
    line = notebook.setup_notebook(seed=5, threads=torch.get_num_threads())
    first = torch.randn(3)
    notebook.setup_notebook(seed=5)
    assert torch.equal(first, torch.randn(3))
    assert line in capsys.readouterr().out
    assert re.search(r" · run \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$", line)  # names the reference run
    assert "ran in" in notebook.elapsed()


def test_known_warnings_are_silenced_but_others_show():
    notebook.quiet_known_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        notebook.quiet_known_warnings()
        warnings.warn("`torch.jit.script` is deprecated. Please switch to torch.export.", FutureWarning, stacklevel=1)
        warnings.warn("something new", UserWarning, stacklevel=1)
    messages = [str(w.message) for w in caught]
    assert messages == ["something new"]


def test_importing_deitlab_quiets_the_pytree_lines_torchao_logs_on_import():
    noisy = subprocess.run([sys.executable, "-c", "import torchao"], capture_output=True, text=True, check=True)
    if "register_constant" not in noisy.stderr:
        pytest.skip("this torchao logs nothing on import")
    quiet = subprocess.run(
        [sys.executable, "-c", "import deitlab, torchao"], capture_output=True, text=True, check=True
    )
    assert "register_constant" not in quiet.stderr
    assert logging.getLogger("torch.utils._pytree").getEffectiveLevel() == logging.ERROR


def test_quieting_keeps_the_profilers_gpu_count_line_out_unless_the_user_set_a_level(monkeypatch):
    monkeypatch.delenv("KINETO_LOG_LEVEL", raising=False)
    notebook.quiet_known_warnings()
    assert os.environ["KINETO_LOG_LEVEL"] == "5"
    monkeypatch.setenv("KINETO_LOG_LEVEL", "1")
    notebook.quiet_known_warnings()
    assert os.environ["KINETO_LOG_LEVEL"] == "1"
