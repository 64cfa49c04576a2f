"""Load a TorchScript file from C++ (libtorch from the pip wheel) and print its top-1 classes.

The optional "going further" of notebook 06: compile a tiny C++ program against the
headers and libraries that ship inside the ``torch`` wheel, run it on a saved input
batch, and compare its predictions with Python's. Needs a C++17 compiler.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deitlab import cache

SOURCE = r"""
// Load a TorchScript file with libtorch and print the top-1 class of each input row.
// Corrections to the C++ snippet of CyberWEI's study-group notes (2023), marked "write-up:" below.
#include <torch/script.h>
#include <fstream>
#include <iostream>
#include <vector>

// usage: demo MODEL.pt INPUT.f32 N C H W  -> prints the arg-max class of each row
int main(int argc, char** argv) {
  if (argc != 7) { std::cerr << "usage: demo MODEL.pt INPUT.f32 N C H W\n"; return 2; }
  // write-up: torch::ones({1, 3, 256, 256}). DeiT-B takes 224x224 (the tiny DeiT 1x28x28): the shape
  // comes from the command line, i.e. from the data the model was exported with.
  std::vector<int64_t> shape;
  for (int i = 3; i < 7; ++i) shape.push_back(std::stoll(argv[i]));
  int64_t count = shape[0] * shape[1] * shape[2] * shape[3];
  std::vector<float> data(count);
  std::ifstream in(argv[2], std::ios::binary);
  in.read(reinterpret_cast<char*>(data.data()), count * sizeof(float));
  if (!in) { std::cerr << "could not read " << count << " floats from " << argv[2] << "\n"; return 2; }
  torch::jit::script::Module module = torch::jit::load(argv[1]);
  module.eval();
  torch::NoGradGuard no_grad;
  // write-up: .to("cuda") on the input only. That needs a GPU, and a module saved on the CPU stays
  // there (device mismatch). Run on the CPU; for a GPU move both: module.to(torch::kCUDA) and the input.
  torch::Tensor input = torch::from_blob(data.data(), shape, torch::kFloat32);
  // write-up: module.forward(input).toTuple()->elements()[0]. forward takes a vector of inputs ({input}),
  // and this model returns ONE tensor, not a tuple: .toTuple() throws. Use .toTensor().
  torch::Tensor logits = module.forward({input}).toTensor();
  torch::Tensor top1 = logits.argmax(1);
  for (int64_t i = 0; i < top1.size(0); ++i) {
    std::cout << top1[i].item<int64_t>() << (i + 1 < top1.size(0) ? " " : "\n");
  }
  return 0;
}
"""


@dataclass(frozen=True)
class CppResult:
    """What the C++ program printed, and the binary that printed it."""

    top1: list[int]
    binary: Path


def compiler() -> str | None:
    """The C++ compiler on PATH (``c++``, ``g++`` or ``clang++``), or None."""
    return shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


#: The compiled program inside its cache entry.
BINARY = "demo"


def _compile(cxx: str, source: Path, binary: Path, timeout: float) -> None:
    """Compile ``source`` into ``binary`` against the headers and libraries inside the torch wheel."""
    root = Path(torch.__file__).parent
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [
        cxx, "-O1", "-std=c++20",  # libtorch 2.14 headers require C++20
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}", str(source), "-o", str(binary),
        f"-I{root / 'include'}", f"-I{root / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-L{root / 'lib'}", f"-Wl,-rpath,{root / 'lib'}", "-ltorch", "-ltorch_cpu", "-lc10",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "error" in line][:5] or done.stderr.splitlines()[-5:]
        raise RuntimeError("compiling the libtorch demo failed:\n" + "\n".join(errors))


def build(timeout: float = 900) -> Path:
    """Compile the demo against the installed torch, once: the binary is a hashed entry of :mod:`deitlab.cache`.

    The key is the source, the torch version and the compiler; a binary that was replaced
    or left half-written fails its hash check and is compiled again.
    """
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found: install g++ or clang++ to build the libtorch demo")

    def compile_into(staging: Path) -> dict:
        source = staging / "demo.cpp"
        source.write_text(SOURCE)
        _compile(cxx, source, staging / BINARY, timeout)
        return {"compiler": cxx}

    key = {
        "source": SOURCE,
        "torch": torch.__version__,
        "cxx11_abi": int(torch._C._GLIBCXX_USE_CXX11_ABI),
        "compiler": cxx,
    }
    return cache.get_or_build("cpp-demo", "demo", key, compile_into, ["demo.cpp", BINARY]).path(BINARY)


def run(model_path: str | Path, inputs: torch.Tensor) -> CppResult:
    """Build (once) and run the demo on ``inputs`` (N×C×H×W float); returns its top-1 per row."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
        raise ValueError("inputs must be an N×C×H×W float tensor")
    if not Path(model_path).exists():
        raise FileNotFoundError(f"no TorchScript file at {model_path}")
    binary = build()
    with tempfile.TemporaryDirectory(prefix="deitlab-cpp-demo-") as workdir:  # a private input file per call
        data = Path(workdir) / "input.f32"
        np.ascontiguousarray(inputs.detach().float().cpu().numpy()).tofile(data)
        cmd = [str(binary), str(model_path), str(data), *map(str, inputs.shape)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"the libtorch demo failed: {done.stderr.strip()[-500:]}")
    return CppResult([int(v) for v in done.stdout.split()], binary)


if __name__ == "__main__":  # `make cpp-demo`: the tiny DeiT on 8 test digits of different classes, C++ vs Python
    from deitlab import export
    from deitlab.data import mnist_subset
    from deitlab.zoo import trained_tiny_deit

    model, _ = trained_tiny_deit()
    digits = mnist_subset()[1].tensors[0][::125][:8]  # the test split is sorted by class
    scripted = export.export_torchscript(model, digits)
    cpp = run(scripted.path, digits).top1
    python = export.reference_logits(model, digits).argmax(1).tolist()
    print(f"C++    top-1: {cpp}\nPython top-1: {python}\n{'same' if cpp == python else 'DIFFERENT'}")
    raise SystemExit(0 if cpp == python else 1)
