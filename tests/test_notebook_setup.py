import re
import warnings

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
