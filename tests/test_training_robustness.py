"""Non-finite losses, rollbacks and per-epoch checkpoints of the shared training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.nn.batches import BatchSource
from methods.nn.checkpoint import CHECKPOINT_FILE
from methods.nn.loop import EpochPlan, GuardSettings, TrainingDiverged, train_epochs
from methods.nn.steps import optimisation_step

N_SAMPLES, BATCH = 64, 16  # 4 steps per epoch


def _problem(init_seed: int = 0):
    torch.manual_seed(init_seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    data = np.random.default_rng(0).random((N_SAMPLES, 8), dtype=np.float32)
    return model, optimizer, BatchSource([data], "cpu")


class ScriptedLoss:
    """Mean-squared reconstruction whose loss is NaN on the listed global steps."""

    def __init__(self, model: torch.nn.Module, nan_steps=(), stop_at: int | None = None):
        self.model, self.nan_steps, self.stop_at, self.step = model, set(nan_steps), stop_at, 0

    def __call__(self, batch):
        if self.stop_at is not None and self.step == self.stop_at:
            raise KeyboardInterrupt("simulated interruption")
        (x,) = batch
        loss = (self.model(x) - x).pow(2).mean()
        if self.step in self.nan_steps:
            loss = loss * torch.tensor(float("nan"))
        self.step += 1
        return {"total": loss, "mse": loss}


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _run(model, optimizer, batches, losses, epochs=3, **kwargs):
    kwargs.setdefault("guard", GuardSettings(check_every=1))
    loop_args = {name: kwargs.pop(name) for name in ("validate", "on_resume") if name in kwargs}
    return train_epochs(
        model, optimizer, None, batches, losses, EpochPlan(epochs=epochs, batch_size=BATCH, seed=0, label="test", **kwargs),
        grad_clip=0.5, **loop_args,
    )


def test_a_non_finite_step_changes_nothing():
    model, optimizer, batches = _problem()
    batch = next(batches.epoch(BATCH, None))
    optimisation_step(model, optimizer, ScriptedLoss(model), batch, 0.5)
    before, steps_before = _state(model), [s["step"].clone() for s in optimizer.state.values()]
    losses, skipped = optimisation_step(model, optimizer, ScriptedLoss(model, nan_steps={0}), batch, 0.5)
    assert bool(skipped) and not torch.isfinite(losses["total"])
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    assert [s["step"] for s in optimizer.state.values()] == steps_before
    _, skipped = optimisation_step(model, optimizer, ScriptedLoss(model), batch, 0.5)
    assert not bool(skipped)
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_non_fused_optimizer_also_ignores_a_non_finite_gradient():
    model, _, batches = _problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = next(batches.epoch(BATCH, None))
    before = _state(model)
    optimisation_step(model, optimizer, ScriptedLoss(model, nan_steps={0}), batch, None)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_isolated_non_finite_steps_are_skipped_and_counted():
    model, optimizer, batches = _problem()
    run = _run(model, optimizer, batches, ScriptedLoss(model, nan_steps={1, 6}), guard=GuardSettings(check_every=2, rollback_after=3))
    assert run.events.skipped_steps == 2
    assert run.events.rollbacks == 0 and run.events.lr_scale == 1.0
    assert all(np.isfinite(h.losses["total"]) for h in run.history)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2)


def test_repeated_failures_roll_back_to_the_last_epoch_with_a_lower_learning_rate():
    model, optimizer, batches = _problem()
    snapshots = []

    def validate() -> float:
        snapshots.append(_state(model))
        return 0.0

    # epoch 1 (steps 4-7): one good step, then three NaN steps -> rollback at step 7
    losses = ScriptedLoss(model, nan_steps={5, 6, 7})
    run = _run(model, optimizer, batches, losses, epochs=2, validate=validate, guard=GuardSettings(check_every=1, rollback_after=3, lr_backoff=0.5))
    assert run.events.skipped_steps == 3
    assert run.events.rollbacks == 1
    assert run.events.lr_scale == 0.5
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    # the good step 4 of epoch 1 was undone: the model is back at the end of epoch 0
    for name, value in snapshots[1].items():
        torch.testing.assert_close(value, snapshots[0][name], rtol=0, atol=0)


def test_training_that_never_recovers_stops_with_a_clear_error():
    model, optimizer, batches = _problem()
    losses = ScriptedLoss(model, nan_steps=range(1000))
    with pytest.raises(TrainingDiverged, match="rollbacks"):
        _run(model, optimizer, batches, losses, epochs=20, guard=GuardSettings(check_every=1, rollback_after=2, max_rollbacks=3))


def test_interrupted_training_resumes_from_its_last_epoch_with_identical_results(tmp_path):
    torch.set_num_threads(1)
    model, optimizer, batches = _problem()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 2, 0.5)
    straight = train_epochs(model, optimizer, scheduler, batches, ScriptedLoss(model),
                            EpochPlan(epochs=5, batch_size=BATCH, seed=0, label="straight", checkpoint_dir=tmp_path / "a"),
                            grad_clip=0.5)
    expected = _state(model)

    model, optimizer, batches = _problem()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 2, 0.5)
    with pytest.raises(KeyboardInterrupt):  # dies inside epoch 2, after epochs 0 and 1 were saved
        train_epochs(model, optimizer, scheduler, batches, ScriptedLoss(model, stop_at=10),
                     EpochPlan(epochs=5, batch_size=BATCH, seed=0, label="first", checkpoint_dir=tmp_path / "b"),
                     grad_clip=0.5)
    saved = torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=True)
    assert saved["epoch"] == 1

    model, optimizer, batches = _problem(init_seed=1)  # fresh objects: everything must come from the checkpoint
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 2, 0.5)
    resumed_at = []
    resumed = train_epochs(model, optimizer, scheduler, batches, ScriptedLoss(model),
                           EpochPlan(epochs=5, batch_size=BATCH, seed=0, label="resumed", checkpoint_dir=tmp_path / "b"),
                           grad_clip=0.5, on_resume=resumed_at.append)
    assert resumed_at == [2] and resumed.events.resumed_from_epoch == 2
    assert [h.epoch for h in resumed.history] == [0, 1, 2, 3, 4]
    assert [h.losses["total"] for h in resumed.history[:2]] == [h.losses["total"] for h in straight.history[:2]]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5 ** 2)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)


NEURAL_METHODS = {
    "meae": dict(n_encoders=2, channels=(4, 4, 8, 8), hidden=8, kernel_size=3, batch_size=16, lr_step_epochs=2),
    "supervised_ae": None,
    "vae_bss": dict(n_sources=2, channels=(4, 4), latent=4, kernel_size=3, batch_size=16, warmup_epochs=2),
    "adversarial_ica": dict(n_sources=2, channels=(4, 4), kernel_size=3, disc_channels=4, batch_size=16),
}


@pytest.mark.parametrize("name", sorted(NEURAL_METHODS))
def test_every_neural_method_resumes_an_interrupted_fit_exactly(name, tmp_path, monkeypatch):
    """Killed in its second epoch, a fit resumes from the epoch-0 checkpoint to the same weights."""
    import dataclasses

    import methods
    from methods.base import RunContext, Split

    torch.set_num_threads(1)
    cls = methods.get(name)
    params = NEURAL_METHODS[name] or {**cls.profile_params("triangles", "tiny"), "batch_size": 16}
    params = {**params, "epochs": 3, "seed": 0}
    rng = np.random.default_rng(0)
    mixtures = rng.random((48, 32, 32), dtype=np.float32)
    targets = rng.random((48, 2, 32, 32), dtype=np.float32) if cls.supervised else None
    split = Split(mixtures, ("a", "b"), targets)
    context = RunContext(device="cpu", n_threads=1)

    straight = cls(**params).with_context(dataclasses.replace(context, work_dir=tmp_path / "a")).fit(split)
    expected = _state(straight.network_)

    original_epoch = BatchSource.epoch
    served = {"batches": 0}

    def interrupted_epoch(self, *args, **kwargs):
        for batch in original_epoch(self, *args, **kwargs):
            if served["batches"] == 4:  # 3 batches per epoch: dies in epoch 1
                raise KeyboardInterrupt("simulated kill")
            served["batches"] += 1
            yield batch

    monkeypatch.setattr(BatchSource, "epoch", interrupted_epoch)
    with pytest.raises(KeyboardInterrupt):
        cls(**params).with_context(dataclasses.replace(context, work_dir=tmp_path / "b")).fit(split)
    monkeypatch.setattr(BatchSource, "epoch", original_epoch)
    assert torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=True)["epoch"] == 0

    resumed = cls(**params).with_context(dataclasses.replace(context, work_dir=tmp_path / "b")).fit(split)
    assert resumed.training_events_["resumed_from_epoch"] == 1
    assert [h["epoch"] for h in resumed.history_] == [0, 1, 2]
    for key, value in _state(resumed.network_).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=f"{name}: {key} differs")


# ------------------------------------------------------ steps with several optimizers


class TwoPlayerStep:
    """A :class:`methods.nn.steps.TrainingStep` updating two halves of a model with their own optimizers."""

    def __init__(self, model: torch.nn.Sequential, nan_steps=()):
        self.model, self.nan_steps, self.step = model, set(nan_steps), 0
        self.first = torch.optim.SGD(model[0].parameters(), lr=0.1)
        self.second = torch.optim.RMSprop(model[2].parameters(), lr=1e-2)
        self.optimizers = (self.first, self.second)

    def __call__(self, batch):
        from methods.nn.steps import guarded_update

        (x,) = batch
        loss = (self.model(x) - x).pow(2).mean()
        if self.step in self.nan_steps:
            loss = loss * torch.tensor(float("nan"))
        self.step += 1
        skipped = guarded_update(loss, self.first, self.model[0].parameters())
        second = (self.model(x) - x).abs().mean() * (loss.detach() / loss.detach())
        skipped = skipped | guarded_update(second, self.second, self.model[2].parameters())
        return {"total": loss, "l1": second}, skipped


def test_a_step_with_two_optimizers_is_guarded_checkpointed_and_rolled_back_as_a_whole(tmp_path):
    from methods.nn.loop import run_epochs

    model, _, batches = _problem()
    snapshots = []

    def validate() -> float:
        snapshots.append(_state(model))
        return 0.0

    step = TwoPlayerStep(model, nan_steps={5, 6, 7})  # epoch 1: one good step, then three NaN steps
    run = run_epochs(model, step, batches,
                     EpochPlan(epochs=2, batch_size=BATCH, seed=0, label="two", checkpoint_dir=tmp_path,
                               guard=GuardSettings(check_every=1)),
                     validate=validate)
    assert (run.events.skipped_steps, run.events.rollbacks, run.events.lr_scale) == (3, 1, 0.5)
    assert step.first.param_groups[0]["lr"] == pytest.approx(0.05)
    assert step.second.param_groups[0]["lr"] == pytest.approx(5e-3)
    for name, value in snapshots[1].items():  # both halves back at the end of epoch 0
        torch.testing.assert_close(value, snapshots[0][name], rtol=0, atol=0)
    saved = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert isinstance(saved["optimizer"], list) and len(saved["optimizer"]) == 2
    assert saved["optimizer"][1]["state"], "the second optimizer's state must be checkpointed"


# ------------------------------------------------------------------ adversarial ICA

ADVERSARIAL = dict(n_sources=2, channels=(4, 4), kernel_size=3, disc_channels=4, batch_size=16, disc_steps=2, seed=0)


def _adversarial(params: dict, work_dir=None):
    from methods.adversarial_ica import AdversarialICA
    from methods.base import RunContext

    return AdversarialICA(**{**ADVERSARIAL, **params}).with_context(RunContext(device="cpu", n_threads=1, work_dir=work_dir))


def _adversarial_split():
    from methods.base import Split

    return Split(np.random.default_rng(0).random((48, 16, 16), dtype=np.float32), ("a", "b"))  # 3 steps per epoch


def test_adversarial_ica_resumes_after_k_epochs_with_both_players_restored(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    split = _adversarial_split()
    straight = _adversarial({"epochs": 4}, tmp_path / "a").fit(split)
    expected = _state(straight.network_)

    original_epoch = BatchSource.epoch
    served = {"batches": 0}

    def interrupted_epoch(self, *args, **kwargs):
        for batch in original_epoch(self, *args, **kwargs):
            if served["batches"] == 7:  # 3 batches per epoch: dies in epoch 2, after epochs 0 and 1
                raise KeyboardInterrupt("simulated kill")
            served["batches"] += 1
            yield batch

    monkeypatch.setattr(BatchSource, "epoch", interrupted_epoch)
    with pytest.raises(KeyboardInterrupt):
        _adversarial({"epochs": 4}, tmp_path / "b").fit(split)
    monkeypatch.setattr(BatchSource, "epoch", original_epoch)
    saved = torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=True)
    assert saved["epoch"] == 1
    separator_state, discriminator_state = saved["optimizer"]  # both players' RMSProp states
    assert separator_state["state"] and discriminator_state["state"]

    resumed = _adversarial({"epochs": 4, "seed": 0}, tmp_path / "b").fit(split)
    assert resumed.training_events_["resumed_from_epoch"] == 2
    assert [h["epoch"] for h in resumed.history_] == [0, 1, 2, 3]
    for got, want in zip(resumed.history_, straight.history_, strict=True):
        assert {k: v for k, v in got.items() if k != "seconds"} == {k: v for k, v in want.items() if k != "seconds"}
    for key, value in _state(resumed.network_).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=f"{key} differs")
    np.testing.assert_array_equal(resumed.separate(split.mixtures[:4]), straight.separate(split.mixtures[:4]))


def test_adversarial_ica_skips_a_step_whose_adversarial_loss_is_not_finite(monkeypatch):
    import methods.adversarial_ica as adversarial_ica

    torch.set_num_threads(1)
    original = adversarial_ica.separator_adversarial_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * torch.tensor(float("nan")) if calls["n"] == 2 else loss

    monkeypatch.setattr(adversarial_ica, "separator_adversarial_loss", poisoned)
    method = _adversarial({"epochs": 2}).fit(_adversarial_split())
    assert calls["n"] == 6
    events = method.training_events_
    assert (events["skipped_steps"], events["rollbacks"]) == (1, 0)
    assert all(torch.isfinite(p).all() for p in method.network_.parameters())
    assert all(np.isfinite(v) for h in method.history_ for k, v in h.items() if k not in ("complete",))
    assert np.isfinite(method.separate(_adversarial_split().mixtures[:4])).all()


def test_adversarial_ica_that_never_recovers_stops_with_training_diverged():
    torch.set_num_threads(1)
    # a NaN weight makes every separator loss NaN: 3 skipped steps per epoch, one rollback per
    # epoch (GuardSettings defaults), and the sixth rollback gives up
    with pytest.raises(TrainingDiverged, match="rollbacks"):
        _adversarial({"epochs": 8, "adv_weight": float("nan")}).fit(_adversarial_split())
