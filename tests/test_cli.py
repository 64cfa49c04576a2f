"""The ``deitlab`` command as a user runs it: ``python -m deitlab``, ``--version``, one-line usage errors."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from deitlab import cli


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deitlab", *args], capture_output=True, text=True, timeout=120)


def test_python_dash_m_deitlab_prints_the_package_metadata_version():
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"deitlab {importlib.metadata.version('deitlab')}"


def test_python_dash_m_deitlab_without_a_command_is_one_line_with_exit_2():
    done = _run()
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "deitlab --help" in done.stderr


def test_package_version_falls_back_to_the_source_tree(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.package_version().endswith("(source tree, not installed)")


@pytest.mark.parametrize("argv", [["nope"], ["env", "--bogus"], ["bench", "--model"]])
def test_every_usage_error_is_one_line_naming_the_command(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("deitlab") and "error:" in err
