"""``python -m pcnacycle``: the command line, also as torchrun starts it (``torchrun -m pcnacycle train ...``)."""

import sys

from .cli import main

if __name__ == "__main__":  # importing the module (e.g. to list the package) must not run the command line
    sys.exit(main())
