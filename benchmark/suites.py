"""Suites: a dataset plus an evaluation protocol, run cell by cell.

A *cell* is one (suite, method, seed, profile) combination. The coordinator
calls :meth:`Suite.prepare` once (generate or read data, fill the cache) and
hands a small picklable :class:`DataHandle` to the workers, which call
:meth:`Suite.run_cell`.
"""

from __future__ import annotations

import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from methods.base import Method, Split


class BenchmarkError(Exception):
    """A user-facing error: bad names, bad overrides, unusable data (one line, no traceback)."""


@dataclass(frozen=True)
class SuiteOptions:
    """User options that shape a suite's data.

    Parameters
    ----------
    cache_dir : Path
        Where generated data, preprocessed segments and fitted models live.
    data_dir : Path or None
        Real data (MESA); ``None`` uses the suite's embedded default.
    max_recordings : int or None
        Cap on recordings read (MESA).
    signals : tuple of str
        Inputs to run (MESA: ``ECG``, ``PPG``).
    n_jobs : int
        Worker processes for data preparation.
    progress : bool
        Progress bars.
    """

    cache_dir: Path
    data_dir: Path | None = None
    max_recordings: int | None = None
    signals: tuple[str, ...] = ("ECG", "PPG")
    n_jobs: int = 1
    progress: bool = True


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


@dataclass
class CellOutcome:
    """The result of one cell.

    Attributes
    ----------
    scores : list of dict
        One row per ``input`` x ``target`` x ``metric`` with a ``value``.
    details : dict
        JSON-friendly extras: assignments, fit histories, notes.
    arrays : dict
        Arrays for figures (example estimates, weight pictures).
    timings : dict
        Seconds per phase.
    """

    scores: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


MethodFactory = Callable[[], Method]


def fit_or_load(factory: MethodFactory, train: Split, valid: Split | None, model_dir: Path | None) -> tuple[Method, float, bool]:
    """Fit a fresh method, or reload it if an earlier interrupted run saved it.

    While fitting, ``model_dir/training`` is the method's ``context.work_dir``:
    neural methods write their per-epoch training checkpoint there, so a fit
    interrupted mid-way resumes from its last finished epoch. It is removed
    once the fitted model is saved.

    Unsupervised methods get the splits with their targets removed here, so no
    evaluation protocol can leak the sources to them by mistake.

    Returns
    -------
    method, fit_seconds, reloaded
    """
    method = factory()
    if not method.can_checkpoint():
        model_dir = None
    if model_dir is not None and (model_dir / "config.json").exists():
        try:
            loaded = type(method).load(model_dir, context=method.context)
            return loaded, 0.0, True
        except Exception:  # noqa: BLE001 - a damaged checkpoint is simply refitted
            pass
    if model_dir is not None:
        method.with_context(replace(method.context, work_dir=model_dir / "training"))
    if not method.supervised:
        train = train.blind()
        valid = valid.blind() if valid is not None else None
    start = time.perf_counter()
    method.fit(train, valid)
    seconds = time.perf_counter() - start
    if model_dir is not None:
        tmp = model_dir.with_name(model_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        method.save(tmp)
        shutil.rmtree(model_dir, ignore_errors=True)
        tmp.rename(model_dir)
    return method, seconds, False


class Suite(ABC):
    """A benchmark suite (dataset + protocol + leaderboard layout)."""

    name: str = ""
    description: str = ""
    modality: str = "2d"
    dependencies: tuple[str, ...] = ("numpy", "scipy")
    """Packages whose versions can change the suite's data or scores (see :mod:`benchmark.provenance`)."""
    scoring_version: int = 1
    """Version of the suite's data and scoring code: bump it when they change results (part of
    every cell key; ``tests/test_scoring_version.py`` fails when the scoring changes without it)."""

    @abstractmethod
    def prepare(self, profile: str, options: SuiteOptions) -> DataHandle:
        """Generate or read the data for ``profile``; runs once, in the coordinator."""

    @abstractmethod
    def run_cell(self, factory: MethodFactory, handle: DataHandle, model_dir: Path | None) -> CellOutcome:
        """Fit one method (fresh instance from ``factory``) and score it."""

    @abstractmethod
    def reference_rows(self) -> list[dict[str, Any]]:
        """The paper's reported values as tidy leaderboard rows (``source="paper"``)."""

    def data_rows(self, handle: DataHandle) -> list[dict[str, Any]]:
        """Measured rows that depend on the data alone (e.g. reference-vs-reference agreement)."""
        return []

    @abstractmethod
    def render_markdown(self, leaderboard: pd.DataFrame, manifest: dict[str, Any]) -> str:
        """The markdown leaderboard in the paper's table layout."""

    def make_figures(self, records: list[dict], arrays: dict[str, dict[str, np.ndarray]], handle: DataHandle, out_dir: Path) -> list[Path]:
        """Figures from finished cells; returns written paths."""
        return []


_SUITES: dict[str, Suite] = {}


def register_suite(suite: Suite) -> Suite:
    """Add a suite instance to the registry."""
    _SUITES[suite.name] = suite
    return suite


def suites() -> dict[str, Suite]:
    """Registered suites by name (imports the built-in ones)."""
    from benchmark import triangles_suite  # noqa: F401

    try:
        from benchmark import mesa_suite  # noqa: F401
    except ImportError:
        pass
    return dict(_SUITES)


def get_suite(name: str) -> Suite:
    """The suite called ``name``; ``KeyError`` naming the known suites otherwise."""
    known = suites()
    if name not in known:
        raise KeyError(f"unknown suite '{name}' (available: {', '.join(known)})")
    return known[name]
