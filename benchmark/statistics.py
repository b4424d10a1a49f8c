"""Intervals and paired tests from the per-item values every cell stores.

Each finished cell keeps, for every score row, the values of its test items
(:func:`benchmark.scoring.item_key`); the leaderboard value is their mean over the finite
items. Two questions are answered from them:

* **How sure is a number?** A 95 % percentile bootstrap over test items: items are resampled
  with replacement (or whole groups of items, where items of one group are dependent: the
  segments of one recording), the seed-mean of the score recomputed on each resample. Seeds
  are pooled, not resampled: their spread is the ``std`` column.
* **Is a difference real?** The Wilcoxon signed-rank test (scipy) on paired values of the
  same test items (or of the same groups' means), with the matched-pairs rank-biserial
  correlation as effect size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata, wilcoxon

N_BOOTSTRAP = 1000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


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
    pooled = np.mean(statistics, axis=0)
    pooled = pooled[np.isfinite(pooled)]
    if not pooled.size:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(pooled, [tail, 100 - tail])
    return float(low), float(high)


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
) -> PairedResult:
    """Wilcoxon signed-rank test of ``row`` against ``comparator`` (per-item seed-means).

    With ``groups``, each group's mean is one pair (items of a group are not independent).
    Pairs where either side has no value are dropped. Zero differences are dropped as in
    Wilcoxon's original test; with no non-zero difference the p-value is 1.
    """
    a, b = group_means(row, groups), group_means(comparator, groups)
    both = np.isfinite(a) & np.isfinite(b)
    diff = a[both] - b[both]
    if not diff.size:
        return PairedResult(0, float("nan"), float("nan"), float("nan"))
    nonzero = diff[diff != 0]
    if not nonzero.size:
        return PairedResult(int(diff.size), 0.0, 1.0, 0.0)
    p_value = float(wilcoxon(nonzero).pvalue) if nonzero.size > 1 else 1.0
    ranks = rankdata(np.abs(nonzero))
    signed = (ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum()
    return PairedResult(int(diff.size), float(diff.mean()), p_value, float(signed if higher_is_better else -signed))
