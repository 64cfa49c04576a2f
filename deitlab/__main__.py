"""``python -m deitlab``: the same as the ``deitlab`` command."""

import sys

from deitlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
