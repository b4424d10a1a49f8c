"""A method that kills its worker process, for tests of the Dask backend.

Not registered on import (the contract tests must not see it): a test registers it in
its own process, and :class:`RegisterOnWorkers` registers it on every Dask worker,
restarted ones included. Worker processes import this module by name, so it lives
beside the tests (on their ``sys.path``) rather than inside a test file.
"""

from __future__ import annotations

import os
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from methods.base import Split, register
from methods.mixture import MixtureAsEstimate


class DiesWhileFlagged(MixtureAsEstimate):
    """The mixture floor, except that ``fit`` ends its process at once while ``flag`` exists."""

    name = "dies_while_flagged"
    description = "Test only: kills its worker process while the flag file exists"
    modalities = ("2d",)

    def __init__(self, flag: str = "") -> None:
        self.flag = flag

    def fit(self, train: Split, valid: Split | None = None) -> DiesWhileFlagged:
        if self.flag and Path(self.flag).exists():
            os._exit(1)  # no exception, no cleanup: like a segfault or an OOM kill
        return super().fit(train, valid)


class RegisterOnWorkers(WorkerPlugin):
    """Registers :class:`DiesWhileFlagged` on each worker when it starts."""

    def setup(self, worker) -> None:
        register(DiesWhileFlagged)
