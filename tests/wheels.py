"""Build the kit's wheel for the packaging tests, from a private copy of the sources.

setuptools writes ``build/`` and ``deitlab.egg-info/`` into the folder it builds from, so two
tests building from the repository at once (pytest-xdist) trip over each other's files.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from (see pyproject.toml: readme, license-files, packages).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "deitlab")


def build_kit_wheel(out: Path) -> Path:
    """Build ``deitlab-*.whl`` into ``out`` (no dependencies, no build isolation) and return it."""
    source = out / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
    )
    (wheel,) = out.glob("deitlab-*.whl")
    return wheel
