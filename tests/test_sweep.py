"""Sweep files: per-seed runs, seed-major order and the command of each run."""

from __future__ import annotations

import json

from benchmark.tools.sweep import interleave, load_sweep


def test_per_seed_runs_are_split_and_interleaved_seed_major(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"defaults": {"seeds": "0,1", "per_seed": True},
                                "runs": [{"name": "a", "set": []}, {"name": "b", "set": ["meae.lr=1e-3"]},
                                         {"name": "c", "set": [], "per_seed": False}]}))
    runs = load_sweep(path)
    assert [r.name for r in runs] == ["a.s0", "a.s1", "b.s0", "b.s1", "c"]
    assert [r.variant for r in runs] == ["a", "a", "b", "b", "c"]
    assert [r.name for r in interleave(runs)] == ["a.s0", "b.s0", "c", "a.s1", "b.s1"]
    b0 = runs[2]
    assert b0.options["seeds"] == "0" and b0.overrides == ["meae.lr=1e-3"]
    command = b0.command(tmp_path, tmp_path / "cache", "cpu", workers=2)
    assert command[command.index("--seeds") + 1] == "0" and command[command.index("--jobs") + 1] == "2"
    assert "--jobs" not in b0.command(tmp_path, tmp_path / "cache", "cpu")
    assert "--jobs" not in b0.command(tmp_path, tmp_path / "cache", "cuda", workers=2)
