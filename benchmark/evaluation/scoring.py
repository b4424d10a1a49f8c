"""The shared scoring loop: every declared metric, with one assignment, into tidy score rows.

A suite maps a method's candidate outputs to its sources once (on validation data, with
:func:`benchmark.evaluation.assignment.assign`) and hands the mapped test estimates here; every metric
the suite declares (:mod:`benchmark.evaluation.metrics`) is computed with that same mapping. Each score
row carries the summary ``value`` and the number ``n`` of items behind it; the per-item values
come back too, so intervals and paired tests can be computed from the same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmark.core.report_data import TEST_GROUPS, ReportData, fill_rate_key, reference_key
from benchmark.evaluation.assignment import Assignment
from benchmark.evaluation.metrics import filled_rate_error, get_metric, si_sdr
from benchmark.evaluation.statistics import group_means


def item_key(input_name: str, target: str, metric: str, variant: str = "") -> str:
    """Array name of the per-item values of one score row (``items__ECG__thoracic__mae_bpm``)."""
    parts = ["items", input_name, target, metric] + ([variant.replace(" ", "_")] if variant else [])
    return "__".join(parts)


def score_row(input_name: str, target: str, metric: str, values: np.ndarray, variant: str = "", **extra: Any) -> dict[str, Any]:
    """One tidy score row from per-item values, summarised the way the metric says."""
    value, count = get_metric(metric).summary(np.asarray(values, dtype=np.float64))
    row = {"input": input_name, "target": target, "metric": metric, "value": value, "n": count}
    if count and value != value:
        row["note"] = f"{metric} is undefined on {count} item(s)"
    if variant:
        row["variant"] = variant
    row.update(extra)
    return row


def score_metrics(
    estimates: np.ndarray, targets: np.ndarray, metric_names: Sequence[str], input_name: str, target: str,
    variant: str = "",
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Every metric of ``metric_names`` for one (input, target) pair.

    Returns the score rows and the per-item values by :func:`item_key`.
    """
    rows, items = [], {}
    for name in metric_names:
        values = np.asarray(get_metric(name).per_item(estimates, targets), dtype=np.float64)
        rows.append(score_row(input_name, target, name, values, variant))
        items[item_key(input_name, target, name, variant)] = values.astype(np.float32)
    return rows, items


def score_sources(
    candidates: np.ndarray, targets: np.ndarray, assignment: Assignment, metric_names: Sequence[str],
    input_name: str = "mixture", variant: str = "",
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Apply one assignment to test candidates and score every source with every metric.

    Parameters
    ----------
    candidates : np.ndarray
        ``(n, K, *shape)`` test outputs in the method's order.
    targets : np.ndarray
        ``(n, S, *shape)`` true sources in ``assignment.source_names`` order.
    assignment : Assignment
        Candidate per source, solved beforehand (on validation data).
    metric_names : sequence of str
        Registered metrics to compute.

    Returns
    -------
    rows : list of dict
        One row per source x metric; a source no candidate serves gets NaN with ``n = 0``.
    items : dict
        Per-item values by :func:`item_key`.
    """
    estimates = assignment.apply(candidates)
    rows, items = [], {}
    for s, source in enumerate(assignment.source_names):
        if assignment.mapping[s] < 0:
            rows += [score_row(input_name, source, m, np.zeros(0), variant) for m in metric_names]
            continue
        source_rows, source_items = score_metrics(estimates[:, s], targets[:, s], metric_names, input_name, source, variant)
        rows += source_rows
        items.update(source_items)
    return rows, items


def derive_per_group(records: list[dict[str, Any]], arrays: dict[str, dict[str, np.ndarray]],
                     groups_for: Any) -> None:
    """Recompute, in place, every score of a per-group metric (``Metric.per_group_of``) from
    the stored per-item values of the metric it derives from and the item groups.

    For the MAE per recording: ``|mean over a recording's segments of (estimate - reference)|``,
    over the segments where both have a rate (the per-segment differences are NaN elsewhere),
    i.e. both rates averaged over the same segments. Scores whose source values or groups are
    missing are left as stored.
    """
    for record in records:
        cell = arrays.get(record["cell_id"], {})
        for score in record["scores"]:
            source = get_metric(score["metric"]).per_group_of
            if not source:
                continue
            variant = score.get("variant", "")
            key = item_key(score["input"], score["target"], source, variant)
            groups = groups_for(score["input"])
            if key not in cell or groups is None or len(groups) != len(cell[key]):
                continue
            values = np.abs(group_means(np.asarray(cell[key], dtype=np.float64), groups))
            score["value"], score["n"] = get_metric(score["metric"]).summary(values)
            cell[item_key(score["input"], score["target"], score["metric"], variant)] = values.astype(np.float32)


def item_groups(data: ReportData, input_name: str, arrays: dict[str, dict[str, np.ndarray]]) -> np.ndarray | None:
    """The group of each scored test item of ``input_name`` (items are test rows, stored by the cells
    as ``<input>__test_rows``), or ``None`` where the data declares no groups or no cell stores rows."""
    groups = data.arrays.get(TEST_GROUPS)
    rows = next((cell[f"{input_name}__test_rows"] for cell in arrays.values() if f"{input_name}__test_rows" in cell), None)
    if groups is None or rows is None:
        return None
    return np.asarray(groups)[np.asarray(rows)]


def derive_filled_rate_scores(records: list[dict[str, Any]], arrays: dict[str, dict[str, np.ndarray]],
                              data: ReportData) -> None:
    """Add, in place, the MAE with abstentions filled (``mae_bpm_filled``) of every rate row, from its
    stored per-segment differences (``bias_bpm`` items), the test reference rates and the fill rate
    the data declares (:mod:`benchmark.core.report_data`).

    Rows whose items, reference rates or finite fill rate are missing, or whose items do not match
    the reference rates in number, get none.
    """
    for record in records:
        cell = arrays.get(record["cell_id"], {})
        for score in [s for s in record["scores"] if s["metric"] == "bias_bpm"]:
            input_name, target, variant = score["input"], score["target"], score.get("variant", "")
            key = item_key(input_name, target, "bias_bpm", variant)
            target_rates = data.arrays.get(reference_key(input_name, target))
            fill = data.arrays.get(fill_rate_key(input_name))
            if key not in cell or target_rates is None or fill is None:
                continue
            if len(target_rates) != len(cell[key]) or not np.isfinite(fill):
                continue
            values = filled_rate_error(cell[key], target_rates, float(fill))
            record["scores"].append(score_row(input_name, target, "mae_bpm_filled", values, variant))
            cell[item_key(input_name, target, "mae_bpm_filled", variant)] = values.astype(np.float32)


DERIVED_METRICS = ("si_sdri",)
"""Metrics computed from other metrics' per-item values and the mixture, not from estimates."""


def si_sdri_rows(
    scores: list[dict[str, Any]], arrays: dict[str, np.ndarray], mixtures: np.ndarray, targets: np.ndarray,
    source_names: Sequence[str], input_name: str,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """SI-SDRi rows of every variant of ``scores``, from the stored per-item SI-SDR values.

    SI-SDRi of an item = its SI-SDR minus the SI-SDR of the test mixture against the same source
    (rounded to float32 like the stored values, so the mixture row is 0 exactly). A source
    without stored SI-SDR values gets a row with no items (NaN, ``n = 0``).
    """
    floor = {source: si_sdr(mixtures, targets[:, s]).astype(np.float32).astype(np.float64)
             for s, source in enumerate(source_names)}
    rows, items = [], {}
    for variant in dict.fromkeys(r.get("variant", "") for r in scores):
        for source in source_names:
            key = item_key(input_name, source, "si_sdr", variant)
            values = arrays[key].astype(np.float64) - floor[source] if key in arrays else np.zeros(0)
            rows.append(score_row(input_name, source, "si_sdri", values, variant))
            if len(values):
                items[item_key(input_name, source, "si_sdri", variant)] = values.astype(np.float32)
    return rows, items


ORACLE_VARIANT = "PIT oracle"
"""Label of the per-item best-permutation rows: an upper bound, not a blind result."""


def per_item_permutation(candidates: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For every item, the candidates that serve the sources with the lowest total MSE.

    The permutation-invariant-training (PIT) choice of the source-separation literature,
    made per item with the true sources, so it is an oracle. ``candidates`` is
    ``(n, K, *shape)``, ``targets`` ``(n, S, *shape)`` with ``K >= S``; returns ``(n, S)``
    candidate indices (all ordered choices of ``S`` of the ``K`` candidates are compared).
    """
    n, k = candidates.shape[:2]
    s = targets.shape[1]
    if k < s:
        raise ValueError(f"{k} candidates cannot serve {s} sources")
    c = np.asarray(candidates, dtype=np.float64).reshape(n, k, -1)
    t = np.asarray(targets, dtype=np.float64).reshape(n, s, -1)
    size = c.shape[2]
    cost = (t**2).mean(-1)[:, :, None] - 2 * np.einsum("nsp,nkp->nsk", t, c) / size + (c**2).mean(-1)[:, None, :]
    choices = np.array(list(itertools.permutations(range(k), s)))  # (P, S)
    totals = cost[:, np.arange(s)[None, :], choices].sum(axis=-1)  # (n, P)
    return choices[np.argmin(totals, axis=1)]


def score_oracle(
    candidates: np.ndarray, targets: np.ndarray, source_names: Sequence[str], metric_names: Sequence[str],
    input_name: str = "mixture",
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Every metric under the per-item best permutation (:func:`per_item_permutation`).

    Rows carry ``variant = "PIT oracle"``: comparable with papers that report PIT numbers,
    never with the fixed mapping chosen on validation (the benchmark's honest number).
    """
    best = per_item_permutation(candidates, targets)
    estimates = np.asarray(candidates)[np.arange(len(best))[:, None], best]
    rows, items = [], {}
    for index, source in enumerate(source_names):
        source_rows, source_items = score_metrics(
            estimates[:, index], targets[:, index], metric_names, input_name, source, ORACLE_VARIANT)
        rows += source_rows
        items.update(source_items)
    return rows, items
