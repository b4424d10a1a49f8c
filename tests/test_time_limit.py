"""Time-limited training: the epoch loop, the runner, the leaderboard and the CLI."""

from __future__ import annotations

import itertools
import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark import cli
from benchmark.run.config import RunConfig
from benchmark.run.planning import CellSpec
from benchmark.run.runner import run_suite
from methods.nn import time_budget
from methods.nn.batches import BatchSource
from methods.nn.loop import EpochPlan, train_epochs

N_SAMPLES, BATCH = 32, 8  # four steps per epoch


@pytest.fixture
def fake_clock(monkeypatch):
    """Every read of the time-limit clock advances it by one second."""
    ticks = itertools.count(1)
    monkeypatch.setattr(time_budget, "_clock", lambda: float(next(ticks)))


def _train(epochs: int, time_limit: float | None, checkpoint_dir=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    data = np.random.default_rng(0).random((N_SAMPLES, 4), dtype=np.float32)

    def step_losses(batch):
        return {"total": model(batch[0]).pow(2).mean()}

    run = train_epochs(
        model, optimizer, scheduler, BatchSource([data], "cpu"), step_losses,
        EpochPlan(epochs=epochs, batch_size=BATCH, seed=0, label="test", checkpoint_dir=checkpoint_dir,
                  time_limit=time_limit),
    )
    return run, optimizer


def test_no_time_limit_trains_every_epoch():
    run, optimizer = _train(epochs=3, time_limit=None)
    budget = run.budget
    assert (budget.cut, budget.epochs_completed, budget.epochs_planned) == (False, 3, 3)
    assert budget.samples_seen == 3 * N_SAMPLES
    assert [h.complete for h in run.history] == [True, True, True]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)


def test_time_limit_stops_mid_epoch_after_the_step_that_reaches_it(fake_clock):
    # Clock reads: 1 sets the deadline (1 + 5.5), 2 checks it, then one per step: steps at
    # t = 3..6 finish epoch 0, the step read at t = 7 passes the deadline: 5 steps in all.
    run, optimizer = _train(epochs=100, time_limit=5.5)
    budget = run.budget
    assert budget.cut and budget.epochs_completed == 1 and budget.epochs_planned == 100
    assert budget.samples_seen == 5 * BATCH
    assert [(h.epoch, h.complete, h.samples) for h in run.history] == [(0, True, 32), (1, False, 8)]
    # the schedule advanced for the whole epoch only
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5)


def test_limit_reached_on_the_last_step_of_an_epoch_keeps_that_epoch_whole(fake_clock):
    run, _ = _train(epochs=100, time_limit=4.5)
    assert run.budget.cut and run.budget.epochs_completed == 1
    assert [h.complete for h in run.history] == [True]
    assert run.budget.samples_seen == N_SAMPLES


def test_resumed_training_counts_the_time_of_earlier_epochs(tmp_path):
    first, _ = _train(epochs=2, time_limit=None, checkpoint_dir=tmp_path)
    spent = sum(h.seconds for h in first.history)
    resumed, _ = _train(epochs=5, time_limit=spent / 2, checkpoint_dir=tmp_path)
    assert resumed.events.resumed_from_epoch == 2
    assert resumed.budget.cut and resumed.budget.epochs_completed == 2
    assert resumed.budget.samples_seen == 2 * N_SAMPLES


def test_adversarial_ica_stops_at_the_time_limit_like_the_other_network_methods(fake_clock):
    from methods.adversarial_ica import AdversarialICA
    from methods.base import RunContext, Split

    torch.set_num_threads(1)
    # 48 samples, batch 16: 3 steps per epoch. Clock reads as above: steps at t = 3..5 finish
    # epoch 0, the second step of epoch 1 (t = 7) passes the deadline of 1 + 5.5.
    split = Split(np.random.default_rng(0).random((48, 16, 16), dtype=np.float32), ("a", "b"))
    method = AdversarialICA(n_sources=2, channels=(4, 4), kernel_size=3, disc_channels=4, epochs=100,
                            batch_size=16, disc_steps=1, seed=0)
    method.with_context(RunContext(device="cpu", n_threads=1, time_limit=5.5)).fit(split)
    budget = method.training_budget_
    assert budget["cut"] and (budget["epochs_completed"], budget["epochs_planned"]) == (1, 100)
    assert budget["samples_seen"] == 5 * 16
    assert [(h["epoch"], h["complete"], h["samples"]) for h in method.history_] == [(0, True, 48), (1, False, 32)]


def test_time_limit_must_be_positive():
    with pytest.raises(ValueError, match="time_limit"):
        _train(epochs=1, time_limit=0)


def test_time_limit_is_part_of_the_cell_identity():
    spec = CellSpec("triangles", "tiny", "meae", 0, {"epochs": 1})
    limited = CellSpec("triangles", "tiny", "meae", 0, {"epochs": 1}, time_limit=60.0)
    assert spec.fingerprint("data") != limited.fingerprint("data")
    assert spec.fingerprint("data") == CellSpec("triangles", "tiny", "meae", 0, {"epochs": 1}).fingerprint("data")


def test_runner_records_and_marks_cells_cut_by_the_time_limit(tmp_path):
    summary = run_suite(
        "triangles", RunConfig(profile="tiny", method_names=["mixture", "meae"], seeds=[0], device="cpu",
        progress=False, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache",
        overrides={"meae": {"epochs": 10_000}}, time_limit=1.0)
    )
    assert not summary.failed
    root = tmp_path / "results" / "triangles" / "tiny"
    cell_id = next(c for c in summary.ran if c.startswith("meae"))
    record = json.loads((root / "cells" / f"{cell_id}.json").read_text())
    budget = record["training_budget"]
    assert budget["cut"] and budget["epochs_planned"] == 10_000
    assert budget["epochs_completed"] < 10_000 and budget["samples_seen"] > 0
    assert 0 < budget["train_seconds"] < 10  # stops after the step that reaches the limit
    assert record["time_limit"] == {"per_cell_s": 1.0, "effective_s": 1.0}

    board = pd.read_csv(root / "leaderboard.csv", keep_default_na=False)
    meae = board[board.method.str.startswith("meae") & (board.source == "measured")]
    assert (meae.time_limited.str.contains(f"{budget['epochs_completed']} of 10000 epochs")).all()
    mixture = board[(board.method == "mixture") & (board.source == "measured")]
    assert (mixture.time_limited == "").all()
    markdown = (root / "leaderboard.md").read_text()
    assert "meae[epochs=10000] †" in markdown and "training cut by the time limit" in markdown
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["cells"][cell_id]["training_budget"]["cut"] is True


def test_cells_not_started_before_the_run_deadline_are_skipped_with_the_reason(tmp_path):
    summary = run_suite(
        "triangles", RunConfig(profile="tiny", method_names=["mixture"], seeds=[0], device="cpu", progress=False,
        results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", run_deadline=time.time() - 1)
    )
    assert summary.ran == [] and summary.failed == []
    assert [s["reason"] for s in summary.skipped] == ["the run's --total-time-limit was reached before this cell started"]


@pytest.mark.parametrize("option", ["--time-limit", "--total-time-limit"])
def test_cli_rejects_a_non_positive_time_limit(option, capsys):
    assert cli.main(["--suite", "triangles", option, "0"]) == 2
    assert f"{option} must be a positive number of seconds" in capsys.readouterr().err


def test_a_longer_limit_continues_a_cut_cell_from_its_exported_checkpoint(tmp_path):
    """Cut at 1 s, exported, then run with a 3 s limit and --resume-from: the second cell starts
    after the first one's last complete epoch (another folder, another key, the same training)."""
    from benchmark.run.resume import export_resumable

    def run(limit, **extra):
        return run_suite("triangles", RunConfig(
            profile="tiny", method_names=["meae"], seeds=[0], device="cpu", progress=False,
            results_dir=tmp_path / f"results{limit}", cache_dir=tmp_path / "cache",
            overrides={"meae": {"epochs": 10_000}}, time_limit=limit, **extra))

    def record(limit):
        root = tmp_path / f"results{limit}" / "triangles" / "tiny" / "cells"
        return json.loads(next(root.glob("meae*.json")).read_text())

    assert not run(1.0).failed
    first = record(1.0)["training_budget"]
    assert first["cut"] and first["epochs_completed"] >= 1
    notes = export_resumable(tmp_path / "cache", tmp_path / "carried")
    assert [(n["cell_id"], n["epochs_completed"]) for n in notes] == [(record(1.0)["cell_id"], first["epochs_completed"])]
    assert notes[0]["checkpoints"] == ["training/training.pt"]
    shutil.rmtree(tmp_path / "cache" / "models")  # as on a fresh machine: only the carried checkpoint is left

    assert not run(3.0, resume_from=tmp_path / "carried").failed
    second = record(3.0)
    assert second["resumed_from"] == {"time_limit_s": 1.0, "epochs_completed": first["epochs_completed"],
                                      "train_seconds": first["train_seconds"]}
    history = second["details"]["fit_history"]
    assert second["details"]["training_events"]["resumed_from_epoch"] == first["epochs_completed"]
    assert history[0]["epoch"] == 0 and len(history) > first["epochs_completed"]  # the earlier epochs kept, then more
    assert second["training_budget"]["epochs_completed"] > first["epochs_completed"]


def test_a_checkpoint_of_another_training_is_not_resumed(tmp_path):
    from benchmark.run.resume import RESUME_FILE, resume_from

    spec = CellSpec("triangles", "tiny", "meae", 0, {"epochs": 5}, time_limit=2.0)
    source = tmp_path / "carried" / "triangles" / "tiny" / spec.cell_id
    (source / "training").mkdir(parents=True)
    (source / "training" / "training.pt").write_bytes(b"state")
    note = {"training_key": CellSpec("triangles", "tiny", "meae", 0, {"epochs": 6}).fingerprint("data", False),
            "checkpoints": ["training/training.pt"], "epochs_completed": 1, "train_seconds": 1.0, "time_limit_s": 1.0}
    (source / RESUME_FILE).write_text(json.dumps(note))
    assert resume_from(tmp_path / "carried", spec, "data", tmp_path / "model") is None
    assert not (tmp_path / "model").exists()
    # The same training (only the time limit differs) is resumed; a folder with progress of its own is not touched.
    note["training_key"] = spec.fingerprint("data", with_time_limit=False)
    (source / RESUME_FILE).write_text(json.dumps(note))
    assert resume_from(tmp_path / "carried", spec, "data", tmp_path / "model")["epochs_completed"] == 1
    assert (tmp_path / "model" / "training" / "training.pt").read_bytes() == b"state"
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "config.json").write_text("{}")
    assert resume_from(tmp_path / "carried", spec, "data", tmp_path / "own") is None
