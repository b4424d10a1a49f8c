"""The on-disk results store: one file per finished cell, every write atomic.

Layout under ``results/<suite>/<profile>/``::

    cells/<cell_id>.json   # metrics, assignment, timings, params of one cell
    cells/<cell_id>.npz    # arrays for figures (example estimates, weights)
    data/<data_key>.json   # what reports need from the data, and the layout (benchmark.core.report_data)
    data/<data_key>.npz    # the example test items the figures show
    runs.csv, leaderboard.csv, leaderboard.md, manifest.json, figures/

A cell file exists only once the cell finished, so a rerun skips exactly the
finished cells, and an interrupted run leaves no half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.report_data import ReportData


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    """Pretty JSON, written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, tuple, set)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class ResultStore:
    """Finished cells of one suite and profile.

    Parameters
    ----------
    root : Path
        ``<results-dir>/<suite>/<profile>``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        self.figures_dir = self.root / "figures"
        self.data_dir = self.root / "data"

    def cell_path(self, cell_id: str) -> Path:
        """JSON record of a cell."""
        return self.cells_dir / f"{cell_id}.json"

    def arrays_path(self, cell_id: str) -> Path:
        """Array side-file of a cell."""
        return self.cells_dir / f"{cell_id}.npz"

    def load_cell(self, cell_id: str) -> dict | None:
        """The record of a finished cell, or ``None`` (missing or unreadable)."""
        path = self.cell_path(cell_id)
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def is_finished(self, cell_id: str, fingerprint: str) -> bool:
        """Whether the cell finished with exactly this configuration."""
        record = self.load_cell(cell_id)
        return record is not None and record.get("fingerprint") == fingerprint

    def save_cell(self, cell_id: str, record: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Write a finished cell: arrays first, then the record that marks it finished."""
        if arrays:
            atomic_save_npz(self.arrays_path(cell_id), arrays)
        atomic_write_json(self.cell_path(cell_id), record)

    def load_arrays(self, cell_id: str) -> dict[str, np.ndarray]:
        """Arrays of a cell (empty if it saved none)."""
        return self._load_npz(self.arrays_path(cell_id))

    def report_data_path(self, data_key: str) -> Path:
        """What reports need from the data ``data_key`` names."""
        return self.data_dir / f"{data_key}.json"

    def save_report_data(self, data_key: str, data: ReportData) -> None:
        """Keep what reports need from the data (each file rewritten only when it changed, so an
        unchanged data set leaves the store's files as they were)."""
        path, text = self.report_data_path(data_key), data.to_json()
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)
        examples_path = path.with_suffix(".npz")
        if data.examples and not _same_arrays(self._load_npz(examples_path), data.examples):
            atomic_save_npz(examples_path, data.examples)
        elif not data.examples:
            examples_path.unlink(missing_ok=True)

    def load_report_data(self, data_key: str) -> ReportData:
        """What :meth:`save_report_data` kept, or an empty :class:`ReportData`."""
        path = self.report_data_path(data_key)
        if not path.exists():
            return ReportData()
        return ReportData.from_json(path.read_text(), self._load_npz(path.with_suffix(".npz")))

    @staticmethod
    def _load_npz(path: Path) -> dict[str, np.ndarray]:
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def records(self) -> Iterator[dict]:
        """Every finished cell record, in file-name order."""
        if not self.cells_dir.exists():
            return
        for path in sorted(self.cells_dir.glob("*.json")):
            try:
                yield json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue


def _same_arrays(found: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> bool:
    """Whether two sets of named arrays are equal in names, dtypes and values."""
    return found.keys() == arrays.keys() and all(
        found[k].dtype == np.asarray(v).dtype and np.array_equal(found[k], v, equal_nan=True) for k, v in arrays.items())
