"""A non-editable install of the wheel works from another directory, assets included."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from wheels import build_kit_wheel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scratch_env(tmp_path_factory) -> Path:
    """A scratch venv holding the built wheel (deps borrowed from this environment)."""
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_kit_wheel(work)
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Borrow torch & co. from this environment without its editable deitlab finder.
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, str(wheel)], check=True
    )
    return env_dir


def test_wheel_imports_from_elsewhere_with_assets(scratch_env, tmp_path):
    code = (
        "import deitlab, deitlab.data as d; "
        "print(deitlab.__file__); "
        "print(d.load_image(d.sample_image_path('cat')).size); "
        "print(len(d.imagenet_classes()))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    out = subprocess.run(
        [str(scratch_env / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert str(scratch_env) in out[0] and str(ROOT) not in out[0]
    assert out[1] == "(451, 300)" and out[2] == "1000"


def test_console_script_is_installed(scratch_env, tmp_path):
    script = next((scratch_env / "lib").glob("python*/site-packages/bin/deitlab"), None)
    entry = scratch_env / "bin" / "deitlab"
    target = entry if entry.exists() else script
    assert target is not None and target.exists()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(scratch_env / "bin" / "python"), str(target), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "env" in done.stdout
