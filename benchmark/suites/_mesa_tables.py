"""Markdown of the MESA suites: paper Table 2 layout first, then the field's agreement statistics.

Used by :class:`benchmark.suites.mesa.MesaSuite` and its public-data variant; the title (what
the data is) comes from the suite.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmark.evaluation.metrics import get_metric
from benchmark.report.leaderboard import ColumnSpec, markdown_table

__all__ = ["mesa_markdown"]


def mesa_markdown(suite: Any, leaderboard: pd.DataFrame, manifest: dict[str, Any], title: str) -> str:
    """The whole leaderboard markdown of a MESA suite.

    Parameters
    ----------
    suite : MesaSuite
        The suite (its metrics, column titles and notes).
    leaderboard : DataFrame
        The tidy leaderboard.
    manifest : dict
        The run's manifest (data summary, seeds, device).
    title : str
        What the data is.
    """
    data = manifest.get("data", {})
    synthetic = data.get("synthetic", True)
    splits = data.get("summary", {}).get("splits", {})
    counts = ", ".join(
        f"{s}: {len(splits[s].get('recordings', []))} recordings / {splits[s].get('segments', '?')} segments"
        for s in ("train", "valid", "test") if s in splits
    )
    table = leaderboard.copy()
    table["method"] = table["method"] + " (" + table["input"] + ")"
    table["input"] = "row"
    columns = [c for c in suite.markdown_columns(table, "row") if c.metric in suite.table_2_metrics]
    notes = suite.extra_notes(data)
    lines = [
        f"# Respiration from ECG/PPG — {title} — profile `{manifest.get('profile')}`",
        "",
        f"Paper Table 2 layout: respiratory-rate MAE in breaths/min on the test recordings ({counts}). "
        f"Rates from NeuroKit2 troughs after cropping {data.get('edge_crop')} samples per edge. "
        "Multi-output methods: the respiratory output is chosen on the validation recordings by "
        "lowest MAE vs nasal pressure, or vs the thoracic belt where no recording has nasal pressure "
        "(those rows say *chosen on thoracic*); rows marked *blind choice* use the label-free spectral rule "
        f"(largest power share in {data.get('respiratory_band_hz')} Hz). Measured rows: mean ± std over seeds "
        f"{manifest.get('seeds')} [95 % bootstrap interval over test recordings]; device `{manifest.get('device')}`. "
        "Rows marked *paper* are the values the paper reports on real MESA data, for reference only"
        + (" — they are not comparable to numbers measured on the synthetic cohort." if synthetic else ".")
        + (f" {notes}" if notes else ""),
        "",
        "",
    ]
    return "\n".join(lines) + markdown_table(table, columns) + _agreement_markdown(suite, leaderboard)


def _agreement_markdown(suite: Any, leaderboard: pd.DataFrame) -> str:
    """Second table: the field's agreement statistics, one row per method, input and reference."""
    metrics = [m for m in suite.metrics if m not in suite.table_2_metrics]
    table = leaderboard[leaderboard["metric"].isin(metrics) & (leaderboard["target"] != "any")].copy()
    if table.empty:
        return ""
    table["method"] = table["method"] + " (" + table["input"] + ") vs " + table["target"].str.replace("_", " ")
    table["input"], table["target"] = "row", "agreement"
    columns = [ColumnSpec(f"{get_metric(m).label} {get_metric(m).arrow}", "row", "agreement", m, get_metric(m).digits) for m in metrics]
    return (
        "\n## Agreement with each reference (breaths/min)\n\n"
        "On the test segments where both have a rate: bias = mean(estimate − reference), 95 % limits "
        "of agreement = bias ± 1.96 SD (Bland-Altman), RMSE, share of segments within 2 breaths/min; "
        "MAE per recording compares each recording's mean rates over the segments where both have a rate "
        "(segments of one recording are not independent).\n\n" + markdown_table(table, columns, verdicts=False)
    )
