"""The one exception type the command line turns into a one-line error."""

from __future__ import annotations


class BenchmarkError(Exception):
    """A user-facing error: bad names, bad overrides, unusable data (one line, no traceback)."""
