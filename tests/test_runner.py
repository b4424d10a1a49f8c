"""Tests of the benchmark runner: overrides, outputs, resume, checkpoints and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import cli
from benchmark.core.errors import BenchmarkError
from benchmark.evaluation.metrics import mse, ssim
from benchmark.report.leaderboard import LEADERBOARD_COLUMNS
from benchmark.run import runner
from benchmark.run.config import RunConfig
from benchmark.run.fitting import Fitter
from benchmark.run.planning import parse_overrides, plan_cells
from benchmark.run.runner import run_suite
from benchmark.suites import SuiteOptions
from benchmark.suites.triangles import SOURCES, TrianglesSuite
from methods.base import Method, Split
from methods.meae import MEAE
from methods.mixture import MixtureAsEstimate

REPO_ROOT = Path(__file__).resolve().parents[1]
METHODS = ["mixture", "meae"]
CELLS = {"mixture__seed0", "meae__seed0"}


def _run(results_dir: Path, cache_dir: Path, **kwargs) -> runner.RunSummary:
    options = dict(profile="tiny", method_names=METHODS, seeds=[0], device="cpu", progress=False)
    options.update(kwargs)
    return run_suite("triangles", RunConfig(results_dir=results_dir, cache_dir=cache_dir, **options))


def _root(results_dir: Path) -> Path:
    return results_dir / "triangles" / "tiny"


def _cell(results_dir: Path, cell_id: str) -> dict:
    return json.loads((_root(results_dir) / "cells" / f"{cell_id}.json").read_text())


def _mtimes(results_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (_root(results_dir) / "cells").iterdir()}


# ------------------------------------------------------------------- CLI (subprocesses)

CLI_SUBPROCESS_CASES = {
    "unknown_method": ["--suite", "triangles", "--methods", "nope"],
    "list": ["--list"],
}


@pytest.fixture(scope="module")
def _cli_processes(tmp_path_factory):
    """Start ``python run_benchmark.py`` for every subprocess case at once (each pays the
    interpreter start-up and the torch import)."""
    cwd = tmp_path_factory.mktemp("cli_cwd")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "run_benchmark.py", *args, "--results-dir", str(cwd / "results"), "--cache-dir", str(cwd / "cache")],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, args in CLI_SUBPROCESS_CASES.items()
    }
    yield cwd, procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def cli_results(_cli_processes):
    cwd, procs = _cli_processes
    results = {"cwd": cwd}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = (proc.returncode, out, err)
    return results


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _one_thread_per_cell():
    """The runner gives each cell os.cpu_count() threads; on a shared 2-core machine OpenMP
    spin-waiting makes tiny convolutions 10-100x slower, so pretend there is one core."""
    import os

    import torch

    previous = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "cpu_count", lambda: 1)
        yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def base(tmp_path_factory, cache_dir):
    """One finished run of mixture + meae on the tiny profile."""
    results = tmp_path_factory.mktemp("base") / "results"
    summary = _run(results, cache_dir)
    return summary, results


@pytest.fixture()
def copy_of_base(base, tmp_path) -> Path:
    """A private copy of the base results (mtimes preserved), for tests that rerun."""
    target = tmp_path / "results"
    shutil.copytree(base[1], target)
    return target


@pytest.fixture(scope="module")
def splits(base, cache_dir):
    suite = TrianglesSuite()
    handle = suite.prepare("tiny", SuiteOptions(cache_dir=cache_dir, progress=False))
    return handle, suite.load_splits(handle)


# ------------------------------------------------------------------------ parse_overrides


def test_parse_overrides_literals():
    parsed = parse_overrides(["meae.epochs=5", "meae.channels=(6,6,12,12)", "meae.mixing_weighting=position", "supervised_ae.keep_best=True"])
    assert parsed == {
        "meae": {"epochs": 5, "channels": (6, 6, 12, 12), "mixing_weighting": "position"},
        "supervised_ae": {"keep_best": True},
    }
    assert isinstance(parsed["meae"]["epochs"], int)
    assert isinstance(parsed["meae"]["channels"], tuple)
    assert parse_overrides(["meae.lr = 1e-4"]) == {"meae": {"lr": 1e-4}}
    assert parse_overrides([]) == {}


@pytest.mark.parametrize("item,match", [
    ("nope.epochs=5", "unknown method 'nope'"),
    ("meae.nope=5", "no parameter 'nope'"),
    ("meae.epochs", "METHOD.PARAM=VALUE"),
    ("meae=5", "METHOD.PARAM=VALUE"),
    ("meae.=5", "METHOD.PARAM=VALUE"),
])
def test_parse_overrides_errors(item, match):
    with pytest.raises(BenchmarkError, match=match):
        parse_overrides([item])


def test_plan_cells_precedence_and_ids():
    overrides = {"meae": {"epochs": 2, "seed": 99}}
    cells = plan_cells("triangles", "tiny", ["mixture", "meae"], [0, 3], overrides)
    # mixture has no seed parameter: deterministic, so one cell (recorded as seed 0) only.
    assert [(c.method, c.seed) for c in cells] == [("mixture", 0), ("meae", 0), ("meae", 3)]
    mixture, meae0, meae3 = cells
    assert mixture.params == {} and mixture.cell_id == "mixture__seed0" and mixture.label == "mixture"
    assert meae0.params["epochs"] == 2  # override beats the profile (tiny: 1 epoch)
    assert meae0.params["channels"] == [6, 6, 12, 12]  # the tiny profile beats the defaults
    assert meae0.params["seed"] == 0 and meae3.params["seed"] == 3  # the cell seed wins
    assert meae0.label == "meae[epochs=2,seed=99]"
    assert meae0.cell_id.startswith("meae__seed0__") and meae0.cell_id != "meae__seed0"
    assert meae0.fingerprint("data") != meae3.fingerprint("data")
    assert meae0.fingerprint("data") != meae0.fingerprint("other-data")
    later = plan_cells("triangles", "tiny", ["mixture", "meae"], [1, 2], {})
    # A later-seeds run reuses the deterministic cell instead of writing a second one.
    assert [(c.method, c.seed) for c in later] == [("mixture", 0), ("meae", 1), ("meae", 2)]
    assert later[0].fingerprint("data") == mixture.fingerprint("data")
    plain = plan_cells("triangles", "tiny", ["meae"], [0], {})[0]
    assert plain.cell_id == "meae__seed0" and plain.fingerprint("data") != meae0.fingerprint("data")


# ------------------------------------------------------------------------------- outputs


def test_run_writes_every_output(base):
    summary, results = base
    root = _root(results)
    assert set(summary.ran) == CELLS and summary.reused == [] and summary.failed == []
    for name in ("runs.csv", "leaderboard.csv", "leaderboard.md", "manifest.json"):
        assert (root / name).stat().st_size > 0, name
    for name in ("sample_grid.png", "decoder_weights.png", "training_curves.png"):
        assert (root / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert {p.stem for p in (root / "cells").glob("*.json")} == CELLS

    board = pd.read_csv(root / "leaderboard.csv")
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert list(board.columns)[:9] == ["suite", "method", "input", "target", "metric", "mean", "std", "n_seeds", "source"]
    assert set(board.source) == {"measured", "paper"}
    measured = board[board.source == "measured"]
    assert set(measured.method) == {"mixture", "meae", "meae (PIT oracle)"}  # no oracle rows for trivial rows
    assert len(measured) == 3 * 2 * 4  # (methods + meae's oracle rows) x sources x metrics
    assert set(measured.n_seeds) == {1} and measured["std"].isna().all()
    assert np.isfinite(measured["mean"]).all()
    paper = board[board.source == "paper"]
    assert paper[(paper.method == "meae") & (paper.target == "triangle") & (paper.metric == "mse")]["mean"].item() == pytest.approx(0.00636)

    runs = pd.read_csv(root / "runs.csv")
    assert len(runs) == 24 and set(runs.cell_id) == CELLS  # as the measured leaderboard rows, one seed

    manifest = json.loads((root / "manifest.json").read_text())
    for key in ("packages", "git", "seeds", "data", "cells", "device", "methods", "last_run"):
        assert key in manifest, key
    assert manifest["seeds"] == [0]
    assert set(manifest["cells"]) == CELLS
    assert manifest["packages"]["torch"] != "not installed"
    assert manifest["data"]["n_test"] == 32 and manifest["data"]["generator"]["n"] == 160

    markdown = (root / "leaderboard.md").read_text()
    assert "| mixture | trivial | measured |" in markdown and "meae (paper, reference)" in markdown

    meae = _cell(results, "meae__seed0")
    assert meae["status"] == "finished" and meae["details"]["reloaded_model"] is False
    assert meae["params"]["channels"] == [6, 6, 12, 12] and meae["timings"]["fit"] > 0
    assert len(meae["details"]["fit_history"]) == 1


def test_mixture_row_equals_direct_metrics(base, splits):
    _, results = base
    handle, data = splits
    test = data["test"]
    assert len(test) == 32 and test.targets.shape == (32, 2, 64, 64)
    estimate = np.clip(test.mixtures, 0, 1)
    board = pd.read_csv(_root(results) / "leaderboard.csv")
    rows = board[(board.source == "measured") & (board.method == "mixture")]
    for s, source in enumerate(SOURCES):
        expected = {
            "mse": float(mse(estimate, test.targets[:, s]).mean()),
            "ssim": float(ssim(estimate, test.targets[:, s]).mean()),
        }
        for metric, value in expected.items():
            got = rows[(rows.target == source) & (rows.metric == metric)]["mean"].item()
            assert got == pytest.approx(value, rel=1e-9), (source, metric)
    markdown = (_root(results) / "leaderboard.md").read_text()
    line = next(row for row in markdown.splitlines() if row.startswith("| mixture |"))
    assert f"{float(mse(estimate, test.targets[:, 0]).mean()):.5f}" in line


# -------------------------------------------------------------------------------- resume


def test_second_run_reuses_everything(copy_of_base, cache_dir):
    before = _mtimes(copy_of_base)
    summary = _run(copy_of_base, cache_dir)
    assert summary.ran == [] and set(summary.reused) == CELLS and summary.failed == []
    assert _mtimes(copy_of_base) == before
    manifest = json.loads((_root(copy_of_base) / "manifest.json").read_text())
    assert manifest["last_run"]["ran"] == [] and set(manifest["last_run"]["reused"]) == CELLS


def test_force_reruns_every_cell(copy_of_base, cache_dir):
    before = _mtimes(copy_of_base)
    summary = _run(copy_of_base, cache_dir, force=True)
    assert set(summary.ran) == CELLS and summary.reused == []
    after = _mtimes(copy_of_base)
    for cell in CELLS:
        assert after[f"{cell}.json"] != before[f"{cell}.json"]


def test_force_refits_the_model(copy_of_base, cache_dir):
    _run(copy_of_base, cache_dir, force=True, method_names=["meae"])
    assert _cell(copy_of_base, "meae__seed0")["details"]["reloaded_model"] is False


def test_override_creates_a_new_cell(copy_of_base, cache_dir):
    summary = _run(copy_of_base, cache_dir, method_names=["meae"], overrides={"meae": {"lambda_z": 0.02}})
    assert len(summary.ran) == 1 and summary.reused == []
    new_id = summary.ran[0]
    assert new_id.startswith("meae__seed0__") and new_id not in CELLS
    record = _cell(copy_of_base, new_id)
    assert record["params"]["lambda_z"] == 0.02 and record["label"] == "meae[lambda_z=0.02]"
    assert record["details"]["reloaded_model"] is False
    assert {p.stem for p in (_root(copy_of_base) / "cells").glob("*.json")} == CELLS | {new_id}
    board = pd.read_csv(_root(copy_of_base) / "leaderboard.csv")
    assert {"meae", "mixture", "meae[lambda_z=0.02]"} <= set(board[board.source == "measured"].method)
    # the same override again is reused
    again = _run(copy_of_base, cache_dir, method_names=["meae"], overrides={"meae": {"lambda_z": 0.02}})
    assert again.ran == [] and again.reused == [new_id]


def test_deleted_cell_is_rerun_alone_from_its_checkpoint(copy_of_base, cache_dir):
    original = _cell(copy_of_base, "meae__seed0")
    before = _mtimes(copy_of_base)
    (_root(copy_of_base) / "cells" / "meae__seed0.json").unlink()
    summary = _run(copy_of_base, cache_dir)
    assert summary.ran == ["meae__seed0"] and summary.reused == ["mixture__seed0"]
    assert _mtimes(copy_of_base)["mixture__seed0.json"] == before["mixture__seed0.json"]
    rerun = _cell(copy_of_base, "meae__seed0")
    # the model dir of the first run is still in the cache: reloaded, not refitted
    assert rerun["details"]["reloaded_model"] is True and rerun["timings"]["fit"] == 0.0
    assert rerun["fingerprint"] == original["fingerprint"]
    assert rerun["scores"] == original["scores"]


def test_interrupted_run_resumes_failed_cell_from_checkpoint(tmp_path, cache_dir, base, monkeypatch):
    # a private cache holding only the generated data (no model checkpoints)
    cache = tmp_path / "cache"
    cache.mkdir()
    for data_dir in cache_dir.glob("triangles-*"):
        shutil.copytree(data_dir, cache / data_dir.name)
    results = tmp_path / "results"

    def crash(self, mixtures):
        raise RuntimeError("simulated crash after fitting")

    with monkeypatch.context() as patch:
        patch.setattr(MEAE, "separate", crash)
        summary = _run(results, cache)
    assert summary.ran == ["mixture__seed0"]
    assert [f["cell_id"] for f in summary.failed] == ["meae__seed0"]
    assert "simulated crash" in summary.failed[0]["error"]
    assert (_root(results) / "cells" / "mixture__seed0.json").exists()
    assert not (_root(results) / "cells" / "meae__seed0.json").exists()
    model_dirs = list((cache / "models" / "triangles" / "tiny").glob("meae__seed0-*"))
    assert len(model_dirs) == 1 and (model_dirs[0] / "weights.pt").exists()
    manifest = json.loads((_root(results) / "manifest.json").read_text())
    assert [f["cell_id"] for f in manifest["last_run"]["failed"]] == ["meae__seed0"]

    def no_refit(self, train, valid=None):
        raise AssertionError("the checkpoint should have been reloaded")

    mixture_mtime = _mtimes(results)["mixture__seed0.json"]
    with monkeypatch.context() as patch:
        patch.setattr(MEAE, "fit", no_refit)
        resumed = _run(results, cache)
    assert resumed.ran == ["meae__seed0"] and resumed.reused == ["mixture__seed0"] and resumed.failed == []
    assert _mtimes(results)["mixture__seed0.json"] == mixture_mtime
    record = _cell(results, "meae__seed0")
    assert record["details"]["reloaded_model"] is True
    # same data, same seed: the resumed cell scores like the uninterrupted base run
    base_scores = _cell(base[1], "meae__seed0")["scores"]
    for got, want in zip(record["scores"], base_scores, strict=True):
        assert got["value"] == pytest.approx(want["value"], rel=1e-6)


# ---------------------------------------------------------------------------- Fitter


def _tiny_split() -> Split:
    rng = np.random.default_rng(0)
    targets = rng.random((4, 2, 8, 8)).astype(np.float32)
    return Split(targets.mean(axis=1), SOURCES, targets)


class _Checkpointed(Method):
    """A minimal checkpointable method that records what ``fit`` saw (not registered)."""

    name = "checkpointed_test_method"
    seen: list = []

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def fit(self, train, valid=None):
        type(self).seen.append((train.targets, None if valid is None else valid.targets))
        self.level_ = float(np.mean(train.mixtures))
        return self

    def separate(self, mixtures):
        return np.full((len(mixtures), 1, *mixtures.shape[1:]), self.level_ * self.scale, dtype=np.float32)

    def _save_state(self, directory):
        (directory / "level.txt").write_text(repr(self.level_))

    def _load_state(self, directory):
        self.level_ = float((directory / "level.txt").read_text())


def test_fitter_saves_reloads_and_blinds(tmp_path):
    _Checkpointed.seen = []
    split = _tiny_split()
    model_dir = tmp_path / "model"
    method, seconds, reloaded = Fitter(lambda: _Checkpointed(scale=2.0), model_dir).fit(split, split)
    assert reloaded is False and seconds >= 0
    assert _Checkpointed.seen == [(None, None)]  # unsupervised: targets removed
    assert (model_dir / "config.json").exists() and not (tmp_path / "model.tmp").exists()
    expected = method.separate(split.mixtures)

    again, seconds, reloaded = Fitter(lambda: _Checkpointed(scale=2.0), model_dir).fit(split, split)
    assert reloaded is True and seconds == 0.0 and len(_Checkpointed.seen) == 1
    assert again.scale == 2.0
    np.testing.assert_array_equal(again.separate(split.mixtures), expected)

    # a damaged checkpoint is refitted, not fatal, and replaced
    (model_dir / "level.txt").write_text("garbage")
    _, _, reloaded = Fitter(lambda: _Checkpointed(scale=2.0), model_dir).fit(split, split)
    assert reloaded is False and len(_Checkpointed.seen) == 2
    assert float((model_dir / "level.txt").read_text()) == pytest.approx(float(np.mean(split.mixtures)))


def test_fitter_without_model_dir_or_checkpoint_support(tmp_path):
    split = _tiny_split()
    method, _, reloaded = Fitter(MixtureAsEstimate, None).fit(split, split)
    assert reloaded is False and method.separate(split.mixtures).shape == (4, 2, 8, 8)
    if not MixtureAsEstimate.can_checkpoint():
        Fitter(MixtureAsEstimate, tmp_path / "mixture").fit(split, split)
        assert not (tmp_path / "mixture").exists()


# ------------------------------------------------------------------------------------ CLI


def test_cli_subprocess_error_is_one_line(cli_results):
    code, out, err = cli_results["unknown_method"]
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("run_benchmark.py: error: unknown method 'nope'")
    assert not (cli_results["cwd"] / "results").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--suite", "nope"], "unknown suite 'nope'"),
    (["--suite", "triangles", "--methods", "nope"], "unknown method 'nope'"),
    (["--suite", "triangles", "--set", "meae.nope=1"], "no parameter 'nope'"),
    (["--suite", "triangles", "--set", "meae.epochs"], "METHOD.PARAM=VALUE"),
    (["--suite", "triangles", "--seeds", "a,b"], "comma-separated integers"),
    (["--suite", "triangles", "--profile", "huge"], "unknown profile 'huge'"),
    (["--suite", "triangles", "--layout", "blocked"], "--layout: unknown layout 'blocked'"),
    (["--suite", "triangles", "--resume-from", "/nonexistent/resume"], "--resume-from /nonexistent/resume is not a folder"),
])
def test_cli_errors_are_one_line(argv, needle, capsys, tmp_path):
    code = cli.main([*argv, "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("run_benchmark.py: error:") and needle in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_cli_list(cli_results):
    code, out, err = cli_results["list"]
    assert code == 0, err
    assert "Traceback" not in err
    for name in ("meae", "supervised_ae", "mixture", "triangles"):
        assert name in out
    methods_part = out.split("Methods:")[1]
    line = next(line for line in methods_part.splitlines() if line.strip().startswith("supervised_ae"))
    assert "any input, supervised; runs on" in line and "mesa" in line and "triangles" in line
    assert "nk_ecg_rsp_sarkar2015" in methods_part and "[1d, ECG, blind; runs on mesa, mesa_public]" in methods_part
    assert "triangles" in out.split("Methods:")[0]


def test_rebuild_only_runs_nothing(tmp_path, cache_dir):
    summary = run_suite("triangles", RunConfig(profile="tiny", method_names=["mixture"], seeds=[0],
                        results_dir=tmp_path, cache_dir=cache_dir, progress=False, rebuild_only=True))
    assert summary.ran == [] and summary.reused == []
    assert not list((tmp_path / "triangles" / "tiny").glob("cells/*.json"))
    assert (tmp_path / "triangles" / "tiny" / "leaderboard.csv").exists()


def test_rebuild_only_restores_the_outputs_of_finished_cells(copy_of_base, cache_dir):
    root = _root(copy_of_base)
    board_before = (root / "leaderboard.csv").read_text()
    runs_before = (root / "runs.csv").read_text()
    cells_before = _mtimes(copy_of_base)
    for name in ("leaderboard.csv", "leaderboard.md", "runs.csv", "manifest.json"):
        (root / name).unlink()
    shutil.rmtree(root / "figures")

    summary = _run(copy_of_base, cache_dir, rebuild_only=True)
    assert summary.ran == [] and set(summary.reused) == CELLS
    assert _mtimes(copy_of_base) == cells_before  # no cell recomputed or rewritten
    assert (root / "leaderboard.csv").read_text() == board_before
    assert (root / "runs.csv").read_text() == runs_before
    assert set(json.loads((root / "manifest.json").read_text())["cells"]) == CELLS
    assert (root / "figures" / "sample_grid.png").is_file()


def test_a_rebuild_completes_old_records_with_what_their_methods_declare(copy_of_base, cache_dir):
    """Records written before they carried method_kind, supervised and show_outputs get them from
    the registry, after cell_id and with every other byte as it was; reports then need no registry."""
    root = _root(copy_of_base)
    path = root / "cells" / "meae__seed0.json"
    record = json.loads(path.read_text())
    old = {k: v for k, v in record.items() if k not in ("method_kind", "supervised", "show_outputs")}
    path.write_text(json.dumps(old, indent=2) + "\n")
    board_before = (root / "leaderboard.csv").read_text()

    _run(copy_of_base, cache_dir, rebuild_only=True)
    completed = json.loads(path.read_text())
    keys = list(completed)
    assert keys[keys.index("cell_id") + 1 : keys.index("cell_id") + 4] == ["method_kind", "supervised", "show_outputs"]
    assert (completed["method_kind"], completed["supervised"], completed["show_outputs"]) == ("method", False, True)
    assert {k: v for k, v in completed.items() if k in old} == old
    assert (root / "leaderboard.csv").read_text() == board_before
    mtime = path.stat().st_mtime_ns
    _run(copy_of_base, cache_dir, rebuild_only=True)
    assert path.stat().st_mtime_ns == mtime  # a complete record is never rewritten
