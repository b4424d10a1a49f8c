"""The MESA suite: respiration from single-channel ECG and PPG (paper section 4.2, Table 2).

Data: a real NSRR MESA download (``--data-dir``) or, by default, a synthetic
cohort written as real EDF files in the MESA layout
(:mod:`datasets.synthetic_psg`). Both go through the same reader,
preprocessing and recording-level split (:mod:`datasets.mesa`).

Protocol, per input (ECG, PPG) and method:

1. fit on the training segments of that input (supervised methods also see the
   nasal-pressure segment as target);
2. on the validation recordings, compute the respiratory rate of every
   candidate output and choose the respiratory output: lowest MAE against the
   nasal-pressure rate (``reference`` rule, the paper's), and separately the
   largest respiratory-band power share (``spectral`` rule, label-free);
3. on the test recordings, take each rule's output, crop 512 samples from each
   edge, extract the rate with NeuroKit2 (troughs = inhalation onsets) and
   score the MAE in breaths/min against the nasal-pressure and thoracic rates
   (and the true respiration on synthetic data), the coverage (share of test
   segments with a rate) and, on synthetic data, the waveform correlation with
   the true respiration (absolute Pearson r: a source's sign is not identifiable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.errors import CellSkipped
from benchmark.core.keys import digest
from benchmark.core.report_data import (
    TEST_GROUPS,
    ReportData,
    example_key,
    fill_rate_key,
    reference_key,
)
from benchmark.core.report_layout import ReportLayout
from benchmark.core.store import atomic_save_npz
from benchmark.evaluation.respiration import rates
from benchmark.evaluation.scoring import score_metrics, score_row
from benchmark.evaluation.source_choice import (
    RESPIRATORY_BAND,
)
from benchmark.run.fitting import Fitter, ModelOf
from benchmark.suites._mesa_layout import mesa_layout
from benchmark.suites._mesa_rates import (
    AGREEMENT,
    CHOICE_REFERENCES,
    EDGE_CROP,
    N_EXAMPLES,
    REFERENCES,
    SAMPLING_RATE,
    TRUTH,
    Selection,
    evaluate_outputs,
    mae_per_recording,
)
from benchmark.suites.base import (
    BenchmarkError,
    CellOutcome,
    DataHandle,
    Suite,
    SuiteOptions,
)
from datasets.mesa import (
    NoUsableRecordingsError,
    PreprocessConfig,
    SegmentCache,
    build_segment_cache,
)
from datasets.rows import RowView
from datasets.synthetic_psg.config import CohortConfig
from datasets.synthetic_psg.edf import write_cohort
from methods.base import Split

TABLE_2_METRICS = ("mae_bpm", "mae_bpm_filled", "waveform_corr", "coverage")
"""The metrics of the paper's Table 2 layout; the agreement statistics get a table of their own."""
SIM_TO_REAL = "sim-to-real"
"""Variant of the rows of another cell's model (trained on the synthetic cohort) tested on this data."""
PROFILES: dict[str, dict[str, Any]] = {
    # Paper protocol: 1,000 recordings drawn, 500 train / 500 test. The synthetic
    # fallback is a larger cohort for GPU runs.
    "paper": {"cohort": {"subjects": 120, "minutes": 60.0}, "n_select": 1000, "n_train": 500, "valid_fraction": 0.1, "data_seed": 0},
    # 2-core CPU budget: 1,104 training segments (23 recordings x 48), one seed of the whole
    # suite within 20 minutes.
    "quick": {"cohort": {"subjects": 50, "minutes": 50.0}, "n_select": 1000, "n_train": 500, "valid_fraction": 0.1, "data_seed": 0},
    "tiny": {"cohort": {"subjects": 4, "minutes": 3.0}, "n_select": 1000, "n_train": 500, "valid_fraction": 0.34, "data_seed": 0},
}

# Paper Table 2 (MAE in breaths/min vs nasal pressure / thoracic excursion).
PAPER_TABLE_2 = [
    ("meae", "PPG", 1.51, 1.50), ("meae", "ECG", 1.73, 1.59),
    ("EDR, Soni & Muniyandi 2019", "ECG", 2.38, 2.18), ("EDR, Charlton et al. 2016", "ECG", 2.38, 2.17),
    ("EDR, van Gent et al. 2019", "ECG", 2.27, 2.05), ("EDR, Sarkar et al. 2015", "ECG", 2.26, 2.07),
    ("heuristic [55]", "PPG", 2.38, 2.02), ("heuristic [55]", "ECG", 2.82, 2.42),
    ("supervised_ae", "PPG", 0.46, 2.07), ("supervised_ae", "ECG", 0.48, 2.16),
]
PAPER_THORACIC_VS_NASAL = 1.33
THORACIC_ROW = "thoracic belt (reference signal)"


def _load_rates(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {k: stored[k] for k in stored.files}


class MesaSuite(Suite):
    """ECG/PPG -> respiration on MESA or a synthetic MESA-layout cohort."""

    name = "mesa"
    description = "Respiration from ECG/PPG, MESA layout (paper Table 2: rate MAE vs nasal pressure/thoracic)"
    modality = "1d"
    inputs = ("ECG", "PPG")
    metrics = ("mae_bpm", "mae_bpm_filled", "waveform_corr", "coverage", *AGREEMENT[1:], "mae_bpm_recording")
    column_targets = (*REFERENCES, TRUTH, "any")
    headline_metrics = ("mae_bpm_filled", "mae_bpm")
    pairing_unit = "test recordings"
    profiles = PROFILES
    dependencies = ("numpy", "scipy", "neurokit2", "pyedflib")
    target_kind = "rate"
    # The MAE with abstentions filled by the constant baseline's rate: a row cannot beat the
    # constant rate by scoring only the segments it chose to rate.
    verdict_metrics = ("mae_bpm_filled",)
    # 2: agreement statistics (bias, limits of agreement, RMSE, within 2, per recording). The MAE
    # per recording is derived at report time from the stored per-segment differences
    # (benchmark.evaluation.scoring.derive_per_group), so its fix (both rates over the same segments) reaches
    # the cells computed before it without a new version.
    scoring_version = 2

    # ------------------------------------------------------------------ data
    def prepare(self, profile: str, options: SuiteOptions) -> DataHandle:
        settings = self.settings(profile)
        cache_dir = Path(options.cache_dir)
        preprocess = PreprocessConfig(target_rate=SAMPLING_RATE)
        cohort = None
        if options.data_dir is None:
            cohort = CohortConfig(seed=settings["data_seed"], **settings["cohort"])
            data_dir = cache_dir / f"synthetic-psg-{cohort.key()}"
            write_cohort(cohort, data_dir, n_jobs=options.n_jobs, progress=options.progress)
        else:
            data_dir = Path(options.data_dir)
            if not data_dir.is_dir():
                raise BenchmarkError(f"--data-dir {data_dir} is not a folder")
        split_params = {
            "seed": settings["data_seed"], "n_select": settings["n_select"], "n_train": settings["n_train"],
            "valid_fraction": settings["valid_fraction"], "max_recordings": options.max_recordings,
        }
        try:
            cache = build_segment_cache(
                data_dir, preprocess, cache_dir, signals=options.signals, n_jobs=options.n_jobs,
                progress=options.progress, **split_params,
            )
        except (NoUsableRecordingsError, FileNotFoundError) as error:
            raise BenchmarkError(str(error)) from None
        reference_path = self._reference_rates(cache, options.n_jobs)
        if cohort is not None:
            # Regenerated synthetic files get new timestamps: key the data by its recipe.
            key = "synthetic-" + digest([cohort.to_dict(), preprocess.key(), split_params, list(options.signals)], 16)
        else:
            key = cache.root.name
        summary = dict(cache.summary)
        return DataHandle(
            suite=self.name, profile=profile, key=key,
            paths={"segments": str(cache.root), "reference_rates": str(reference_path)},
            info={
                "synthetic": cohort is not None,
                "cohort": cohort.to_dict() if cohort is not None else None,
                "data_dir": None if cohort is not None else str(data_dir),
                "preprocess": preprocess.to_dict(), "split": split_params,
                "signals": list(options.signals), "sampling_rate": SAMPLING_RATE, "edge_crop": EDGE_CROP,
                "respiratory_band_hz": list(RESPIRATORY_BAND), "summary": summary,
            },
        )

    @staticmethod
    def _reference_rates(cache: SegmentCache, n_jobs: int) -> Path:
        """Rates of the reference channels of every split, computed once per cache."""
        path = cache.root / f"reference_rates_crop{EDGE_CROP}.npz"
        if path.exists():
            return path
        arrays = {}
        for split in cache.splits:
            data = cache.split(split)
            for channel in (*REFERENCES, TRUTH):
                if channel in data:
                    arrays[f"{split}__{channel}"] = rates(RowView(data[channel]), SAMPLING_RATE, EDGE_CROP, n_jobs=n_jobs)
        atomic_save_npz(path, arrays)
        return path

    # ------------------------------------------------------------------ cell
    @staticmethod
    def _rows(data: dict[str, np.ndarray], input_name: str, need_target: bool) -> np.ndarray:
        available = np.array(data[f"available_{input_name}"], dtype=bool)
        if need_target:
            available = available & np.asarray(data["available_nasal_pressure"], dtype=bool)
        return np.flatnonzero(available)

    @staticmethod
    def _split(data: dict[str, np.ndarray], rows: np.ndarray, input_name: str, with_target: bool) -> Split:
        """Lazy split: rows are read from the cache files batch by batch, never all at once."""
        mixtures = RowView(data[input_name], rows)
        targets = None
        if with_target:
            targets = RowView(data["nasal_pressure"], rows, row_shape=(1, *mixtures.row_shape))
        return Split(mixtures, ("nasal_pressure",), targets, input_name=input_name, sampling_rate=SAMPLING_RATE)

    def run_cell(self, fitter: Fitter, handle: DataHandle) -> CellOutcome:
        cache = SegmentCache(handle.paths["segments"])
        reference = _load_rates(handle.paths["reference_rates"])
        outcome = CellOutcome(details={"inputs": {}, "skipped_inputs": {}, "fill_rate_bpm": {}})
        for input_name in handle.info["signals"]:
            probe = fitter.probe()
            if probe.quality_gate:
                outcome.details["fill_rate_bpm"][input_name] = self.fill_rate(handle, input_name)
            reason = probe.check_input(input_name)
            if reason is None:
                part = fitter.part(input_name)
                reason = self._run_input(part, probe, cache, reference, input_name, outcome)
                if part.model_of is not None:
                    skipped = self._model_of_rows(part.model_of, probe, cache, reference, input_name, outcome)
                    if skipped is not None:
                        outcome.details.setdefault(SIM_TO_REAL, {})[input_name] = {"skipped": skipped}
            if reason is not None:
                outcome.details["skipped_inputs"][input_name] = reason
        if not outcome.scores:
            raise CellSkipped("; ".join(f"{k}: {v}" for k, v in outcome.details["skipped_inputs"].items()))
        return outcome

    def _model_of_rows(self, model_of: ModelOf, probe, cache, reference, input_name, outcome) -> str | None:
        """Rows of the model of the cell the plan names (:attr:`CellSpec.model_of
        <benchmark.run.planning.CellSpec.model_of>`: trained, and its output chosen, on that
        cell's data), tested on this data's test recordings; why not, when there are none."""
        test_data = cache.split("test")
        test_rows = self._rows(test_data, input_name, False) if input_name in test_data else np.array([], int)
        if not len(test_rows):
            return f"no {input_name} segments in the test recordings"
        model_cache = SegmentCache(model_of.handle.paths["segments"])
        model_reference = _load_rates(model_of.handle.paths["reference_rates"])
        fitted = self._fit(model_of.fitter, probe, model_cache, model_reference, input_name)
        if isinstance(fitted, str):
            return f"synthetic cohort: {fitted}"
        method, selection, fit_seconds, reloaded, n_train = fitted
        evaluated = evaluate_outputs(method, selection, test_data, test_rows, reference, input_name, SIM_TO_REAL, outcome)
        if isinstance(evaluated, str):
            return evaluated
        rules, chooser, k_outputs, _, _, extra, seconds = evaluated
        outcome.details.setdefault(SIM_TO_REAL, {})[input_name] = {
            "outputs": k_outputs, "choice": rules, "choice_reference": chooser, **extra, "n_train": n_train,
            "n_test": len(test_rows), "reloaded_model": reloaded,
            "training_budget": method.fit_info().budget,
        }
        for name, value in (("fit_sim", fit_seconds), ("select_sim", seconds[0]), ("score_sim", seconds[1])):
            outcome.timings[name] = outcome.timings.get(name, 0.0) + value
            outcome.timings[f"{name}_{input_name}"] = value
        return None

    def _extra_notes(self, data: dict[str, Any]) -> str:
        """Words the leaderboard adds after the protocol (none here)."""
        return ""

    def _fit(self, fitter, probe, cache, reference, input_name) -> tuple | str:
        """Fit on a cache's training recordings: ``(method, selection, fit_seconds, reloaded, n_train)`` or why not.

        A method that learns nothing is fitted on no rows when the cache has no training
        recording; the selection (where a multi-output method's output is chosen) is the
        validation recordings, else the first training segments.
        """
        train_data, valid_data = cache.split("train"), cache.split("valid")
        if input_name not in train_data:
            return f"{input_name} is not in the segment cache"
        train_rows = self._rows(train_data, input_name, probe.supervised)
        if probe.supervised and not len(train_rows) and len(self._rows(train_data, input_name, False)):
            return f"supervised: no training {input_name} segment has its nasal-pressure target"
        if probe.learns and not len(train_rows):
            return f"no {input_name} segments in the training recordings"
        valid_rows = self._rows(valid_data, input_name, False)
        selection = Selection(valid_data, valid_rows, "valid", reference, input_name) if len(valid_rows) else \
            Selection(train_data, train_rows[:64], "train", reference, input_name)
        train = self._split(train_data, train_rows, input_name, probe.supervised)
        valid = self._split(valid_data, valid_rows, input_name, probe.supervised) if len(valid_rows) else None
        method, fit_seconds, reloaded = fitter.fit(train, valid)
        return method, selection, fit_seconds, reloaded, len(train_rows)

    def _run_input(self, fitter, probe, cache, reference, input_name, outcome) -> str | None:
        test_data = cache.split("test")
        test_rows = self._rows(test_data, input_name, False) if input_name in test_data else np.array([], int)
        if not len(test_rows):
            return f"no {input_name} segments in the test recordings"
        fitted = self._fit(fitter, probe, cache, reference, input_name)
        if isinstance(fitted, str):
            return fitted
        method, selection, fit_seconds, reloaded, n_train = fitted
        evaluated = evaluate_outputs(method, selection, test_data, test_rows, reference, input_name, "", outcome)
        if isinstance(evaluated, str):
            return evaluated
        rules, chooser, k_outputs, examples, test_rates, extra, seconds = evaluated
        # Only what the figures show, in float16: every output of one segment, the chosen one of a few.
        outcome.arrays[f"{input_name}__example_outputs"] = examples[0].astype(np.float16)
        shown = next(iter(rules.values()))
        outcome.arrays[f"{input_name}__example_estimates"] = examples[:, shown].astype(np.float16)
        outcome.arrays[f"{input_name}__example_rows"] = test_rows[:N_EXAMPLES]
        outcome.arrays[f"{input_name}__test_rates"] = test_rates[shown].astype(np.float32)
        outcome.arrays[f"{input_name}__test_rows"] = test_rows
        outcome.details["inputs"][input_name] = {
            "outputs": k_outputs, "choice": rules, "choice_reference": chooser, **extra,
            "n_train": n_train, "n_test": len(test_rows),
            "reloaded_model": reloaded, **method.fit_info().record_fields(),
        }
        for name, value in (("fit", fit_seconds), ("select", seconds[0]), ("score", seconds[1])):
            outcome.timings[name] = outcome.timings.get(name, 0.0) + value
            outcome.timings[f"{name}_{input_name}"] = value
        return None

    # ------------------------------------------------------------ leaderboard
    def fill_rate(self, handle: DataHandle, input_name: str) -> float:
        """The rate an abstention on ``input_name`` is scored as: the constant baseline's.

        ``median_rate`` says the median nasal-pressure rate of the training segments that have
        this input and nasal pressure; data without training nasal pressure (the public
        recordings) take it from the synthetic cohort its sim-to-real rows train on. NaN when
        neither has one.
        """
        for segments, rates_path in (("segments", "reference_rates"), ("sim_segments", "sim_reference_rates")):
            if segments not in handle.paths:
                continue
            train = SegmentCache(handle.paths[segments]).split("train")
            reference = _load_rates(handle.paths[rates_path])
            if input_name not in train or "train__nasal_pressure" not in reference:
                continue
            found = reference["train__nasal_pressure"][self._rows(train, input_name, True)]
            found = found[np.isfinite(found)]
            if found.size:
                return float(np.median(found))
        return float("nan")

    def report_data(self, handle: DataHandle) -> ReportData:
        """The recording of every test segment (segments of one recording are dependent), per input
        the fill rate (:meth:`fill_rate`) and the reference rates of its scored test segments (for
        the MAE with abstentions filled), and the agreement rows of the reference signals; for the
        figures, per input its first test segments with the reference signals, and the rates of
        every test segment of the reference the Bland-Altman plots compare against."""
        reference = _load_rates(handle.paths["reference_rates"])
        test = SegmentCache(handle.paths["segments"]).split("test")
        shown = _shown_reference(reference)
        arrays, examples = {TEST_GROUPS: np.asarray(test["recording"])}, {}
        for input_name in handle.info["signals"]:
            if input_name not in test:
                continue
            arrays[fill_rate_key(input_name)] = np.asarray(self.fill_rate(handle, input_name))
            rows = self._rows(test, input_name, False)
            for name in reference:
                split, _, target = name.partition("__")
                if split == "test":
                    arrays[reference_key(input_name, target)] = reference[name][rows]
            for name in (input_name, *REFERENCES, TRUTH):
                if name in test:
                    examples[example_key(input_name, name)] = np.asarray(test[name][rows[:N_EXAMPLES]])
            examples[example_key(input_name, "reference_rates")] = reference.get(
                f"test__{shown}", np.full(len(test["recording"]), np.nan))
        return ReportData(arrays, self._agreement_rows(handle), examples)

    def _agreement_rows(self, handle: DataHandle) -> list[dict[str, Any]]:
        """Measured agreement of the reference signals themselves (no method, no seed)."""
        reference = _load_rates(handle.paths["reference_rates"])
        recordings = np.asarray(SegmentCache(handle.paths["segments"]).split("test")["recording"])
        rows = []
        targets = [t for t in ("nasal_pressure", TRUTH) if f"test__{t}" in reference]
        thoracic = reference.get("test__thoracic", np.full(len(recordings), np.nan))
        for target in targets:
            target_rates = reference[f"test__{target}"]
            if not (np.isfinite(target_rates).any() and np.isfinite(thoracic).any()):
                continue  # a reference missing from every test recording
            scores, _ = score_metrics(thoracic, target_rates, AGREEMENT, "thoracic", target)
            per_recording = mae_per_recording(thoracic, target_rates, recordings)
            scores.append(score_row("thoracic", target, "mae_bpm_recording", per_recording))
            rows += [{"suite": self.name, "method": THORACIC_ROW, "input": "thoracic", "target": target,
                      "metric": score["metric"], "mean": score["value"], "std": np.nan, "n_seeds": np.nan,
                      "source": "measured"} for score in scores]
        return rows

    def reference_rows(self) -> list[dict[str, Any]]:
        rows = []
        for method, input_name, nasal, thoracic in PAPER_TABLE_2:
            for target, value in (("nasal_pressure", nasal), ("thoracic", thoracic)):
                rows.append({"suite": self.name, "method": method, "input": input_name, "target": target,
                             "metric": "mae_bpm", "mean": value, "std": np.nan, "n_seeds": np.nan, "source": "paper"})
        rows.append({"suite": self.name, "method": THORACIC_ROW, "input": "thoracic", "target": "nasal_pressure",
                     "metric": "mae_bpm", "mean": PAPER_THORACIC_VS_NASAL, "std": np.nan, "n_seeds": np.nan, "source": "paper"})
        return rows

    def report_layout(self, handle: DataHandle) -> ReportLayout:
        """Paper Table 2, the agreement table and the figures (:func:`benchmark.suites._mesa_layout.mesa_layout`)."""
        shown = _shown_reference(_load_rates(handle.paths["reference_rates"]))
        return mesa_layout(self, handle, self._data_title(handle.info), self._extra_notes(handle.info), TABLE_2_METRICS,
                           (*REFERENCES, TRUTH), shown)

    def _data_title(self, data: dict[str, Any]) -> str:
        """What the data is, for the leaderboard's title."""
        splits = data.get("summary", {}).get("splits", {})
        if data.get("synthetic", True):
            cohort = data.get("cohort") or {}
            return f"SYNTHETIC COHORT ({cohort.get('subjects')} subjects x {cohort.get('minutes')} min, seed {cohort.get('seed')}) — not MESA data"
        return f"MESA, {sum(len(splits[s].get('recordings', [])) for s in splits)} recordings"


def _shown_reference(rates: dict[str, np.ndarray]) -> str:
    """The reference the Bland-Altman figures compare against: the first of :data:`CHOICE_REFERENCES`
    with a rate on some test segment."""
    return next((name for name in CHOICE_REFERENCES if np.isfinite(rates.get(f"test__{name}", [np.nan])).any()),
                CHOICE_REFERENCES[0])
