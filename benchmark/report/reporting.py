"""Reporting: runs.csv, leaderboard.csv/.md, manifest.json and figures from finished cells."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.core.data_handle import DataHandle
from benchmark.core.environment import describe_device, environment_info, package_versions
from benchmark.core.errors import BenchmarkError
from benchmark.core.provenance import stale_reasons, summarize
from benchmark.core.report_data import ReportData
from benchmark.core.report_layout import ReportLayout
from benchmark.core.store import ResultStore, atomic_write_json, atomic_write_text
from benchmark.evaluation.comparisons import (
    add_intervals,
    collect_items,
    comparisons_markdown,
    paired_comparisons,
    row_label,
)
from benchmark.evaluation.scoring import (
    derive_filled_rate_scores,
    derive_per_group,
    item_groups,
)
from benchmark.evaluation.verdicts import (
    separates_column,
    validation_scores,
    verdicts,
    verdicts_markdown,
)
from benchmark.report import leaderboard as lb
from benchmark.report.markdown import render_leaderboard
from benchmark.report.suite_figures import draw_figures

log = logging.getLogger("bss_bench")


@dataclass
class RunSummary:
    """What a run did."""

    suite: str
    profile: str
    results_dir: Path
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    stale: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    execution: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoredBoard:
    """The measured leaderboard of a store with everything verdicts and comparisons read."""

    board: pd.DataFrame
    items: dict
    labels: dict[str, str]
    valid: dict
    records: list[dict]
    arrays: dict[str, dict]
    stale: dict[str, list[str]]
    runs: pd.DataFrame
    groups_for: Any
    data: ReportData
    layout: ReportLayout


def scored_board(suite_name: str, store: ResultStore, handle: DataHandle) -> ScoredBoard:
    """Read every finished cell of ``suite_name`` on ``handle``'s data from ``store``, derive the
    report-time scores and aggregate them into the tidy leaderboard with row kinds.

    Everything comes from the store: the cells, and the report data and layout the run kept for
    the data set (:mod:`benchmark.core.report_data`)."""
    data = store.load_report_data(handle.key)
    if data.layout is None:
        raise BenchmarkError(f"{store.report_data_path(handle.key)}: no report layout; run the suite once to write it")
    records = [r for r in store.records() if r.get("suite") == suite_name and r.get("data_key") == handle.key]
    current = package_versions()
    stale = {r["cell_id"]: reasons for r in records if (reasons := stale_reasons(r, current))}
    arrays = {r["cell_id"]: store.load_arrays(r["cell_id"]) for r in records}

    @functools.cache
    def groups_for(input_name: str):  # asked once per row and comparison: found once per input
        return item_groups(data, input_name, arrays)

    derive_per_group(records, arrays, groups_for)  # per-recording scores from the per-segment values
    derive_filled_rate_scores(records, arrays, data)
    runs = lb.runs_frame(records, stale)
    board = lb.aggregate(runs, data.layout.reference_rows, data.rows)
    items, labels = collect_items(records, arrays)
    return ScoredBoard(board, items, labels, validation_scores(records, row_label), records, arrays, stale, runs,
                       groups_for, data, data.layout)


def rebuild_outputs(suite_name: str, profile: str, store: ResultStore, handle: DataHandle, summary: RunSummary, device: str, command: str) -> None:
    """Write runs.csv, leaderboard.csv/.md, manifest.json and figures from every finished cell."""
    scored = scored_board(suite_name, store, handle)
    board, items, labels, valid = scored.board, scored.items, scored.labels, scored.valid
    records, arrays, stale, runs, groups_for = scored.records, scored.arrays, scored.stale, scored.runs, scored.groups_for
    layout = scored.layout
    board = add_intervals(board, items, groups_for, layout.pairing_unit)
    found, tests = verdicts(board, items, valid, suite_name, layout.verdict_metrics, groups_for, layout.pairing_unit)
    board["separates"] = separates_column(board, found)
    board["converged"] = convergence_column(board, records)
    headline_metrics = layout.headline_metrics or layout.metrics
    blind = {r["method"]: not r.get("supervised", False) for r in records}
    comparisons = paired_comparisons(
        board, items, labels, valid, suite_name, headline_metrics, groups_for,
        lambda method: blind.get(method, False), layout.pairing_unit,
    )
    atomic_write_text(store.root / "runs.csv", runs[lb.RUN_COLUMNS].to_csv(index=False))
    atomic_write_text(store.root / "leaderboard.csv", board[lb.LEADERBOARD_COLUMNS].to_csv(index=False))
    atomic_write_text(store.root / "comparisons.csv", comparisons.to_csv(index=False))
    atomic_write_text(store.root / "verdicts.csv", tests.to_csv(index=False))

    manifest = build_manifest(suite_name, profile, records, handle, summary, device, command)
    manifest["provenance"] = summarize(records, stale)
    atomic_write_json(store.root / "manifest.json", manifest)
    verdict_metric = next((m for m in layout.verdict_metrics if m in headline_metrics), headline_metrics[0])
    markdown = (
        render_leaderboard(board, layout, manifest)
        + verdicts_markdown(found, lambda label: blind.get(labels.get(label, ""), False), tuple(layout.metrics))
        + comparisons_markdown(comparisons, verdict_metric, layout.pairing_unit)
    )
    atomic_write_text(store.root / "leaderboard.md", markdown)
    if records:
        try:
            draw_figures(layout.figures, records, arrays, scored.data, store.figures_dir)
        except Exception as error:  # noqa: BLE001 - figures never cost the results
            log.error("figures for %s failed: %s", suite_name, error)


def convergence_column(board: pd.DataFrame, records: list[dict[str, Any]]) -> list[str]:
    """``converged`` of each measured row: ``"k/n"`` seeds whose fit converged (:mod:`methods.convergence`),
    empty for rows whose method keeps no per-epoch history."""
    from methods.convergence import convergence

    per_row: dict[tuple[str, str], list[bool]] = {}
    for record in records:
        details = record.get("details", {})
        fits = {"mixture": details} if details.get("fit_history") else {
            name: info for name, info in details.get("inputs", {}).items() if info.get("fit_history")}
        for input_name, fit in fits.items():
            verdict = convergence(fit["fit_history"], budget=fit.get("training_budget")).get("converged")
            if verdict is not None:
                per_row.setdefault((record["label"], input_name), []).append(bool(verdict))
    column = []
    for label, input_name, source in zip(board["method"], board["input"], board["source"], strict=True):
        found = per_row.get((label.split(" (")[0], input_name)) if source == "measured" else None
        column.append(f"{sum(found)}/{len(found)}" if found else "")
    return column




def build_manifest(suite_name: str, profile: str, records: list[dict], handle: DataHandle, summary: RunSummary, device: str, command: str) -> dict[str, Any]:
    """Everything needed to trust and reproduce the leaderboard."""
    n_test = {r["details"].get("n_test") for r in records if "n_test" in r.get("details", {})}
    remote = summary.execution.get("scheduler") not in (None, "local")  # the device is not on this machine
    return {
        "suite": suite_name,
        "profile": profile,
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment_info(),
        "device": f"{device} (Dask workers; see each cell)" if remote else describe_device(device),
        "execution": summary.execution,
        "seeds": sorted({r["seed"] for r in records}),
        "data": {"key": handle.key, **handle.info, "n_test": sorted(n_test)[0] if len(n_test) == 1 else sorted(n_test)},
        "methods": {r["label"]: {"method": r["method"], "params": r["params"]} for r in records},
        "cells": {
            r["cell_id"]: {
                "label": r["label"], "seed": r["seed"], "device": r["device"], "n_threads": r.get("n_threads"),
                "timings": r["timings"], "fingerprint": r["fingerprint"], "finished_at": r["finished_at"],
                "assignment": r["details"].get("assignment", {}).get("by_source"),
                "unused_outputs": r["details"].get("assignment", {}).get("unused"),
                "training_events": training_events(r["details"]),
                "time_limit": r.get("time_limit"),
                "training_budget": r.get("training_budget"),
                "provenance": r.get("provenance"),
            }
            for r in records
        },
        "last_run": {
            "ran": summary.ran, "reused": summary.reused, "seconds": round(summary.seconds, 1),
            "failed": [{k: f[k] for k in ("cell_id", "error")} for f in summary.failed],
            "skipped": summary.skipped,
        },
    }


def fit_detail(details: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``details[key]`` of a cell's fit, or its per-input values for multi-input suites, or ``None``."""
    if details.get(key) is not None:
        return details[key]
    per_input = {name: info[key] for name, info in details.get("inputs", {}).items() if info.get(key) is not None}
    return per_input or None


def training_budget(details: dict[str, Any]) -> dict[str, Any] | None:
    """How much training a cell's fits got (per input for multi-input suites), or ``None``."""
    return fit_detail(details, "training_budget")


def training_events(details: dict[str, Any]) -> dict[str, Any] | None:
    """Non-finite-loss and resume events of a cell's fits (per input for multi-input suites)."""
    return fit_detail(details, "training_events")
