"""Bad recordings in a MESA-layout folder: the other cells get results, the rest a named reason.

Recordings without ECG, without PPG, without any respiration reference, with a flat belt, and
unreadable files; a folder whose only readable recording can be in one split only.  None of it
fails a cell or stops the run; the split is drawn over the recordings that were read.
"""

from __future__ import annotations

import json
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest
from test_mesa_reader import write_edf  # the same EDF helper as the reader tests

from benchmark.cli import main
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_suite

SECONDS = 130  # two 61.44 s segments


def _channels(seed: int) -> dict[str, tuple[int, np.ndarray]]:
    ecg = nk.ecg_simulate(duration=SECONDS, sampling_rate=256, heart_rate=60 + seed, method="simple", random_state=seed)
    ppg = nk.ppg_simulate(duration=SECONDS, sampling_rate=256, heart_rate=60 + seed, random_state=seed)
    rsp = nk.rsp_simulate(duration=SECONDS, sampling_rate=32, respiratory_rate=12 + seed, method="sinusoidal", random_state=seed)
    return {"EKG": (256, ecg), "Pleth": (256, ppg), "Flow": (32, rsp), "Thor": (32, 0.8 * rsp)}


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("messy")
    for i in range(1, 5):
        write_edf(folder / f"mesa-sleep-{i:04d}.edf", _channels(i))
    no_ecg = _channels(5)
    no_ecg.pop("EKG")
    write_edf(folder / "mesa-sleep-0005.edf", no_ecg)
    no_ppg = _channels(6)
    no_ppg.pop("Pleth")
    write_edf(folder / "mesa-sleep-0006.edf", no_ppg)
    no_reference = {k: v for k, v in _channels(7).items() if k in ("EKG", "Pleth")}
    write_edf(folder / "mesa-sleep-0007.edf", no_reference)
    flat_belt = _channels(8)
    flat_belt["Thor"] = (32, np.full(32 * SECONDS, 0.25))
    write_edf(folder / "mesa-sleep-0008.edf", flat_belt)
    for i in (9, 10):
        (folder / f"mesa-sleep-{i:04d}.edf").write_bytes(b"not an EDF file" * 50)
    return folder


def test_messy_folder_runs_every_cell_and_splits_only_readable_recordings(messy_folder, tmp_path):
    summary = run_suite(
        "mesa", RunConfig(profile="tiny", method_names=["mixture", "nk_ecg_rsp_vangent2019", "ppg_riav", "supervised_ae", "pca"],
        seeds=[0], results_dir=tmp_path / "r", cache_dir=tmp_path / "c", progress=False, data_dir=messy_folder)
    )
    assert summary.failed == [] and len(summary.ran) == 5
    manifest = json.loads((tmp_path / "r" / "mesa" / "tiny" / "manifest.json").read_text())
    data = manifest["data"]["summary"]
    assert sorted(s["file"] for s in data["skipped"]) == ["mesa-sleep-0009.edf", "mesa-sleep-0010.edf"]
    assigned = [r for split in data["splits"].values() for r in split["assigned"]]
    assert sorted(assigned) == [f"mesa-sleep-{i:04d}" for i in range(1, 9)]  # the unreadable take no place
    assert all(data["splits"][s]["recordings"] for s in ("train", "test"))
    missing = data["missing_channels"]
    assert "ECG" in missing["mesa-sleep-0005"] and "PPG" in missing["mesa-sleep-0006"]
    assert {"nasal_pressure", "thoracic"} <= set(missing["mesa-sleep-0007"]) and "thoracic" in missing["mesa-sleep-0008"]
    board = pd.read_csv(tmp_path / "r" / "mesa" / "tiny" / "leaderboard.csv")
    heuristic = board[(board["method"] == "nk_ecg_rsp_vangent2019") & (board["metric"] == "mae_bpm")]
    assert set(heuristic["target"]) == {"nasal_pressure", "thoracic"} and heuristic["mean"].notna().all()


def test_only_readable_recording_is_a_test_recording(messy_folder, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    for name in ("mesa-sleep-0001.edf", "mesa-sleep-0009.edf", "mesa-sleep-0010.edf"):
        (folder / name).write_bytes((messy_folder / name).read_bytes())
    code = main(["--suite", "mesa", "--profile", "tiny", "--seeds", "0", "--methods", "mixture,nk_ecg_rsp_vangent2019,pca",
                 "--data-dir", str(folder), "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"),
                 "--no-progress"])
    assert code == 0
    manifest = json.loads((tmp_path / "r" / "mesa" / "tiny" / "manifest.json").read_text())
    assert manifest["data"]["summary"]["splits"]["test"]["recordings"] == ["mesa-sleep-0001"]
    reasons = {s["method"]: s["reason"] for s in manifest["last_run"]["skipped"]}
    assert "no ECG segments in the training recordings" in reasons["pca"]
    board = pd.read_csv(tmp_path / "r" / "mesa" / "tiny" / "leaderboard.csv")
    scored = board[(board["source"] == "measured") & (board["metric"] == "mae_bpm")]
    assert {"mixture", "nk_ecg_rsp_vangent2019"} <= set(scored["method"])  # they learn nothing: no training data needed
