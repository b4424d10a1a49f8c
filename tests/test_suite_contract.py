"""The generic suite contract: every registered suite, found by location, with no edit here.

Each suite has a tiny profile, prepares and scores a tiny run end to end through the runner,
declares only registered metrics, and shows every declared metric in its markdown table
(no metric appears only in ``runs.csv``). Discovery lists a suite module that fails to
import as unavailable, with the reason, instead of dropping it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

import benchmark.suites as suite_package
from benchmark.core.profiles import PROFILES
from benchmark.core.store import ResultStore
from benchmark.evaluation.metrics import get_metric, metrics
from benchmark.report.markdown import column_title
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_suite
from benchmark.suites import suites

SUITES = suites()


def test_built_in_suites_are_discovered():
    assert {"triangles", "mesa", "sines"} <= set(SUITES)
    assert not suite_package.unavailable()


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suite_declarations(name):
    suite = SUITES[name]
    assert suite.name == name and suite.description.strip()
    assert "tiny" in suite.profiles, "every suite needs a tiny profile (contract tests, smoke runs)"
    assert set(suite.profiles) <= set(PROFILES), f"profile names live in benchmark/core/profiles.py: {set(suite.profiles) - set(PROFILES)}"
    assert suite.modality in ("1d", "2d")
    assert suite.inputs and all(isinstance(i, str) for i in suite.inputs)
    assert suite.metrics and set(suite.metrics) <= set(metrics()), "declared metrics must be registered"
    with pytest.raises(KeyError, match="unknown profile 'huge'"):
        suite.settings("huge")


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suite_runs_tiny_end_to_end_and_shows_every_metric(name, tmp_path):
    suite = SUITES[name]
    summary = run_suite(
        name, RunConfig(profile="tiny", method_names=["mixture"], seeds=[0], results_dir=tmp_path / "results",
        cache_dir=tmp_path / "cache", progress=False, signals=("ECG",))
    )
    assert not summary.failed and summary.ran == ["mixture__seed0"]
    out = tmp_path / "results" / name / "tiny"
    runs = pd.read_csv(out / "runs.csv")
    markdown = (out / "leaderboard.md").read_text()
    assert set(runs["metric"]) <= set(suite.metrics), "a scored metric the suite does not declare"
    headers = " ".join(line for line in markdown.splitlines() if line.startswith("| Method |"))
    data_key = json.loads((out / "manifest.json").read_text())["data"]["key"]
    layout = ResultStore(out).load_report_data(data_key).layout  # the report reads the layout from the store
    assert layout is not None and layout.metrics == suite.metrics
    for metric in suite.metrics:
        if metric not in set(runs["metric"]):
            continue  # e.g. a truth-only metric on data without the truth
        titles = {get_metric(metric).label} | {
            column_title(table, metric, t) for table in layout.tables for t in runs.loc[runs["metric"] == metric, "target"]}
        assert any(t in headers for t in titles), f"{name}: metric {metric} has no markdown column"
    assert "mixture" in markdown


def test_a_broken_suite_module_is_listed_not_dropped(tmp_path, monkeypatch):
    (tmp_path / "broken_example.py").write_text("import not_a_real_package_for_bss_bench\n")
    (tmp_path / "extra_example.py").write_text(
        "from benchmark.suites.sines import SinesSuite\n\n\n"
        "class ExtraSuite(SinesSuite):\n    name = 'extra_example'\n"
    )
    monkeypatch.setattr(suite_package, "__path__", [*suite_package.__path__, str(tmp_path)])
    monkeypatch.setattr(suite_package, "_SUITES", dict(suite_package._SUITES))
    monkeypatch.setattr(suite_package, "_FAILED", {})
    monkeypatch.setattr(suite_package, "_DISCOVERED", False)
    for module in ("benchmark.suites.broken_example", "benchmark.suites.extra_example"):
        monkeypatch.delitem(sys.modules, module, raising=False)

    found = suite_package.discover()
    assert "extra_example" in found, "a suite is found by its file alone"
    assert "sines" in found and "triangles" in found
    missing = suite_package.unavailable()
    assert "not_a_real_package_for_bss_bench" in missing["broken_example"]

    from benchmark.cli import list_everything

    listing = list_everything()
    assert "broken_example" in listing and "not available" in listing
    with pytest.raises(KeyError, match="unavailable: broken_example"):
        suite_package.get_suite("broken_example")


def test_readme_add_a_suite_example_is_the_tested_file():
    import re

    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text()
    match = re.search(r"<!-- example-suite: (\S+) -->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its example-suite block"
    assert match.group(2) == (root / match.group(1)).read_text()
    assert len(match.group(2).splitlines()) <= 60
