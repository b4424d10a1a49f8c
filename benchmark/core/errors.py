"""The one exception type the command line turns into a one-line error."""

from __future__ import annotations


class BenchmarkError(Exception):
    """A user-facing error: bad names, bad overrides, unusable data (one line, no traceback)."""


class CellSkipped(BenchmarkError):
    """A method does not apply to the data actually prepared (an input or a target is missing).

    Raised by a suite's ``run_cell``; the cell is reported as skipped with the message as its
    reason, never as failed.
    """
