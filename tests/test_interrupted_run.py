"""A benchmark run killed by a real signal mid-training resumes without redoing finished work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _command(tmp_path: Path) -> list[str]:
    return [
        sys.executable, "run_benchmark.py", "--suite", "triangles", "--profile", "tiny",
        "--methods", "mixture,meae", "--seeds", "0", "--set", "meae.epochs=12", "--jobs", "1",
        "--device", "cpu", "--results-dir", str(tmp_path / "results"),
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ]


def _wait_for(pattern: str, root: Path, process: subprocess.Popen, timeout: float = 240.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
        if process.poll() is not None:
            raise AssertionError(f"run ended (exit {process.returncode}) before {pattern} appeared")
        time.sleep(0.02)
    raise AssertionError(f"{pattern} did not appear within {timeout} s")


def test_sigkill_mid_training_then_rerun_resumes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(_command(tmp_path), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    checkpoint = _wait_for("models/triangles/tiny/meae__seed0*/training/training.pt", tmp_path / "cache", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL

    store = tmp_path / "results" / "triangles" / "tiny"
    mixture_files = sorted(p for p in store.rglob("mixture__seed0*") if p.is_file())
    assert mixture_files, "the finished mixture cell was not saved before the kill"
    mixture_before = {p: p.read_bytes() for p in mixture_files}
    assert not any(store.rglob("meae__seed0*.json")), "the killed cell must not look finished"
    saved_epoch = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 0 <= saved_epoch < 11

    second = subprocess.run(_command(tmp_path), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr

    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["last_run"]["reused"] == ["mixture__seed0"]
    assert manifest["last_run"]["ran"] == [next(c for c in manifest["cells"] if c.startswith("meae"))]
    meae = next(v for k, v in manifest["cells"].items() if k.startswith("meae"))
    events = meae["training_events"]
    assert events["resumed_from_epoch"] >= saved_epoch + 1
    assert events["checkpoints_written"] == 12
    assert {p: p.read_bytes() for p in mixture_files} == mixture_before

    # no corrupt or half-written files anywhere in the results
    assert not [p for p in store.rglob("*") if ".tmp" in p.name]
    for path in store.rglob("*.json"):
        json.loads(path.read_text())
    for path in store.rglob("*.npz"):
        with np.load(path) as data:
            assert all(np.asarray(data[k]).size >= 0 for k in data.files)
    history = json.loads(next(store.rglob("meae__seed0*.json")).read_text())["details"]["fit_history"]
    assert [h["epoch"] for h in history] == list(range(12))
    # the finished model replaced its training checkpoint
    assert not checkpoint.exists()

    # and the resumed fit scores exactly what an uninterrupted one does
    fresh = tmp_path / "fresh"
    whole = subprocess.run(_command(fresh), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    resumed_scores = json.loads(next(store.rglob("meae__seed0*.json")).read_text())["scores"]
    whole_scores = json.loads(next((fresh / "results").rglob("meae__seed0*.json")).read_text())["scores"]
    assert resumed_scores == whole_scores
