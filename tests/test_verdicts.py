"""Trivial baselines, verdicts per row and seed, two-level intervals, Holm: values, not shapes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import methods
from benchmark.evaluation.comparisons import add_intervals
from benchmark.evaluation.statistics import MIN_GROUPS, holm, two_level_interval
from benchmark.evaluation.verdicts import best_trivial, row_kind, verdicts
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_suite
from methods.base import _REGISTRY, register
from methods.trivial import ScaledMixture


def _board(rows, metric="si_sdri"):
    return pd.DataFrame([
        {"suite": "s", "method": m, "input": "mixture", "target": "x", "metric": metric, "mean": float(np.mean(v)),
         "std": np.nan, "n_seeds": n, "source": "measured"} for m, v, n in rows
    ])


# --------------------------------------------------------------------------- intervals
def test_two_level_interval_covers_the_spread_between_seeds():
    rng = np.random.default_rng(0)
    seeds = [level + 0.01 * rng.standard_normal(400) for level in (0.0, 1.0, 2.0)]
    low, high = two_level_interval(seeds, None)
    # Items alone would give about 1.0 +- 0.001; resampling seeds spans most of [0, 2].
    assert low < 0.5 and high > 1.5
    board = _board([("a", np.concatenate(seeds), 3)], metric="mse")
    items = {("a", "mixture", "x", "mse"): seeds}
    out = add_intervals(board, items, lambda _: None)
    assert out.loc[0, "ci_low"] == pytest.approx(low) and out.loc[0, "ci_high"] == pytest.approx(high)
    assert out.loc[0, "interval"] == "seeds, then test items"


def test_two_level_interval_equals_an_item_bootstrap_when_seeds_agree():
    rng = np.random.default_rng(1)
    values = rng.normal(size=300)
    low, high = two_level_interval([values, values], None)
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    assert low < values.mean() < high


def test_a_95_percent_interval_not_90():
    rng = np.random.default_rng(2)
    values = rng.normal(size=2000)
    low, high = two_level_interval([values, values + 1e-9], None)
    assert (high - low) / 2 == pytest.approx(1.96 * values.std(ddof=1) / np.sqrt(len(values)), rel=0.1)


def test_too_few_recordings_give_no_interval_and_no_verdict():
    groups = np.repeat(np.arange(MIN_GROUPS - 1), 10)
    values = [np.linspace(0, 1, len(groups))]
    board = _board([("m", values[0], 1), ("mixture", np.zeros(len(groups)), 1)], metric="mse")
    items = {("m", "mixture", "x", "mse"): values, ("mixture", "mixture", "x", "mse"): [np.ones(len(groups))]}
    out = add_intervals(board, items, lambda _: groups, "test recordings")
    assert np.isnan(out.loc[0, "ci_low"]) and out.loc[0, "interval"] == "none: too few test recordings"
    board["kind"] = ["method", "trivial"]
    found, tests = verdicts(board, items, {}, "s", ("mse",), lambda _: groups, "test recordings")
    assert found["m", "mixture", "x"].separates == "too few test recordings" and tests.empty


def test_recording_groups_are_resampled_whole():
    """Grouped items: the interval is that of the recordings' means, not of the segments."""
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(8), 50)
    values = np.repeat(rng.normal(size=8), 50) + 0.001 * rng.normal(size=400)
    grouped = add_intervals(_board([("a", values, 1)], "mse"), {("a", "mixture", "x", "mse"): [values]},
                            lambda _: groups, "test recordings")
    flat = add_intervals(_board([("a", values, 1)], "mse"), {("a", "mixture", "x", "mse"): [values]}, lambda _: None)
    assert (grouped.loc[0, "ci_high"] - grouped.loc[0, "ci_low"]) > 4 * (flat.loc[0, "ci_high"] - flat.loc[0, "ci_low"])


# ---------------------------------------------------------------------------- verdicts
def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    adjusted = holm(p)
    assert np.isnan(adjusted[3])
    np.testing.assert_allclose(adjusted[[4, 0, 2, 1]], [0.02, 0.03, 0.06, 0.06])


def test_row_kinds():
    assert row_kind("", "measured", "trivial") == "trivial"
    assert row_kind("", "measured", "method") == "method"
    assert row_kind("quality-gated", "measured", "method") == "method"
    assert row_kind("PIT oracle", "measured", "method") == "oracle"
    assert row_kind("", "paper", "method") == "reference"
    assert row_kind("", "measured", None) == "reference"  # a row no method produced (data rows)


def _verdict_case(row_seeds, n_items=60, seed=0):
    rng = np.random.default_rng(seed)
    trivial = rng.normal(size=n_items)
    items = {("zeros", "mixture", "x", "si_sdri"): [trivial - 5.0], ("mixture", "mixture", "x", "si_sdri"): [trivial]}
    items["m", "mixture", "x", "si_sdri"] = [trivial + shift + 0.1 * rng.normal(size=n_items) for shift in row_seeds]
    board = _board([("zeros", items["zeros", "mixture", "x", "si_sdri"][0], 1),
                    ("mixture", trivial, 1), ("m", np.concatenate(items["m", "mixture", "x", "si_sdri"]), len(row_seeds))])
    board["kind"] = ["trivial", "trivial", "method"]
    valid = {("zeros", "mixture", "x", "si_sdri"): -5.0, ("mixture", "mixture", "x", "si_sdri"): 0.0}
    return board, items, valid


def test_verdict_counts_the_seeds_that_beat_the_best_trivial_baseline():
    board, items, valid = _verdict_case([1.0, 0.8, -0.5])
    found, tests = verdicts(board, items, valid, "s", ("si_sdri",), lambda _: None, "test items")
    verdict = found["m", "mixture", "x"]
    assert verdict.versus == "mixture" and verdict.chosen_on == "validation"
    assert verdict.separates == "2/3"
    assert list(tests["seed"]) == ["0", "1", "2", "all"]
    assert (tests["p_holm"] >= tests["p_value"]).all()


def test_a_row_equal_to_the_trivial_baseline_never_separates():
    board, items, valid = _verdict_case([0.0, 0.0])
    found, _ = verdicts(board, items, valid, "s", ("si_sdri",), lambda _: None, "test items")
    assert found["m", "mixture", "x"].separates == "0/2"


def test_the_best_trivial_baseline_is_chosen_on_validation_not_on_test():
    board, items, _ = _verdict_case([1.0])
    # On validation zeros looks better (higher SI-SDRi), though it is far worse on test.
    assert best_trivial(board, items, {("zeros", "mixture", "x", "si_sdri"): 3.0,
                                              ("mixture", "mixture", "x", "si_sdri"): 0.0},
                        "mixture", "x", "si_sdri") == ("zeros", "validation")
    assert best_trivial(board, items, {}, "mixture", "x", "si_sdri") == ("mixture", "test")
    # A candidate without a validation score (e.g. trained on other data): chosen on test.
    assert best_trivial(board, items, {("zeros", "mixture", "x", "si_sdri"): 3.0},
                        "mixture", "x", "si_sdri") == ("mixture", "test")


# ------------------------------------------------------------- end to end, every suite
@pytest.fixture()
def scaled_mixture_method():
    """A method (not marked trivial) that returns the mixture times a small constant."""

    @register
    class SmallScaledMixture(ScaledMixture):
        name = "scaled_mixture_test"
        kind = "method"
        target_kinds = ("waveform", "rate")

        def __init__(self, scale: float | None = 0.05) -> None:
            super().__init__(scale)

    yield SmallScaledMixture.name
    _REGISTRY.pop(SmallScaledMixture.name, None)


@pytest.mark.parametrize("suite", ["sines", "triangles", "images", "mesa"])
def test_the_mixture_times_a_small_constant_never_separates(tmp_path, suite, scaled_mixture_method):
    trivial = ["mixture", "median_rate"] if suite == "mesa" else ["mixture", "zeros", "half_mixture"]
    run_suite(suite, RunConfig(profile="tiny", method_names=[*trivial, scaled_mixture_method], seeds=[0],
              results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", progress=False, signals=("ECG",)))
    board = pd.read_csv(tmp_path / "results" / suite / "tiny" / "leaderboard.csv", keep_default_na=False)
    mine = board[board["method"] == scaled_mixture_method]
    assert set(mine["kind"]) == {"method"}
    assert set(board[board["method"].isin(trivial)]["kind"]) == {"trivial"}
    verdict_cells = [v for v in mine["separates"] if v]
    assert verdict_cells, "the row got no verdict"
    assert all(v.startswith("0/") or v.startswith("too few") for v in verdict_cells)
    markdown = (tmp_path / "results" / suite / "tiny" / "leaderboard.md").read_text()
    assert "Does it separate?" in markdown and "| Separates |" in markdown
    if any(v.startswith("0/") for v in verdict_cells):
        assert f"`{scaled_mixture_method}` (blind) separates no target on any seed." in markdown


def test_trivial_rows_come_first_and_a_supervised_row_that_separates_is_called_so():
    from benchmark.report.leaderboard import ColumnSpec, markdown_table

    board, items, valid = _verdict_case([2.0, 2.0, 2.0])
    found, _ = verdicts(board, items, valid, "s", ("si_sdri",), lambda _: None, "test items")
    board["separates"] = ["", "", found["m", "mixture", "x"].separates]
    text = markdown_table(board, [ColumnSpec("X SI-SDRi", "mixture", "x", "si_sdri", 2)])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[1] for r in rows] == ["trivial", "trivial", "method"]
    assert rows[-1].endswith("| x 3/3 |")
    from benchmark.evaluation.verdicts import verdicts_markdown

    words = verdicts_markdown(found, lambda label: False, ("si_sdri",))
    assert "`m` (supervised) separates x on 3/3 seeds." in words
    assert methods.get("median_rate").supervised  # the constant-rate baseline reads labels


def test_psnr_uses_the_unit_data_range():
    from benchmark.evaluation.metrics import get_metric

    target = np.zeros((2, 8, 8))
    estimate = target + 0.1  # MSE 0.01 -> 20 dB for data range 1 (68 dB for 255)
    np.testing.assert_allclose(get_metric("psnr").per_item(estimate, target), [20.0, 20.0])


def test_mesa_intervals_and_tests_are_by_recording(tmp_path):
    """MESA pairs and resamples recordings, not segments: the groups reach the statistics."""
    import json

    from benchmark.core.store import ResultStore
    from benchmark.evaluation.scoring import item_groups
    from benchmark.suites import SuiteOptions, get_suite

    results, cache = tmp_path / "r", tmp_path / "c"
    run_suite("mesa", RunConfig(profile="tiny", method_names=["mixture", "ppg_riiv"], seeds=[0], results_dir=results,
              cache_dir=cache, progress=False, signals=("PPG",)))
    root = results / "mesa" / "tiny"
    manifest = json.loads((root / "manifest.json").read_text())
    recordings = manifest["data"]["summary"]["splits"]["test"]["recordings"]
    suite = get_suite("mesa")
    handle = suite.prepare("tiny", SuiteOptions(cache_dir=cache, signals=("PPG",), progress=False))
    store = ResultStore(root)
    records = list(store.records())
    arrays = {r["cell_id"]: store.load_arrays(r["cell_id"]) for r in records}
    data = store.load_report_data(handle.key)  # kept by the run: the report reopens no data
    assert data.rows and "fill_rate__PPG" in data.arrays
    groups = item_groups(data, "PPG", arrays)
    n_items = len(arrays["ppg_riiv__seed0"]["items__PPG__thoracic__mae_bpm"])
    assert groups is not None and len(groups) == n_items and set(groups) == set(recordings)
    board = pd.read_csv(root / "leaderboard.csv", keep_default_na=False)
    row = board[(board["method"] == "ppg_riiv") & (board["metric"] == "mae_bpm")].iloc[0]
    assert len(recordings) < MIN_GROUPS
    assert row["interval"] == "none: too few test recordings" and row["ci_low"] == ""
    filled = board[(board["method"] == "ppg_riiv") & (board["metric"] == "mae_bpm_filled")].iloc[0]
    assert filled["separates"] == "too few test recordings"  # the verdict is on the filled MAE


def test_paper_rows_of_a_method_get_no_verdict():
    from benchmark.evaluation.verdicts import separates_column

    board, items, valid = _verdict_case([2.0])
    paper = board.iloc[[2]].assign(source="paper")
    found, _ = verdicts(board, items, valid, "s", ("si_sdri",), lambda _: None, "test items")
    both = pd.concat([board, paper], ignore_index=True)
    assert separates_column(both, found) == ["", "", "1/1", ""]
