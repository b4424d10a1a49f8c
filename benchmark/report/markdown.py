"""The markdown leaderboard of a suite, rendered from its declared layout (:mod:`benchmark.core.report_layout`).

One renderer for every suite: the layout says which tables there are, which metrics and targets
make their columns and how rows are labelled; the rows themselves come from the leaderboard.
"""

from __future__ import annotations

from string import Template
from typing import Any

import pandas as pd

from benchmark.core.report_layout import ReportLayout, TableSpec
from benchmark.evaluation.metrics import get_metric
from benchmark.evaluation.scoring import ORACLE_VARIANT
from benchmark.report.leaderboard import ColumnSpec, markdown_table

__all__ = ["column_title", "render_leaderboard", "render_table", "table_columns"]

ROW_INPUT = "row"
"""The input of every row of a table whose row labels name the input."""


def render_leaderboard(leaderboard: pd.DataFrame, layout: ReportLayout, manifest: dict[str, Any]) -> str:
    """The markdown leaderboard: the title, the notes, then each table the layout declares.

    ``$profile``, ``$seeds``, ``$device`` and ``$n_test`` in the title and notes are filled from
    the ``manifest``.
    """
    fields = {
        "profile": manifest.get("profile"), "seeds": manifest.get("seeds"), "device": manifest.get("device"),
        "n_test": manifest.get("data", {}).get("n_test", "?"),
    }
    text = "".join(Template(part).safe_substitute(fields) + "\n\n" for part in (layout.title, *layout.notes))
    measured_inputs = set(leaderboard.loc[leaderboard["source"] == "measured", "input"])
    for table in layout.tables:
        if table.show == "measured" and table.input not in measured_inputs:
            continue
        body = render_table(leaderboard, table)
        if body:
            text += table.heading + body
    return text


def render_table(leaderboard: pd.DataFrame, table: TableSpec) -> str:
    """One declared table (with its oracle table where declared); ``""`` when it has no rows and
    is shown only with rows."""
    rows = _labelled(leaderboard, table)
    if table.show == "rows" and rows.empty:
        return ""
    input_name = ROW_INPUT if table.rows != "method" else (
        table.input or (str(rows["input"].iloc[0]) if len(rows) else ""))
    columns = table_columns(rows, table, input_name)
    if not table.oracle_table:
        return markdown_table(rows, columns, verdicts=table.verdicts)
    oracle = rows["kind"] == "oracle"
    text = markdown_table(rows[~oracle], columns, verdicts=table.verdicts)
    if oracle.any():
        text += (
            f"\n### {ORACLE_VARIANT}: per-item best permutation (an upper bound, not a blind result)\n\n"
            "Each test item's outputs assigned to its sources with the true sources, as the "
            "permutation-invariant (PIT) numbers of the source-separation literature are; the "
            "table above uses one mapping chosen on validation, the benchmark's number.\n\n"
            + markdown_table(rows[oracle], columns, verdicts=False)
        )
    return text


def table_columns(rows: pd.DataFrame, table: TableSpec, input_name: str) -> list[ColumnSpec]:
    """The columns of a table: per metric, one per target found among ``input_name``'s rows
    (the declared targets first); a table labelled by target has one column per metric."""
    if table.rows == "method (input) vs target":
        return [ColumnSpec(column_title(table, metric, "agreement"), ROW_INPUT, "agreement", metric,
                           get_metric(metric).digits) for metric in table.metrics]
    rows = rows[rows["input"] == input_name]
    columns = []
    for metric in table.metrics:
        found = list(dict.fromkeys(rows.loc[rows["metric"] == metric, "target"]))
        ordered = [t for t in table.column_targets if t in found] + [t for t in found if t not in table.column_targets]
        columns += [ColumnSpec(column_title(table, metric, target), input_name, target, metric, get_metric(metric).digits)
                    for target in ordered]
    return columns


def column_title(table: TableSpec, metric: str, target: str) -> str:
    """The title of one (metric, target) column of ``table``, e.g. ``"Triangle MSE ↓"``."""
    spec = get_metric(metric)
    name = target.replace("_", " ")
    return table.title_template(metric, target).format(label=spec.label, arrow=spec.arrow, target=name,
                                                       Target=name.capitalize())


def _labelled(leaderboard: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
    """The leaderboard's rows of ``table``, relabelled where the labels name the input (and target)."""
    rows = leaderboard[~leaderboard["target"].isin(table.exclude_targets)]
    if table.rows == "method":
        return rows
    if table.rows == "method (input) vs target":
        rows = rows[rows["metric"].isin(table.metrics)].copy()
        rows["method"] = rows["method"] + " (" + rows["input"] + ") vs " + rows["target"].str.replace("_", " ")
        rows["input"], rows["target"] = ROW_INPUT, "agreement"
        return rows
    rows = rows.copy()
    rows["method"] = rows["method"] + " (" + rows["input"] + ")"
    rows["input"] = ROW_INPUT
    return rows
