"""Time-limited training (``--time-limit``), shared by every epoch loop.

A loop asks :class:`TimeBudget` after each step whether the limit is
reached; when it is, the loop finishes that step, marks the epoch incomplete
(unless it was its last step) and stops. :meth:`TimeBudget.summary` turns the
loop's history into the :class:`TrainingBudget` that cells record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

_clock = time.monotonic  # the time-limit clock; tests replace it with a fake one


@dataclass
class TrainingBudget:
    """How much training a run got, and whether its time limit cut it short.

    Attributes
    ----------
    time_limit_s : float or None
        The training time limit, ``None`` for none.
    cut : bool
        True when the limit stopped training before ``epochs_planned``.
    epochs_planned : int
        Epochs of the schedule.
    epochs_completed : int
        Whole epochs trained (a cut epoch is not counted).
    samples_seen : int
        Training samples of all steps, the cut epoch's included.
    train_seconds : float
        Seconds spent in the epoch loop (summed over resumed runs).
    stopped_early : bool
        True when early stopping (``patience``) ended training after ``epochs_completed``
        epochs, before ``epochs_planned``.
    """

    time_limit_s: float | None
    cut: bool
    epochs_planned: int
    epochs_completed: int
    samples_seen: int
    train_seconds: float
    stopped_early: bool = False

    def to_dict(self) -> dict[str, float | int | bool | None]:
        """JSON-friendly copy."""
        return asdict(self)


class TimeBudget:
    """The deadline of one fit.

    Parameters
    ----------
    limit : float or None
        Seconds of training allowed (``None``: no limit).
    spent : float
        Seconds already trained by the epochs a resumed fit starts from.
    """

    def __init__(self, limit: float | None, spent: float = 0.0) -> None:
        if limit is not None and limit <= 0:
            raise ValueError(f"time_limit must be positive seconds, got {limit}")
        self.limit = limit
        self.deadline = None if limit is None else _clock() + limit - spent
        self.cut = False
        self.expired()

    def expired(self) -> bool:
        """Whether the deadline has passed (sticky once true)."""
        if not self.cut and self.deadline is not None and _clock() >= self.deadline:
            self.cut = True
        return self.cut

    def summary(self, epochs: Iterable[tuple[float, int, bool]], epochs_planned: int,
                stopped_early: bool = False) -> TrainingBudget:
        """The budget record from ``(seconds, samples, complete)`` per epoch trained.

        ``stopped_early``: early stopping ended the loop (recorded as is).
        """
        epochs = list(epochs)
        completed = sum(complete for _, _, complete in epochs)
        return TrainingBudget(
            time_limit_s=self.limit, cut=self.cut and completed < epochs_planned, epochs_planned=epochs_planned,
            epochs_completed=completed, samples_seen=sum(samples for _, samples, _ in epochs),
            train_seconds=round(sum(seconds for seconds, _, _ in epochs), 3), stopped_early=stopped_early,
        )
