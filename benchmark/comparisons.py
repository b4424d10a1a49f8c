"""Leaderboard intervals and paired comparisons, built from the cells' per-item values.

:func:`collect_items` gathers, for every leaderboard row, the per-item values of each of its
seeds; :func:`add_intervals` adds the bootstrap interval (``ci_low``, ``ci_high``) of every
row that has them; :func:`paired_comparisons` compares every measured row with the floor
(the mixture as estimate) and with the best other blind method on the suite's headline
metrics. The statistics themselves are in :mod:`benchmark.statistics`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics import get_metric
from benchmark.scoring import ORACLE_VARIANT, item_key
from benchmark.statistics import (
    N_BOOTSTRAP,
    bootstrap_interval,
    paired_comparison,
    resample_weights,
    seed_mean,
)

RowKey = tuple[str, str, str, str]  # (leaderboard method label, input, target, metric)
GroupsFor = Callable[[str], np.ndarray | None]

COMPARISON_COLUMNS = [
    "suite", "method", "input", "target", "metric", "versus", "versus_method", "pairing", "n_pairs",
    "mean_difference", "p_value", "rank_biserial",
]


def row_label(record: dict[str, Any], score: dict[str, Any]) -> str:
    """The leaderboard label of one score row (as :func:`benchmark.leaderboard.runs_frame` writes it)."""
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


def add_intervals(board: pd.DataFrame, items: dict[RowKey, list[np.ndarray]], groups_for: GroupsFor) -> pd.DataFrame:
    """``board`` with ``ci_low``/``ci_high``: the bootstrap interval of every measured row whose
    every seed stored its per-item values (empty otherwise: paper rows, older cells)."""
    board = board.copy()
    low, high = np.full(len(board), np.nan), np.full(len(board), np.nan)
    weights: dict[tuple[str, int], np.ndarray] = {}
    for position, row in enumerate(board.itertuples(index=False)):
        if row.source != "measured":
            continue
        values = items.get((row.method, row.input, row.target, row.metric))
        if not values or len(values) != row.n_seeds or len({len(v) for v in values}) != 1:
            continue
        n_items = len(values[0])
        if (row.input, n_items) not in weights:
            weights[row.input, n_items] = resample_weights(n_items, _groups(groups_for, row.input, n_items))
        how = get_metric(row.metric).interval
        if not how:
            continue  # a spread-based summary (limits of agreement): no mean to resample
        low[position], high[position] = bootstrap_interval(values, weights[row.input, n_items])
        if how == "root_mean":
            low[position], high[position] = np.sqrt(low[position]), np.sqrt(high[position])
    board["ci_low"], board["ci_high"] = low, high
    return board


def _groups(groups_for: GroupsFor, input_name: str, n_items: int) -> np.ndarray | None:
    groups = groups_for(input_name)
    return groups if groups is not None and len(groups) == n_items else None


def paired_comparisons(
    board: pd.DataFrame, items: dict[RowKey, list[np.ndarray]], methods: dict[str, str], suite_name: str,
    headline_metrics: tuple[str, ...], groups_for: GroupsFor, is_blind: Callable[[str], bool],
    pairing: str, floor: str = "mixture",
) -> pd.DataFrame:
    """Every measured row against the floor and the best other blind method, per headline metric.

    The best other blind method is the measured row, of another method that is blind and not an
    oracle, with the best leaderboard mean for the same input, target and metric. Pairs are
    the per-item seed-means of both rows (or, with groups, the groups' means).
    """
    measured = board[(board["source"] == "measured") & board["metric"].isin(headline_metrics)]
    out = []
    for row in measured.itertuples(index=False):
        key = (row.method, row.input, row.target, row.metric)
        if key not in items or row.method.endswith(f"({ORACLE_VARIANT})"):
            continue
        metric = get_metric(row.metric)
        same = measured[(measured["input"] == row.input) & (measured["target"] == row.target) & (measured["metric"] == row.metric)]
        rivals = same[[
            m != row.method and methods.get(m) not in (None, methods.get(row.method)) and is_blind(methods[m])
            and not m.endswith(f"({ORACLE_VARIANT})") and (m, row.input, row.target, row.metric) in items
            for m in same["method"]
        ]].dropna(subset=["mean"])
        comparators = []
        if row.method != floor and (floor, row.input, row.target, row.metric) in items:
            comparators.append(("floor", floor))
        if not rivals.empty:
            best = rivals.sort_values("mean", ascending=not metric.higher_is_better).iloc[0]["method"]
            comparators.append(("best other blind", best))
        for versus, other in comparators:
            a = seed_mean(items[key])
            b = seed_mean(items[other, row.input, row.target, row.metric])
            if len(a) != len(b):
                continue
            result = paired_comparison(a, b, _groups(groups_for, row.input, len(a)), metric.higher_is_better)
            out.append({
                "suite": suite_name, "method": row.method, "input": row.input, "target": row.target,
                "metric": row.metric, "versus": versus, "versus_method": other, "pairing": pairing,
                "n_pairs": result.n_pairs, "mean_difference": result.mean_difference,
                "p_value": result.p_value, "rank_biserial": result.rank_biserial,
            })
    return pd.DataFrame(out, columns=COMPARISON_COLUMNS)


def comparisons_markdown(comparisons: pd.DataFrame, metric: str, pairing: str) -> str:
    """A markdown section for one headline metric: each row against the floor and the best other blind method."""
    table = comparisons[comparisons["metric"] == metric]
    if table.empty:
        return ""
    spec = get_metric(metric)
    lines = [
        "",
        f"## Paired comparisons: {spec.label} ({metric})",
        "",
        f"Wilcoxon signed-rank test over the {pairing} (scipy), per-item values averaged over seeds; "
        "Δ = row − comparator (negative is better for ↓ metrics); r = matched-pairs rank-biserial "
        "correlation, positive when the row is better. Intervals in the table above: 95 % percentile "
        f"bootstrap over the {pairing} ({N_BOOTSTRAP} resamples, seeds pooled). `comparisons.csv` has "
        "every headline metric.",
        "",
        "| Method | Input | Target | vs | Δ | p | r | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        versus = "floor" if row.versus == "floor" else f"best blind: {row.versus_method}"
        lines.append(
            f"| {row.method} | {row.input} | {row.target} | {versus} | {_number(row.mean_difference, spec.digits)} | "
            f"{_p(row.p_value)} | {_number(row.rank_biserial, 2)} | {row.n_pairs} |"
        )
    return "\n".join(lines) + "\n"


def _number(value: float, digits: int) -> str:
    return "—" if not np.isfinite(value) else f"{value:+.{digits}f}"


def _p(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    return "<0.001" if value < 1e-3 else f"{value:.3f}"
