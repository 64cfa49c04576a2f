"""Which releases of the torch-tied packages go with a given torch (no imports: the install cell embeds it).

ExecuTorch's compiled runtime links one torch minor, and since 1.5 its wheels no longer
declare which (pip would pair executorch 1.5.1 with any torch; next to an older torch it
does not load). torchao follows the pairing ExecuTorch itself declares. The pins come from
each release's metadata on PyPI (executorch 1.N requires ``torch>=2.(N+9)`` and the torchao
written beside it below); ``tests/test_colab_install.py`` resolves them against Colab.
"""

from __future__ import annotations

#: torch minor → pins of the packages built for it.
TORCH_TIED: dict[str, tuple[str, ...]] = {
    "2.10": ("executorch==1.1.0", "torchao==0.15.0"),
    "2.11": ("executorch==1.2.0", "torchao==0.17.*"),
    "2.12": ("executorch==1.3.1", "torchao==0.17.*"),
    "2.13": ("executorch==1.4.1", "torchao==0.18.*"),
    "2.14": ("executorch==1.5.1", "torchao==0.18.*"),
}

#: Preinstalled packages the install cell keeps at the host's version: its torch build
#: (CUDA wheels of several GB), the torchvision compiled for it, and protobuf (Colab's
#: grpcio-status needs protobuf < 6; pip then picks an onnx that accepts it).
HOST_KEPT = ("torch", "torchvision", "protobuf")


def torch_minor(version: str) -> str:
    """``"2.11.0+cu128"`` → ``"2.11"``; raises ValueError for anything else."""
    parts = version.split("+")[0].split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"not a torch version: {version!r}")
    return ".".join(parts[:2])


def tied_requirements(torch_version: str) -> tuple[str, ...]:
    """The executorch/torchao pins for this torch; empty when no ExecuTorch release matches it."""
    return TORCH_TIED.get(torch_minor(torch_version), ())
