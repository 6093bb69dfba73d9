"""``python -m deepmetric COMMAND ...``: see :mod:`deepmetric.cli`."""

import sys

from .cli import main

sys.exit(main())
