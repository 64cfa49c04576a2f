"""Deterministic self-checks for the notebooks' exercises.

Each check returns a printable ✅ result or raises :class:`CheckFailed` with a hint.
One module per notebook; everything is re-exported here.
"""

from deitlab.checks._core import CheckFailed as CheckFailed
from deitlab.checks._core import CheckResult as CheckResult
from deitlab.checks.bench import *  # noqa: F403
from deitlab.checks.distill import *  # noqa: F403
from deitlab.checks.export import *  # noqa: F403
from deitlab.checks.qat import *  # noqa: F403
from deitlab.checks.quant import *  # noqa: F403
from deitlab.checks.setup import *  # noqa: F403
from deitlab.checks.vit import *  # noqa: F403
