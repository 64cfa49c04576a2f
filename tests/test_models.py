import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from deitlab import models
from deitlab.models import UnknownModelError, load_model

SMALL = "deit_tiny_patch16_224"


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownModelError, match="unknown model 'deit_tiny_patch16_22'.*deit_tiny_patch16_224"):
        load_model("deit_tiny_patch16_22")


def test_unknown_name_without_matches():
    with pytest.raises(UnknownModelError, match="not a timm model name"):
        load_model("qqqqqqqq")


def test_offline_falls_back_to_random_weights_with_a_banner(capsys):
    loaded = load_model(SMALL)
    assert loaded.source.kind == "random" and not loaded.source.pretrained
    assert "random initialisation" in capsys.readouterr().out
    assert not loaded.model.training
    model, source = loaded
    assert model is loaded.model and source is loaded.source
    assert loaded.library == "timm"


def test_pretrained_false_is_silent(capsys):
    loaded = load_model(SMALL, pretrained=False)
    assert loaded.source.detail == "pretrained=False"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_round_trip(tmp_path, suffix):
    original = load_model(SMALL, pretrained=False).model
    path = models.save_weights(original, tmp_path / f"weights{suffix}")
    loaded = load_model(SMALL, weights=path)
    assert loaded.source.kind == "local" and str(path) in loaded.source.detail
    assert _same_weights(original, loaded.model)


def test_weights_dir_environment_variable(tmp_path, monkeypatch):
    original = load_model(SMALL, pretrained=False).model
    models.save_weights(original, tmp_path / f"{SMALL}.safetensors")
    monkeypatch.setenv(models.WEIGHTS_DIR_ENV, str(tmp_path))
    loaded = load_model(SMALL)
    assert loaded.source.kind == "local"
    assert _same_weights(original, loaded.model)


def test_missing_explicit_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights for 'deit_tiny_patch16_224' not found"):
        load_model(SMALL, weights=tmp_path / "nope.safetensors")


def test_state_dict_file_unwraps_checkpoint_dicts(tmp_path):
    state = {"w": torch.ones(2)}
    torch.save({"model": state, "epoch": 3}, tmp_path / "ckpt.pth")
    assert torch.equal(models.load_state_dict_file(tmp_path / "ckpt.pth")["w"], state["w"])
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="expected a state dict"):
        models.load_state_dict_file(tmp_path / "list.pth")


def test_save_weights_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="use a .safetensors or .pth suffix"):
        models.save_weights(torch.nn.Linear(2, 2), tmp_path / "w.bin")


def test_hf_id_builds_offline_and_round_trips_a_local_directory(tmp_path, capsys):
    loaded = load_model("facebook/deit-tiny-patch16-224")
    assert loaded.library == "transformers" and loaded.source.kind == "random"
    assert "random initialisation" in capsys.readouterr().out
    assert loaded.model.config.id2label[281] == "tabby"
    logits = loaded.model(pixel_values=torch.randn(1, 3, 224, 224)).logits
    assert logits.shape == (1, 1000)
    loaded.model.save_pretrained(tmp_path / "saved")
    again = load_model("facebook/deit-tiny-patch16-224", weights=tmp_path / "saved")
    assert again.source.kind == "local"
    assert _same_weights(loaded.model, again.model)


def test_distilled_hf_id_has_two_heads():
    model = load_model("facebook/deit-base-distilled-patch16-224", verbose=False).model
    assert type(model).__name__ == "DeiTForImageClassificationWithTeacher"
    assert models.count_parameters(model) == pytest.approx(87.3e6, rel=0.01)


def test_hf_offline_config_rejects_unknown_architectures():
    with pytest.raises(UnknownModelError, match="not in the local HF cache"):
        models.hf_offline_config("someone/some-model")


def test_unknown_hf_id_offline_is_a_clear_error():
    with pytest.raises(UnknownModelError, match="someone/some-model"):
        load_model("someone/some-model")


def test_weights_source_text():
    source = models.WeightsSource("local", "/w.pth")
    assert str(source) == "local: /w.pth" and source.pretrained


def test_count_parameters():
    assert models.count_parameters(torch.nn.Linear(3, 2)) == 8


def test_is_hf_id():
    assert models.is_hf_id("google/vit-base-patch16-224")
    assert not models.is_hf_id("deit_base_patch16_224")


@pytest.mark.parametrize("distilled", [False, True])
def test_tiny_deit_classifies_digits(distilled):
    model = models.tiny_deit(distilled=distilled).eval()
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert hasattr(model, "head_dist") == distilled


def test_small_cnn_shapes_and_fusable_names():
    model = models.SmallCNN().eval()
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert [name for name, _ in model.block1.named_children()] == ["conv", "bn", "relu"]


def test_offline_hf_build_honours_keyword_arguments():
    model = load_model("facebook/deit-tiny-patch16-224", verbose=False, attn_implementation="eager").model
    assert model.config._attn_implementation == "eager"


def test_weights_dir_that_is_missing_is_named_in_a_warning_and_in_the_banner(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv(models.WEIGHTS_DIR_ENV, str(missing))
    with pytest.warns(UserWarning, match="DEITLAB_WEIGHTS_DIR") as warned:
        loaded = load_model(SMALL)
    message = str(warned[0].message)
    assert str(missing) in message and "not a folder" in message
    assert all(name in message for name in models.weights_file_names(SMALL))
    assert loaded.source.kind == "random"
    banner = capsys.readouterr().out
    assert "$DEITLAB_WEIGHTS_DIR" in banner and str(missing) in banner


def test_weights_dir_without_a_matching_file_is_named_in_a_warning(tmp_path, monkeypatch):
    models.save_weights(torch.nn.Linear(2, 2), tmp_path / "some_other_model.safetensors")
    monkeypatch.setenv(models.WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.warns(UserWarning, match=f"{tmp_path} has none of {SMALL}.safetensors, {SMALL}.pth"):
        assert load_model(SMALL, verbose=False).source.kind == "random"


def test_banner_says_how_to_provide_weights_when_the_variable_is_unset(capsys):
    load_model(SMALL)
    banner = capsys.readouterr().out
    assert f"{SMALL}.safetensors in $DEITLAB_WEIGHTS_DIR (not set)" in banner and banner.count("\n") == 1


def test_weights_file_names():
    assert models.weights_file_names("org/m") == ("org__m.safetensors", "org__m.pth", "org__m.pt", "org__m")


def test_a_local_folder_named_like_an_hf_id_does_not_shadow_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "facebook" / "deit-tiny-patch16-224").mkdir(parents=True)
    assert models.is_hf_id("facebook/deit-tiny-patch16-224")
    loaded = load_model("facebook/deit-tiny-patch16-224", verbose=False)
    assert loaded.library == "transformers" and loaded.source.kind == "random"
    assert "not in the local cache" in loaded.source.detail


@pytest.mark.parametrize("name", ["./facebook/x", "/abs/path", "a/b/c", "org/", "deit_base_patch16_224"])
def test_paths_are_not_hf_ids(name):
    assert not models.is_hf_id(name)


def test_check_model_name_suggests_extra_names_first():
    models.check_model_name("tiny-deit", extra_names=["tiny-deit"])
    with pytest.raises(UnknownModelError, match="Did you mean: tiny-deit, tiny-deit-random"):
        models.check_model_name("tiny", extra_names=["tiny-deit", "tiny-deit-random"])


_DAMAGED_CACHE_SCRIPT = """
import sys
from deitlab import models
try:
    loaded = models.load_model(sys.argv[1], verbose=False)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
else:
    print("loaded:", loaded.source)
"""


def _fake_hf_cache(cache: Path, repo: str, files: dict[str, bytes]) -> Path:
    entry = cache / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text("0" * 40)
    snapshot = entry / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        (snapshot / name).write_bytes(content)
    return snapshot


def _load_in_subprocess(name: str, cache: Path) -> str:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _DAMAGED_CACHE_SCRIPT, name], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_damaged_hf_cache_entries_are_named_not_replaced_by_random_weights(tmp_path):
    hf_id = "facebook/deit-tiny-patch16-224"
    config = _fake_hf_cache(tmp_path / "hub", hf_id, {"config.json": b'{"model_type": "vit", '}) / "config.json"
    out = _load_in_subprocess(hf_id, tmp_path / "hub")
    assert out.startswith("DamagedWeightsError:") and f"{config}:" in out


def test_damaged_timm_weights_in_the_hf_cache_are_named(tmp_path):
    repo = timm.create_model(SMALL, pretrained=False).pretrained_cfg["hf_hub_id"]
    weights = _fake_hf_cache(tmp_path / "hub", repo, {"model.safetensors": os.urandom(4096)}) / "model.safetensors"
    out = _load_in_subprocess(SMALL, tmp_path / "hub")
    assert out.startswith("DamagedWeightsError:") and f"{weights}:" in out
