"""Write the classroom lock files: every package of an extra, pinned, with its sha256.

    python requirements/lock.py learner requirements/learner.txt

resolves ``-e .[EXTRA]`` with pip (``--dry-run --report``, nothing is installed) on this
machine's platform and Python, and writes ``name==version --hash=sha256:…`` lines for
``pip install --require-hashes --no-deps``. torch, torchvision and their CUDA wheels are
left out: the Makefile installs them first, from PyPI or from PyPI's CPU index (TORCH=cpu).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
#: Installed by the Makefile before the lock (their build depends on TORCH=pypi|cpu).
TORCH_BUILD = re.compile(r"^(torch|torchvision|triton|nvidia-.*|cuda-.*)$")


def _sha256(item: dict) -> str:
    info = item["download_info"]
    hashes = info.get("archive_info", {}).get("hashes", {})
    if "sha256" in hashes:
        return hashes["sha256"]
    path = Path(unquote(urlparse(info["url"]).path))  # a file on a local index: hash it here
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lock(extra: str, output: Path) -> int:
    """Resolve ``.[extra]`` and write the hashed pins to ``output``; returns the number of pins."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed"]
        subprocess.run([*command, "--report", str(report), "-e", f"{ROOT}[{extra}]"], check=True)
        items = json.loads(report.read_text())["install"]
    pins = sorted(
        (item["metadata"]["name"].lower(), item["metadata"]["version"], _sha256(item))
        for item in items
        if item["metadata"]["name"].lower() != "deitlab" and not TORCH_BUILD.match(item["metadata"]["name"].lower())
    )
    header = (
        f"# deitlab[{extra}] locked by `make lock` for Python {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}; torch and torchvision are installed before it.\n"
    )
    output.write_text(header + "".join(f"{n}=={v} \\\n    --hash=sha256:{h}\n" for n, v, h in pins))
    return len(pins)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python requirements/lock.py EXTRA OUTPUT")
    print(f"{sys.argv[2]}: {lock(sys.argv[1], Path(sys.argv[2]))} packages")
