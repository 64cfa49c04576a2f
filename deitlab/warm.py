"""``deitlab fetch --warm``: run the notebooks once so the kit's cache holds every training, export and probe.

The notebooks decide what they cache (:func:`deitlab.train.cached_training`, the
exports of :mod:`deitlab.export`, the capability probes), so the honest way to fill
the cache is to execute them, headless, as a learner would; their executed copies
go to a scratch folder and the notebooks themselves stay untouched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from deitlab.measure import clock


class WarmError(RuntimeError):
    """A notebook could not be found or failed while warming the cache."""


@dataclass(frozen=True)
class WarmRun:
    """One executed notebook."""

    notebook: Path
    seconds: float


def notebook_paths(sources: Sequence[str | Path]) -> list[Path]:
    """The numbered notebooks (``NN_*.ipynb``) named by ``sources``: files, or folders searched (not recursively)."""
    found: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found.extend(sorted(p for p in source.glob("[0-9]*.ipynb")))
        elif source.suffix == ".ipynb" and source.is_file():
            found.append(source)
        else:
            raise WarmError(f"{source}: neither a notebook nor a folder of notebooks")
    if not found:
        raise WarmError(f"no numbered notebooks (NN_*.ipynb) in {', '.join(map(str, sources))}")
    return found


def default_notebooks() -> Path:
    """``notebooks/`` of the kit's clone (next to the package), else ``./notebooks``."""
    beside_package = Path(__file__).resolve().parents[1] / "notebooks"
    return beside_package if beside_package.is_dir() else Path("notebooks")


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``variables`` set inside the block (the kernels inherit it)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_notebook(notebook: Path, output: Path, timeout: int = 3600) -> None:
    """Run every cell of ``notebook`` in a fresh kernel (working folder: the notebook's) and save it to ``output``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    document = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        document, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        raise WarmError(f"{notebook}: a cell failed: {exc.ename}: {exc.evalue}") from None
    finally:
        nbformat.write(document, output)


def warm(
    notebooks: Sequence[Path],
    scratch: Path,
    environment: dict[str, str] | None = None,
    run: Callable[[Path, Path], None] = execute_notebook,
    report: Callable[[str], None] = print,
) -> list[WarmRun]:
    """Execute ``notebooks`` in order (copies into ``scratch``) with ``environment`` added; one line per notebook.

    Stops at the first failing notebook (:class:`WarmError`).
    """
    scratch.mkdir(parents=True, exist_ok=True)
    runs = []
    with _environment(environment or {}):
        for notebook in notebooks:
            started = clock()
            run(notebook, scratch / notebook.name)
            runs.append(WarmRun(notebook, clock() - started))
            report(f"✓ ran {notebook.name} in {runs[-1].seconds:.0f} s")
    return runs


def cache_instructions(cache_folder: Path) -> str:
    """How to hand the warmed cache to the other machines."""
    size = sum(f.stat().st_size for f in cache_folder.rglob("*") if f.is_file()) / 1e6
    return (
        f"Copy the cache {cache_folder} ({size:.0f} MB: trained models, exports, probes) to the other machines,\n"
        f"  e.g. rsync -a {cache_folder}/ learner-laptop:{cache_folder}/\n"
        "  and there, if it lands elsewhere: export DEITLAB_CACHE=/path/to/that/folder\n"
        "  (Windows: set DEITLAB_CACHE=C:\\path\\to\\that\\folder)"
    )
