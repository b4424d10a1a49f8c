"""The README's results block is the generated results page, built from the committed leaderboards."""

from pathlib import Path

import pandas as pd

from benchmark.report import results_page
from benchmark.suites import suites

ROOT = Path(__file__).resolve().parent.parent


def test_readme_results_block_equals_the_generated_page():
    readme = (ROOT / "README.md").read_text()
    assert results_page.START in readme and results_page.END in readme
    committed = (ROOT / "results" / "RESULTS.md").read_text()
    assert results_page.readme_block(readme) == results_page.readme_links(committed)
    # ... and the committed page is what the committed leaderboards give now.
    assert committed == results_page.build(ROOT / "results", list(suites()))


def test_headline_table_puts_trivial_rows_first_and_shows_the_verdicts():
    board = pd.DataFrame([
        {"method": m, "source": "measured", "kind": k, "input": "mixture", "target": "x", "metric": "si_sdri",
         "mean": v, "std": float("nan"), "n_seeds": n, "separates": s}
        for m, k, v, n, s in [("meae", "method", -3.0, 3, "0/3"), ("mixture", "trivial", 0.0, 1, ""),
                              ("unet", "method", 7.2, 3, "3/3"), ("meae (PIT oracle)", "oracle", 1.0, 3, "")]
    ])
    table = results_page.suite_table(board)
    rows = [line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]]
    assert rows == ["mixture", "meae", "unet"]  # no oracle rows; trivial first
    assert "| 3/3 |" in table and "| 0/3 |" in table and "Separates (x) |" in table
