import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deitlab import train


def _toy_loaders():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] > 0).long()
    data = TensorDataset(x, y)
    return DataLoader(data, batch_size=32, shuffle=True), DataLoader(data, batch_size=64)


def test_seed_everything_makes_runs_repeatable():
    train.seed_everything(3)
    a = torch.randn(5)
    train.seed_everything(3)
    assert torch.equal(a, torch.randn(5))


def test_fit_learns_a_separable_problem_and_records_history():
    train_loader, test_loader = _toy_loaders()
    model = torch.nn.Linear(4, 2)
    before = train.evaluate(model, test_loader)
    history = train.fit(model, train_loader, epochs=3, lr=0.1, test_loader=test_loader, weight_decay=0.0)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_acc"] > max(before, 90.0)


def test_fit_calls_the_epoch_hook():
    train_loader, _ = _toy_loaders()
    seen = []
    train.fit(torch.nn.Linear(4, 2), train_loader, epochs=2, on_epoch_end=lambda m, e: seen.append(e))
    assert seen == [0, 1]


def test_fit_rejects_zero_epochs():
    train_loader, _ = _toy_loaders()
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        train.fit(torch.nn.Linear(4, 2), train_loader, epochs=0)


def test_predict_handles_models_returning_tuples():
    class TwoHeads(torch.nn.Module):
        def forward(self, x):
            return x[:, :2], x[:, 2:]

    _, loader = _toy_loaders()
    logits, labels = train.predict(TwoHeads(), loader)
    assert logits.shape == (256, 2) and labels.shape == (256,)


def test_cached_training_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    calls = []

    def build():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 2)

    def fake_train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(0.5)
        return [{"epoch": 1}]

    recipe = {"epochs": 1}
    assert not train.is_cached("toy", build, recipe)
    model, history = train.cached_training("toy", build, fake_train, recipe=recipe)
    assert calls == [1] and history == [{"epoch": 1}]
    assert train.is_cached("toy", build, recipe)
    again, history_again = train.cached_training("toy", build, fake_train, recipe=recipe)
    assert calls == [1] and history_again == history
    assert torch.equal(again.weight, torch.full((2, 4), 0.5))
    train.cached_training("toy", build, fake_train, retrain=True, recipe=recipe)
    assert calls == [1, 1]
    [folder] = (tmp_path / "checkpoints").glob("toy-*")
    assert (folder / train.WEIGHTS).exists() and (folder / "entry.json").exists()


def test_cached_training_key_follows_recipe_and_architecture(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    calls = []

    def fake_train(model):
        calls.append(1)
        return [{"epoch": 1}]

    def linear():
        return torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU())

    def gelu():
        return torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.GELU())

    train.cached_training("toy", linear, fake_train, recipe={"lr": 1e-3})
    train.cached_training("toy", linear, fake_train, recipe={"lr": 2e-3})
    train.cached_training("toy", gelu, fake_train, recipe={"lr": 1e-3})
    assert len(calls) == 3
    train.cached_training("toy", linear, fake_train, recipe={"lr": 1e-3})
    assert len(calls) == 3
    with pytest.raises(TypeError, match="recipe must be a dict"):
        train.cached_training("toy", linear, fake_train, recipe="lr=1e-3")
    with pytest.raises(ValueError, match="plain JSON"):
        train.cached_training("toy", linear, fake_train, recipe={"loss": fake_train})


def test_cached_training_returns_the_model_on_the_same_device_trained_or_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    places = []

    def train_on_cpu(model):
        places.append(next(model.parameters()).device.type)
        return [{"epoch": 1}]

    build = lambda: torch.nn.Linear(4, 2)  # noqa: E731
    fresh, _ = train.cached_training("toy", build, train_on_cpu, recipe={}, device="meta")
    cached, _ = train.cached_training("toy", build, train_on_cpu, recipe={}, device="meta")
    assert places == ["cpu"]  # trained once, where build() put it
    assert fresh.weight.device.type == cached.weight.device.type == "meta"
    assert not cached.training
    with pytest.raises(ValueError, match="device argument: 'mps'"):
        train.cached_training("toy", build, train_on_cpu, recipe={}, device="mps")


def test_cached_training_defaults_to_the_notebooks_device(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("DEITLAB_DEVICE", "meta")
    model, _ = train.cached_training("toy", lambda: torch.nn.Linear(4, 2), lambda m: [], recipe={})
    assert model.weight.device.type == "meta"


def test_predict_sends_batches_to_the_models_device(monkeypatch):
    seen = []

    class Recorder(torch.nn.Linear):
        def forward(self, x):
            seen.append(x.device.type)
            return super().forward(x)

    loader = DataLoader(TensorDataset(torch.randn(4, 3), torch.zeros(4, dtype=torch.long)), batch_size=2)
    model = Recorder(3, 2)
    train.predict(model, loader)
    assert seen == ["cpu", "cpu"]
    monkeypatch.setattr(train, "module_device", lambda m: torch.device("meta"))
    with pytest.raises((NotImplementedError, RuntimeError)):  # a CPU model asked to read meta batches
        train.predict(model, loader)
    assert seen[-1] == "meta"
