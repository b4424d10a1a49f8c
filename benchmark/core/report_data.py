"""What reports need from a suite's data besides the finished cells, kept in the store.

A run writes it once per data set (:meth:`benchmark.suites.base.Suite.report_data`, called by the
runner after preparing the data), so that a report reads only the store and never reopens data:

- ``test_groups``: a group label per test row where test items are dependent (MESA: the
  recording of each test segment); a cell's items are the rows it stores as ``<input>__test_rows``;
- ``fill_rate__<input>``: the rate an abstention on that input is scored as (rate suites);
- ``test_reference__<input>__<target>``: the reference rate of each scored test row of that input;
- ``rows``: measured leaderboard rows that depend on the data alone (no method, no seed);
- ``examples``: the test items the figures show beside the methods' example estimates
  (``examples__<input>__<what>``: mixtures, targets, signals);
- ``layout``: the suite's declared tables, notes and figures (:mod:`benchmark.core.report_layout`).

Stored as JSON with each array's dtype, so values come back exactly as they were written; the
examples, being larger, go to an ``.npz`` file beside it (:class:`benchmark.core.store.ResultStore`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.core.report_layout import ReportLayout

__all__ = ["TEST_GROUPS", "ReportData", "example_key", "fill_rate_key", "reference_key"]

TEST_GROUPS = "test_groups"


def fill_rate_key(input_name: str) -> str:
    """Array name of the fill rate of ``input_name``."""
    return f"fill_rate__{input_name}"


def reference_key(input_name: str, target: str) -> str:
    """Array name of the reference rates of ``input_name``'s scored test rows against ``target``."""
    return f"test_reference__{input_name}__{target}"


def example_key(input_name: str, what: str) -> str:
    """Array name of one kind of example test item of ``input_name`` (``"mixtures"``, ``"targets"``, a signal)."""
    return f"examples__{input_name}__{what}"


@dataclass
class ReportData:
    """Arrays and rows a report needs from the data (see the module docstring).

    Attributes
    ----------
    arrays : dict of str to np.ndarray
        Named arrays (0-d for scalars).
    rows : list of dict
        Leaderboard rows measured on the data alone.
    examples : dict of str to np.ndarray
        Example test items for figures (:func:`example_key`); not part of :meth:`to_json`.
    layout : ReportLayout or None
        The suite's declared layout.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    layout: ReportLayout | None = None

    def to_json(self) -> str:
        """Compact JSON of everything but the examples; each array as its dtype, shape and values."""
        arrays = {
            name: {"dtype": str(array.dtype), "shape": list(array.shape), "values": array.ravel().tolist()}
            for name, array in sorted(self.arrays.items())
        }
        layout = self.layout.to_dict() if self.layout is not None else None
        return json.dumps({"arrays": arrays, "rows": self.rows, "layout": layout}, default=_plain) + "\n"

    @classmethod
    def from_json(cls, text: str, examples: dict[str, np.ndarray] | None = None) -> ReportData:
        """What :meth:`to_json` wrote, with the ``examples`` kept apart."""
        data = json.loads(text)
        arrays = {
            name: np.asarray(spec["values"], dtype=spec["dtype"]).reshape(spec["shape"])
            for name, spec in data["arrays"].items()
        }
        layout = ReportLayout.from_dict(data["layout"]) if data.get("layout") else None
        return cls(arrays, data["rows"], examples or {}, layout)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
