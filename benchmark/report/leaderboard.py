"""Tidy tables derived from finished cells: runs.csv, leaderboard.csv, markdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchmark.evaluation.metrics import get_metric
from benchmark.evaluation.verdicts import row_kind

LEADERBOARD_COLUMNS = [
    "suite", "method", "input", "target", "metric", "mean", "std", "n_seeds", "source", "time_limited", "stale",
    "ci_low", "ci_high", "kind", "separates", "converged", "interval",
]
RUN_COLUMNS = [
    "suite", "profile", "method", "label", "seed", "input", "target", "metric", "value",
    "fit_seconds", "device", "cell_id", "time_limited", "epochs_completed", "epochs_planned", "samples_seen",
    "stale",
]
RUN_FRAME_COLUMNS = [*RUN_COLUMNS, "kind"]
"""The runs frame reports work on: runs.csv's columns plus each row's kind, which runs.csv leaves out."""


def _budgets(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The training budgets of a cell: one, or one per input of a multi-input suite."""
    budget = record.get("training_budget")
    if not budget:
        return []
    if "cut" in budget:
        return [budget]
    return [b for b in budget.values() if isinstance(b, dict)]


def budget_columns(record: dict[str, Any]) -> dict[str, Any]:
    """``time_limited`` and how far training got, for the runs table (NaN where not recorded)."""
    budgets = _budgets(record)
    cut = [b for b in budgets if b.get("cut")]
    if not budgets:
        return {"time_limited": False, "epochs_completed": np.nan, "epochs_planned": np.nan, "samples_seen": np.nan}
    return {
        "time_limited": bool(cut),
        "epochs_completed": min(b["epochs_completed"] for b in budgets),
        "epochs_planned": max(b["epochs_planned"] for b in budgets),
        "samples_seen": min(b["samples_seen"] for b in budgets),
    }


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a markdown leaderboard: which (input, target, metric) and how to print it."""

    title: str
    input: str
    target: str
    metric: str
    digits: int = 4


def runs_frame(records: list[dict[str, Any]], stale: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per cell x input x target x metric; ``stale`` maps cell ids to why they are stale."""
    stale = stale or {}
    rows = []
    for record in records:
        for score in record["scores"]:
            score = dict(score)
            variant = score.pop("variant", "")
            score.pop("n", None)
            rows.append({
                "suite": record["suite"], "profile": record["profile"], "method": record["method"],
                "label": record["label"] + (f" ({variant})" if variant else ""), "seed": record["seed"], **score,
                "kind": row_kind(variant, "measured", record.get("method_kind")),
                "fit_seconds": record["timings"].get("fit", np.nan), "device": record["device"],
                "cell_id": record["cell_id"], **budget_columns(record),
                "stale": "; ".join(stale.get(record["cell_id"], [])),
            })
    return pd.DataFrame(rows, columns=RUN_FRAME_COLUMNS)


def aggregate(runs: pd.DataFrame, reference_rows: list[dict[str, Any]], data_rows: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Mean and standard deviation over seeds, plus the paper's values as ``source="paper"`` rows.

    ``data_rows`` are measured rows that depend on the data only (no seed).

    ``std`` is the sample standard deviation (ddof=1); it is empty for one seed.
    ``method`` is the cell label (the method name, plus any ``--set`` overrides).
    ``time_limited`` is empty, or says for how many seeds the time limit cut training
    and after how many epochs (e.g. ``"1 of 1 seeds: 12 of 100 epochs, 2764800 samples"``).
    """
    if runs.empty:
        measured = pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    else:
        keys = ["suite", "label", "input", "target", "metric"]
        grouped = runs.groupby(keys, sort=False)
        measured = grouped["value"].agg(mean="mean", std="std", n_seeds="size").reset_index()
        groups = dict(list(grouped))
        rows = [groups[tuple(row)] for row in measured[keys].itertuples(index=False)]
        measured["time_limited"] = [_time_limit_note(group) for group in rows]
        measured["kind"] = [group["kind"].iloc[0] for group in rows]
        measured["stale"] = [_stale_note(group) for group in rows]
        measured = measured.rename(columns={"label": "method"})
        measured["source"] = "measured"
    reference = pd.DataFrame(reference_rows, columns=LEADERBOARD_COLUMNS).assign(kind="reference")
    from_data = pd.DataFrame(data_rows or [], columns=LEADERBOARD_COLUMNS).assign(kind="reference")
    frames = [f for f in (measured, from_data, reference) if not f.empty]
    table = pd.concat(frames, ignore_index=True) if frames else measured
    return table.reindex(columns=LEADERBOARD_COLUMNS)


def _span(values: pd.Series) -> str:
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}-{high}"


def _time_limit_note(group: pd.DataFrame) -> str:
    """Empty, or how many of the group's seeds the time limit cut, after how many epochs."""
    cut = group[group["time_limited"].astype(bool)]
    if cut.empty:
        return ""
    cells = cut.drop_duplicates("cell_id")
    return (
        f"{len(cells)} of {group['cell_id'].nunique()} seeds: {_span(cells['epochs_completed'])} of "
        f"{_span(cells['epochs_planned'])} epochs, {_span(cells['samples_seen'])} samples"
    )


def _stale_note(group: pd.DataFrame) -> str:
    """Empty, or how many of the group's seeds are stale and why."""
    cells = group.drop_duplicates("cell_id")
    stale = cells[cells["stale"].fillna("").astype(str) != ""]
    if stale.empty:
        return ""
    return f"{len(stale)} of {len(cells)} seeds: " + " | ".join(sorted(set(stale["stale"])))


def _format(mean: float, std: float, n: float, digits: int, low: float = np.nan, high: float = np.nan) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    if std is not None and np.isfinite(std):
        text += f" ± {std:.{digits}f}"
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


KIND_ORDER = {"trivial": 0, "method": 1, "oracle": 2, "reference": 3}


def markdown_table(leaderboard: pd.DataFrame, columns: list[ColumnSpec], verdicts: bool = True) -> str:
    """Methods as rows, the given columns, ``mean ± std [95 % interval]``; paper rows last and labelled.

    The trivial rows (the mixture as estimate, an all-zero estimate, ...) come first, in a block
    of their own, so every number has what doing nothing scores beside it. With ``verdicts``,
    a *Separates* column gives each target's ``k/n`` (seeds on which the row beats the best
    trivial baseline, :mod:`benchmark.evaluation.verdicts`); rows not converged on some seed are marked ◊.
    """
    has_kind = "kind" in leaderboard.columns
    header = "| Method | Kind | Source | Seeds | " + " | ".join(c.title for c in columns) + (" | Separates |" if verdicts else " |")
    rule = "|---|---|---|---|" + "---|" * len(columns) + ("---|" if verdicts else "")
    lines = [header, rule]
    footnotes: list[str] = []
    stale_notes: list[str] = []
    convergence_notes: list[str] = []
    stale_markers: dict[str, int] = {}
    targets = list(dict.fromkeys((c.input, c.target) for c in columns))
    usual = _usual_verdict_metric(leaderboard)
    keys = leaderboard[["method", "source"]].drop_duplicates().itertuples(index=False)

    def kind_of(method: str, source: str) -> str:
        if not has_kind:
            return "trivial" if method == "mixture" else ("method" if source == "measured" else "reference")
        found = leaderboard.loc[(leaderboard.method == method) & (leaderboard.source == source), "kind"].dropna()
        return str(found.iloc[0]) if len(found) else "method"

    order = sorted(keys, key=lambda k: (KIND_ORDER.get(kind_of(k.method, k.source), 1), k.source != "measured", k.method))
    for method, source in order:
        rows = leaderboard[(leaderboard.method == method) & (leaderboard.source == source)]
        cells, seeds = [], set()
        for column in columns:
            match = rows[(rows.input == column.input) & (rows.target == column.target) & (rows.metric == column.metric)]
            if match.empty:
                cells.append("—")
                continue
            row = match.iloc[0]
            seeds.add(row.n_seeds)
            cells.append(_format(row["mean"], row["std"], row.n_seeds, column.digits, row.get("ci_low", np.nan), row.get("ci_high", np.nan)))
        if all(c == "—" for c in cells):
            continue
        kind = kind_of(method, source)
        label = method if source == "measured" else f"{method} (paper, reference)"
        notes = sorted({n for n in rows.get("time_limited", pd.Series(dtype=object)).dropna() if n})
        if notes:
            footnotes.append(f"{'†' * (len(footnotes) + 1)} `{method}`: training cut by the time limit ({'; '.join(notes)}).")
            label += " " + "†" * len(footnotes)
        stale = "; ".join(sorted({n for n in rows.get("stale", pd.Series(dtype=object)).dropna() if n}))
        if stale:
            if stale not in stale_markers:
                stale_markers[stale] = len(stale_markers) + 1
                stale_notes.append(f"‡{stale_markers[stale]} stale cells, reused as computed: {stale}.")
            label += f" ‡{stale_markers[stale]}"
        converged = _first(rows, "converged")
        if converged and converged.split("/")[0] != converged.split("/")[-1]:
            label += " ◊"
            convergence_notes.append(f"`{method}`: converged on {converged} seeds")
        n_seeds = "—" if source != "measured" else ", ".join(str(int(s)) for s in sorted(seeds) if np.isfinite(s))
        line = f"| {label} | {kind} | {source} | {n_seeds} | " + " | ".join(cells)
        if verdicts:
            line += " | " + _separates(rows, targets, kind, usual)
        lines.append(line + " |")
    listed = {(k.method, k.source) for k in order}
    shown = leaderboard[[key in listed for key in zip(leaderboard.method, leaderboard.source, strict=True)]]
    kinds_of_interval = sorted({str(v) for v in shown.get("interval", pd.Series(dtype=object)).dropna() if str(v)})
    interval_note = (["[Intervals]: 95 % percentile bootstrap (1,000 resamples) — " + "; ".join(
        f"*{k}*" + (" (rows with two or more seeds)" if k.startswith("seeds") else "") for k in kinds_of_interval) + "."]
        if kinds_of_interval else [])
    if convergence_notes:
        convergence_notes = [
            "◊ not converged: on some seeds the validation loss (training loss where there is no validation) still "
            "fell by more than 1 % over the last 20 % of epochs; " + "; ".join(convergence_notes) + "."
        ]
    if footnotes or stale_notes or convergence_notes or interval_note:
        lines += ["", *footnotes, *stale_notes, *convergence_notes, *interval_note]
    return "\n".join(lines) + "\n"


def _first(rows: pd.DataFrame, column: str) -> str:
    """The first non-empty value of ``column`` among ``rows`` ("" when none)."""
    if column not in rows.columns:
        return ""
    values = [str(v) for v in rows[column].dropna() if str(v)]
    return values[0] if values else ""


def _separates(rows: pd.DataFrame, targets: list[tuple[str, str]], kind: str, usual_metric: str) -> str:
    """The *Separates* cell of one row: each target's ``k/n`` (``—`` for rows that get no verdict),
    with the metric named where the verdict was decided on another than ``usual_metric``."""
    if kind != "method" or "separates" not in rows.columns:
        return "—"
    parts = []
    for input_name, target in targets:
        same = rows[(rows.input == input_name) & (rows.target == target)]
        decided = same[same["separates"].fillna("").astype(str) != ""]
        if len(decided):
            row = decided.iloc[0]
            other = f" ({get_metric(row.metric).label})" if row.metric != usual_metric else ""
            parts.append(f"{target.replace('_', ' ')} {row.separates}{other}")
    return ", ".join(dict.fromkeys(parts)) or "—"


def _usual_verdict_metric(leaderboard: pd.DataFrame) -> str:
    """The metric most verdicts of a leaderboard were decided on ("" when there is none)."""
    if "separates" not in leaderboard.columns:
        return ""
    decided = leaderboard.loc[leaderboard["separates"].fillna("").astype(str) != "", "metric"]
    return str(decided.mode().iloc[0]) if len(decided) else ""
