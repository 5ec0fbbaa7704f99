"""``python -m flowmatch``: the ``flowmatch`` command (the form that ``torchrun`` launches)."""

import sys

from flowmatch.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
