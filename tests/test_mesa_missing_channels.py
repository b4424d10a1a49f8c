"""Real-data layouts without nasal pressure or PPG: methods are skipped with reasons, never failed.

A tiny MESA-layout folder holds EKG and Thor only (copied from the synthetic cohort's EDF
files with pyedflib). The run exits cleanly: PPG methods and the supervised autoencoder
(whose target is nasal pressure) are skipped with their reasons, and MEAE's output is chosen
on the thoracic belt, with a rate.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyedflib
import pytest

from benchmark.cli import main
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_suite
from datasets.synthetic_psg.config import CohortConfig
from datasets.synthetic_psg.edf import write_cohort

KEEP = ("EKG", "Thor")


def _copy_channels(source: Path, target: Path, keep: tuple[str, ...]) -> None:
    reader = pyedflib.EdfReader(str(source))
    try:
        labels = reader.getSignalLabels()
        index = [labels.index(label) for label in keep]
        headers = [reader.getSignalHeader(i) for i in index]
        signals = [reader.readSignal(i) for i in index]
    finally:
        reader.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = pyedflib.EdfWriter(str(target), len(keep), file_type=pyedflib.FILETYPE_EDF)
    try:
        writer.setSignalHeaders(headers)
        writer.writeSamples(signals)
    finally:
        writer.close()


@pytest.fixture(scope="module")
def ekg_thor_folder(tmp_path_factory) -> Path:
    cohort = tmp_path_factory.mktemp("cohort")
    paths = write_cohort(CohortConfig(subjects=6, minutes=5.0, seed=0), cohort, progress=False)
    folder = tmp_path_factory.mktemp("ekg_thor")
    for path in sorted(p for p in paths if p.suffix == ".edf"):
        _copy_channels(path, folder / path.relative_to(cohort), KEEP)
    return folder


def test_ekg_thor_only_run_skips_with_reasons_and_chooses_on_the_belt(ekg_thor_folder, tmp_path):
    summary = run_suite(
        "mesa", RunConfig(profile="tiny", method_names=["mixture", "meae", "ppg_riiv", "supervised_ae"], seeds=[0],
        results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", progress=False,
        data_dir=ekg_thor_folder, signals=("ECG",), overrides={"meae": {"epochs": 30}},  # tiny's 6 find no rate
    ))
    assert summary.failed == []
    reasons = {s["method"]: s["reason"] for s in summary.skipped}
    assert "designed for PPG input" in reasons["ppg_riiv"]
    assert "nasal-pressure target" in reasons["supervised_ae"]
    assert len(summary.ran) == 2 and "mixture__seed0" in summary.ran

    import pandas as pd

    board = pd.read_csv(tmp_path / "results" / "mesa" / "tiny" / "leaderboard.csv")
    chosen = board[(board["method"] == "meae[epochs=30] (chosen on thoracic)") & (board["input"] == "ECG")]
    mae = chosen[(chosen["target"] == "thoracic") & (chosen["metric"] == "mae_bpm")]["mean"].item()
    coverage = chosen[chosen["metric"] == "coverage"]["mean"].item()
    assert math.isfinite(mae) and coverage > 0
    assert not (board["target"] == "nasal_pressure").loc[board["source"] == "measured"].any()
    assert "meae[epochs=30] (chosen on thoracic)" in (tmp_path / "results" / "mesa" / "tiny" / "leaderboard.md").read_text()


def test_ekg_thor_only_command_line_exits_zero(ekg_thor_folder, tmp_path):
    code = main([
        "--suite", "mesa", "--profile", "tiny", "--seeds", "0", "--methods", "mixture,ppg_riav,nk_ecg_rsp_vangent2019",
        "--data-dir", str(ekg_thor_folder), "--signals", "ECG", "--results-dir", str(tmp_path / "r"),
        "--cache-dir", str(tmp_path / "c"), "--no-progress",
    ])
    assert code == 0
    assert np.isfinite(pd_value(tmp_path / "r" / "mesa" / "tiny" / "leaderboard.csv", "nk_ecg_rsp_vangent2019", "thoracic"))


def pd_value(path: Path, method: str, target: str) -> float:
    import pandas as pd

    board = pd.read_csv(path)
    return board[(board["method"] == method) & (board["target"] == target) & (board["metric"] == "mae_bpm")]["mean"].item()
