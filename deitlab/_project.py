"""Project-wide constants that more than one place needs (set here only)."""

from __future__ import annotations

import json

#: Public repository of the kit. Colab badges and the Colab install cell of every
#: notebook are generated from these two values (``make strip`` rewrites them and
#: a unit test fails when a notebook disagrees).
REPO_SLUG = "deitlab/deitlab"
REPO_BRANCH = "main"
REPO_URL = f"https://github.com/{REPO_SLUG}"


def colab_url(notebook_path: str) -> str:
    """The "Open in Colab" address of a notebook given its path in the repository."""
    return f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{REPO_BRANCH}/{notebook_path}"


def colab_badge(notebook_path: str) -> str:
    """Markdown for the "Open in Colab" badge of a notebook."""
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook_path)})"


#: Notebooks from this number on use the deployment stack (torchao, ONNX, ExecuTorch).
FIRST_DEPLOYMENT_NOTEBOOK = 4

_INSTALL_CELL = """\
# Installs the kit where it is missing (Colab, Kaggle, Binder, VS Code…); after `make lab` it does nothing.
try:
    import deitlab  # noqa: F401 - only asks whether the kit is installed
except ModuleNotFoundError:
    import sys
    from importlib.metadata import distributions

    def installed():
        return {{d.metadata["Name"].lower(): d.version for d in distributions()}}

    before = installed()
    # keep the host's torch stack: pin what is installed
    pins = [f"{{name}}=={{before[name]}}" for name in ({kept}) if name in before]
{tied}    %{pip} {{" ".join(map(repr, pins))}}
    replaced = [n for n, v in installed().items() if before.get(n, v) != v and n.replace("-", "_") in sys.modules]
    if replaced:
        print(f"Restart the runtime (Colab: Runtime → Restart session), then run again: pip replaced {{replaced}}.")
"""

#: The deployment notebooks' lines that add the releases built for the host's torch.
_TIED_LINES = """\
    # releases built for this torch (deitlab/compat.py); none → notebook 06 reports ExecuTorch missing
    TIED = {{
{rows}
    }}
    pins += TIED.get(".".join(before.get("torch", "").split(".")[:2]), [])
"""


def colab_install_command(deploy: bool = True) -> str:
    """The pip command of the install cell (with or without the deployment stack)."""
    extra = "[deploy]" if deploy else ""
    return f'pip install -q "deitlab{extra} @ git+{REPO_URL}@{REPO_BRANCH}"'


def needs_deployment_stack(notebook_path: str) -> bool:
    """Whether a notebook (``notebooks/NN_name.ipynb`` or its solutions) uses torchao/ONNX/ExecuTorch."""
    name = notebook_path.rsplit("/", 1)[-1]
    number = name.split("_", 1)[0]
    return number.isdigit() and int(number) >= FIRST_DEPLOYMENT_NOTEBOOK


def install_cell(deploy: bool) -> str:
    """The whole install cell: installs the kit only where ``import deitlab`` fails, keeping the host's torch."""
    from deitlab.compat import HOST_KEPT, TORCH_TIED

    rows = "\n".join(f'        "{minor}": {json.dumps(list(pins))},' for minor, pins in TORCH_TIED.items())
    return _INSTALL_CELL.format(
        kept=", ".join(f'"{name}"' for name in HOST_KEPT),
        tied=_TIED_LINES.format(rows=rows) if deploy else "",
        pip=colab_install_command(deploy),
    )
