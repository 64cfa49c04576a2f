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


@pytest.fixture
def fake_compiler(monkeypatch, tmp_path):
    """A 'compiler' that writes a shell script printing 7 per input row; returns the list of compilations."""
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cpp_demo, "compiler", lambda: "/usr/bin/fake-c++")
    compiled = []

    def fake_compile(cxx, source, binary, timeout):
        assert source.read_text() == cpp_demo.SOURCE
        binary.write_text('#!/bin/sh\ntest -s "$2" && echo 7 7\n')
        binary.chmod(0o755)
        compiled.append(binary)

    monkeypatch.setattr(cpp_demo, "_compile", fake_compile)
    return compiled


@pytest.mark.parametrize("damage", ["replaced", "half-written"])
def test_a_replaced_or_half_written_binary_is_compiled_again(fake_compiler, tmp_path, capfd, damage):
    binary = cpp_demo.build()
    assert cpp_demo.build() == binary and len(fake_compiler) == 1
    if damage == "replaced":
        binary.write_text("#!/bin/sh\necho 0 0\n")
    else:
        binary.write_bytes(binary.read_bytes()[:5])
    capfd.readouterr()
    assert cpp_demo.build() == binary and len(fake_compiler) == 2
    assert f"deitlab cache: {binary} is damaged" in capfd.readouterr().err
    model = tmp_path / "m.pt"
    model.write_bytes(b"model")
    assert cpp_demo.run(model, torch.zeros(2, 1, 4, 4)).top1 == [7, 7]
    assert sorted(p.name for p in binary.parent.iterdir()) == ["demo", "demo.cpp", "entry.json"]
