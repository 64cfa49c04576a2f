"""deitlab.cpp_demo: argument checks and the no-compiler path (compiling libtorch is left to `make cpp-demo`)."""

from __future__ import annotations

import pytest
import torch

from deitlab import cpp_demo


def test_compiler_is_none_without_any(monkeypatch):
    monkeypatch.setattr(cpp_demo.shutil, "which", lambda name: None)
    assert cpp_demo.compiler() is None
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        cpp_demo.build()


def test_run_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="N×C×H×W"):
        cpp_demo.run(tmp_path / "m.pt", torch.zeros(3, 4))
    with pytest.raises(FileNotFoundError, match="no TorchScript file"):
        cpp_demo.run(tmp_path / "missing.pt", torch.zeros(1, 1, 4, 4))


def test_source_reads_the_documented_arguments():
    assert "torch::jit::load(argv[1])" in cpp_demo.SOURCE and "argc != 7" in cpp_demo.SOURCE
