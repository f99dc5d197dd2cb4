"""The project's own error type.

A user's mistake (a bad flag, a missing file, a malformed arch string, a table
that lacks an operator) raises :class:`EdnasError` with a message that names
the thing and what was expected.  The command line turns it into one line on
stderr and exit status 2, never a traceback from deep inside torch.
"""

from __future__ import annotations

__all__ = ["EdnasError"]


class EdnasError(Exception):
    """An error caused by the user's input, with a message meant for them."""
