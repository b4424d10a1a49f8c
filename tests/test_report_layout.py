"""The declared report layout: kept in the store exactly, rendered by one module, figures from the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.core.report_data import ReportData, example_key
from benchmark.core.report_layout import FigureSpec, ReportLayout, TableSpec
from benchmark.core.store import ResultStore
from benchmark.report.markdown import column_title, render_leaderboard, render_table, table_columns
from benchmark.report.suite_figures import draw_figures


def _board() -> pd.DataFrame:
    rows = []
    for method, kind, base in (("mixture", "trivial", 0.5), ("meae", "method", 0.1)):
        for input_name in ("ECG", "PPG"):
            for target in ("nasal_pressure", "any"):
                for metric, value in (("mae_bpm", base + 1.0), ("coverage", 1.0), ("bias_bpm", base)):
                    if metric == "coverage" and target != "any" or metric != "coverage" and target == "any":
                        continue
                    rows.append({"suite": "s", "method": method, "input": input_name, "target": target, "metric": metric,
                                 "mean": value, "std": np.nan, "n_seeds": 1.0, "source": "measured", "kind": kind})
    return pd.DataFrame(rows)


LAYOUT = ReportLayout(
    title="# Title — profile `$profile`",
    notes=("Seeds $seeds on `$device`, $n_test items.",),
    tables=(
        TableSpec(metrics=("mae_bpm", "coverage"), column_targets=("nasal_pressure",), rows="method (input)",
                  titles={"coverage": "Coverage {arrow}", "*": "{label} vs {target} {arrow}"}, oracle_table=False),
        TableSpec(heading="\n## Agreement\n\n", metrics=("bias_bpm",), exclude_targets=("any",),
                  rows="method (input) vs target", titles={"*": "{label} {arrow}"}, oracle_table=False,
                  verdicts=False, show="rows"),
    ),
    figures=(FigureSpec("sample_grid", "grid.png", options={"sources": ["a", "b"]}),),
    metrics=("mae_bpm", "coverage", "bias_bpm"), headline_metrics=("mae_bpm",), verdict_metrics=("mae_bpm",),
    pairing_unit="test recordings",
    reference_rows=[{"method": "meae", "input": "ECG", "target": "nasal_pressure", "metric": "mae_bpm", "mean": 1.73}],
)


def test_layout_and_examples_round_trip_through_the_store(tmp_path):
    examples = {example_key("mixture", "mixtures"): np.arange(6, dtype=np.float32).reshape(2, 3)}
    store = ResultStore(tmp_path)
    store.save_report_data("key", ReportData(examples=examples, layout=LAYOUT))
    back = store.load_report_data("key")
    assert back.layout == LAYOUT
    np.testing.assert_array_equal(back.examples[example_key("mixture", "mixtures")], examples[example_key("mixture", "mixtures")])
    assert back.examples[example_key("mixture", "mixtures")].dtype == np.float32
    npz = store.report_data_path("key").with_suffix(".npz")
    before = npz.stat().st_mtime_ns
    store.save_report_data("key", ReportData(examples=dict(examples), layout=LAYOUT))
    assert npz.stat().st_mtime_ns == before, "unchanged examples must not rewrite the file (a zip differs byte-wise)"
    store.save_report_data("key", ReportData(layout=LAYOUT))
    assert not npz.exists()


def test_column_titles_follow_the_templates_from_specific_to_general():
    table = TableSpec(titles={"mse:both": "{label}, both sources {arrow}", "*:any": "any {label}", "coverage": "Coverage {arrow}"})
    assert column_title(table, "mse", "both") == "MSE, both sources ↓"
    assert column_title(table, "mae_bpm", "any") == "any MAE"
    assert column_title(table, "coverage", "x") == "Coverage ↑"
    assert column_title(table, "mse", "digit_1") == "Digit 1 MSE ↓"


def test_a_table_labelled_by_input_puts_every_input_in_one_table():
    table = LAYOUT.tables[0]
    board = _board()
    columns = table_columns(board.assign(input="row"), table, "row")
    assert [(c.title, c.target, c.metric) for c in columns] == [
        ("MAE vs nasal pressure ↓", "nasal_pressure", "mae_bpm"), ("Coverage ↑", "any", "coverage")]
    text = render_table(board, table)
    body = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
    assert [line.split(" | ")[0] for line in body] == ["| mixture (ECG)", "| mixture (PPG)", "| meae (ECG)", "| meae (PPG)"]
    assert "| meae (PPG) | method | measured | 1 | 1.10 | 1.000 | — |" in text


def test_an_agreement_table_labels_rows_by_target_and_is_left_out_without_rows():
    table = LAYOUT.tables[1]
    text = render_table(_board(), table)
    assert "| meae (ECG) vs nasal pressure | method | measured | 1 | 0.10 |\n" in text
    assert "| Separates |" not in text
    assert render_table(_board()[lambda b: b.metric != "bias_bpm"], table) == ""


def test_the_leaderboard_fills_what_only_the_report_knows():
    manifest = {"profile": "quick", "seeds": [0, 1], "device": "cpu", "data": {"n_test": 12}}
    text = render_leaderboard(_board(), LAYOUT, manifest)
    assert text.startswith("# Title — profile `quick`\n\nSeeds [0, 1] on `cpu`, 12 items.\n\n| Method |")
    assert "\n## Agreement\n\n| Method |" in text


def test_a_table_shown_with_measured_rows_is_left_out_without_them():
    layout = ReportLayout(title="# t", tables=(TableSpec(input="other", metrics=("mae_bpm",), show="measured"),))
    assert render_leaderboard(_board(), layout, {}) == "# t\n\n"


def test_bad_declarations_are_refused():
    with pytest.raises(ValueError, match="rows must be one of"):
        TableSpec(rows="by seed")
    with pytest.raises(ValueError, match="unknown figure kind 'pie'"):
        draw_figures((FigureSpec("pie", "pie.png"),), [], {}, ReportData(), ".")


def test_a_sample_grid_is_drawn_from_the_store_alone(tmp_path):
    rng = np.random.default_rng(0)
    data = ReportData(examples={example_key("mixture", "mixtures"): rng.random((3, 8, 8), dtype=np.float32),
                                example_key("mixture", "targets"): rng.random((3, 2, 8, 8), dtype=np.float32)})
    records = [{"cell_id": "m__seed0", "label": "m", "seed": 0, "details": {}, "params": {}}]
    arrays = {"m__seed0": {"example_estimates": rng.random((2, 2, 8, 8), dtype=np.float32)}}
    specs = LAYOUT.figures + (FigureSpec("training_curves", "curves.png"),)
    paths = draw_figures(specs, records, arrays, data, tmp_path)
    assert paths == [tmp_path / "grid.png"]  # no cell has a history: no curves
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert draw_figures(specs, [], {}, data, tmp_path) == []
