"""``python3 -m ednas_board`` in a kit (the same as ``python3 measure_ops.py``)."""

import sys

from .cli import main

sys.exit(main())
