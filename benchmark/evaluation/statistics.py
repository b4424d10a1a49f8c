"""Intervals and paired tests from the per-item values every cell stores.

Each finished cell keeps, for every score row, the values of its test items
(:func:`benchmark.evaluation.scoring.item_key`); the leaderboard value is their mean over the finite
items. Two questions are answered from them:

* **How sure is a number?** A 95 % percentile bootstrap. With one seed, test items are
  resampled with replacement (or whole groups of items, where items of one group are
  dependent: the segments of one recording). With two or more seeds it has two levels
  (:func:`two_level_interval`): seeds are resampled, then the test items (or groups) that
  every seed scores, so the interval covers training randomness as well as the choice of
  test items.
  Fewer than :data:`MIN_GROUPS` pairing units give no interval and no test.
* **Is a difference real?** The Wilcoxon signed-rank test (scipy) on paired values of the
  same test items (or of the same groups' means), with the matched-pairs rank-biserial
  correlation as effect size; p-values of one table are Holm-corrected
  (:func:`holm`, statsmodels' ``multipletests``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata, wilcoxon

N_BOOTSTRAP = 1000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
MIN_GROUPS = 5
"""Fewest independent pairing units (test items, or recordings) an interval or a test needs."""
ALPHA = 0.05
"""Family-wise error rate of the Holm-corrected tests of one table."""


def n_units(n_items: int, groups: np.ndarray | None) -> int:
    """Independent pairing units among ``n_items`` items: the items, or their distinct groups."""
    return n_items if groups is None else len(np.unique(np.asarray(groups)))


def resample_weights(n_items: int, groups: np.ndarray | None, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """``(n_boot, n_items)`` weights: how often each item is drawn in each bootstrap resample.

    With ``groups`` (one label per item), whole groups are drawn with replacement and every
    item of a drawn group gets its group's count; otherwise every item is its own group.
    The draws depend only on ``seed`` and the grouping, so every row of a leaderboard (and
    every rerun) uses the same resamples.
    """
    if groups is None:
        index = np.arange(n_items)
    else:
        _, index = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(index.max()) + 1 if n_items else 0
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot) if n_groups else np.zeros((n_boot, 0))
    return counts[:, index].astype(np.float64)


def percentile_interval(statistic: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of the finite resampled statistics (NaN if none)."""
    statistic = np.asarray(statistic, dtype=np.float64)
    statistic = statistic[np.isfinite(statistic)]
    if not statistic.size:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(statistic, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(values_by_seed: Sequence[np.ndarray], weights: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the seed-mean of the finite-item mean under resampling ``weights``.

    ``values_by_seed`` holds one ``(n_items,)`` array per seed, items in the same order (the
    same test items); NaN marks an item without a value. Returns ``(nan, nan)`` when a
    resample has no finite item for some seed too often to say anything (no finite value).
    """
    statistics = []
    for values in values_by_seed:
        values = np.asarray(values, dtype=np.float64)
        if values.shape[0] != weights.shape[1]:
            raise ValueError(f"{values.shape[0]} item values for {weights.shape[1]} resampling weights")
        finite = np.isfinite(values)
        if not finite.any():
            return float("nan"), float("nan")
        w = weights * finite
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            statistics.append((w @ np.where(finite, values, 0.0)) / total)
    return percentile_interval(np.mean(statistics, axis=0), confidence)


def two_level_interval(
    values_by_seed: Sequence[np.ndarray], groups: np.ndarray | None, confidence: float = CONFIDENCE,
    n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile interval of the seed-mean under a two-level bootstrap: seeds, then items.

    Each resample draws as many seeds as there are, with replacement, then one resample of the
    test items (whole groups with ``groups``), applied to every drawn seed: every seed scores
    the same test items, so items are crossed with seeds, not nested in them (resampling them
    per seed would shrink the item part of the interval by the square root of the number of
    seeds). The statistic is the mean over the drawn seeds of their finite-item means. With
    identical seeds this is the item bootstrap; with seeds that disagree it covers their spread.
    """
    stacked = np.vstack([np.asarray(v, dtype=np.float64) for v in values_by_seed])
    n_seeds, n_items = stacked.shape
    if not n_items:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    drawn_seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    weights = resample_weights(n_items, groups, n_boot, seed + 1)  # (n_boot, n_items)
    finite = np.isfinite(stacked)
    values = np.where(finite, stacked, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = (weights @ values.T) / (weights @ finite.T.astype(np.float64))  # (n_boot, n_seeds)
        statistic = np.take_along_axis(per_seed, drawn_seeds, axis=1).mean(axis=1)
    return percentile_interval(statistic, confidence)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels ``multipletests``); NaN entries stay NaN and are not counted."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], alpha=ALPHA, method="holm")[1]
    return adjusted


def seed_mean(values_by_seed: Sequence[np.ndarray]) -> np.ndarray:
    """Per-item mean over seeds (NaN where no seed has a value)."""
    stacked = np.vstack([np.asarray(v, dtype=np.float64) for v in values_by_seed])
    finite = np.isfinite(stacked)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(finite, stacked, 0.0).sum(axis=0) / count, np.nan)


def group_means(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Mean of the finite values of each group (groups in sorted order); the values themselves without groups."""
    if groups is None:
        return np.asarray(values, dtype=np.float64)
    labels, index = np.unique(np.asarray(groups), return_inverse=True)
    finite = np.isfinite(values)
    sums = np.bincount(index, weights=np.where(finite, values, 0.0), minlength=len(labels))
    counts = np.bincount(index, weights=finite.astype(np.float64), minlength=len(labels))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of a row with another on the same test items (or groups).

    ``mean_difference`` is row minus comparator in the metric's unit; ``rank_biserial`` is
    oriented so that a positive value means the row is better (the metric's direction).
    """

    n_pairs: int
    mean_difference: float
    p_value: float
    rank_biserial: float


def paired_comparison(
    row: np.ndarray, comparator: np.ndarray, groups: np.ndarray | None, higher_is_better: bool,
    one_sided: bool = False,
) -> PairedResult:
    """Wilcoxon signed-rank test of ``row`` against ``comparator`` (per-item seed-means).

    With ``groups``, each group's mean is one pair (items of a group are not independent).
    Pairs where either side has no value are dropped. Zero differences are dropped as in
    Wilcoxon's original test; with no non-zero difference the p-value is 1. ``one_sided``
    tests whether the row is better (in the metric's direction) instead of different.
    """
    a, b = group_means(row, groups), group_means(comparator, groups)
    both = np.isfinite(a) & np.isfinite(b)
    diff = a[both] - b[both]
    if not diff.size:
        return PairedResult(0, float("nan"), float("nan"), float("nan"))
    nonzero = diff[diff != 0]
    if not nonzero.size:
        return PairedResult(int(diff.size), 0.0, 1.0, 0.0)
    alternative = "two-sided" if not one_sided else ("greater" if higher_is_better else "less")
    p_value = float(wilcoxon(nonzero, alternative=alternative).pvalue) if nonzero.size > 1 else 1.0
    ranks = rankdata(np.abs(nonzero))
    signed = (ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum()
    return PairedResult(int(diff.size), float(diff.mean()), p_value, float(signed if higher_is_better else -signed))
