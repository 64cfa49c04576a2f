"""Model loading with an offline-first fallback chain, plus the kit's small models.

Resolution order of :func:`load_model`:

1. explicit local weights — the ``weights`` argument (file or directory) or
   ``$DEITLAB_WEIGHTS_DIR/<name>.safetensors|.pth|.pt|/`` (a warning names the folder
   and the file names tried when the variable is set but nothing matches);
2. the hub, or the local Hugging Face cache when offline (a cached entry that
   cannot be read raises :class:`DamagedWeightsError` naming the file);
3. random initialisation of the same architecture, announced by a banner.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from deitlab.env import is_online
from deitlab.i18n.runtime import N_, t

# timm is imported inside the functions that use it: importing it costs seconds (it pulls in torchvision
# and torch._dynamo), and notebook 05 imports this module for its SmallCNN, which needs no timm.

WEIGHTS_DIR_ENV = "DEITLAB_WEIGHTS_DIR"
RANDOM_WEIGHTS_BANNER = N_(
    "⚠ {name}: no pretrained weights reachable ({why}) → random initialisation. "
    "Shapes, parameter counts, sizes and latencies are real; predictions are not. "
    "For real weights pass weights=… or put {stem}.safetensors in $DEITLAB_WEIGHTS_DIR ({weights_dir})."
)

#: Hugging Face ids the kit can build offline without a cached config.
HF_ARCHITECTURES: dict[str, dict] = {
    "google/vit-base-patch16-224": dict(family="vit", hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "google/vit-large-patch16-224": dict(family="vit", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
    "facebook/deit-tiny-patch16-224": dict(family="vit", hidden_size=192, num_hidden_layers=12, num_attention_heads=3),
    "facebook/deit-small-patch16-224": dict(family="vit", hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "facebook/deit-base-patch16-224": dict(family="vit", hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "facebook/deit-base-distilled-patch16-224": dict(
        family="deit", hidden_size=768, num_hidden_layers=12, num_attention_heads=12
    ),
}


class UnknownModelError(ValueError):
    """The model name is neither a timm model nor a Hugging Face id the kit can build."""


class DamagedWeightsError(ValueError):
    """Cached pretrained weights exist but cannot be read; the message names the file."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a loaded model's weights came from."""

    kind: str  # "local", "hub", "hf-cache" or "random"
    detail: str

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class LoadedModel:
    """A model in eval mode together with the record of where its weights came from."""

    model: nn.Module
    source: WeightsSource
    name: str
    library: str  # "timm" or "transformers"

    def __iter__(self):  # allows ``model, source = load_model(...)``
        return iter((self.model, self.source))


def is_hf_id(name: str) -> bool:
    """Hugging Face ids look like ``org/model`` (whether or not a local folder has that name)."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", name) is not None


@functools.cache
def _known_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models(pretrained=True)) + tuple(timm.list_models()) + tuple(HF_ARCHITECTURES)


def check_model_name(name: str, extra_names: Iterable[str] = ()) -> None:
    """Raise :class:`UnknownModelError` (with the closest names) unless ``name`` is a timm name or an HF id.

    ``extra_names`` are further accepted names (e.g. the kit's own models) to suggest.
    """
    import timm

    extra = tuple(extra_names)
    if name in extra or is_hf_id(name) or timm.is_model(name):
        return
    close = [n for n in extra if name and n.startswith(name)]
    close += difflib.get_close_matches(name, extra + _known_names(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(list(dict.fromkeys(close))[:5])}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}: not a timm model name nor an 'org/model' id.{hint}")


def weights_file_names(name: str) -> tuple[str, ...]:
    """The names :func:`load_model` looks for in ``$DEITLAB_WEIGHTS_DIR`` (``org/model`` becomes ``org__model``)."""
    stem = name.replace("/", "__")
    return (f"{stem}.safetensors", f"{stem}.pth", f"{stem}.pt", stem)


def _local_weights(name: str, weights: str | Path | None) -> tuple[Path | None, str]:
    """The local weights to load (or None) and the state of ``$DEITLAB_WEIGHTS_DIR`` in a few words."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"weights for {name!r} not found at {path}")
        return path, "not used: explicit weights"
    directory = os.environ.get(WEIGHTS_DIR_ENV)
    if not directory:
        return None, "not set"
    folder = Path(directory).expanduser()
    tried = ", ".join(weights_file_names(name))
    if not folder.is_dir():
        note = f"{folder} is not a folder; looked for {tried}"
    else:
        for candidate in weights_file_names(name):
            if (folder / candidate).exists():
                return folder / candidate, f"found {candidate}"
        note = f"{folder} has none of {tried}"
    warnings.warn(f"{name}: ${WEIGHTS_DIR_ENV}: {note}", UserWarning, stacklevel=3)
    return None, note


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pth``/``.pt`` state dict (unwrapping ``{"model": …}``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save a model's weights as ``.safetensors`` or ``.pth`` (by the file suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    elif path.suffix in (".pth", ".pt"):
        torch.save(state, path)
    else:
        raise ValueError(f"{path}: use a .safetensors or .pth suffix")
    return path


def _timm_hub_cache_file(model: nn.Module) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    hub_id = (getattr(model, "pretrained_cfg", None) or {}).get("hf_hub_id")
    if not hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return found
    return None


def _load_timm(name: str, local: Path | None, pretrained: bool, **kwargs) -> tuple[nn.Module, WeightsSource]:
    import timm

    if local is not None:
        model = timm.create_model(name, pretrained=False, **kwargs)
        model.load_state_dict(load_state_dict_file(local))
        return model, WeightsSource("local", str(local))
    if pretrained and is_online():
        try:
            return timm.create_model(name, pretrained=True, **kwargs), WeightsSource("hub", name)
        except Exception as exc:  # noqa: BLE001 - any hub failure falls back to random weights
            why = f"hub download failed: {type(exc).__name__}"
            return timm.create_model(name, pretrained=False, **kwargs), WeightsSource("random", why)
    model = timm.create_model(name, pretrained=False, **kwargs)
    cached = _timm_hub_cache_file(model) if pretrained else None
    if cached:
        try:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=cached), **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to read the cached file is reported with its path
            raise _damaged(name, Path(cached), exc) from exc
        return model, WeightsSource("hf-cache", cached)
    why = "pretrained=False" if not pretrained else "offline and not in the local cache"
    return model, WeightsSource("random", why)


def hf_offline_config(name: str, num_labels: int = 1000):
    """A transformers config for a known architecture, built without any network access."""
    from transformers import DeiTConfig, ViTConfig

    from deitlab.data import imagenet_classes

    if name not in HF_ARCHITECTURES:
        known = ", ".join(HF_ARCHITECTURES)
        raise UnknownModelError(f"{name!r} is not in the local HF cache and not a known architecture ({known})")
    arch = dict(HF_ARCHITECTURES[name])
    config_cls = DeiTConfig if arch.pop("family") == "deit" else ViTConfig
    labels = imagenet_classes() if num_labels == 1000 else [f"class_{i}" for i in range(num_labels)]
    return config_cls(
        **arch,
        intermediate_size=4 * arch["hidden_size"],
        image_size=224,
        patch_size=16,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )


def _hf_model_class(config):
    from transformers import DeiTForImageClassificationWithTeacher, ViTForImageClassification

    return DeiTForImageClassificationWithTeacher if config.model_type == "deit" else ViTForImageClassification


def _damaged(name: str, path: Path, exc: BaseException) -> DamagedWeightsError:
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return DamagedWeightsError(
        f"{path}: the cached pretrained weights of {name!r} cannot be read ({reason}); delete the file "
        "(or its folder) to download it again, or load with pretrained=False"
    )


def _hf_cached_file(name: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, filename)
    return Path(found) if isinstance(found, str) else None


def _hf_damaged_file(name: str, config: Path) -> Path:
    """The file of a cached HF entry that fails to load: an unparsable config, else the weights, else the folder."""
    try:
        json.loads(config.read_text())
    except (OSError, ValueError):
        return config
    weights = [_hf_cached_file(name, f) for f in ("model.safetensors", "pytorch_model.bin")]
    return next((w for w in weights if w is not None), config.parent)


def _hf_source(name: str, online: bool) -> str | Path:
    """What ``from_pretrained`` should open for the id ``name``.

    The id itself, unless a folder of that name in the working directory would shadow it:
    then the id's own snapshot folder in the Hugging Face cache (downloaded first when online).
    """
    if not Path(name).exists():
        return name
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, local_files_only=not online, allow_patterns=["*.json", "*.safetensors"]))


def _load_hf(name: str, local: Path | None, pretrained: bool, **kwargs) -> tuple[nn.Module, WeightsSource]:
    from transformers import AutoModelForImageClassification

    if local is not None and local.is_dir():
        return AutoModelForImageClassification.from_pretrained(local, **kwargs), WeightsSource("local", str(local))
    if pretrained:
        online = is_online()
        try:
            source = _hf_source(name, online)
            model = AutoModelForImageClassification.from_pretrained(source, local_files_only=not online, **kwargs)
            return model, WeightsSource("hub" if online else "hf-cache", name)
        except (OSError, ValueError) as exc:
            config = _hf_cached_file(name, "config.json")
            if config is not None:
                raise _damaged(name, _hf_damaged_file(name, config), exc) from exc
            why = "offline and not in the local cache" if not online else f"hub failed: {type(exc).__name__}"
        else:  # pragma: no cover - the try returns
            why = ""
    else:
        why = "pretrained=False"
    config = hf_offline_config(name)
    model = _hf_model_class(config)._from_config(config, **kwargs)
    if local is not None:
        model.load_state_dict(load_state_dict_file(local))
        return model, WeightsSource("local", str(local))
    return model, WeightsSource("random", why)


def load_model(
    name: str,
    weights: str | Path | None = None,
    pretrained: bool = True,
    verbose: bool = True,
    **kwargs,
) -> LoadedModel:
    """Load a timm model name or Hugging Face id, offline-first; returns model + source.

    ``weights`` is an explicit local file (``.safetensors``/``.pth``) or a
    ``save_pretrained`` directory. Extra keyword arguments go to
    ``timm.create_model`` / ``from_pretrained``. With random weights a one-line
    banner is printed (unless ``verbose=False``). Cached pretrained weights that
    cannot be read raise :class:`DamagedWeightsError` naming the file.
    """
    check_model_name(name)
    local, weights_dir = _local_weights(name, weights)
    if is_hf_id(name):
        model, source = _load_hf(name, local, pretrained, **kwargs)
        library = "transformers"
    else:
        model, source = _load_timm(name, local, pretrained, **kwargs)
        library = "timm"
    if verbose and source.kind == "random" and pretrained:
        stem = weights_file_names(name)[0].removesuffix(".safetensors")
        print(t(RANDOM_WEIGHTS_BANNER).format(name=name, why=source.detail, stem=stem, weights_dir=weights_dir))
    return LoadedModel(model.eval(), source, name, library)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


# --- the kit's own small models (trained on the offline MNIST subset) -------------


class ConvStem(nn.Module):
    """Convolutional patch embedding for timm's ``embed_layer``: stride-2 3×3 convolutions.

    ``ceil(log2(patch_size))`` stages halve the image each time (28 → 14 → 7 → 4 for
    ``patch_size=7``), so every token sees an overlapping, convolutional view of its patch —
    the "early convolutions" of Xiao et al. (NeurIPS 2021), which make small ViTs far
    more data-efficient than a single non-overlapping linear projection.
    """

    def __init__(
        self,
        img_size: int = 28,
        patch_size: int = 7,
        in_chans: int = 1,
        embed_dim: int = 96,
        bias: bool = True,
        width: int = 24,
        **_timm_kwargs,
    ) -> None:
        super().__init__()
        if patch_size < 2:
            raise ValueError(f"ConvStem needs patch_size >= 2, got {patch_size}")
        stages = max(1, (patch_size - 1).bit_length())
        layers: list[nn.Module] = []
        channels = in_chans
        for _ in range(stages - 1):
            layers += [nn.Conv2d(channels, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        layers.append(nn.Conv2d(channels, embed_dim, 3, 2, 1, bias=bias))
        self.proj = nn.Sequential(*layers)
        grid = img_size
        for _ in range(stages):
            grid = (grid + 1) // 2
        self.img_size, self.patch_size, self.grid_size = (img_size, img_size), (patch_size, patch_size), (grid, grid)
        self.num_patches = grid * grid
        self.dynamic_img_pad, self.flatten = False, True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # shape compared element-wise (not as a tuple) so that torch.jit.script can compile it (notebook 06)
        if not torch.jit.is_tracing() and (x.shape[-2] != self.img_size[0] or x.shape[-1] != self.img_size[1]):
            raise ValueError(f"expected {self.img_size[0]}×{self.img_size[1]} images, got {x.shape[-2]}×{x.shape[-1]}")
        return self.proj(x).flatten(2).transpose(1, 2)


#: The tiny DeiT of notebooks 04–07: a 4×4 grid of tokens from a convolutional stem,
#: 4 blocks of width 96 (tuned to pass 95 % on the MNIST subset within
#: about a minute of 2-core CPU training with distillation).
TINY_DEIT_CONFIG = dict(
    img_size=28,
    patch_size=7,
    in_chans=1,
    num_classes=10,
    embed_dim=96,
    depth=4,
    num_heads=3,
    mlp_ratio=2.0,
    embed_layer=ConvStem,
)


def tiny_deit(distilled: bool = False, **overrides) -> nn.Module:
    """A small DeiT for 28×28 grayscale digits (timm's own ViT / distilled ViT classes).

    With ``distilled=True`` the model has a distillation token and a second head,
    exactly like ``deit_*_distilled_*``.
    """
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer

    cls = VisionTransformerDistilled if distilled else VisionTransformer
    return cls(**{**TINY_DEIT_CONFIG, **overrides})


class ConvBNReLU(nn.Sequential):
    """Conv → BatchNorm → ReLU, named so that eager-mode fusion finds the triple."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()


class SmallCNN(nn.Module):
    """Three Conv-BN-ReLU blocks and a linear classifier for 1×28×28 digits."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.block1 = ConvBNReLU(1, width)
        self.pool1 = nn.MaxPool2d(2)
        self.block2 = ConvBNReLU(width, 2 * width)
        self.pool2 = nn.MaxPool2d(2)
        self.block3 = ConvBNReLU(2 * width, 4 * width)
        self.pool3 = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.block1(x))
        x = self.pool2(self.block2(x))
        return self.fc(self.flatten(self.pool3(self.block3(x))))
