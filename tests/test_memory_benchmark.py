"""Tests for the helpers of the peak-memory benchmark (benchmark/tools/memory.py, with its sampling in
benchmark/tools/process_memory.py); the benchmark itself is not run here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.tools import memory, process_memory

HAS_PROC = Path(f"/proc/{os.getpid()}/status").exists()


def test_peak_rss_is_positive_and_at_least_the_current_rss() -> None:
    peak = process_memory.peak_rss_mb()
    assert 1 < peak < 1e6
    if HAS_PROC:
        assert process_memory.current_rss_mb() <= peak + 1


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc (Linux)")
def test_proc_status_and_sampler_see_a_child_process() -> None:
    status = process_memory.proc_status_kib(os.getpid())
    assert status["VmHWM"] >= status["VmRSS"] > 0
    assert process_memory.proc_status_kib(2**22 + 12345) is None  # beyond pid_max: no such process
    code = "import sys, time; b = bytearray(64 * 2**20); sys.stdout.write('x'); sys.stdout.flush(); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout.read(1) == b"x"  # the 64 MiB are allocated
        assert child.pid in process_memory.descendants(os.getpid())
        with process_memory.TreeSampler(interval=0.01) as sampler:
            pass
        assert child.pid in sampler.peaks_kib
        assert sampler.peak_mb >= 64
    finally:
        child.kill()
        child.wait()


def _fake_cache(root: Path) -> Path:
    train = root / "train"
    train.mkdir(parents=True)
    data = np.random.default_rng(0).random((50, 64)).astype(np.float32)
    available = np.ones(50, dtype=bool)
    available[[3, 17]] = False
    data[~available] = np.nan
    np.save(train / "ECG.npy", data)
    np.save(train / "available_ECG.npy", available)
    return root


@pytest.mark.parametrize("phase", ["stream", "memmap", "materialise"])
def test_measure_reads_rows(tmp_path: Path, phase: str) -> None:
    row = memory.measure_reads(_fake_cache(tmp_path / "cache"), phase, batch_size=16)
    assert row["segments"] == 48
    assert row["phase"] == (phase if phase == "materialise" else f"{phase} b=16")
    assert row["coordinator_peak_mb"] > 0 and row["worker_peak_mb"] is None
    assert row["cache_mb"] == pytest.approx(process_memory.folder_mb(tmp_path / "cache"))


def test_table_and_growth_summary() -> None:
    rows = [
        {"cohort": "small", "phase": "preprocess", "recordings": 2, "segments": 10,
         "coordinator_peak_mb": 100.0, "worker_peak_mb": 50.0, "seconds": 1.0},
        {"cohort": "4x", "phase": "preprocess", "recordings": 8, "segments": 40,
         "coordinator_peak_mb": 101.5, "worker_peak_mb": None, "seconds": 4.0},
    ]
    table = memory.format_table(rows).splitlines()
    assert len(table) == 4 and "peak RSS coordinator MB" in table[0]
    assert "| 4x | preprocess | 8 | 40 | - | - | 101.5 | - | 4.0 |" == table[3]
    assert memory.growth_summary(rows) == [
        "preprocess: coordinator peak 100.0 -> 101.5 MB (+1.5 MB for 4.0x the segments)"
    ]


def test_command_line_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        memory.main(["--subjects", "0"])
    assert "at least 1" in capsys.readouterr().err
