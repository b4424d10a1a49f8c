"""The MESA protocol on real recordings from public packages (``--data public``).

Data: the real ECG/PPG recordings with a simultaneous respiration reference shipped in the
``systole`` and ``pyphysio`` wheels (:mod:`datasets.public_recordings`), fetched with pip,
checksum-verified, cut by time into MESA-layout EDF recordings and read by the MESA reader.
They are two subjects, so the leaderboard says so.  The reference is the respiration belt
(``thoracic``); neither package has nasal pressure, so multi-output methods choose their
output on the belt and the nasal-pressure columns are empty.

Every method that learns from data gets two kinds of rows:

- trained on the public recordings' own training split (a few minutes of one subject: far too
  little for a network, reported as it is);
- **sim-to-real**: the very model of the synthetic MESA suite's cell with the same method,
  seed and parameters (trained on the synthetic cohort of the same profile; its checkpoint is
  reused when that cell has run), its output chosen on the synthetic validation recordings,
  and tested on the public test recordings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.core.keys import digest
from benchmark.suites.base import (
    BenchmarkError,
    DataHandle,
    DataVariant,
    SuiteOptions,
)
from benchmark.suites.mesa import EDGE_CROP, SIM_TO_REAL, MesaSuite
from datasets.mesa import (
    NoUsableRecordingsError,
    PreprocessConfig,
    build_segment_cache,
)
from datasets.public_recordings import PublicDataError, write_public_recordings

PROFILES: dict[str, dict[str, Any]] = {
    name: {"recording_seconds": 123.0, "n_select": 1000, "n_train": 500, "valid_fraction": 0.1, "data_seed": 0}
    for name in ("paper", "quick", "tiny")
}


class MesaPublicSuite(MesaSuite):
    """ECG/PPG -> respiration on the real recordings of public packages, with sim-to-real rows."""

    name = "mesa_public"
    description = "Respiration from ECG/PPG on real recordings shipped in public packages (systole, pyphysio; fetched with pip)"
    profiles = PROFILES
    variant = DataVariant(of="mesa", data="public", shares_models=True)
    pairing_unit = "test recordings"

    def prepare(self, profile: str, options: SuiteOptions) -> DataHandle:
        if options.data_dir is not None:
            raise BenchmarkError("mesa_public reads the public recordings; --data-dir is for the mesa suite")
        settings = self.settings(profile)
        cache_dir = Path(options.cache_dir)
        try:
            folder, sources = write_public_recordings(cache_dir, settings["recording_seconds"])
        except PublicDataError as error:
            raise BenchmarkError(str(error)) from None
        preprocess = PreprocessConfig(target_rate=200)
        split_params = {
            "seed": settings["data_seed"], "n_select": settings["n_select"], "n_train": settings["n_train"],
            "valid_fraction": settings["valid_fraction"], "pinned_test": sources["pinned_test"],
        }
        try:
            cache = build_segment_cache(
                folder, preprocess, cache_dir, signals=options.signals, n_jobs=options.n_jobs,
                progress=options.progress, max_recordings=options.max_recordings, **split_params,
            )
        except (NoUsableRecordingsError, FileNotFoundError) as error:
            raise BenchmarkError(str(error)) from None
        reference_path = self._reference_rates(cache, options.n_jobs)
        sim = options.model_data  # the synthetic cohort the sim-to-real rows train on, prepared by the runner
        if sim is None:
            raise BenchmarkError("mesa_public evaluates the mesa suite's models: prepare it with "
                                 "benchmark.run.runner.prepare_data, which prepares their data first")
        return DataHandle(
            # Keyed by the recipe, not by the converted files' timestamps: a clone reuses the cells.
            suite=self.name, profile=profile,
            key="public-" + digest([folder.name, preprocess.key(), split_params, options.max_recordings, list(options.signals), sim.key], 16),
            paths={"segments": str(cache.root), "reference_rates": str(reference_path),
                   "sim_segments": sim.paths["segments"], "sim_reference_rates": sim.paths["reference_rates"]},
            info={
                "synthetic": False, "public": sources, "data_dir": str(folder), "preprocess": preprocess.to_dict(),
                "split": split_params, "signals": list(options.signals), "sampling_rate": 200.0,
                "edge_crop": EDGE_CROP, "summary": dict(cache.summary),
                "respiratory_band_hz": sim.info["respiratory_band_hz"],
                "sim_to_real": {"data_key": sim.key, "cohort": sim.info["cohort"], "summary": sim.info["summary"]},
            },
        )

    def _data_title(self, data: dict[str, Any]) -> str:
        sources = (data.get("public") or {}).get("sources", {})
        used = [f"{name} {e['requirement'].split('==')[1]}: {len(e['recordings'])} recording(s)"
                for name, e in sources.items() if "recordings" in e]
        left = [f"{name} left out ({e['skipped']})" for name, e in sources.items() if "skipped" in e]
        return (f"PUBLIC REAL RECORDINGS, {len(used)} subjects (one per package; {'; '.join(used + left)}), "
                f"cut by time into recordings of {(data.get('public') or {}).get('recording_seconds')} s")

    def _extra_notes(self, data: dict[str, Any]) -> str:
        """The leaderboard's words on the sim-to-real rows and the pinned recordings."""
        pinned = (data.get("public") or {}).get("pinned_test") or []
        sim = (data.get("sim_to_real") or {}).get("cohort") or {}
        return (
            f"Rows marked *{SIM_TO_REAL}* are the synthetic MESA suite's models of the same seed "
            f"(trained on the synthetic cohort of {sim.get('subjects')} subjects x {sim.get('minutes')} min, "
            "output chosen on its validation recordings) tested on these real recordings; the other rows "
            "of learned methods are trained on the real recordings' own training split. "
            + (f"{', '.join(pinned)} (the only recording with PPG) is always a test recording. " if pinned else "")
            + "Two subjects: the intervals describe these recordings, not a population."
        )
