"""deitlab.cache: keyed, hashed, atomically committed entries — with faults injected.

Faults that involve a signal, a second process or a read-only folder run in subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from deitlab import cache, cli, train

ROOT = Path(__file__).resolve().parents[1]


# --- helpers -----------------------------------------------------------------------------------


def _write_text(text: str):
    def build(staging: Path) -> dict:
        (staging / "data.txt").write_text(text)
        return {"text": text}

    return build


def _toy_build():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 2)


def _toy_training(calls: list):
    def fake_train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(float(len(calls)))
        return [{"run": len(calls)}]

    return fake_train


def _python(code: str, cache_dir: Path, prefix: tuple[str, ...] = (), **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEITLAB_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*prefix, sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _notices(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("deitlab cache:")]


# --- the basic contract ---------------------------------------------------------------------------


def test_get_or_build_builds_once_and_records_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    calls = []

    def build(staging):
        calls.append(1)
        return _write_text("hello")(staging)

    entry = cache.get_or_build("things", "greeting", {"words": 1}, build, ["data.txt"])
    again = cache.get_or_build("things", "greeting", {"words": 1}, build, ["data.txt"])
    assert calls == [1] and again.folder == entry.folder and again.payload == {"text": "hello"}
    assert entry.path("data.txt").read_text() == "hello"
    meta = json.loads((entry.folder / cache.METADATA).read_text())
    assert meta["format"] == cache.FORMAT_VERSION and meta["code_version"] == cache.CODE_VERSION
    assert meta["key"] == {"words": 1} and meta["files"]["data.txt"]["bytes"] == 5
    assert meta["files"]["data.txt"]["sha256"] == cache.sha256_file(entry.path("data.txt"))
    assert {"deitlab", "torch", "python", "host"} <= set(meta["built_by"]) and meta["created"]
    other = cache.get_or_build("things", "greeting", {"words": 2}, build, ["data.txt"])
    assert calls == [1, 1] and other.folder != entry.folder  # another key, another entry
    cache.get_or_build("things", "greeting", {"words": 1}, build, ["data.txt"], rebuild=True)
    assert calls == [1, 1, 1]
    assert cache.lookup("things", "greeting", {"words": 3}) is None


def test_entries_are_readable_by_other_users(tmp_path, monkeypatch):
    """A classroom cache is prepared by one account and read by others (mkstemp alone writes mode 0600)."""
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    old = os.umask(0o022)
    try:
        entry = cache.get_or_build("things", "shared", {}, _write_text("x"), ["data.txt"])
    finally:
        os.umask(old)
    for path in (entry.folder, entry.path("data.txt"), entry.folder / cache.METADATA):
        assert path.stat().st_mode & 0o044 == 0o044, path


def test_bad_arguments_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    build = _write_text("x")
    with pytest.raises(ValueError, match="cache name"):
        cache.get_or_build("things", "../escape", {}, build, ["data.txt"])
    with pytest.raises(ValueError, match="cache kind"):
        cache.get_or_build(".hidden", "x", {}, build, ["data.txt"])
    with pytest.raises(TypeError, match="must be a dict"):
        cache.get_or_build("things", "x", ["not", "a", "dict"], build, ["data.txt"])
    with pytest.raises(ValueError, match="plain JSON"):
        cache.get_or_build("things", "x", {"f": build}, build, ["data.txt"])
    with pytest.raises(ValueError, match="at least one data file"):
        cache.get_or_build("things", "x", {}, build, [])
    with pytest.raises(RuntimeError, match="did not write other.txt"):
        cache.get_or_build("things", "x", {}, build, ["other.txt"])
    assert cache.lookup("things", "x", {}) is None  # nothing half-built was committed


def test_atomic_write_leaves_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "f.txt"
    cache.atomic_write(target, lambda tmp: tmp.write_text("old"))

    def broken(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.atomic_write(target, broken)
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


# --- damage on disk ---------------------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero-byte":
        path.write_bytes(b"")
    elif how == "random-bytes":
        path.write_bytes(os.urandom(len(data)))
    elif how == "64-byte flip":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :])


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "random-bytes", "64-byte flip"])
def test_a_damaged_checkpoint_is_named_in_one_line_and_retrained(tmp_path, monkeypatch, capfd, how):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    calls = []
    train.cached_training("toy", _toy_build, _toy_training(calls), recipe={"epochs": 1})
    [weights] = (tmp_path / "checkpoints").glob(f"toy-*/{train.WEIGHTS}")
    _damage(weights, how)
    capfd.readouterr()
    model, history = train.cached_training("toy", _toy_build, _toy_training(calls), recipe={"epochs": 1})
    [notice] = _notices(capfd.readouterr().err)
    assert str(weights) in notice and "damaged" in notice and notice.endswith("rebuilding")
    assert calls == [1, 1] and history == [{"run": 2}] and torch.equal(model.weight, torch.full((2, 4), 2.0))
    assert cache.verify() == []


@pytest.mark.parametrize("content", ["", '{"format": 1, "key": {"na'])
def test_empty_or_truncated_metadata_is_named_and_rebuilt(tmp_path, monkeypatch, capfd, content):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    calls = []
    train.cached_training("toy", _toy_build, _toy_training(calls), recipe={"epochs": 1})
    [meta] = (tmp_path / "checkpoints").glob(f"toy-*/{cache.METADATA}")
    meta.write_text(content)
    capfd.readouterr()
    _, history = train.cached_training("toy", _toy_build, _toy_training(calls), recipe={"epochs": 1})
    [notice] = _notices(capfd.readouterr().err)
    assert str(meta) in notice and "unreadable metadata" in notice
    assert calls == [1, 1] and history == [{"run": 2}]


def test_an_interrupted_build_is_not_an_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))

    def interrupted(staging):
        (staging / "data.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build("things", "x", {}, interrupted, ["data.txt"])
    assert cache.lookup("things", "x", {}) is None and not list((tmp_path / "things").glob(".*staging*"))
    entry = cache.get_or_build("things", "x", {}, _write_text("whole"), ["data.txt"])
    assert entry.path("data.txt").read_text() == "whole"


# --- a real Ctrl-C while torch.save writes (subprocess) ---------------------------------------------

_BIG_TRAINING = """
    import signal, sys, torch
    from deitlab import train

    # Python raises KeyboardInterrupt on SIGINT only if SIGINT was not ignored when it started, and
    # children inherit "ignored" from a parent that ran in the background of a non-interactive shell
    # (CI started as `bash .ci/run &`): restore the handler
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def build():  # 8 x 1600 x 1600 fp32: about 82 MB of weights in 16 records
        return torch.nn.Sequential(*[torch.nn.Linear(1600, 1600) for _ in range(8)])

    def fake_train(model):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(RUN))
        return [{"run": RUN}]

    model, history = train.cached_training("big", build, fake_train, retrain=RETRAIN, recipe={"size": "big"})
    value = model[0].weight[0, 0].item()
    print(f"loaded run {history[0]['run']} weights {value}")
    assert value == history[0]["run"], "weights and history come from different runs"
"""


def _big(run: int, retrain: bool) -> str:
    return f"RUN, RETRAIN = {run}, {retrain}\n" + textwrap.dedent(_BIG_TRAINING)


def test_sigint_while_torch_save_writes_keeps_the_old_entry(tmp_path):
    first = _python(_big(1, False), tmp_path)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    complete_run = 1
    for _attempt in range(5):  # on a fast disk the write can finish before the signal lands: try again
        second = _python(_big(2, True), tmp_path)
        staging = tmp_path / "checkpoints"
        deadline = time.monotonic() + 300
        while second.poll() is None and time.monotonic() < deadline:  # wait until the new entry is being written
            # as soon as its staging folder exists (torch.save's 16 records follow): a busy machine that
            # waited for the first bytes of the weights often delivered the signal after the last one
            if any(staging.glob(".big-*.staging-*")):
                second.send_signal(signal.SIGINT)
                break
        _, err = second.communicate(timeout=300)
        if second.returncode != 0 and "KeyboardInterrupt" in err:
            break
        assert second.returncode == 0, err
        complete_run = 2  # the signal came too late: run 2's entry is now the complete one
    assert second.returncode != 0 and "KeyboardInterrupt" in err, "five times, Ctrl-C came too late to hit the write"
    third = _python(_big(3, False), tmp_path)
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    assert f"loaded run {complete_run} weights {complete_run:.1f}" in out  # the old, complete entry
    check = _python("from deitlab import cli; raise SystemExit(cli.main(['cache', 'verify']))", tmp_path)
    assert check.wait(timeout=300) == 0


# --- two processes, one build -----------------------------------------------------------------------


def test_two_processes_building_one_entry_build_it_once(tmp_path):
    log = tmp_path / "builds.log"
    code = f"""
        import time
        from pathlib import Path
        from deitlab import cache

        def build(staging):
            with open({str(log)!r}, "a") as f:
                f.write("built\\n")
            time.sleep(2)
            (staging / "data.txt").write_text("shared")
            return {{}}

        entry = cache.get_or_build("things", "shared", {{"n": 1}}, build, ["data.txt"])
        print(entry.path("data.txt").read_text())
    """
    workers = [_python(code, tmp_path / "cache") for _ in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["shared", "shared"]
    assert log.read_text() == "built\n"


# --- read-only caches (a read-only bind mount: root cannot write there either) ----------------------


def _readonly_prefix(folder: Path) -> tuple[str, ...]:
    """Run a command in a private mount namespace where ``folder`` is a read-only bind mount."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    mount = f'mount --bind -o ro "{folder}" "{folder}" && exec "$0" "$@"'
    return ("unshare", "--mount", "sh", "-c", mount)


_TOY_TRAINING = """
    import torch
    from deitlab import train

    def build():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 2)

    def fake_train(model):
        print("TRAINED")
        return [{"run": 1}]

    model, history = train.cached_training("toy", build, fake_train, recipe={"epochs": 1})
    print("history", history)
"""


def test_a_complete_read_only_cache_loads_without_any_lock(tmp_path):
    folder = tmp_path / "classroom"
    assert _python(_TOY_TRAINING, folder).wait(timeout=300) == 0
    for lock in folder.rglob("*.lock"):  # an instructor's copy carries no lock files
        lock.unlink()
    student = _python(_TOY_TRAINING, folder, prefix=_readonly_prefix(folder))
    out, err = student.communicate(timeout=300)
    assert student.returncode == 0, err
    assert "history [{'run': 1}]" in out and "TRAINED" not in out
    assert not list(folder.rglob("*.lock"))


def test_an_empty_read_only_cache_names_the_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    student = _python(_TOY_TRAINING, folder, prefix=_readonly_prefix(folder))
    out, err = student.communicate(timeout=300)
    assert student.returncode != 0 and "TRAINED" not in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("deitlab.cache.CacheError: deitlab cache:") and "not writable" in last
    assert str(folder) in last


# --- the instructor's commands ----------------------------------------------------------------------


def test_cli_list_verify_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    one = cache.get_or_build("things", "one", {}, _write_text("1" * 2000), ["data.txt"])
    cache.get_or_build("things", "two", {}, _write_text("2"), ["data.txt"])
    assert cli.main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "things/one-" in out and "0.00 MB" in out and "2 entries" in out and "torch" in out
    assert cli.main(["cache", "verify"]) == 0
    assert "2 of 2 entries verified" in capsys.readouterr().out
    _damage(one.path("data.txt"), "64-byte flip")
    assert cli.main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"damaged: {one.folder}: {one.path('data.txt')} is damaged (sha256 mismatch)" in out
    assert "1 of 2 entries verified" in out
    assert cli.main(["cache", "clear", "things/one-*"]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert [e.name.split("-")[0] for e in cache.list_entries()] == ["two"]
    assert cli.main(["cache", "clear"]) == 0 and cache.list_entries() == []
    with pytest.raises(SystemExit):
        cli.main(["cache", "explode"])


def test_verify_reports_an_incomplete_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    entry = cache.get_or_build("things", "one", {}, _write_text("1"), ["data.txt"])
    (entry.folder / cache.METADATA).unlink()
    [problem] = cache.verify()
    assert problem.path == entry.folder and "incomplete" in problem.reason
    assert not cache.list_entries()[0].complete
