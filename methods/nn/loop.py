"""The epoch loop every neural method trains through.

A method hands :func:`run_epochs` a :class:`methods.nn.steps.TrainingStep`: a
callable that takes one batch, computes its losses, updates the parameters
through its own optimizer(s) and says whether it skipped the update. The loop
adds what every
method shares: shuffled batches, the non-finite guard (skipped steps counted
on the device, rollback with a lowered learning rate, :class:`TrainingDiverged`),
per-epoch checkpoints and resumption, the time limit, validation with
best-epoch selection and early stopping, and the per-epoch history. :func:`train_epochs` runs
the loop with the common step, :class:`methods.nn.steps.GradientStep`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from methods.nn.batches import BatchSource
from methods.nn.checkpoint import (
    CHECKPOINT_FILE,
    global_rng_state,
    load_optimizer_states,
    optimizer_states,
    read_training_checkpoint,
    set_global_rng_state,
    write_training_checkpoint,
)
from methods.nn.steps import GradientStep, StepLosses, TrainingStep
from methods.nn.time_budget import TimeBudget, TrainingBudget

log = logging.getLogger("bss_bench.training")

MIN_DELTA = 1e-3
"""Relative decrease of the validation score that counts as an improvement for early stopping."""


@dataclass
class EpochResult:
    """Mean of each loss term over the epoch's applied (finite) steps.

    ``complete`` is false for an epoch that the time limit stopped part-way;
    ``samples`` counts the training samples its steps saw.
    """

    epoch: int
    losses: dict[str, float]
    seconds: float
    samples: int = 0
    complete: bool = True


@dataclass
class GuardSettings:
    """How training reacts to non-finite losses.

    Parameters
    ----------
    check_every : int
        Steps between reads of the on-device failure counter (and progress
        updates); the only host-device synchronisation inside an epoch.
    rollback_after : int
        Skipped steps since the last good state that send the model back to it.
    lr_backoff : float
        Factor applied to the learning rate at each rollback.
    max_rollbacks : int
        Rollbacks after which training stops with :class:`TrainingDiverged`.
    """

    check_every: int = 50
    rollback_after: int = 3
    lr_backoff: float = 0.5
    max_rollbacks: int = 5


@dataclass
class TrainingEvents:
    """What happened to a training run, for the results manifest."""

    skipped_steps: int = 0
    rollbacks: int = 0
    lr_scale: float = 1.0
    resumed_from_epoch: int | None = None
    checkpoints_written: int = 0

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly copy."""
        return asdict(self)


@dataclass
class TrainingLog:
    """Per-epoch history, events and training budget of :func:`run_epochs`."""

    history: list[EpochResult]
    events: TrainingEvents
    budget: TrainingBudget | None = None


class TrainingDiverged(RuntimeError):
    """Training kept producing non-finite losses after repeated rollbacks."""


def _clone_state(model: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer], lr_scale: float) -> dict:
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizers": [copy.deepcopy(optimizer.state_dict()) for optimizer in optimizers],
        "lr_scale": lr_scale,
    }


class _Guard:
    """Counts skipped steps on the device; rolls back and lowers the LR when they repeat."""

    def __init__(self, model, optimizers: Sequence[torch.optim.Optimizer], settings: GuardSettings,
                 events: TrainingEvents) -> None:
        self.model, self.optimizers, self.settings, self.events = model, optimizers, settings, events
        self.pending = torch.zeros((), dtype=torch.int64, device=next(model.parameters()).device)
        self.since_good = 0
        self.good = _clone_state(model, optimizers, events.lr_scale)

    def record(self, skipped: torch.Tensor) -> None:
        self.pending += skipped

    def check(self) -> int:
        """Read the counter (one sync); roll back if needed. Returns the skipped steps read."""
        count = int(self.pending)
        if not count:
            return 0
        self.pending.zero_()
        self.events.skipped_steps += count
        self.since_good += count
        if self.since_good >= self.settings.rollback_after:
            self._rollback()
        return count

    def _rollback(self) -> None:
        self.events.rollbacks += 1
        if self.events.rollbacks > self.settings.max_rollbacks:
            raise TrainingDiverged(
                f"loss not finite in {self.events.skipped_steps} steps despite "
                f"{self.settings.max_rollbacks} rollbacks with a lowered learning rate"
            )
        self.model.load_state_dict(self.good["model"])
        self.events.lr_scale *= self.settings.lr_backoff
        factor = self.events.lr_scale / self.good["lr_scale"]
        for optimizer, state in zip(self.optimizers, self.good["optimizers"], strict=True):
            optimizer.load_state_dict(copy.deepcopy(state))
            for group in optimizer.param_groups:
                group["lr"] *= factor
        self.since_good = 0
        log.warning("non-finite losses: model rolled back to its last good state, learning rate x%g", self.events.lr_scale)

    def mark_good(self) -> None:
        self.since_good = 0
        self.good = _clone_state(self.model, self.optimizers, self.events.lr_scale)


@dataclass
class _Resumed:
    """Loop state read back from a training checkpoint."""

    start_epoch: int
    history: list[EpochResult]
    events: TrainingEvents
    best_score: float
    best_state: dict | None
    since_best: int = 0  # complete epochs since the last validation improvement (early stopping)


def _resume(
    saved: dict, checkpoint_dir: Path, model: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer],
    scheduler: torch.optim.lr_scheduler.LRScheduler | None, generator: torch.Generator,
) -> _Resumed:
    """Load a checkpoint into the model, optimizers, scheduler and random generators."""
    try:
        model.load_state_dict(saved["model"])
        load_optimizer_states(optimizers, saved["optimizer"])
        if scheduler is not None and saved["scheduler"] is not None:
            scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        set_global_rng_state(saved["rng"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise RuntimeError(f"training checkpoint {checkpoint_dir / CHECKPOINT_FILE} does not fit this model: {error}") from error
    history = [
        EpochResult(h["epoch"], dict(h["losses"]), h["seconds"], h.get("samples", 0), h.get("complete", True))
        for h in saved["history"]
    ]
    events = TrainingEvents(**saved["events"])
    events.resumed_from_epoch = saved["epoch"] + 1
    return _Resumed(saved["epoch"] + 1, history, events, saved["best_score"], saved["best_state"],
                    saved.get("since_best", 0))


def _improves(score: float, best: float, min_delta: float) -> bool:
    """Whether ``score`` is below ``best`` by more than ``min_delta`` of ``|best|`` (any finite score beats inf)."""
    return score < best and (math.isinf(best) or score < best - min_delta * abs(best))


@dataclass(frozen=True)
class EpochPlan:
    """How an epoch loop runs: its length, batches, seed, checkpoints, limits and early stopping.

    Parameters
    ----------
    epochs, batch_size, seed : int
        Epochs to run, samples per step, seed of the batch order.
    label : str
        Name of the progress bar and log lines.
    progress : bool
        Show a progress bar.
    keep_best : bool
        End with the weights of the best validation epoch.
    checkpoint_dir : Path or None
        Where the complete training state is written after every epoch (and resumed from).
    guard : GuardSettings or None
        Non-finite-loss handling (default :class:`GuardSettings`).
    time_limit : float or None
        Seconds of training, resumed runs counting their earlier epochs.
    patience, min_delta, patience_start : int or None, float, int
        Early stopping on the validation score (see :func:`run_epochs`).
    """

    epochs: int
    batch_size: int
    seed: int
    label: str = "fit"
    progress: bool = False
    keep_best: bool = False
    checkpoint_dir: Path | None = None
    guard: GuardSettings | None = None
    time_limit: float | None = None
    patience: int | None = None
    min_delta: float = MIN_DELTA
    patience_start: int = 0


def run_epochs(
    model: torch.nn.Module,
    step: TrainingStep,
    batches: BatchSource,
    plan: EpochPlan,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    validate: Callable[[], float] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> TrainingLog:
    """Run the epoch loop shared by the neural methods with a method-supplied ``step``, as ``plan``
    (an :class:`EpochPlan`) says.

    Each batch goes to ``step`` (a :class:`TrainingStep`), which updates the
    parameters itself. Loss sums and the count of skipped (non-finite) steps
    stay on the device and are read every ``guard.check_every`` steps, so no
    step waits on a host-device sync. Repeated non-finite steps roll the model
    and every optimizer of the step back to their last good state (the end of
    the last epoch) with lowered learning rates (see :class:`GuardSettings`).
    ``scheduler`` (if any) advances once per complete epoch.

    With ``checkpoint_dir``, the complete training state (network, the step's
    optimizers, scheduler, batch-order generator, global random states,
    history, events, best weights) is written there atomically after every
    epoch, and a later call with the same directory resumes after the last
    finished epoch; ``on_resume(epoch)`` then tells the caller the first epoch
    that will run. A checkpoint without the loop's keys (one written by an
    older loop) is ignored. With ``keep_best`` and a ``validate`` callable
    (lower is better), the model ends with the weights of its best validation
    epoch.

    With ``time_limit`` (seconds of training, resumed runs counting the time
    their earlier epochs took), training stops after the step during which
    the limit is reached: the cut epoch is recorded as incomplete, the
    learning-rate schedule is not advanced for it and no checkpoint is
    written for it. The returned log's ``budget`` says how far training got.

    With ``patience`` (which needs ``validate``), training stops early once
    ``patience`` consecutive complete epochs brought no improvement of the
    validation score, an improvement being a decrease by more than
    ``min_delta`` (relative, default :data:`MIN_DELTA`) below the best score so
    far; ``budget.stopped_early`` records it and ``budget.epochs_completed``
    the epochs trained. Epochs numbered below ``patience_start`` (a warm-up)
    never count as epochs without improvement. The count of epochs since the
    last improvement is checkpointed, so a resumed fit stops where an
    uninterrupted one would.
    ``patience`` does not imply ``keep_best``: pass both to end with the best
    epoch's weights. ``patience=None`` leaves the loop as it was.
    """
    epochs, batch_size, seed, label, progress = plan.epochs, plan.batch_size, plan.seed, plan.label, plan.progress
    keep_best, checkpoint_dir, guard, time_limit = plan.keep_best, plan.checkpoint_dir, plan.guard, plan.time_limit
    patience, min_delta, patience_start = plan.patience, plan.min_delta, plan.patience_start
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be a positive number of epochs, got {patience}")
    if patience is not None and validate is None:
        raise ValueError("early stopping (patience) needs a validate callable")
    settings = guard or GuardSettings()
    optimizers = tuple(step.optimizers)
    generator = torch.Generator().manual_seed(seed)
    state = _Resumed(0, [], TrainingEvents(), math.inf, None)
    saved = read_training_checkpoint(checkpoint_dir)
    if saved is not None and "optimizer" not in saved:
        log.warning("%s: ignoring training checkpoint %s written by an older training loop", label, checkpoint_dir)
        saved = None
    if saved is not None:
        state = _resume(saved, checkpoint_dir, model, optimizers, scheduler, generator)
        if on_resume is not None:
            on_resume(state.start_epoch)
        log.info("%s: resuming after epoch %d from %s", label, saved["epoch"], checkpoint_dir)
    history, events, best_score, best_state = state.history, state.events, state.best_score, state.best_state
    since_best, stopped_early = state.since_best, False
    safe = _Guard(model, optimizers, settings, events)
    budget = TimeBudget(time_limit, spent=sum(h.seconds for h in history))
    steps_per_epoch = max(1, len(batches) // batch_size) if len(batches) >= batch_size else 1
    bar = tqdm(total=epochs * steps_per_epoch, initial=state.start_epoch * steps_per_epoch, desc=label,
               disable=not progress, leave=False)
    for epoch in range(state.start_epoch, epochs):
        if patience is not None and since_best >= patience:
            stopped_early = True
            break
        if budget.cut:
            break
        model.train()
        start = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        steps = skipped_in_epoch = samples = 0
        for batch in batches.epoch(batch_size, generator, drop_last=True):
            losses, skipped = step(batch)
            applied = ~skipped
            for name, value in losses.items():
                term = torch.where(applied, value.detach().float(), 0.0)
                sums[name] = sums[name] + term if name in sums else term
            safe.record(skipped)
            steps += 1
            samples += int(batch[0].shape[0])
            if steps % settings.check_every == 0:
                skipped_in_epoch += safe.check()
                bar.update(settings.check_every)
                bar.set_postfix(loss=f"{float(sums['total']) / max(steps - skipped_in_epoch, 1):.4g}", epoch=epoch)
            if budget.expired():
                break
        skipped_in_epoch += safe.check()
        bar.update(steps % settings.check_every)
        complete = not budget.cut or steps >= steps_per_epoch
        if scheduler is not None and complete:
            scheduler.step()
        applied_steps = max(steps - skipped_in_epoch, 1)
        means = {name: float(total) / applied_steps for name, total in sums.items()}
        if validate is not None:
            score = means["valid"] = float(validate())
            if keep_best or patience is not None:
                if complete:
                    stalled = epoch >= patience_start and not _improves(score, best_score, min_delta)
                    since_best = since_best + 1 if stalled else 0
                if score < best_score:
                    best_score = score
                    if keep_best:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        safe.mark_good()
        history.append(EpochResult(epoch, means, time.perf_counter() - start, samples, complete))
        bar.set_postfix({k: f"{v:.4g}" for k, v in means.items() if k in ("total", "valid")})
        if checkpoint_dir is not None and complete:
            events.checkpoints_written += 1
            write_training_checkpoint(checkpoint_dir, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer_states(optimizers),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "generator": generator.get_state(), "rng": global_rng_state(),
                "history": [asdict(h) for h in history],
                "best_score": best_score, "best_state": best_state, "since_best": since_best,
                "events": events.to_dict(),
            })
    bar.close()
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    spent = budget.summary(((h.seconds, h.samples, h.complete) for h in history), epochs, stopped_early)
    if stopped_early:
        log.info("%s: no validation improvement in %d epochs: stopped after %d of %d epochs", label,
                 patience, spent.epochs_completed, epochs)
    if spent.cut:
        log.info("%s: time limit of %.3g s reached after %d of %d epochs (%d samples)", label,
                 time_limit, spent.epochs_completed, epochs, spent.samples_seen)
    return TrainingLog(history, events, spent)


def train_epochs(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    batches: BatchSource,
    step_losses: StepLosses,
    plan: EpochPlan,
    grad_clip: float | None = None,
    validate: Callable[[], float] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> TrainingLog:
    """:func:`run_epochs` with the common step: ``step_losses(batch)["total"]`` minimised by ``optimizer``.

    ``step_losses`` maps a batch to named loss terms, one of them ``"total"``;
    ``grad_clip`` clips the gradient norm of ``model``'s parameters (see
    :class:`GradientStep`). The other arguments are those of :func:`run_epochs`.
    """
    return run_epochs(model, GradientStep(model, optimizer, step_losses, grad_clip), batches, plan, scheduler,
                      validate, on_resume)


__all__ = [
    "MIN_DELTA", "EpochPlan", "EpochResult", "GuardSettings", "TrainingDiverged", "TrainingEvents", "TrainingLog", "run_epochs",
    "train_epochs",
]
