"""Intervals, paired tests, the metric registry's SI-SDR, and --verify: values, not shapes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from benchmark.evaluation.comparisons import add_intervals, paired_comparisons
from benchmark.evaluation.metrics import get_metric, si_sdr
from benchmark.evaluation.statistics import (
    bootstrap_interval,
    group_means,
    paired_comparison,
    resample_weights,
    seed_mean,
)


# ------------------------------------------------------------------------ SI-SDR
def test_si_sdr_matches_an_independent_least_squares_computation():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(5, 200))
    estimates = 0.7 * targets + 0.3 * rng.normal(size=(5, 200)) + 2.0
    expected = []
    for e, t in zip(estimates, targets, strict=True):
        e, t = e - e.mean(), t - t.mean()
        scale, *_ = np.linalg.lstsq(t[:, None], e, rcond=None)  # the projection, by least squares
        target_part = scale[0] * t
        expected.append(10 * np.log10(np.sum(target_part**2) / np.sum((e - target_part) ** 2)))
    np.testing.assert_allclose(si_sdr(estimates, targets), expected, rtol=1e-9)
    # Scale- and offset-invariant: a scaled, shifted estimate scores the same.
    np.testing.assert_allclose(si_sdr(3 * estimates - 1, targets), expected, rtol=1e-9)
    assert get_metric("si_sdr").higher_is_better and get_metric("mse").arrow == "↓"


def test_unknown_metric_names_the_registered_ones():
    with pytest.raises(KeyError, match="registered: .*mse"):
        get_metric("no_such_metric")


# --------------------------------------------------------------------- bootstrap
def test_bootstrap_interval_covers_the_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    weights = resample_weights(200, None, n_boot=400, seed=3)
    covered = 0
    for _ in range(200):
        values = rng.exponential(2.0, size=200)  # true mean 2
        low, high = bootstrap_interval([values], weights)
        covered += low <= 2.0 <= high
    assert 0.88 <= covered / 200 <= 0.99


def test_bootstrap_interval_ignores_nan_items_and_pools_seeds():
    values = np.array([1.0, 2.0, np.nan, 3.0])
    weights = np.ones((1, 4))  # the sample itself
    assert bootstrap_interval([values], weights) == pytest.approx((2.0, 2.0))
    assert bootstrap_interval([values, values + 2], weights) == pytest.approx((3.0, 3.0))
    assert np.isnan(bootstrap_interval([np.full(4, np.nan)], weights)[0])


def test_grouped_resampling_draws_whole_groups():
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    weights = resample_weights(6, groups, n_boot=50, seed=0)
    assert np.all(weights[:, 0] == weights[:, 1]) and np.all(weights[:, 1] == weights[:, 2])
    assert np.all(weights[:, 4] == weights[:, 5])
    # 3 groups drawn per resample: the a-weight counts a's draws once per item.
    assert np.all(weights[:, [0, 3, 4]].sum(axis=1) == 3)


def test_group_means_and_seed_mean():
    np.testing.assert_allclose(group_means(np.array([1.0, 3.0, np.nan, 5.0]), np.array([0, 0, 1, 1])), [2.0, 5.0])
    np.testing.assert_allclose(seed_mean([np.array([1.0, np.nan]), np.array([3.0, np.nan])]), [2.0, np.nan])


# ------------------------------------------------------------------ paired tests
def test_paired_comparison_is_scipys_wilcoxon_with_an_oriented_effect_size():
    rng = np.random.default_rng(2)
    a = rng.normal(0.10, 0.02, size=60)
    b = a + rng.normal(0.01, 0.01, size=60)  # b is worse on a lower-is-better metric
    result = paired_comparison(a, b, None, higher_is_better=False)
    assert result.p_value == pytest.approx(wilcoxon(a - b).pvalue)
    assert result.mean_difference == pytest.approx(np.mean(a - b))
    assert result.rank_biserial > 0.5  # a is better
    flipped = paired_comparison(a, b, None, higher_is_better=True)
    assert flipped.rank_biserial == pytest.approx(-result.rank_biserial)
    same = paired_comparison(a, a.copy(), None, higher_is_better=False)
    assert same.p_value == 1.0 and same.rank_biserial == 0.0


def test_paired_comparison_pairs_group_means_when_items_are_dependent():
    a = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    b = np.array([2.0, 2.0, 2.0, 3.0, 3.0])
    result = paired_comparison(a, b, np.array([0, 0, 0, 1, 1]), higher_is_better=False)
    assert result.n_pairs == 2 and result.mean_difference == pytest.approx(-1.0)


def _board(rows):
    return pd.DataFrame([
        {"suite": "s", "method": m, "input": "mixture", "target": "x", "metric": "mse", "mean": mean,
         "std": np.nan, "n_seeds": 1, "source": "measured"} for m, mean in rows
    ])


def test_comparisons_pick_the_best_trivial_on_validation_and_the_best_other_blind_method():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.1, 0.2, size=50)
    items = {
        ("mixture", "mixture", "x", "mse"): [base],
        ("half_mixture", "mixture", "x", "mse"): [base - 0.01],
        ("good", "mixture", "x", "mse"): [base - 0.05],
        ("better", "mixture", "x", "mse"): [base - 0.08],
        ("oracle_like", "mixture", "x", "mse"): [base - 0.1],
    }
    board = _board([("mixture", base.mean()), ("half_mixture", (base - 0.01).mean()), ("good", (base - 0.05).mean()),
                    ("better", (base - 0.08).mean()), ("oracle_like", (base - 0.1).mean())])
    board["kind"] = ["trivial", "trivial", "method", "method", "method"]
    labels = {m: m for m in board["method"]}
    # On validation the mixture is the better trivial estimate: it is the comparator, although
    # half_mixture is better on test.
    valid = {("mixture", "mixture", "x", "mse"): 0.1, ("half_mixture", "mixture", "x", "mse"): 0.2}
    table = paired_comparisons(board, items, labels, valid, "s", ("mse",), lambda _: None,
                               is_blind=lambda m: m != "oracle_like", pairing="test items")
    good = table[table["method"] == "good"].set_index("versus")
    assert good.loc["best trivial (validation)", "versus_method"] == "mixture"
    assert good.loc["best trivial (validation)", "mean_difference"] == pytest.approx(-0.05)
    assert good.loc["best other blind", "versus_method"] == "better"  # not the supervised one
    assert good.loc["best other blind", "p_value"] < 1e-6
    assert set(table["method"]) == {"good", "better", "oracle_like"}  # trivial rows are not compared
    # Holm: the adjusted p-values are the raw ones times the number of tests still in play, monotone.
    ordered = table.sort_values("p_value")
    m = len(ordered)
    expected = np.maximum.accumulate(np.minimum(1, ordered["p_value"].to_numpy() * np.arange(m, 0, -1)))
    np.testing.assert_allclose(ordered["p_holm"].to_numpy(), expected)


def test_intervals_only_for_rows_whose_every_seed_has_items():
    board = _board([("a", 1.0), ("b", 2.0)])
    board.loc[1, "n_seeds"] = 2
    items = {("a", "mixture", "x", "mse"): [np.linspace(0, 2, 40)], ("b", "mixture", "x", "mse"): [np.ones(40)]}
    out = add_intervals(board, items, lambda _: None)
    assert out.loc[0, "ci_low"] < 1.0 < out.loc[0, "ci_high"]
    assert np.isnan(out.loc[1, "ci_low"])  # one of its two seeds lacks per-item values


# -------------------------------------------------------------------------- verify
def test_verify_recomputes_and_catches_a_tampered_value(tmp_path):
    from benchmark.cli import main
    from benchmark.run.config import RunConfig
    from benchmark.run.runner import run_suite

    results, cache = tmp_path / "results", tmp_path / "cache"
    run_suite("sines", RunConfig(profile="tiny", method_names=["pca", "mixture"], seeds=[0], results_dir=results,
              cache_dir=cache, progress=False))
    args = ["--suite", "sines", "--profile", "tiny", "--verify", "2", "--results-dir", str(results),
            "--cache-dir", str(cache), "--no-progress"]
    assert main(args) == 0
    table = pd.read_csv(cache / "verify" / "sines" / "tiny" / "verify.csv")
    assert table["agrees"].all() and table["abs_diff"].max() == 0.0
    assert set(table["cell_id"]) == {"pca__seed0", "mixture__seed0"}

    cell = results / "sines" / "tiny" / "cells" / "pca__seed0.json"
    record = json.loads(cell.read_text())
    record["scores"][0]["value"] *= 1.01
    cell.write_text(json.dumps(record))
    assert main(args) == 1
