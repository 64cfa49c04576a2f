"""``deitlab fetch`` against a Hugging Face cache the test writes: nothing contacts the internet."""

from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import save_file

from deitlab.cli import main
from deitlab.fetch import instructions, weights_path
from deitlab.models import WEIGHTS_DIR_ENV, load_model

SNAPSHOT = "0" * 40
VIT = "google/vit-base-patch16-224"
DEIT = "deit_tiny_patch16_224"


def _cache_repo(cache: Path, repo_id: str) -> Path:
    """An empty snapshot folder of ``repo_id`` in huggingface_hub's cache layout."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    snapshot = repo / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True)
    return snapshot


@pytest.fixture(scope="module")
def fake_hub_cache(tmp_path_factory) -> Path:
    """A HF cache holding a randomly initialised DeiT-Ti (timm) and a tiny ViT under the notebooks' ids."""
    from transformers import ViTConfig, ViTForImageClassification

    cache = tmp_path_factory.mktemp("hf-cache")
    torch.manual_seed(0)
    deit = timm.create_model(DEIT, pretrained=False)
    state = {k: v.contiguous() for k, v in deit.state_dict().items()}
    save_file(state, str(_cache_repo(cache, deit.pretrained_cfg["hf_hub_id"]) / "model.safetensors"))
    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=3)
    ViTForImageClassification(config).save_pretrained(_cache_repo(cache, VIT))
    return cache


@pytest.fixture
def hf_cache(monkeypatch, tmp_path):
    """Point huggingface_hub (and transformers, which reads the same constant) at a cache folder."""

    def use(folder: Path) -> None:
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(folder))

    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    use(tmp_path / "empty-hf-cache")
    return use


def _parameter_sums(names: tuple[str, ...]) -> list[tuple[str, float]]:
    loaded = [load_model(name, verbose=False) for name in names]
    return [(m.source.kind, sum(float(p.detach().double().sum()) for p in m.model.parameters())) for m in loaded]


def test_fetched_weights_serve_a_second_offline_machine(fake_hub_cache, hf_cache, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "weights"
    hf_cache(fake_hub_cache)
    assert main(["fetch", "--to", str(folder), "--models", f"{DEIT},{VIT}"]) == 0
    out = capsys.readouterr().out
    assert "DEITLAB_WEIGHTS_DIR" in out and out.count("hf-cache") == 2
    assert (folder / f"{DEIT}.safetensors").is_file() and (folder / "google__vit-base-patch16-224").is_dir()
    first_machine = _parameter_sums((DEIT, VIT))
    assert [kind for kind, _ in first_machine] == ["hf-cache", "hf-cache"]

    hf_cache(tmp_path / "empty-hf-cache")  # the second machine: no HF cache, offline, the copied folder
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(folder))
    assert main(["fetch", "--models", DEIT]) == 0
    assert "already there" in capsys.readouterr().out
    second_machine = _parameter_sums((DEIT, VIT))
    assert [kind for kind, _ in second_machine] == ["local", "local"]
    assert [total for _, total in second_machine] == [total for _, total in first_machine]  # not random weights


def test_a_model_that_is_nowhere_fails_in_one_line(hf_cache, tmp_path, capsys):
    assert main(["fetch", "--to", str(tmp_path), "--models", DEIT]) == 1
    err = capsys.readouterr().err
    assert f"{DEIT}: no pretrained weights reachable" in err and "1 of 1 models missing" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --to FOLDER or set DEITLAB_WEIGHTS_DIR"),
        (["--to", "/proc/deitlab"], "cannot create /proc/deitlab"),
        (["--to", "{tmp}", "--models", " , "], "--models is empty"),
    ],
)
def test_bad_arguments_are_refused_before_any_download(hf_cache, tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["fetch", *args]) == 2
    assert message in capsys.readouterr().err


def test_weights_path_uses_the_layout_load_model_finds(tmp_path):
    assert weights_path(tmp_path, DEIT) == tmp_path / f"{DEIT}.safetensors"
    assert weights_path(tmp_path, VIT) == tmp_path / "google__vit-base-patch16-224"


def test_instructions_name_the_variable_and_the_folder(tmp_path):
    text = instructions(tmp_path / "deitlab-weights")
    assert "export DEITLAB_WEIGHTS_DIR=" in text and "deitlab-weights" in text
