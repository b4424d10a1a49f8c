"""Leaderboard intervals and paired comparisons, built from the cells' per-item values.

:func:`collect_items` gathers, for every leaderboard row, the per-item values of each of its
seeds; :func:`add_intervals` adds the bootstrap interval (``ci_low``, ``ci_high``) of every
row that has them; :func:`paired_comparisons` compares every method row with the best trivial
baseline and with the best other blind method on the suite's headline metrics. The
statistics themselves are in :mod:`benchmark.evaluation.statistics`, the verdicts in
:mod:`benchmark.evaluation.verdicts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmark.evaluation.metrics import get_metric
from benchmark.evaluation.scoring import item_key
from benchmark.evaluation.statistics import (
    MIN_GROUPS,
    bootstrap_interval,
    holm,
    n_units,
    paired_comparison,
    resample_weights,
    seed_mean,
    two_level_interval,
)
from benchmark.evaluation.verdicts import best_trivial

RowKey = tuple[str, str, str, str]  # (leaderboard method label, input, target, metric)
GroupsFor = Callable[[str], np.ndarray | None]

COMPARISON_COLUMNS = [
    "suite", "method", "input", "target", "metric", "versus", "versus_method", "pairing", "n_pairs",
    "mean_difference", "p_value", "rank_biserial", "p_holm",
]


def row_label(record: dict[str, Any], score: dict[str, Any]) -> str:
    """The leaderboard label of one score row (as :func:`benchmark.report.leaderboard.runs_frame` writes it)."""
    variant = score.get("variant", "")
    return record["label"] + (f" ({variant})" if variant else "")


def collect_items(records: list[dict[str, Any]], arrays: dict[str, dict[str, np.ndarray]]) -> tuple[dict[RowKey, list[np.ndarray]], dict[str, str]]:
    """Per-item values by leaderboard row (one array per seed), and each label's method name."""
    items: dict[RowKey, list[np.ndarray]] = {}
    methods: dict[str, str] = {}
    for record in sorted(records, key=lambda r: (r["label"], r["seed"])):
        cell = arrays.get(record["cell_id"], {})
        for score in record["scores"]:
            label = row_label(record, score)
            methods[label] = record["method"]
            key = item_key(score["input"], score["target"], score["metric"], score.get("variant", ""))
            if key in cell:
                items.setdefault((label, score["input"], score["target"], score["metric"]), []).append(np.asarray(cell[key]))
    return items, methods


def add_intervals(board: pd.DataFrame, items: dict[RowKey, list[np.ndarray]], groups_for: GroupsFor, pairing: str = "test items") -> pd.DataFrame:
    """``board`` with ``ci_low``/``ci_high`` and ``interval`` (how the interval was formed).

    Rows with one seed resample test items (or groups); rows with two or more seeds get the
    two-level bootstrap (seeds, then items within seeds). Empty where a row has no per-item
    values for every seed (paper rows, older cells), where its metric is a spread (limits of
    agreement), or where fewer than :data:`benchmark.evaluation.statistics.MIN_GROUPS` pairing units exist
    (``interval`` then says so).
    """
    board = board.copy()
    low, high = np.full(len(board), np.nan), np.full(len(board), np.nan)
    kind = [""] * len(board)
    weights: dict[tuple[str, int], np.ndarray] = {}
    for position, row in enumerate(board.itertuples(index=False)):
        if row.source != "measured":
            continue
        values = items.get((row.method, row.input, row.target, row.metric))
        if not values or len(values) != row.n_seeds or len({len(v) for v in values}) != 1:
            continue
        how = get_metric(row.metric).interval
        if not how:
            continue  # a spread-based summary (limits of agreement): no mean to resample
        n_items = len(values[0])
        groups = _groups(groups_for, row.input, n_items)
        if n_units(n_items, groups) < MIN_GROUPS:
            kind[position] = f"none: too few {pairing}"
            continue
        if len(values) >= 2:
            low[position], high[position] = two_level_interval(values, groups)
            kind[position] = f"seeds, then {pairing}"
        else:
            if (row.input, n_items) not in weights:
                weights[row.input, n_items] = resample_weights(n_items, groups)
            low[position], high[position] = bootstrap_interval(values, weights[row.input, n_items])
            kind[position] = pairing
        if how == "root_mean":
            low[position], high[position] = np.sqrt(low[position]), np.sqrt(high[position])
    board["ci_low"], board["ci_high"], board["interval"] = low, high, kind
    return board


def _groups(groups_for: GroupsFor, input_name: str, n_items: int) -> np.ndarray | None:
    groups = groups_for(input_name)
    return groups if groups is not None and len(groups) == n_items else None


def paired_comparisons(
    board: pd.DataFrame, items: dict[RowKey, list[np.ndarray]], methods: dict[str, str],
    valid: dict[RowKey, float], suite_name: str, headline_metrics: tuple[str, ...], groups_for: GroupsFor,
    is_blind: Callable[[str], bool], pairing: str,
) -> pd.DataFrame:
    """Every method row against the best trivial baseline and the best other blind method.

    The best trivial baseline is chosen on validation (:func:`benchmark.evaluation.verdicts.best_trivial`);
    the best other blind method is the ``method`` row, of another blind method, with the best
    leaderboard mean for the same input, target and metric. Pairs are the per-item seed-means of
    both rows (or, with groups, the groups' means); the seeds' own tests are in the verdicts.
    Two-sided Wilcoxon p-values, Holm-corrected over the whole table (``p_holm``); no test
    where fewer than :data:`benchmark.evaluation.statistics.MIN_GROUPS` pairing units exist.
    """
    measured = board[(board["source"] == "measured").to_numpy() & board["metric"].isin(headline_metrics).to_numpy()]
    out = []
    for row in measured.itertuples(index=False):
        key = (row.method, row.input, row.target, row.metric)
        if row.kind != "method" or key not in items:
            continue
        metric = get_metric(row.metric)
        same = measured[(measured["input"] == row.input) & (measured["target"] == row.target) & (measured["metric"] == row.metric)]
        rivals = same[[
            k == "method" and m != row.method and methods.get(m) not in (None, methods.get(row.method)) and is_blind(methods[m])
            and (m, row.input, row.target, row.metric) in items
            for m, k in zip(same["method"], same["kind"], strict=True)
        ]].dropna(subset=["mean"])
        comparators = []
        trivial = best_trivial(board, items, valid, row.input, row.target, row.metric)
        if trivial is not None:
            comparators.append((f"best trivial ({trivial[1]})", trivial[0]))
        if not rivals.empty:
            best = rivals.sort_values("mean", ascending=not metric.higher_is_better).iloc[0]["method"]
            comparators.append(("best other blind", best))
        for versus, other in comparators:
            a = seed_mean(items[key])
            b = seed_mean(items[other, row.input, row.target, row.metric])
            if len(a) != len(b):
                continue
            groups = _groups(groups_for, row.input, len(a))
            if n_units(len(a), groups) < MIN_GROUPS:
                continue
            result = paired_comparison(a, b, groups, metric.higher_is_better)
            out.append({
                "suite": suite_name, "method": row.method, "input": row.input, "target": row.target,
                "metric": row.metric, "versus": versus, "versus_method": other, "pairing": pairing,
                "n_pairs": result.n_pairs, "mean_difference": result.mean_difference,
                "p_value": result.p_value, "rank_biserial": result.rank_biserial,
            })
    table = pd.DataFrame(out, columns=COMPARISON_COLUMNS)
    table["p_holm"] = holm(table["p_value"].to_numpy()) if len(table) else np.zeros(0)
    return table


def comparisons_markdown(comparisons: pd.DataFrame, metric: str, pairing: str) -> str:
    """A markdown section for one headline metric: each method row against the best trivial
    baseline and the best other blind method."""
    table = comparisons[comparisons["metric"] == metric]
    if table.empty:
        return ""
    spec = get_metric(metric)
    lines = [
        "",
        f"## Paired comparisons: {spec.label} ({metric})",
        "",
        f"Two-sided Wilcoxon signed-rank test over the {pairing} (scipy), per-item values averaged over "
        "seeds (each seed's own test is in `verdicts.csv`); p Holm-corrected over every comparison of "
        "this leaderboard; Δ = row − comparator (negative is better for ↓ metrics); r = matched-pairs "
        "rank-biserial correlation, positive when the row is better. The best trivial baseline is "
        "chosen on validation. `comparisons.csv` has every headline metric.",
        "",
        "| Method | Input | Target | vs | Δ | p (Holm) | r | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        versus = f"{row.versus}: {row.versus_method}"
        lines.append(
            f"| {row.method} | {row.input} | {row.target} | {versus} | {_number(row.mean_difference, spec.digits)} | "
            f"{_p(row.p_holm)} | {_number(row.rank_biserial, 2)} | {row.n_pairs} |"
        )
    return "\n".join(lines) + "\n"


def _number(value: float, digits: int) -> str:
    return "—" if not np.isfinite(value) else f"{value:+.{digits}f}"


def _p(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    return "<0.001" if value < 1e-3 else f"{value:.3f}"
