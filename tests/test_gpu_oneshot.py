"""The one-shot GPU script's CPU path, end to end at the tiny profile (so it cannot rot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.core.environment import git_state
from benchmark.tools.speed import _conv_backward_flops, measure
from datasets.triangles import TrianglesConfig, generate
from methods.nn.device import cpu_has_amx_bf16

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_cpu_path_packs_speed_records_and_time_limited_results(tmp_path):
    out = tmp_path / "out"
    command = [
        "bash", str(REPO_ROOT / "scripts" / "gpu_run.sh"), "--out", str(out), "--device", "cpu",
        "--profile", "tiny", "--budget", "420", "--seeds", "0,1", "--meae-time", "2", "--sae-time", "2", "--mesa-time", "2",
        "--speed-steps", "1", "--speed-batch", "2", "--data-jobs", "1", "--steps", "speed,plan,data,meae,sae,mesa",
        "--cell-overhead", "60",  # tiny cells need seconds; the default 150 s would starve meae on a busy CPU
    ]
    env = {**os.environ, "PYTHON": sys.executable, "BSS_BENCH_COMMIT": "0" * 40}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "step 1 plan_before" in done.stdout and "packed" in done.stdout
    assert "meae triangles/tiny" in done.stdout  # the timing plan, printed before the first step

    extract = tmp_path / "extract"
    with tarfile.open(out / "gpu_run.tar.gz") as archive:
        archive.extractall(extract, filter="data")
    summary = json.loads((extract / "summary.json").read_text())
    names = [s["name"] for s in summary["steps"]]
    assert names == [
        "plan_before", "speed_triangles_layouts", "speed_mesa_layouts", "speed_triangles_sae", "speed_triangles_seeds_at_once",
        "plan", "data_and_baselines", "meae", "gather", "supervised_ae", "mesa_data_and_baselines", "mesa_meae",
    ]
    assert all(s["status"] == "ok" for s in summary["steps"]), [(s["name"], s["status"]) for s in summary["steps"]]
    meae = summary["steps"][names.index("meae")]
    assert meae["notes"]["time_limit_s"] == 2 and len(meae["commands"]) == 2 and len(meae["logs"]) == 2
    assert summary["resume_out"] == {"parts": [], "cells": [], "left_out": []}  # tiny cells train to the end

    records = [json.loads(line) for line in (extract / "speed.jsonl").read_text().splitlines()]
    bf16 = "bf16-autocast (CPU AMX)" if cpu_has_amx_bf16() else "fp32"  # other CPUs run fp32
    # Layouts: the tiny 2-D profile has no transposed decoder convolutions, so three encoder layouts each.
    assert [(r["model"], r["suite"], r["encoder_layout"], r["concurrent"]) for r in records] == [
        ("meae", "triangles", "grouped", 1), ("meae", "triangles", "split", 1), ("meae", "triangles", "dense", 1),
        ("meae", "mesa", "grouped", 1), ("meae", "mesa", "split", 1), ("meae", "mesa", "dense", 1),
        ("supervised_ae", "triangles", "grouped", 1), ("meae", "triangles", records[-1]["encoder_layout"], 2),
    ]
    assert {r["precision"] for r in records} == {bf16}
    assert all(r["gflop_per_sample"] > 0 and r["samples_per_s"] > 0 for r in records)
    assert all(r["conv_kernels"] for r in records[:7]) and records[-1]["conv_kernels"] is None
    fastest = max(records[:3], key=lambda r: r["samples_per_s"])
    layout = f"{fastest['encoder_layout']}/{fastest['decoder_layout']}"
    assert all(command[command.index("--layout") + 1] == layout for command in meae["commands"])

    root = extract / "results" / "triangles" / "tiny"
    board = pd.read_csv(root / "leaderboard.csv")
    measured = {m for m in board[board.source == "measured"].method if not m.endswith("(PIT oracle)")}
    assert measured == {"mixture", "zeros", "half_mixture", "meae", "supervised_ae"}
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["git"] == {"commit": "0" * 40, "dirty": None, "declared_by": "BSS_BENCH_COMMIT"}
    assert {"meae__seed0", "meae__seed1", "supervised_ae__seed0"} <= set(manifest["cells"])
    assert all(manifest["cells"][c]["training_budget"]["time_limit_s"] == 2.0 for c in ("meae__seed0", "meae__seed1"))
    cell = json.loads((root / "cells" / "meae__seed1.json").read_text())
    assert cell["layout"] == layout and cell["seed"] == 1
    assert (root / "figures" / "sample_grid.png").is_file()
    mesa = pd.read_csv(extract / "results" / "mesa" / "tiny" / "leaderboard.csv")
    assert {"meae", "mixture", "median_rate"} <= set(mesa[mesa.source == "measured"].method)


def test_checkpoint_parts_round_trip_and_leave_out_what_does_not_fit(tmp_path):
    from benchmark.run.resume import RESUME_FILE
    from benchmark.tools.gpu_pack import PART_PREFIX, pack_checkpoints, unpack_checkpoints

    cache = tmp_path / "cache"
    for seed, (seconds, size) in enumerate([(50.0, 3000), (80.0, 5000), (20.0, 9000)]):
        folder = cache / "models" / "triangles" / "paper" / f"meae__seed{seed}-abc"
        (folder / "training").mkdir(parents=True)
        (folder / "training" / "training.pt").write_bytes(bytes([seed]) * size)
        note = {"suite": "triangles", "profile": "paper", "cell_id": f"meae__seed{seed}", "training_key": f"k{seed}",
                "checkpoints": ["training/training.pt"], "epochs_completed": seed + 1, "epochs_planned": 100,
                "train_seconds": seconds}
        (folder / RESUME_FILE).write_text(json.dumps(note))
    out = tmp_path / "out"
    out.mkdir()
    # Room for the two most trained cells (8,000 bytes and headers), not the third.
    packed = pack_checkpoints(cache, tmp_path / "staging", out, free_bytes=40_000, free_files=7)
    assert [c["cell_id"] for c in packed["cells"]] == ["meae__seed1", "meae__seed0"]
    assert [c["cell_id"] for c in packed["left_out"]] == ["meae__seed2"]
    assert packed["parts"] == [f"{PART_PREFIX}00"] and sorted(p.name for p in out.iterdir()) == packed["parts"]
    notes = unpack_checkpoints(out, tmp_path / "resume_in")
    assert sorted(n["cell_id"] for n in notes) == ["meae__seed0", "meae__seed1"]
    restored = tmp_path / "resume_in" / "triangles" / "paper" / "meae__seed1" / "training" / "training.pt"
    assert restored.read_bytes() == bytes([1]) * 5000


def test_checkpoint_parts_are_split_under_the_file_limit_and_rejoined(tmp_path):
    from benchmark.tools.gpu_pack import split_file

    data = np.random.default_rng(0).bytes(25_000)
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "parts").mkdir()
    parts = split_file(tmp_path / "big", tmp_path / "parts", "x.part", part_bytes=10_000)
    assert [p.name for p in parts] == ["x.part00", "x.part01", "x.part02"]
    assert [p.stat().st_size for p in parts] == [10_000, 10_000, 5_000]
    assert b"".join(p.read_bytes() for p in parts) == data


@pytest.mark.parametrize("groups", [1, 3])
def test_conv_backward_costs_twice_the_forward_grouped_or_not(groups):
    conv = torch.nn.Conv2d(24, 48, 7, padding=3, groups=groups)
    x = torch.rand(2, 24, 16, 16, requires_grad=True)
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})
    with counter:
        conv(x).sum().backward()
    counts = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    forward = 2 * 2 * 16 * 16 * 48 * (24 // groups) * 49
    assert counts == {"aten.convolution": forward, "aten.convolution_backward": 2 * forward}


def test_speed_record_counts_forward_and_backward_flops():
    record = measure("meae", "triangles", "paper", batch=8, steps=1, warmup=1, device="cpu", threads=1, overrides={})
    # Forward convolution FLOPs of the paper's triangles network per 64x64 image (2 per multiply-add):
    # encoder levels (64, 32, 16, 8 px; grouped convolutions of 8, 16, 32, 48 channels per encoder),
    # then the decoder blocks 144->96 (8 px), 96->48 (16), 48->24 (32), 24->24 (64); k = 7.
    k2 = 49
    first = 1 * 24 * k2 * 64**2
    encoder = (first + 3 * 8 * 8 * k2 * 64**2 + 3 * 8 * 16 * k2 * 32**2 + 3 * 16 * 16 * k2 * 32**2
               + 3 * 16 * 32 * k2 * 16**2 + 3 * 32 * 32 * k2 * 16**2 + 3 * 32 * 48 * k2 * 8**2
               + 3 * 48 * 48 * k2 * 8**2 + 96 * 48 * 4**2)
    decoder = 96 * 144 * 4**2 + (144 * 96 * 8**2 + 96 * 48 * 16**2 + 48 * 24 * 32**2 + 24 * 24 * 64**2) * k2 + 24 * 64**2
    # forward + input gradient (none for the first layer) + weight gradient, then the batch-1
    # zero-reconstruction pass through the decoder (no input gradient for its first layer).
    expected = 2 * (3 * (encoder + decoder) - first + (3 * decoder - 96 * 144 * 4**2) / 8) / 1e9
    assert record["gflop_per_sample"] == pytest.approx(expected, rel=1e-3)
    assert record["params"] == 1_866_578 and record["precision"] == "fp32"
    assert record["share_of_bf16_peak"] is None  # no known peak on a CPU


def test_triangles_generation_is_identical_with_threads_and_processes():
    config = TrianglesConfig(n=2100, seed=3)  # two chunks
    threads = generate(config, n_jobs=2, progress=False)
    processes = generate(config, n_jobs=4, progress=False)
    for key in ("mixture", "triangle", "circle", "flipped"):
        np.testing.assert_array_equal(threads[key], processes[key])


def test_git_state_prefers_a_declared_commit(monkeypatch):
    monkeypatch.setenv("BSS_BENCH_COMMIT", "abc123")
    assert git_state() == {"commit": "abc123", "dirty": None, "declared_by": "BSS_BENCH_COMMIT"}
    monkeypatch.delenv("BSS_BENCH_COMMIT")
    assert git_state()["commit"] != "abc123"


def test_a_training_step_left_too_little_time_is_skipped_not_run_for_seconds():
    from benchmark.tools.gpu_oneshot import training_limit

    assert training_limit(80, 200) == 80
    assert training_limit(80, 30) == 30
    # The 2026-11-26 H200 call shrank the supervised AE to 1 s and wrote a 0-epoch cell.
    assert training_limit(55, -12) is None
    assert training_limit(80, 19) is None


def test_travel_size_counts_tracked_and_unignored_files_and_carried_paths(tmp_path):
    from benchmark.tools.gpu_pack import travel_bytes

    def git(*arguments):
        subprocess.run(["git", *arguments], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("/cache/\n/.whl/\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "a.py").write_bytes(b"x" * 100)
    git("add", "."), git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    (tmp_path / "code" / "new.py").write_bytes(b"y" * 50)  # untracked, not ignored: travels
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "big.bin").write_bytes(b"z" * 10_000)  # ignored: stays
    (tmp_path / ".whl").mkdir()
    (tmp_path / ".whl" / "w.whl").write_bytes(b"w" * 300)  # ignored, but carried
    sizes = travel_bytes(tmp_path, (".whl",))
    assert sizes == {".gitignore": len("/cache/\n/.whl/\n"), "code": 150, ".whl": 300}


def test_the_h100_crash_is_diagnosed_on_an_h100_only(tmp_path):
    from benchmark.tools.gpu_oneshot import DIAG_VARIANT, build_parser, plan_steps

    args = build_parser().parse_args(["--out", str(tmp_path), "--steps", "smoke,diag"])
    names = [step.name for step, _ in plan_steps(args, tmp_path, {"gpu": "NVIDIA H200"})]
    assert names == ["plan_before", "smoke_tiny"]
    steps = [step for step, _ in plan_steps(args, tmp_path, {"gpu": "NVIDIA H100 80GB HBM3"})]
    blocking = next(step for step in steps if step.name == "h100_crash_launch_blocking")
    assert blocking.commands[0][:2] == ["env", "CUDA_LAUNCH_BLOCKING=1"] and blocking.commands[0][-1] == DIAG_VARIANT


def test_compiling_is_chosen_when_it_trains_more_samples_in_the_slot():
    from benchmark.tools.gpu_oneshot import compile_pays_back, fastest_layout

    def record(rate, compiled=False, compile_s=None, layout="grouped"):
        return {"model": "meae", "suite": "triangles", "concurrent": 1, "samples_per_s": rate, "compile": compiled,
                "compile_s": compile_s, "encoder_layout": layout, "decoder_layout": "native"}

    records = [record(10_000), record(12_000, layout="split"), record(15_000, compiled=True, compile_s=60, layout="split")]
    assert fastest_layout(records, "triangles") == "split/native"  # compiled records do not pick the layout
    # 240 s: (240 - 60) * 15,000 = 2.70 M samples compiled, 240 * 12,000 = 2.88 M plain.
    decision = compile_pays_back(records, "triangles", 240)
    assert decision["pays_back"] is False and decision["extra_samples"] == 180 * 15_000 - 240 * 12_000
    assert compile_pays_back(records, "triangles", 600)["pays_back"] is True  # 8.1 M vs 7.2 M
    assert compile_pays_back(records[:2], "triangles", 600) is None


def test_slim_checkout_leaves_results_behind_for_a_device_call_and_comes_back(tmp_path):
    def git(*arguments):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    def script(action):
        return subprocess.run(["bash", "scripts/device_checkout.sh", action], cwd=tmp_path, capture_output=True, text=True)

    git("init", "-q")
    git("checkout", "-q", "-b", "work")  # not init -b: older gits lack it
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "device_checkout.sh").write_text((REPO_ROOT / "scripts" / "device_checkout.sh").read_text())
    (tmp_path / "results" / "mesa").mkdir(parents=True)
    (tmp_path / "results" / "mesa" / "cell.npz").write_bytes(b"x" * 1000)
    (tmp_path / "results" / "speed.jsonl").write_text("{}\n")
    (tmp_path / "code.py").write_text("print(1)\n")
    git("add", "."), git("commit", "-qm", "c")

    (tmp_path / "code.py").write_text("print(2)\n")
    refused = script("slim")
    assert refused.returncode == 1 and "commit or stash" in refused.stderr
    git("checkout", "code.py")

    assert script("slim").returncode == 0
    assert git("rev-parse", "--abbrev-ref", "HEAD") == "device-slim"
    assert git("ls-files").split() == ["code.py", "results/speed.jsonl", "scripts/device_checkout.sh"]
    assert not (tmp_path / "results" / "mesa").exists() and (tmp_path / "results" / "speed.jsonl").is_file()

    assert script("back").returncode == 0
    assert git("rev-parse", "--abbrev-ref", "HEAD") == "work" and git("status", "--short") == ""
    assert (tmp_path / "results" / "mesa" / "cell.npz").read_bytes() == b"x" * 1000
