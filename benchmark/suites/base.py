"""What every suite shares: the :class:`Suite` base class and the types it hands around.

A *cell* is one (suite, method, seed, profile) combination. The coordinator
calls :meth:`Suite.prepare` once (generate or read data, fill the cache) and
hands a small picklable :class:`DataHandle` to the workers, which call
:meth:`Suite.run_cell`. Suites are found by location (:mod:`benchmark.suites`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.data_handle import DataHandle
from benchmark.core.errors import BenchmarkError
from benchmark.core.profiles import PROFILES
from benchmark.core.report_data import ReportData
from benchmark.core.report_layout import FigureSpec, ReportLayout, TableSpec
from benchmark.evaluation.assignment import assign_by_mse
from benchmark.evaluation.scoring import (
    DERIVED_METRICS,
    score_oracle,
    score_sources,
    si_sdri_rows,
)
from benchmark.run.fitting import Fitter
from methods.base import Method, Split

__all__ = ["BenchmarkError", "CellOutcome", "DataHandle", "DataVariant", "Suite", "SuiteOptions"]


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
    model_data : DataHandle or None
        For a suite that evaluates the models of the suite it is a data variant of
        (``DataVariant.shares_models``): that suite's data, prepared by the runner first.
    """

    cache_dir: Path
    data_dir: Path | None = None
    max_recordings: int | None = None
    signals: tuple[str, ...] = ("ECG", "PPG")
    n_jobs: int = 1
    progress: bool = True
    model_data: DataHandle | None = None


@dataclass(frozen=True)
class DataVariant:
    """A suite that is another suite's protocol on other data.

    Parameters
    ----------
    of : str
        The suite whose protocol and method settings it shares.
    data : str
        The ``--data`` value that selects it: ``--suite <of> --data <data>`` runs this suite.
    shares_models : bool
        Whether its cells also evaluate the fitted models of ``of``'s cell with the same method,
        seed and parameters (sim-to-real rows): a planning dependency
        (:attr:`CellSpec.model_of <benchmark.run.planning.CellSpec.model_of>`) for every method
        that learns. The runner prepares ``of``'s default data (no ``--data-dir``, every recording),
        hands it to :meth:`Suite.prepare` as ``options.model_data``, and gives each cell's fitter
        that cell's model (:class:`ModelOf <benchmark.run.fitting.ModelOf>`: fitted there, or
        reloaded from that cell's folder).
    """

    of: str
    data: str
    shares_models: bool = False


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


class Suite(ABC):
    """A benchmark suite: a dataset, an evaluation protocol and a leaderboard layout.

    A suite is one class in one module of :mod:`benchmark.suites`; it is found by location,
    with no edit anywhere else. Subclasses set the class attributes below and implement
    :meth:`prepare` and :meth:`load_splits` (or their own protocol, :meth:`run_cell`); where the
    defaults do not fit, :meth:`report_layout` (tables, notes, figures), :meth:`report_data`
    (what reports need from the data) and :meth:`reference_rows` (published values).

    Attributes
    ----------
    name : str
        Registry name (``--suite name``).
    description : str
        One line for ``--list``.
    modality : str
        ``"1d"`` (signals) or ``"2d"`` (images): which methods can take the data.
    inputs : tuple of str
        What the mixtures are (``("mixture",)``, or ``("ECG", "PPG")``); methods that declare
        other inputs are skipped with the reason.
    provides_targets : bool
        Whether training data has the true sources, so supervised methods can run.
    metrics : tuple of str
        Registered metrics (:mod:`benchmark.evaluation.metrics`) the suite scores; each gets markdown columns.
    column_targets : tuple of str
        Order of the targets in the markdown columns (others follow in order of appearance).
    headline_metrics : tuple of str
        Metrics of the paired comparisons (default: all of :attr:`metrics`; the first is also
        shown in the markdown).
    pairing_unit : str
        What a bootstrap resample and a paired test treat as independent (``"test items"``;
        MESA: ``"test recordings"``, see :meth:`report_data`).
    estimate_range : tuple of float or None
        Range the default protocol clips candidates to before scoring (e.g. ``(0, 1)``, the
        SSIM data range); ``None`` scores them as they are.
    n_examples : int
        Test items whose estimates are kept for figures.
    profiles : dict
        Data settings for each profile name of :data:`benchmark.core.profiles.PROFILES`.
    dependencies : tuple of str
        Packages whose versions can change the suite's data or scores (:mod:`benchmark.core.provenance`).
    target_kind : str
        What is scored: ``"waveform"`` (the sources themselves) or ``"rate"`` (a rate read off
        the chosen output); methods declare which they serve (``Method.target_kinds``).
    verdict_metrics : tuple of str
        Metrics a row's *separates* verdict is decided on, in order of preference: the first
        that both the row and the best trivial baseline have (see :mod:`benchmark.evaluation.verdicts`).
    scoring_version : int
        Version of the suite's data and scoring code: bump it when they change results (part of
        every cell key; ``tests/test_scoring_version.py`` fails when the scoring changes without it).
    variant : DataVariant or None
        Set when this suite is another suite's protocol on other data (:class:`DataVariant`):
        the methods take that suite's settings, ``--suite <that suite> --data <data>`` runs this
        one, ``--suite all`` leaves it out, and its cells may reuse that suite's fitted models.
    """

    name: str = ""
    description: str = ""
    modality: str = "2d"
    inputs: tuple[str, ...] = ("mixture",)
    provides_targets: bool = True
    metrics: tuple[str, ...] = ()
    column_targets: tuple[str, ...] = ()
    headline_metrics: tuple[str, ...] = ()
    pairing_unit: str = "test items"
    estimate_range: tuple[float, float] | None = None
    n_examples: int = 6
    profiles: dict[str, dict[str, Any]] = {}
    dependencies: tuple[str, ...] = ("numpy", "scipy")
    variant: DataVariant | None = None
    target_kind: str = "waveform"
    verdict_metrics: tuple[str, ...] = ("si_sdri",)
    scoring_version: int = 1

    # ------------------------------------------------------------ settings
    @property
    def method_settings_suite(self) -> str:
        """The suite whose entries of the methods' ``profiles`` apply: this one, or the one it is a
        data variant of."""
        return self.variant.of if self.variant is not None else self.name

    def settings(self, profile: str) -> dict[str, Any]:
        """The data settings of ``profile``; ``KeyError`` naming the suite's profiles otherwise."""
        if profile not in self.profiles:
            known = [p for p in PROFILES if p in self.profiles]
            raise KeyError(f"unknown profile '{profile}' for {self.name} (available: {', '.join(known)})")
        return self.profiles[profile]

    def method_fits(self, cls: type[Method], device: str = "cpu") -> str | None:
        """Why method class ``cls`` cannot run on this suite, or ``None`` if it can.

        Decided from what the method declares (modality, inputs, supervision, GPU need)
        against what the suite offers; no suite names are involved.
        """
        return cls.check_applicable(self.modality, self.inputs, device, self.provides_targets, self.target_kind)

    # ------------------------------------------------------------ protocol
    @abstractmethod
    def prepare(self, profile: str, options: SuiteOptions) -> DataHandle:
        """Generate or read the data for ``profile``; runs once, in the coordinator."""

    def load_splits(self, handle: DataHandle) -> dict[str, Split]:
        """The ``train``, ``valid`` and ``test`` splits (with targets) of prepared data.

        Needed by the default :meth:`run_cell`; a suite with its own protocol may skip it.
        """
        raise NotImplementedError(f"suite {self.name} has neither load_splits nor its own run_cell")

    def run_cell(self, fitter: Fitter, handle: DataHandle) -> CellOutcome:
        """Fit one method (with the runner's ``fitter``) and score it: the default protocol.

        Fit on ``train`` (targets removed for blind methods); solve the candidate-to-source
        assignment once on ``valid`` (Hungarian on MSE); apply it to the ``test`` candidates
        and compute every metric of :attr:`metrics` per source with that one mapping
        (:func:`benchmark.evaluation.scoring.score_sources`). Candidates are clipped to
        :attr:`estimate_range` first when it is set. Methods with several outputs also get
        rows under the per-item best permutation, labelled ``PIT oracle`` (an upper bound).
        """
        return self.evaluate_splits(fitter, self.load_splits(handle))

    def evaluate_splits(
        self, fitter: Fitter, splits: dict[str, Split], input_name: str = "mixture",
        metric_names: tuple[str, ...] | None = None,
    ) -> CellOutcome:
        """The default protocol on given ``train``/``valid``/``test`` splits (see :meth:`run_cell`).

        Suites with several inputs (tasks) call it once per input and merge the outcomes;
        score rows carry ``input_name``. ``metric_names`` (default :attr:`metrics`) are the
        metrics computed per source from estimates and targets; a suite whose declared metrics
        include derived ones (SI-SDR improvement needs the mixture) passes the others.
        """
        if metric_names is None:
            metric_names = tuple(m for m in self.metrics if m not in DERIVED_METRICS)
        train, valid, test = splits["train"], splits["valid"], splits["test"]
        method, fit_seconds, reloaded = fitter.fit(train, valid)

        start = time.perf_counter()
        valid_candidates = self._bounded(method.separate(valid.mixtures))
        assignment = assign_by_mse(valid_candidates, valid.targets, valid.source_names)
        candidates = self._bounded(method.separate(test.mixtures))
        estimates = assignment.apply(candidates)
        separate_seconds = time.perf_counter() - start

        start = time.perf_counter()
        scores, items = score_sources(candidates, test.targets, assignment, metric_names, input_name)
        if candidates.shape[1] >= max(2, len(test.source_names)) and method.kind != "trivial":
            oracle_rows, oracle_items = score_oracle(candidates, test.targets, test.source_names, metric_names, input_name)
            scores += oracle_rows
            items.update(oracle_items)
        derived_rows, derived_items = self._derived(scores, items, test, metric_names, input_name)
        scores += derived_rows
        items.update(derived_items)
        valid_scores = None
        if method.kind == "trivial":  # the verdicts pick the best trivial baseline on validation
            valid_scores = self._validation_scores(valid_candidates, valid, assignment, metric_names, input_name)
        score_seconds = time.perf_counter() - start

        arrays = {
            "example_estimates": estimates[: self.n_examples],
            "example_candidates": candidates[: self.n_examples],
            **method.diagnostics(),
            **items,
        }
        details = {
            "assignment": assignment.to_dict(),
            "n_test": len(test), "n_train": len(train), "n_valid": len(valid),
            "reloaded_model": reloaded,
            **method.fit_info().record_fields(),
        }
        if valid_scores is not None:
            details["valid_scores"] = valid_scores
        timings = {"fit": fit_seconds, "separate": separate_seconds, "score": score_seconds}
        return CellOutcome(scores, details, arrays, timings)

    def _derived(self, scores: list[dict], items: dict[str, np.ndarray], split: Split, metric_names: tuple[str, ...],
                 input_name: str) -> tuple[list[dict], dict[str, np.ndarray]]:
        """SI-SDRi rows from the SI-SDR items, where the suite declares ``si_sdri``."""
        if "si_sdri" not in self.metrics or "si_sdr" not in metric_names:
            return [], {}
        return si_sdri_rows(scores, items, self._bounded(np.asarray(split.mixtures)), split.targets, split.source_names, input_name)

    def _validation_scores(self, candidates: np.ndarray, split: Split, assignment, metric_names: tuple[str, ...],
                           input_name: str) -> dict[str, dict[str, float]]:
        """``{target: {metric: value}}`` of candidates on a split with one assignment (validation scores)."""
        rows, items = score_sources(candidates, split.targets, assignment, metric_names, input_name)
        rows += self._derived(rows, items, split, metric_names, input_name)[0]
        out: dict[str, dict[str, float]] = {}
        for row in rows:
            out.setdefault(row["target"], {})[row["metric"]] = float(row["value"])
        return out

    def _bounded(self, candidates: np.ndarray) -> np.ndarray:
        return candidates if self.estimate_range is None else np.clip(candidates, *self.estimate_range)

    def reference_rows(self) -> list[dict[str, Any]]:
        """Published values as tidy leaderboard rows (``source="paper"``); none by default."""
        return []

    def report_data(self, handle: DataHandle) -> ReportData:
        """What reports need from the data besides the cells (:mod:`benchmark.core.report_data`):
        groups of dependent test items, fill and reference rates of rate suites, rows measured on
        the data alone, the example test items its figures show. The runner keeps it in the
        store, so reports never reopen data; none by default (independent test items, no figures)."""
        return ReportData()

    # -------------------------------------------------------------- report
    def report_layout(self, handle: DataHandle) -> ReportLayout:
        """The leaderboard's title, notes, tables and figures, declared as data
        (:mod:`benchmark.core.report_layout`); the runner keeps it in the store and the report
        renders it. Default: a title, the test size, seeds and device, and one table per input with
        a column per declared metric and target (a heading per input when there are several)."""
        several = len(self.inputs) > 1
        return self.layout(
            title=f"# {self.description} — profile `{handle.profile}`",
            notes=("Test split: $n_test items. Measured rows: mean ± std over seeds $seeds; device `$device`.",),
            tables=tuple(self.metric_table(input_name, heading=f"## Input `{input_name}`\n\n" if several else "")
                         for input_name in self.inputs),
        )

    def layout(self, title: str, notes: tuple[str, ...] = (), tables: tuple[TableSpec, ...] = (),
               figures: tuple[FigureSpec, ...] = ()) -> ReportLayout:
        """A :class:`ReportLayout` with this suite's metrics, verdict settings and :meth:`reference_rows`."""
        return ReportLayout(
            title=title, notes=tuple(notes), tables=tuple(tables), figures=tuple(figures), metrics=self.metrics,
            headline_metrics=self.headline_metrics or self.metrics, verdict_metrics=self.verdict_metrics,
            pairing_unit=self.pairing_unit, reference_rows=self.reference_rows(),
        )

    def metric_table(self, input_name: str, **spec: Any) -> TableSpec:
        """A table of ``input_name``'s rows with a column per declared metric and target
        (:attr:`metrics`, :attr:`column_targets`); ``spec`` sets other :class:`TableSpec` fields."""
        return TableSpec(input=input_name, metrics=self.metrics, column_targets=self.column_targets, **spec)
