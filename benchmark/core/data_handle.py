"""The handle of a prepared data set: what workers need to reopen it and reports need to find it.

Written by a suite's ``prepare`` (:class:`benchmark.suites.base.Suite`), handed to the workers
that run cells, and to the report, which finds the data set's report data by its ``key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DataHandle"]


@dataclass(frozen=True)
class DataHandle:
    """What a worker needs to reopen a prepared dataset (paths, never arrays).

    ``key`` identifies the data exactly and enters every cell fingerprint;
    ``info`` is recorded in the manifest.
    """

    suite: str
    profile: str
    key: str
    paths: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)
