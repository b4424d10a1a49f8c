"""Whether a fit converged, read from its per-epoch history."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def convergence(
    history: Sequence[Mapping[str, Any]], tail_fraction: float = 0.2, threshold: float = 0.01,
    budget: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Say whether the loss of a fit was still falling at its end.

    The loss is the validation loss (``valid``) when every epoch has one, else
    the training loss (``total``); epochs cut short by a time limit
    (``complete`` false) are left out. The tail is the last ``tail_fraction``
    of the epochs, at least 2 of them, with at least one epoch before it. The
    fit converged when the lowest loss of the tail is below the lowest loss
    before the tail by at most ``threshold`` of the latter (for a steadily
    falling loss: the loss at the start of the tail). A fit that early
    stopping ended (``budget["stopped_early"]``) converged by definition.

    Parameters
    ----------
    history : sequence of dict
        Per-epoch entries as fitted methods record them (``history_``; a cell's
        ``details.fit_history`` or ``details.inputs.<input>.fit_history``).
    tail_fraction : float
        Share of the epochs that forms the tail.
    threshold : float
        Relative improvement over the tail below which the loss counts as flat.
    budget : dict or None
        The fit's ``training_budget`` (``training_budget_``); only its
        ``stopped_early`` is read.

    Returns
    -------
    dict
        ``converged`` (True, False, or None for unknown: fewer than 3 epochs
        and no early stop), ``loss`` (``"valid"`` or ``"total"``),
        ``tail_epochs`` (0 with fewer than 3 epochs), ``relative_improvement``
        (the lowest loss before the tail minus the tail's lowest, over the
        former's magnitude; None with fewer than 3 epochs) and
        ``stopped_early``.
    """
    if not 0 < tail_fraction < 1:
        raise ValueError(f"tail_fraction must be in (0, 1), got {tail_fraction}")
    epochs = [h for h in history if h.get("complete", True)]
    key = "valid" if epochs and all("valid" in h for h in epochs) else "total"
    losses = [float(h[key]) for h in epochs]
    stopped_early = bool((budget or {}).get("stopped_early", False))
    if len(losses) < 3:
        return {"converged": True if stopped_early else None, "loss": key, "tail_epochs": 0,
                "relative_improvement": None, "stopped_early": stopped_early}
    tail = min(max(2, math.ceil(tail_fraction * len(losses))), len(losses) - 1)
    reference = min(losses[:-tail])
    improvement = (reference - min(losses[-tail:])) / (abs(reference) or 1.0)
    return {"converged": stopped_early or improvement <= threshold, "loss": key, "tail_epochs": tail,
            "relative_improvement": improvement, "stopped_early": stopped_early}


__all__ = ["convergence"]
