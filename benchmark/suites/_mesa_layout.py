"""The declared report layout of the MESA suites: paper Table 2 first, then the field's agreement
statistics, and per input the example, output and Bland-Altman figures.

Used by :class:`benchmark.suites.mesa.MesaSuite` and its public-data variant, which say what the
data is (the title) and add their own notes.
"""

from __future__ import annotations

from typing import Any

from benchmark.core.data_handle import DataHandle
from benchmark.core.report_layout import FigureSpec, ReportLayout, TableSpec

__all__ = ["mesa_layout"]

TABLE_2_TITLES = {
    "coverage": "Coverage {arrow}",
    "waveform_corr": "Corr. with true resp. (abs r) {arrow}",
    "*": "{label} vs {target} {arrow}",
}
"""Paper Table 2 wording: ``MAE vs nasal pressure ↓``, ``Coverage ↑``."""


def mesa_layout(suite: Any, handle: DataHandle, title: str, notes: str, table_2_metrics: tuple[str, ...],
                signals: tuple[str, ...], reference: str) -> ReportLayout:
    """The whole report layout of a MESA suite.

    Parameters
    ----------
    suite : MesaSuite
        The suite (its metrics and :meth:`~benchmark.suites.base.Suite.layout`).
    handle : DataHandle
        The prepared data (split summary, edge crop, respiratory band).
    title : str
        What the data is.
    notes : str
        The suite's own words after the common ones (``""`` for none).
    table_2_metrics : tuple of str
        The metrics of the first table; the others go to the agreement table.
    signals : tuple of str
        What the example figures show beside the methods' estimates (the input comes first).
    reference : str
        The reference whose rates the Bland-Altman figures compare against.
    """
    data = handle.info
    synthetic = data.get("synthetic", True)
    splits = data.get("summary", {}).get("splits", {})
    counts = ", ".join(
        f"{s}: {len(splits[s].get('recordings', []))} recordings / {splits[s].get('segments', '?')} segments"
        for s in ("train", "valid", "test") if s in splits
    )
    note = (
        f"Paper Table 2 layout: respiratory-rate MAE in breaths/min on the test recordings ({counts}). "
        f"Rates from NeuroKit2 troughs after cropping {data.get('edge_crop')} samples per edge. "
        "Multi-output methods: the respiratory output is chosen on the validation recordings by "
        "lowest MAE vs nasal pressure, or vs the thoracic belt where no recording has nasal pressure "
        "(those rows say *chosen on thoracic*); rows marked *blind choice* use the label-free spectral rule "
        f"(largest power share in {data.get('respiratory_band_hz')} Hz). Measured rows: mean ± std over seeds "
        "$seeds [95 % bootstrap interval over test recordings]; device `$device`. "
        "Rows marked *paper* are the values the paper reports on real MESA data, for reference only"
        + (" — they are not comparable to numbers measured on the synthetic cohort." if synthetic else ".")
        + (f" {notes}" if notes else "")
    )
    table_2 = TableSpec(
        metrics=tuple(m for m in suite.metrics if m in table_2_metrics), column_targets=suite.column_targets,
        rows="method (input)", titles=TABLE_2_TITLES, oracle_table=False,
    )
    agreement = TableSpec(
        heading=(
            "\n## Agreement with each reference (breaths/min)\n\n"
            "On the test segments where both have a rate: bias = mean(estimate − reference), 95 % limits "
            "of agreement = bias ± 1.96 SD (Bland-Altman), RMSE, share of segments within 2 breaths/min; "
            "MAE per recording compares each recording's mean rates over the segments where both have a rate "
            "(segments of one recording are not independent).\n\n"
        ),
        metrics=tuple(m for m in suite.metrics if m not in table_2_metrics), exclude_targets=("any",),
        rows="method (input) vs target", titles={"*": "{label} {arrow}"}, oracle_table=False, verdicts=False,
        show="rows",
    )
    figures = []
    for input_name in data.get("signals", ()):
        figures += [
            FigureSpec("signal_examples", f"examples_{input_name}.png", input_name,
                       {"signals": [input_name, *(s for s in signals if s != input_name)]}),
            FigureSpec("outputs", f"{{method}}_outputs_{input_name}.png", input_name),
            FigureSpec("bland_altman", f"bland_altman_{input_name}.png", input_name, {"reference": reference}),
        ]
    return suite.layout(
        title=f"# Respiration from ECG/PPG — {title} — profile `{handle.profile}`",
        notes=(note,), tables=(table_2, agreement), figures=tuple(figures),
    )
