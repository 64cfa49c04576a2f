"""The notebooks' install cell, resolved against Colab's package list: Colab's torch stack stays.

Colab's packages become placeholder records (``*.dist-info`` with their real Requires-Dist) in
a scratch virtualenv; the install cell runs there with its ``%pip`` line captured, and pip
resolves that line (``--dry-run --report``, nothing is installed) with the kit as a local
wheel instead of ``git+https``. Colab runs Python 3.13 and this machine 3.11: pip is told
``--python-version 3.13`` (wheel tags and Requires-Python) but evaluates environment markers
for the interpreter it runs on, so the conflict check below evaluates them for 3.13 itself.
Needs PyPI (skipped, with the reason, when it is unreachable).
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version
from wheels import build_kit_wheel

from deitlab._project import install_cell

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "data" / "colab_packages_2026-08-19.txt"
REQUIRES = ROOT / "tests" / "data" / "colab_requires_2026-08-19.json"
COLAB_MARKERS = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "extra": "",
}
COLAB_PIP = ["--python-version", "3.13", "--only-binary=:all:"] + [
    f"--platform={tag}"
    for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64", "any")
]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_packages() -> dict[str, str]:
    """The snapshot as {normalised name: version} (packages installed from elsewhere than PyPI left out)."""
    lines = SNAPSHOT.read_text().splitlines()
    return {_normal(n): v for n, _, v in (line.partition("==") for line in lines if "==" in line and line[0] != "#")}


def _pypi_reachable() -> str | None:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
    except OSError as exc:
        return f"PyPI unreachable ({exc}); the Colab resolution check needs it"
    return None


def _cert() -> list[str]:
    """``--isolated`` ignores pip's environment; keep a certificate bundle this machine's pip is told to use."""
    return ["--cert", os.environ["PIP_CERT"]] if os.environ.get("PIP_CERT") else []


@pytest.fixture(scope="module")
def colab_python(tmp_path_factory) -> Path:
    """A virtualenv whose site-packages hold a placeholder record for every Colab package."""
    reason = _pypi_reachable()
    if reason:
        pytest.skip(reason)
    venv = tmp_path_factory.mktemp("colab") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    requires = json.loads(REQUIRES.read_text())["requires"]
    for name, version in colab_packages().items():
        record = site / f"{name.replace('-', '_')}-{version}.dist-info"
        record.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires.get(name, [])]
        (record / "METADATA").write_text("\n".join(lines) + "\n")
        (record / "INSTALLER").write_text("colab-snapshot\n")
        (record / "RECORD").write_text("")
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def kit_wheel(tmp_path_factory) -> Path:
    return build_kit_wheel(tmp_path_factory.mktemp("wheel"))


def cell_pip_arguments(python: Path, deploy: bool) -> list[str]:
    """What the install cell's ``%pip`` line asks for, run by ``python`` where deitlab is not installed."""
    code = TransformerManager().transform_cell(install_cell(deploy))
    stub = (
        "import json, re, shlex, sys\n"
        "class Shell:  # records the %pip line instead of running it\n"
        "    def run_line_magic(self, magic, line):\n"
        "        line = re.sub(r'\\{(.+)\\}', lambda m: str(eval(m.group(1), globals())), line)\n"
        "        print(json.dumps(shlex.split(line)))\n"
        "        sys.exit(0)\n"
        "def get_ipython():\n"
        "    return Shell()\n"
    )
    run = subprocess.run([str(python), "-I", "-c", stub + code], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def _conflicts(final: dict[str, str], requires: dict[str, list[str]]) -> list[str]:
    found = []
    for name, version in final.items():
        for text in requires.get(name, []):
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker and not requirement.marker.evaluate(COLAB_MARKERS):
                continue
            dependency = final.get(_normal(requirement.name))
            try:
                if dependency and not requirement.specifier.contains(Version(dependency), prereleases=True):
                    found.append(f"{name} {version} needs {text}, would get {dependency}")
            except InvalidVersion:
                continue
    return found


def test_the_install_cell_pins_colabs_torch_stack_and_the_matching_executorch(colab_python):
    colab = colab_packages()
    arguments = cell_pip_arguments(colab_python, deploy=True)
    assert f"torch=={colab['torch']}" in arguments and f"protobuf=={colab['protobuf']}" in arguments
    assert "executorch==1.2.0" in arguments
    basic = cell_pip_arguments(colab_python, deploy=False)
    assert not any(a.startswith(("executorch", "torchao")) or "[deploy]" in a for a in basic)


def test_colab_keeps_torch_torchvision_protobuf_and_nothing_conflicts(colab_python, kit_wheel, tmp_path):
    arguments = cell_pip_arguments(colab_python, deploy=True)
    arguments = [a.replace(a.split(" @ ")[1], kit_wheel.as_uri()) if " @ git+" in a else a for a in arguments]
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(colab_python),
            *arguments[:1],
            "--isolated",
            "--dry-run",
            "--report",
            str(report),
            *COLAB_PIP,
            *arguments[1:],
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    installs = {_normal(i["metadata"]["name"]): i["metadata"] for i in json.loads(report.read_text())["install"]}
    colab = colab_packages()
    assert not {"torch", "torchvision", "protobuf"} & set(installs), "the install would replace Colab's torch stack"
    assert installs["executorch"]["version"] == "1.2.0"
    final = colab | {name: meta["version"] for name, meta in installs.items()}
    requires = json.loads(REQUIRES.read_text())["requires"] | {
        name: meta.get("requires_dist", []) for name, meta in installs.items()
    }
    assert _conflicts(final, requires) == []


def test_the_conflict_check_sees_a_broken_pin():
    assert _conflicts(
        {"grpcio-status": "1.71.2", "protobuf": "7.34.0"}, {"grpcio-status": ["protobuf<6.0dev,>=5.26.1"]}
    )
