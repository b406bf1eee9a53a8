"""``python -m pcnacycle``: the command line, also as torchrun starts it (``torchrun -m pcnacycle train ...``)."""

import sys

from .cli import main

sys.exit(main())
