"""Adopting a sweep's cell into a leaderboard only when its settings are the profile's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmark.run.config import RunConfig
from benchmark.run.runner import run_suite
from methods.meae import TRIANGLES_TINY

ROOT = Path(__file__).resolve().parent.parent


def _adopt_module():
    spec = importlib.util.spec_from_file_location("adopt_sweep_cells", ROOT / "scripts" / "adopt_sweep_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cell_with_the_profiles_settings_is_adopted_and_others_are_refused(tmp_path):
    adopt = _adopt_module().adopt
    cache = tmp_path / "cache"
    same = tmp_path / "sweep" / "same"
    # an override that equals the profile's value: the cell is named after it, computed as the profile's
    run_suite("triangles", RunConfig(profile="tiny", method_names=["meae"], seeds=[0], results_dir=same, cache_dir=cache,
              progress=False, overrides={"meae": {"lr": TRIANGLES_TINY["lr"]}}))
    [swept] = (same / "triangles" / "tiny" / "cells").glob("meae__seed0__*.json")
    results = tmp_path / "results"
    assert adopt([same], "triangles", "tiny", "meae", results) == ["meae__seed0"]
    adopted = json.loads((results / "triangles" / "tiny" / "cells" / "meae__seed0.json").read_text())
    original = json.loads(swept.read_text())
    assert adopted["scores"] == original["scores"] and adopted["fingerprint"] == original["fingerprint"]
    assert adopted["overrides"] == {} and adopted["adopted_from"]["cell_id"] == swept.stem
    assert (results / "triangles" / "tiny" / "cells" / "meae__seed0.npz").exists()

    other = tmp_path / "sweep" / "other"
    run_suite("triangles", RunConfig(profile="tiny", method_names=["meae"], seeds=[0], results_dir=other, cache_dir=cache,
              progress=False, overrides={"meae": {"lr": TRIANGLES_TINY["lr"] * 2}}))
    with pytest.raises(ValueError, match="fingerprints differ"):
        adopt([other], "triangles", "tiny", "meae", tmp_path / "results2")
    # the profile's own run reuses the adopted cell: nothing is recomputed
    summary = run_suite("triangles", RunConfig(profile="tiny", method_names=["meae"], seeds=[0], results_dir=results,
                        cache_dir=cache, progress=False))
    assert summary.reused == ["meae__seed0"] and not summary.ran
