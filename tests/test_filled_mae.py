"""The MAE with abstentions filled by the constant baseline's rate (respiration suites)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.evaluation.metrics import filled_rate_error
from benchmark.evaluation.scoring import item_key
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_suite


def test_filled_rate_error_by_hand():
    differences = np.array([1.0, np.nan, -2.0, np.nan, np.nan])
    reference = np.array([15.0, 12.0, 14.0, 20.0, np.nan])
    # rated: |1|, |-2|; abstained where the reference has a rate: |16 - 12|, |16 - 20|; no reference: NaN
    np.testing.assert_allclose(filled_rate_error(differences, reference, 16.0), [1.0, 4.0, 2.0, 4.0, np.nan])
    with pytest.raises(ValueError, match="shapes differ"):
        filled_rate_error(differences, reference[:3], 16.0)


def test_mesa_rows_get_the_filled_mae_and_verdicts_use_it(tmp_path):
    from benchmark.core.store import ResultStore
    from benchmark.suites import SuiteOptions, get_suite
    from benchmark.suites.mesa import _load_rates

    results, cache = tmp_path / "r", tmp_path / "c"
    run_suite("mesa", RunConfig(profile="tiny", method_names=["median_rate", "ppg_riiv", "ppg_smart_fusion"], seeds=[0],
              results_dir=results, cache_dir=cache, progress=False, signals=("PPG",)))
    root = results / "mesa" / "tiny"
    suite = get_suite("mesa")
    handle = suite.prepare("tiny", SuiteOptions(cache_dir=cache, signals=("PPG",), progress=False))
    fill = suite.fill_rate(handle, "PPG")
    store = ResultStore(root)
    arrays = store.load_arrays("median_rate__seed0")
    # the fill is the constant baseline's rate: median_rate's sine reads back at it
    assert np.nanmedian(arrays["PPG__test_rates"]) == pytest.approx(fill, abs=0.1)

    board = pd.read_csv(root / "leaderboard.csv")
    reference = _load_rates(handle.paths["reference_rates"])
    for method in ("median_rate", "ppg_riiv", "ppg_smart_fusion"):
        cell = store.load_arrays(f"{method}__seed0")
        differences = cell[item_key("PPG", "thoracic", "bias_bpm")]
        target = reference["test__thoracic"][cell["PPG__test_rows"]]
        expected = np.nanmean(np.where(np.isnan(differences) & np.isfinite(target), np.abs(fill - target),
                                       np.abs(differences)))
        row = board[(board["method"] == method) & (board["metric"] == "mae_bpm_filled") & (board["target"] == "thoracic")]
        assert len(row) == 1 and row["mean"].iloc[0] == pytest.approx(expected, rel=1e-5)
        covered = board[(board["method"] == method) & (board["metric"] == "mae_bpm") & (board["target"] == "thoracic")]
        coverage = board[(board["method"] == method) & (board["metric"] == "coverage")]["mean"].iloc[0]
        if coverage == 1.0:  # nothing to fill: both MAEs agree
            assert covered["mean"].iloc[0] == pytest.approx(row["mean"].iloc[0], rel=1e-5)
    assert suite.verdict_metrics == ("mae_bpm_filled",)
    fusion = board[(board["method"] == "ppg_smart_fusion") & (board["metric"] == "mae_bpm_filled")]
    assert set(fusion["separates"]) == {"too few test recordings"}  # the tiny cohort: judged, on too little


def test_gate_threshold_is_the_one_with_the_lowest_filled_mae_on_validation():
    from benchmark.evaluation.source_choice import choose_gate_threshold

    # eight validation segments, reference 15; the two with weak band shares have wild rates
    shares = np.array([0.9, 0.8, 0.85, 0.7, 0.75, 0.95, 0.1, 0.2])
    rates = np.array([15.5, 14.5, 15.0, 16.0, 14.0, 15.0, 30.0, 5.0])
    reference = np.full(8, 15.0)
    threshold, chosen = choose_gate_threshold(shares, rates, reference, fill_rate=14.0,
                                              quantiles=(0.0, 0.25, 0.5))
    # no gate: MAE (0.5+0.5+0+1+1+0+15+10)/8 = 3.5; quantile 0.25 (share 0.625) drops the two: the
    # fill 14 scores |14-15| = 1 there: (3 + 2) / 8 = 0.625; quantile 0.5 also drops 0.75 and 0.7:
    # (0.5+0.5+0+0 + 4 * 1) / 8 = 0.625, a tie that goes to the lower threshold
    assert threshold == pytest.approx(np.quantile(shares, 0.25))
    assert chosen["filled_mae"] == pytest.approx(0.625) and chosen["coverage"] == pytest.approx(0.75)
    # good rates everywhere: no gate
    assert choose_gate_threshold(shares, np.full(8, 15.0), reference, 14.0)[0] == 0.0


def test_meae_gets_quality_gated_rows_on_mesa(tmp_path):
    import json

    results = tmp_path / "r"
    run_suite("mesa", RunConfig(profile="tiny", method_names=["meae"], seeds=[0], results_dir=results,
              cache_dir=tmp_path / "c", progress=False, signals=("PPG",)))
    record = json.loads((results / "mesa" / "tiny" / "cells" / "meae__seed0.json").read_text())
    gate = record["details"]["inputs"]["PPG"]["quality_gate"]
    assert gate and all(0.0 <= g["band_share_threshold"] <= 1.0 for g in gate.values())
    assert np.isfinite(record["details"]["fill_rate_bpm"]["PPG"])
    variants = {s.get("variant", "") for s in record["scores"]}
    assert any("quality-gated" in v for v in variants) and "" in variants
    coverage = {s.get("variant", ""): s["value"] for s in record["scores"] if s["metric"] == "coverage"}
    for variant, value in coverage.items():
        if "quality-gated" in variant:
            plain = variant.replace(", quality-gated", "").replace("quality-gated", "")
            assert value <= coverage[plain]
    board = pd.read_csv(results / "mesa" / "tiny" / "leaderboard.csv", keep_default_na=False)
    gated = board[board["method"].str.contains("quality-gated") & (board["metric"] == "mae_bpm_filled")]
    assert len(gated) >= 2


def test_report_data_round_trips_exactly(tmp_path):
    from benchmark.core.report_data import ReportData
    from benchmark.core.store import ResultStore

    rates = np.array([12.0, np.nan, 1 / 3, 17.25])
    data = ReportData({"test_groups": np.array(["a", "b", "b", "c"]), "fill_rate__ECG": np.asarray(14.126865976274553),
                       "test_reference__ECG__thoracic": rates}, [{"method": "belt", "mean": 0.1, "std": np.nan}])
    store = ResultStore(tmp_path)
    store.save_report_data("key", data)
    back = store.load_report_data("key")
    assert back.arrays["test_groups"].tolist() == ["a", "b", "b", "c"]
    assert float(back.arrays["fill_rate__ECG"]) == 14.126865976274553 and back.arrays["fill_rate__ECG"].shape == ()
    np.testing.assert_array_equal(back.arrays["test_reference__ECG__thoracic"], rates)  # NaN where NaN, bits equal
    assert back.rows[0]["mean"] == 0.1 and np.isnan(back.rows[0]["std"])
    assert store.load_report_data("other") == ReportData()


def test_filled_rate_scores_from_report_data():
    from benchmark.core.report_data import ReportData
    from benchmark.evaluation.scoring import derive_filled_rate_scores

    differences = np.array([1.0, np.nan, -2.0], dtype=np.float32)  # the second segment abstains
    reference = np.array([10.0, 20.0, 15.0])
    record = {"cell_id": "c", "scores": [{"input": "PPG", "target": "thoracic", "metric": "bias_bpm", "value": 0.0}]}
    arrays = {"c": {"items__PPG__thoracic__bias_bpm": differences}}
    data = ReportData({"fill_rate__PPG": np.asarray(14.0), "test_reference__PPG__thoracic": reference})
    derive_filled_rate_scores([record], arrays, data)
    filled = [s for s in record["scores"] if s["metric"] == "mae_bpm_filled"]
    assert len(filled) == 1 and filled[0]["value"] == pytest.approx((1.0 + 6.0 + 2.0) / 3)
    np.testing.assert_allclose(arrays["c"]["items__PPG__thoracic__mae_bpm_filled"], [1.0, 6.0, 2.0])

    no_fill = {"cell_id": "c", "scores": [dict(record["scores"][0])]}
    derive_filled_rate_scores([no_fill], arrays, ReportData({"test_reference__PPG__thoracic": reference}))
    assert [s["metric"] for s in no_fill["scores"]] == ["bias_bpm"]  # no fill rate declared: no filled row
