"""What one run of a suite is asked to do: the options of ``run_benchmark.py`` as one object."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchmarkError
from methods.nn.layouts import parse_layout

__all__ = ["RunConfig", "default_cache_dir"]


@dataclass(frozen=True)
class RunConfig:
    """The options of one run (:func:`benchmark.run.runner.run_suite`), grouped by what they decide.

    Parameters
    ----------
    profile : str
        Profile name (``quick``, ``paper``, ``tiny``).
    method_names : list of str or None
        Methods to run; ``None`` or ``["all"]``: every registered method that applies.
    seeds : sequence of int
        Seeds of the methods that take one.
    overrides : dict
        ``{method: {param: value}}`` from ``--set`` (part of the cells' identity).
    time_limit : float or None
        Training seconds per cell (part of the cells' identity).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    jobs : int
        Cells run at once.
    backend : str
        ``joblib`` (processes on this machine) or ``dask`` (see
        :func:`benchmark.run.executors.open_executor`).
    scheduler : str or None
        Address of a running Dask scheduler.
    run_deadline : float or None
        A ``time.time()`` value (``--total-time-limit``): a cell started late trains for what
        is left, cells not started by then are skipped.
    results_dir : Path
        Where leaderboards and finished cells are written.
    cache_dir : Path or None
        Data, preprocessed segments and model checkpoints (``None``: the default cache).
    data_dir : Path or None
        Real data to read instead of the suite's embedded default (MESA).
    max_recordings : int or None
        Cap on recordings read (MESA).
    signals : tuple of str
        Inputs to run (MESA: ``ECG``, ``PPG``).
    data_jobs : int or None
        Workers of data preparation (default: ``jobs``).
    force : bool
        Recompute cells that are already finished.
    rebuild_only : bool
        Run nothing; rebuild the outputs from the finished cells.
    recompute_stale : bool
        Recompute exactly the finished cells whose recorded package versions differ from the
        installed ones.
    progress : bool
        Progress bars.
    command : str
        The command line, recorded in the manifest.
    layout : str or None
        Execution layout of multi-encoder networks (``--layout``, see
        :func:`methods.nn.layouts.parse_layout`); not part of the cells' identity, recorded in
        each cell it ran.
    resume_from : Path or None
        Checkpoints of earlier time-limited runs to continue from (``--resume-from``; see
        :mod:`benchmark.run.resume`).
    compile : bool
        ``torch.compile`` multi-encoder networks for training (``--compile``); not part of the
        cells' identity, recorded in each cell it ran.
    """

    profile: str = "quick"
    method_names: list[str] | None = None
    seeds: Sequence[int] = (0,)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    time_limit: float | None = None
    device: str = "auto"
    jobs: int = 1
    backend: str = "joblib"
    scheduler: str | None = None
    run_deadline: float | None = None
    results_dir: str | Path = "results"
    cache_dir: str | Path | None = None
    data_dir: str | Path | None = None
    max_recordings: int | None = None
    signals: tuple[str, ...] = ("ECG", "PPG")
    data_jobs: int | None = None
    force: bool = False
    rebuild_only: bool = False
    recompute_stale: bool = False
    progress: bool = True
    command: str = ""
    layout: str | None = None
    resume_from: str | Path | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        if self.time_limit is not None and self.time_limit <= 0:
            raise BenchmarkError(f"--time-limit must be a positive number of seconds, got {self.time_limit}")
        if self.method_names is not None and not self.method_names:
            raise BenchmarkError("--methods is empty (give method names or 'all')")
        if self.resume_from is not None and not Path(self.resume_from).is_dir():
            raise BenchmarkError(f"--resume-from {self.resume_from} is not a folder")
        if self.layout is not None:
            try:
                parse_layout(self.layout)
            except ValueError as error:
                raise BenchmarkError(f"--layout: {error}") from None


def default_cache_dir() -> Path:
    """``$BSS_BENCH_CACHE`` or ``.cache/bss-bench`` under the working directory."""
    return Path(os.environ.get("BSS_BENCH_CACHE", Path.cwd() / ".cache" / "bss-bench"))
