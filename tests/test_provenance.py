"""Per-cell provenance, stale cells and their recomputation."""

from __future__ import annotations

import json
import logging

import pandas as pd

from benchmark.core.environment import package_versions
from benchmark.core.provenance import NOT_RECORDED, stale_reasons
from benchmark.run.config import RunConfig
from benchmark.run.planning import plan_cells
from benchmark.run.runner import run_suite
from methods.meae import MEAE


def _run(tmp_path, **kwargs):
    return run_suite(
        "triangles", RunConfig(profile="tiny", method_names=["mixture", "meae"], seeds=[0], device="cpu", progress=False,
        results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", **kwargs)
    )


def test_stale_cell_is_warned_marked_and_recomputed_alone(tmp_path, caplog):
    first = _run(tmp_path)
    root = tmp_path / "results" / "triangles" / "tiny"
    meae_path = root / "cells" / "meae__seed0.json"
    mixture_path = root / "cells" / "mixture__seed0.json"
    record = json.loads(meae_path.read_text())
    provenance = record["provenance"]
    assert provenance["packages"] == package_versions()
    assert {"torch", "numpy", "scikit-image"} <= set(provenance["depends_on"])
    assert provenance["precision"] == "fp32" and provenance["device"].startswith("cpu")
    assert provenance["code"] == {"method": 1, "suite_scoring": 1}
    assert first.stale == {}
    assert (pd.read_csv(root / "leaderboard.csv", keep_default_na=False).stale == "").all()

    record["provenance"]["packages"]["torch"] = "0.0.1"
    meae_path.write_text(json.dumps(record))
    mixture_mtime = mixture_path.stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger="bss_bench"):
        second = _run(tmp_path)
    reason = f"torch 0.0.1 -> {package_versions()['torch']}"
    assert second.ran == [] and second.stale == {"meae__seed0": [reason]}
    assert any("meae__seed0 is stale" in m and reason in m for m in caplog.messages)
    board = pd.read_csv(root / "leaderboard.csv", keep_default_na=False)
    measured = board[board.source == "measured"]
    assert (measured[measured.method == "meae"].stale == f"1 of 1 seeds: {reason}").all()
    assert (measured[measured.method == "mixture"].stale == "").all()
    markdown = (root / "leaderboard.md").read_text()
    assert "| meae ‡1 |" in markdown and f"‡1 stale cells, reused as computed: 1 of 1 seeds: {reason}." in markdown
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["provenance"]["stale_cells"] == {"meae__seed0": [reason]}
    assert manifest["provenance"]["cells_differ"] is True

    third = _run(tmp_path, recompute_stale=True)
    assert third.ran == ["meae__seed0"] and third.reused == ["mixture__seed0"]
    recomputed = json.loads(meae_path.read_text())
    assert recomputed["details"]["reloaded_model"] is False  # refitted, not reloaded from the cache
    assert mixture_path.stat().st_mtime_ns == mixture_mtime
    assert json.loads(meae_path.read_text())["provenance"]["packages"]["torch"] == package_versions()["torch"]
    assert _run(tmp_path).stale == {}


def test_cell_without_provenance_is_stale_and_only_dependencies_count():
    assert stale_reasons({"cell_id": "x"}) == [NOT_RECORDED]
    current = {"numpy": "2.0", "torch": "2.13", "neurokit2": "0.3"}
    record = {"provenance": {"packages": {**current, "neurokit2": "0.2"}, "depends_on": ["numpy", "torch"]}}
    assert stale_reasons(record, current) == []
    record["provenance"]["depends_on"].append("neurokit2")
    assert stale_reasons(record, current) == ["neurokit2 0.2 -> 0.3"]


def test_code_version_bump_changes_the_cell_key(monkeypatch):
    before = plan_cells("triangles", "tiny", ["meae"], [0], {})[0]
    assert before.code_versions == {"method": 1, "suite_scoring": 1}
    monkeypatch.setattr(MEAE, "version", 2)
    after = plan_cells("triangles", "tiny", ["meae"], [0], {})[0]
    assert after.fingerprint("data") != before.fingerprint("data")
