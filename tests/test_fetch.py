"""``deitlab fetch`` against a Hugging Face cache the test writes: nothing contacts the internet."""

import os
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


def _tiny_notebook(path: Path, source: str) -> Path:
    import nbformat

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), path)
    return path


#: Caches one entry built from what the kernel sees: the weights folder fetch gives it.
WARMING_CELL = """
import os
import os
from pathlib import Path
from deitlab import cache
weights = os.environ["DEITLAB_WEIGHTS_DIR"]
cache.get_or_build("artifacts", "warm-test", {"weights": weights},
                   lambda staging: (staging / "seen.txt").write_text(weights) and None, ["seen.txt"])
"""


def test_fetch_warm_runs_the_notebooks_with_the_weights_and_verifies_the_cache(
    fake_hub_cache, hf_cache, tmp_path, monkeypatch, capsys
):
    from deitlab import cache

    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path / "classroom-cache"))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _tiny_notebook(notebooks / "00_tiny.ipynb", WARMING_CELL)
    _tiny_notebook(notebooks / "README-not-numbered.ipynb", "raise SystemExit('must not run')")
    hf_cache(fake_hub_cache)
    folder = tmp_path / "weights"
    assert main(["fetch", "--to", str(folder), "--models", DEIT, "--warm", "--notebooks", str(notebooks)]) == 0
    out = capsys.readouterr().out
    assert "✓ ran 00_tiny.ipynb" in out and "1 of 1 entries verified" in out
    assert f"Copy the cache {tmp_path / 'classroom-cache'}" in out and "DEITLAB_CACHE" in out
    [entry] = cache.list_entries()
    assert entry.path("seen.txt").read_text() == str(folder)  # the notebook ran with the fetched weights
    assert not list(notebooks.glob("*.nbconvert.ipynb")) and len(list(notebooks.iterdir())) == 2  # untouched


def test_fetch_warm_stops_at_a_failing_notebook_in_one_line(fake_hub_cache, hf_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path / "cache"))
    broken = _tiny_notebook(tmp_path / "03_broken.ipynb", "1 / 0")
    hf_cache(fake_hub_cache)
    assert main(["fetch", "--to", str(tmp_path / "w"), "--models", DEIT, "--warm", "--notebooks", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"deitlab fetch --warm: {broken}: a cell failed: ZeroDivisionError" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--notebooks", "{tmp}"], "--notebooks only applies with --warm"),
        (["--warm", "--notebooks", "{tmp}/missing.ipynb"], "missing.ipynb: neither a notebook nor a folder"),
        (["--warm", "--notebooks", "{tmp}"], "no numbered notebooks (NN_*.ipynb)"),
    ],
)
def test_bad_warm_arguments_are_refused_before_any_download(hf_cache, tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["fetch", "--to", str(tmp_path / "w"), "--models", DEIT, *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_warm_sets_the_environment_only_while_it_runs(tmp_path, monkeypatch):
    from deitlab.warm import warm

    monkeypatch.delenv("DEITLAB_WARM_PROBE", raising=False)
    seen = []
    runs = warm(
        [Path("01_a.ipynb"), Path("02_b.ipynb")],
        tmp_path / "scratch",
        {"DEITLAB_WARM_PROBE": "on"},
        run=lambda notebook, output: seen.append((notebook.name, output.parent.name, os.environ["DEITLAB_WARM_PROBE"])),
        report=lambda line: None,
    )
    assert seen == [("01_a.ipynb", "scratch", "on"), ("02_b.ipynb", "scratch", "on")]
    assert [run.notebook.name for run in runs] == ["01_a.ipynb", "02_b.ipynb"]
    assert "DEITLAB_WARM_PROBE" not in os.environ


def test_default_notebooks_are_the_kits():
    from deitlab.warm import default_notebooks, notebook_paths

    names = [p.name for p in notebook_paths([default_notebooks()])]
    assert names[0].startswith("00_") and names == sorted(names) and len(names) >= 8
