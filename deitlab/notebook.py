"""What the first code cell of every notebook calls."""

from __future__ import annotations

import os
import warnings
from datetime import UTC, datetime

import torch

from deitlab.env import status_line
from deitlab.i18n.fonts import MissingFontError, use_language_font
from deitlab.i18n.runtime import resolve_language, set_language, t
from deitlab.measure import clock
from deitlab.train import seed_everything

#: Warnings the kit silences on purpose, each with the reason. Anything else shows.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # torch 2.14 deprecates TorchScript; notebook 06 shows this warning once on purpose.
    (r".*torch\.jit\.(script|trace|save|load).*deprecated.*", FutureWarning, "TorchScript deprecation"),
    # ipywidgets/tqdm: harmless notice when the notebook front-end has no widget manager.
    (r"IProgress not found.*", UserWarning, "tqdm without ipywidgets front-end"),
    # torch.ao.quantization eager API deprecation (notebooks 04/05 explain it in prose).
    (r".*torch\.ao\.quantization.*deprecated.*", DeprecationWarning, "eager quantization deprecation"),
    # Raised inside torch.ao observers and convert, not by learner code (notebook 05 explains the deprecation).
    (r"Please use quant_min and quant_max.*", UserWarning, "eager observers: reduce_range deprecation"),
    (r"torch\.quantize_per_tensor, torch\.quantize_per_channel.*", UserWarning, "quantized tensor deprecation"),
)


def quiet_known_warnings() -> None:
    """Silence the known, explained deprecation warnings (see ``KNOWN_WARNINGS``).

    Also the profiler library's "gpuGetDeviceCount failed" line on machines without a GPU
    (``KINETO_LOG_LEVEL``; read when the first profile starts), unless the variable is set.
    """
    for pattern, category, _reason in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")


_started = clock()


def setup_notebook(seed: int = 0, threads: int | None = None, lang: str | None = None) -> str:
    """Seed everything, fix the thread count, quiet known warnings; print the status line.

    The line ends with the date and time of the run, so the kept output of this cell
    names the reference run that produced a notebook's kept figures and tables.
    ``lang`` (``ja``, ``zh``, ``vi``, ``en``; default: ``$DEITLAB_LANG``, else the notebook's
    metadata ``deitlab.lang`` as the editions set it, else English) is the language of the
    kit's messages from here on; for Japanese and Chinese plots get a CJK font.
    """
    global _started
    _started = clock()
    language = set_language(resolve_language(lang))
    try:
        use_language_font(language)
    except MissingFontError as error:
        print(f"⚠ {error}")
    quiet_known_warnings()
    seed_everything(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    line = f"{status_line()} · {t('run')} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    print(line)
    return line


def elapsed() -> str:
    """Wall time since :func:`setup_notebook`, for the last cell of a notebook."""
    seconds = clock() - _started
    return t("this notebook ran in {seconds:.0f} s on {threads} threads").format(
        seconds=seconds, threads=torch.get_num_threads()
    )
