"""The Dask backend: same scores as joblib, a dead worker costs only its cell, and the CLI.

A real ``LocalCluster`` of two single-threaded worker processes runs tiny triangles cells.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from benchmark import cli  # noqa: E402
from benchmark.core.errors import BenchmarkError  # noqa: E402
from benchmark.run import executors, runner  # noqa: E402
from benchmark.run.config import RunConfig  # noqa: E402
from benchmark.run.runner import run_suite  # noqa: E402
from methods.base import _REGISTRY  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
METHODS = ["mixture", "pca", "fastica"]
CELLS = {"mixture__seed0", "pca__seed0", "fastica__seed0"}
KEYS = ["cell_id", "input", "target", "metric"]


def _run(results: Path, cache: Path, **kwargs) -> runner.RunSummary:
    options = dict(profile="tiny", method_names=METHODS, seeds=[0], device="cpu", progress=False)
    options.update(kwargs)
    return run_suite("triangles", RunConfig(results_dir=results, cache_dir=cache, **options))


def _root(results: Path) -> Path:
    return results / "triangles" / "tiny"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``run_benchmark.py --backend dask`` in a subprocess, started first so it overlaps the other tests."""
    cwd = tmp_path_factory.mktemp("cli")
    args = ["--suite", "triangles", "--profile", "tiny", "--methods", "mixture", "--seeds", "0",
            "--backend", "dask", "--jobs", "2", "--no-progress",
            "--results-dir", str(cwd / "results"), "--cache-dir", str(cwd / "cache")]
    proc = subprocess.Popen([sys.executable, "run_benchmark.py", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield cwd, proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def cluster(cli_run):
    """Two worker processes. A task whose worker dies is failed at once (``allowed-failures``
    0, no work stealing), so the dying cell below kills one worker, not four, and never an
    innocent cell that was merely queued beside it."""
    config = {"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.work-stealing": False}
    with dask.config.set(config), executors.nanny_environ_restored():
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as local:
            with distributed.Client(local) as client:
                from dask_helpers import RegisterOnWorkers

                client.register_plugin(RegisterOnWorkers())
            yield local


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_dask_run_matches_joblib(cluster, cache, tmp_path):
    results = tmp_path / "dask"
    summary = _run(results, cache, backend="dask", scheduler=cluster.scheduler_address)
    assert set(summary.ran) == CELLS and summary.failed == [] and summary.reused == []
    assert {p.stem for p in (_root(results) / "cells").glob("*.json")} == CELLS

    # The same cells in this process (joblib, one job) with the BLAS threads the workers used:
    # FastICA stopped after the tiny profile's 50 iterations depends on the summation order.
    [threads] = {json.loads(p.read_text())["n_threads"] for p in (_root(results) / "cells").glob("*.json")}
    joblib_results = tmp_path / "joblib"
    with threadpool_limits(limits=threads):
        reference = _run(joblib_results, cache)
    assert set(reference.ran) == CELLS and reference.failed == []

    dask_runs = pd.read_csv(_root(results) / "runs.csv").sort_values(KEYS).reset_index(drop=True)
    joblib_runs = pd.read_csv(_root(joblib_results) / "runs.csv").sort_values(KEYS).reset_index(drop=True)
    pd.testing.assert_frame_equal(dask_runs[KEYS], joblib_runs[KEYS])
    # (mixture + 2 methods x (fixed mapping, PIT oracle)) x sources x metrics (MSE, SSIM, SI-SDR, SI-SDRi)
    assert len(dask_runs) == 5 * 2 * 4
    np.testing.assert_allclose(dask_runs["value"], joblib_runs["value"], rtol=1e-6, atol=1e-9)

    manifest = json.loads((_root(results) / "manifest.json").read_text())
    assert manifest["execution"] == {"backend": "dask", "scheduler": cluster.scheduler_address, "workers": 2}
    joblib_manifest = json.loads((_root(joblib_results) / "manifest.json").read_text())
    assert joblib_manifest["execution"] == {"backend": "joblib", "scheduler": None, "workers": 1}


def test_dead_worker_fails_only_its_cell_and_a_rerun_completes_it(cluster, cache, tmp_path, monkeypatch):
    from dask_helpers import DiesWhileFlagged

    monkeypatch.setitem(_REGISTRY, DiesWhileFlagged.name, DiesWhileFlagged)
    flag = tmp_path / "die"
    flag.touch()
    results = tmp_path / "results"
    # the dying cell is planned (so submitted) last: the others run before it on either worker
    options = dict(method_names=["mixture", "pca", DiesWhileFlagged.name],
                   overrides={DiesWhileFlagged.name: {"flag": str(flag)}},
                   backend="dask", scheduler=cluster.scheduler_address)
    summary = _run(results, cache, **options)
    assert set(summary.ran) == {"mixture__seed0", "pca__seed0"}
    [failed] = summary.failed
    assert failed["cell_id"].startswith("dies_while_flagged__seed0__") and failed["status"] == "failed"
    assert "KilledWorker" in failed["error"]
    assert {p.stem for p in (_root(results) / "cells").glob("*.json")} == {"mixture__seed0", "pca__seed0"}
    manifest = json.loads((_root(results) / "manifest.json").read_text())
    assert [f["cell_id"] for f in manifest["last_run"]["failed"]] == [failed["cell_id"]]

    flag.unlink()
    rerun = _run(results, cache, **options)
    assert rerun.ran == [failed["cell_id"]] and rerun.failed == []
    assert set(rerun.reused) == {"mixture__seed0", "pca__seed0"}
    assert (_root(results) / "cells" / f"{failed['cell_id']}.json").exists()


def test_cli_dask_backend(cli_run):
    cwd, proc = cli_run
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "1 cells run" in out and "0 failed" in out
    root = _root(cwd / "results")
    assert "| mixture | trivial | measured |" in (root / "leaderboard.md").read_text()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["execution"] == {"backend": "dask", "scheduler": "local", "workers": 2}


def test_cli_scheduler_needs_dask_backend(capsys, tmp_path):
    code = cli.main(["--suite", "triangles", "--scheduler", "tcp://127.0.0.1:8786",
                     "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["run_benchmark.py: error: --scheduler needs --backend dask"]
    assert not (tmp_path / "results").exists()
    with pytest.raises(BenchmarkError, match="needs --backend dask"):
        run_suite("triangles", RunConfig(scheduler="tcp://127.0.0.1:8786", results_dir=tmp_path, cache_dir=tmp_path))


def test_unreachable_scheduler_is_a_benchmark_error(cache, tmp_path):
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(BenchmarkError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
            _run(tmp_path, cache, method_names=["mixture"], backend="dask", scheduler="tcp://127.0.0.1:1")


def test_missing_dask_is_one_line_with_the_fix(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(BenchmarkError, match=r'pip install -e "\.\[dask\]"'):
        executors.check_backend("dask", None)
    code = cli.main(["--suite", "triangles", "--backend", "dask", "--profile", "tiny",
                     "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install" in err[0]
    assert not (tmp_path / "cache").exists()
