"""``deitlab fetch``: the pretrained weights every notebook loads, in one folder for offline machines.

The folder uses the layout :func:`deitlab.models.load_model` finds through
``DEITLAB_WEIGHTS_DIR``: ``<timm name>.safetensors`` for timm models and a
``save_pretrained`` folder ``<org>__<model>/`` for Hugging Face ids.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from deitlab.models import is_hf_id, load_model, save_weights

#: The pretrained models the notebooks load (by notebook).
NOTEBOOK_WEIGHTS: tuple[str, ...] = (
    "google/vit-base-patch16-224",  # 01
    "deit_base_patch16_224",  # 00, 02, 04, 07
    "deit_base_distilled_patch16_224",  # 02
    "deit_tiny_distilled_patch16_224",  # 03
    "deit_tiny_patch16_224",  # 07
)


class FetchError(RuntimeError):
    """A model's pretrained weights could not be fetched or did not load back."""


@dataclass(frozen=True)
class Fetched:
    """One model's weights in the folder."""

    name: str
    path: Path
    origin: str  # where they came from: "hub", "hf-cache" or "already there"
    size_bytes: int


def weights_path(folder: Path, name: str) -> Path:
    """Where ``load_model`` looks for ``name`` in a weights folder."""
    stem = name.replace("/", "__")
    return folder / (stem if is_hf_id(name) else f"{stem}.safetensors")


def _size(path: Path) -> int:
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files if f.is_file())


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def _save(model: torch.nn.Module, name: str, target: Path) -> None:
    """Write next to ``target`` first, then move it into place (no half-written weights)."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as scratch:
        staged = Path(scratch) / target.name
        if is_hf_id(name):
            model.save_pretrained(staged)
        else:
            save_weights(model, staged)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(staged, target)


def fetch_one(name: str, folder: Path) -> Fetched:
    """Download ``name``'s pretrained weights (hub or HF cache) into ``folder`` and load them back."""
    target = weights_path(folder, name)
    if target.exists():
        loaded = load_model(name, weights=target, verbose=False)
        return Fetched(name, target, "already there", _size(target))
    downloaded = load_model(name, verbose=False)
    if downloaded.source.kind not in {"hub", "hf-cache"}:
        raise FetchError(f"{name}: no pretrained weights reachable ({downloaded.source.detail})")
    _save(downloaded.model, name, target)
    loaded = load_model(name, weights=target, verbose=False)
    if loaded.source.kind != "local" or not _same_weights(loaded.model, downloaded.model):
        raise FetchError(f"{target}: the saved weights of {name} do not load back identically")
    return Fetched(name, target, downloaded.source.kind, _size(target))


def instructions(folder: Path) -> str:
    """How to point another machine at a copy of ``folder``."""
    return (
        f"Copy {folder} to the other machines, then before starting Jupyter there:\n"
        f"  export DEITLAB_WEIGHTS_DIR=/path/to/{folder.name}\n"
        f"  (Windows: set DEITLAB_WEIGHTS_DIR=C:\\path\\to\\{folder.name})\n"
        "The notebooks then load these weights with no network (HF_HUB_OFFLINE=1 is fine)."
    )
