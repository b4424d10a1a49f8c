"""Early stopping (``patience``) in the epoch loop and the network methods, and ``convergence``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import methods
from methods.base import RunContext, Split
from methods.convergence import convergence
from methods.nn.batches import BatchSource
from methods.nn.checkpoint import CHECKPOINT_FILE, write_training_checkpoint
from methods.nn.loop import EpochPlan, run_epochs, train_epochs
from methods.nn.steps import GradientStep

N_SAMPLES, BATCH = 32, 8
NETWORK_METHODS = ("adversarial_ica", "meae", "supervised_ae", "unet", "vae_bss", "vae_bss_mask")


class ScriptedScores:
    """A ``validate`` callable returning ``scores`` in turn (from ``start``), snapshotting the weights it scores."""

    def __init__(self, model: torch.nn.Module, scores, start: int = 0, fail_at: int | None = None):
        self.model, self.scores, self.calls, self.fail_at = model, list(scores), start, fail_at
        self.weights: list[torch.Tensor] = []

    def __call__(self) -> float:
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        self.weights.append(self.model.weight.detach().clone())
        score = self.scores[self.calls]
        self.calls += 1
        return score


def _toy():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    data = np.random.default_rng(0).random((N_SAMPLES, 4), dtype=np.float32)

    def step_losses(batch):
        return {"total": (model(batch[0]) - 1).pow(2).mean()}

    return model, GradientStep(model, optimizer, step_losses, None), BatchSource([data], "cpu")


def _run(scores, epochs=10, start=0, fail_at=None, **kwargs):
    model, step, batches = _toy()
    validate = ScriptedScores(model, scores, start, fail_at)
    run = run_epochs(model, step, batches, EpochPlan(epochs=epochs, batch_size=BATCH, seed=0, label="toy", **kwargs),
                     validate=validate)
    return run, model, validate


# ------------------------------------------------------------------- the epoch loop


def test_patience_stops_after_that_many_epochs_without_a_real_improvement():
    # 0.4999 and 0.4996 improve on 0.5 by less than min_delta (1e-3 relative): not improvements
    run, model, validate = _run([1.0, 0.5, 0.4999, 0.6, 0.4996, 0.1, 0.1], patience=3, keep_best=True)
    assert [h.epoch for h in run.history] == [0, 1, 2, 3, 4]
    assert [h.losses["valid"] for h in run.history] == [1.0, 0.5, 0.4999, 0.6, 0.4996]
    budget = run.budget.to_dict()
    assert budget["stopped_early"] is True and budget["cut"] is False
    assert (budget["epochs_completed"], budget["epochs_planned"], budget["samples_seen"]) == (5, 10, 5 * N_SAMPLES)
    # keep_best still keeps the lowest score, however small its gain
    torch.testing.assert_close(model.weight, validate.weights[4], rtol=0, atol=0)


def test_an_improvement_resets_the_count():
    run, _, _ = _run([1.0, 0.9, 0.95, 0.8, 0.8, 0.85, 0.7], patience=2)
    assert len(run.history) == 6 and run.budget.stopped_early


def test_patience_reached_on_the_last_planned_epoch_is_not_an_early_stop():
    run, _, _ = _run([1.0, 2.0, 3.0], epochs=3, patience=2)
    assert len(run.history) == 3 and not run.budget.stopped_early


def test_warm_up_epochs_do_not_count():
    run, _, _ = _run([1.0, 2.0, 3.0, 4.0, 0.5, 0.6, 0.7, 0.1], patience=2, patience_start=3)
    # epochs 1-2 (warm-up) rise without counting; 3 is the first stall, 4 improves, 5-6 stall
    assert [h.epoch for h in run.history] == [0, 1, 2, 3, 4, 5, 6] and run.budget.stopped_early


def test_without_patience_training_is_unchanged():
    stalling = [1.0] + [2.0] * 5
    plain, plain_model, _ = _run(stalling, epochs=6)
    patient, patient_model, _ = _run(stalling, epochs=6, patience=6)  # counts to 5: never stops
    assert len(plain.history) == 6 and plain.budget.stopped_early is False
    assert [h.losses for h in plain.history] == [h.losses for h in patient.history]
    for name, value in plain_model.state_dict().items():
        torch.testing.assert_close(value, patient_model.state_dict()[name], rtol=0, atol=0)


def test_train_epochs_forwards_patience():
    model, step, batches = _toy()
    run = train_epochs(model, step.optimizer, None, batches, step.step_losses,
                       EpochPlan(epochs=10, batch_size=BATCH, seed=0, label="toy", patience=1),
                       validate=ScriptedScores(model, [1.0] * 10))
    assert len(run.history) == 2 and run.budget.stopped_early


@pytest.mark.parametrize(("patience", "validate", "message"), [(0, True, "positive"), (2, False, "validate")])
def test_patience_needs_a_positive_count_and_validation(patience, validate, message):
    model, step, batches = _toy()
    with pytest.raises(ValueError, match=message):
        run_epochs(model, step, batches, EpochPlan(epochs=2, batch_size=BATCH, seed=0, label="toy", patience=patience),
                   validate=ScriptedScores(model, [1.0, 1.0]) if validate else None)


SCORES = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]  # patience 3: stops after epoch 4


def test_a_resumed_fit_keeps_the_count_and_stops_where_a_straight_one_does(tmp_path):
    straight, straight_model, _ = _run(SCORES, patience=3, keep_best=True)
    with pytest.raises(KeyboardInterrupt):  # killed while validating epoch 3
        _run(SCORES, patience=3, keep_best=True, checkpoint_dir=tmp_path, fail_at=3)
    saved = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert (saved["epoch"], saved["since_best"]) == (2, 1)

    resumed, resumed_model, validate = _run(SCORES, patience=3, keep_best=True, checkpoint_dir=tmp_path, start=3)
    assert resumed.events.resumed_from_epoch == 3 and validate.calls == 5  # epochs 3 and 4 only
    assert [h.epoch for h in resumed.history] == [h.epoch for h in straight.history] == [0, 1, 2, 3, 4]
    assert [h.losses for h in resumed.history] == [h.losses for h in straight.history]
    assert resumed.budget.stopped_early and resumed.budget.epochs_completed == 5
    for name, value in straight_model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[name], value, rtol=0, atol=0)

    # the stop is checkpointed too: a further call trains nothing and reports the same stop
    again, _, validate = _run(SCORES, patience=3, keep_best=True, checkpoint_dir=tmp_path, start=5)
    assert validate.calls == 5 and len(again.history) == 5 and again.budget.stopped_early


def test_a_checkpoint_without_the_count_still_resumes_counting_from_zero(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _run(SCORES, patience=3, checkpoint_dir=tmp_path, fail_at=3)
    saved = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    del saved["since_best"]  # as written before early stopping existed
    write_training_checkpoint(tmp_path, saved)
    resumed, _, _ = _run(SCORES, patience=3, checkpoint_dir=tmp_path, start=3)
    assert [h.epoch for h in resumed.history] == [0, 1, 2, 3, 4, 5] and resumed.budget.stopped_early


# ------------------------------------------------------------------ network methods


@pytest.mark.parametrize("name", NETWORK_METHODS)
def test_patience_is_a_neutral_parameter_of_every_network_method(name):
    cls = methods.get(name)
    assert cls.default_params()["patience"] is None and cls.neutral_params["patience"] is None
    assert cls().patience is None


def _split(supervised: bool, n: int = 32) -> Split:
    rng = np.random.default_rng(0)
    targets = rng.random((n, 2, 32, 32), dtype=np.float32) if supervised else None
    return Split(rng.random((n, 32, 32), dtype=np.float32), ("a", "b"), targets)


@pytest.mark.parametrize("name", NETWORK_METHODS)
def test_patience_implies_validation_and_the_best_epoch(name):
    cls = methods.get(name)
    method = cls(patience=2)
    args = method._validation_args(_split(cls.supervised), lambda split: 0.0, False)
    assert args["keep_best"] is True and args["patience"] == 2 and args["validate"]() == 0.0
    with pytest.raises(ValueError, match="needs a validation split"):
        method._validation_args(None, lambda split: 0.0, False)
    plain = cls()._validation_args(_split(cls.supervised), lambda split: 0.0, False)
    assert plain == {"validate": None, "keep_best": False, "patience": None}


def test_unet_patience_needs_validation_sources():
    unet = methods.get("unet")(width=4, epochs=1, batch_size=16, patience=1)
    with pytest.raises(ValueError, match="with the true sources"):
        unet.with_context(RunContext(device="cpu", n_threads=1)).fit(_split(True), _split(False, 16))


TINY = {  # params and validation score of each method, for seconds-long fits on 32x32 images
    "meae": (dict(n_encoders=2, channels=(4, 4, 8, 8), hidden=8, kernel_size=3), "_validation_score"),
    "supervised_ae": (dict(channels=(4, 4, 8, 8), hidden=8, kernel_size=3), "_validation_score"),
    "unet": (dict(width=4), "_validation_mse"),
    "vae_bss": (dict(n_sources=2, channels=(4, 4), latent=4, kernel_size=3, warmup_epochs=1), "_validation_loss"),
    "adversarial_ica": (dict(n_sources=2, channels=(4, 4), kernel_size=3, disc_channels=4), "_validation_loss"),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_fit_with_patience_validates_every_epoch_and_ends_with_the_best_one(name):
    cls = methods.get(name)
    params, score = TINY[name]
    torch.set_num_threads(1)
    method = cls(**params, epochs=3, batch_size=16, patience=1).with_context(RunContext(device="cpu", n_threads=1))
    valid = _split(cls.supervised, 16)
    method.fit(_split(cls.supervised), valid)
    scores = [h["valid"] for h in method.history_]
    assert all(np.isfinite(scores)) and 2 <= len(scores) <= 3
    assert method.training_budget_["stopped_early"] == (len(scores) < 3)
    assert getattr(method, score)(valid) == pytest.approx(min(scores), rel=1e-6)


def test_a_meae_fit_whose_validation_stalls_stops_early_and_records_it(monkeypatch):
    cls = methods.get("meae")
    params = {**cls.profile_params("triangles", "tiny"), "epochs": 6, "batch_size": 16, "patience": 2}
    monkeypatch.setattr(cls, "_validation_score", lambda self, valid: 0.5)  # never improves after epoch 0
    torch.set_num_threads(1)
    method = cls(**params).with_context(RunContext(device="cpu", n_threads=1)).fit(_split(False), _split(False, 16))
    assert [h["valid"] for h in method.history_] == [0.5, 0.5, 0.5]
    budget = method.training_budget_
    assert budget["stopped_early"] is True and (budget["epochs_completed"], budget["epochs_planned"]) == (3, 6)
    assert convergence(method.history_, budget=budget)["converged"] is True


# ---------------------------------------------------------------------- convergence


def _history(totals, valid=None, complete=None):
    """Entries shaped like a stored ``fit_history``."""
    return [
        {"epoch": i, "seconds": 1.0, "samples": 64, "complete": True if complete is None else complete[i],
         "total": t, "recon": t / 2, **({} if valid is None else {"valid": valid[i]})}
        for i, t in enumerate(totals)
    ]


def test_a_still_falling_loss_has_not_converged():
    result = convergence(_history([1.0, 0.8, 0.6, 0.5, 0.4]))
    assert result["converged"] is False and result["loss"] == "total" and result["tail_epochs"] == 2
    assert result["relative_improvement"] == pytest.approx((0.6 - 0.4) / 0.6)
    assert result["stopped_early"] is False


def test_a_flat_loss_has_converged():
    result = convergence(_history([1.0, 0.5, 0.3, 0.3, 0.2999, 0.3]))
    assert result["converged"] is True and result["tail_epochs"] == 2
    assert result["relative_improvement"] == pytest.approx(0.0001 / 0.3)


def test_the_validation_loss_decides_when_every_epoch_has_one():
    history = _history([1.0, 0.8, 0.6, 0.4, 0.2], valid=[0.5, 0.4, 0.41, 0.405, 0.42])
    result = convergence(history)
    assert result["loss"] == "valid" and result["converged"] is True
    assert result["relative_improvement"] == pytest.approx((0.4 - 0.405) / 0.4)


def test_the_tail_is_a_fraction_of_the_epochs_and_cut_epochs_are_left_out():
    losses = [1.0 / (i + 1) for i in range(20)] + [1e-6]
    result = convergence(_history(losses, complete=[True] * 20 + [False]), tail_fraction=0.25, threshold=0.5)
    assert result["tail_epochs"] == 5  # of the 20 complete epochs
    assert result["relative_improvement"] == pytest.approx((1 / 15 - 1 / 20) / (1 / 15))
    assert result["converged"] is True


def test_a_short_history_is_unknown():
    result = convergence(_history([1.0, 0.5]))
    assert result["converged"] is None and result["relative_improvement"] is None and result["tail_epochs"] == 0


def test_an_early_stopped_fit_has_converged():
    budget = {"cut": False, "epochs_completed": 5, "epochs_planned": 10, "stopped_early": True}
    result = convergence(_history([1.0, 0.8, 0.6, 0.5, 0.4]), budget=budget)
    assert result["converged"] is True and result["stopped_early"] is True
    assert result["relative_improvement"] == pytest.approx(1 / 3)
    assert convergence(_history([1.0, 0.9]), budget=budget)["converged"] is True
