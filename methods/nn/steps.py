"""Training steps: the losses and parameter updates of one batch, guarded against non-finite values.

A :class:`TrainingStep` is what :func:`methods.nn.loop.run_epochs` calls on each
batch. :class:`GradientStep` is the common one (one loss, one optimizer);
methods with several players (adversarial ICA) write their own from
:func:`guarded_update`, which leaves an update out when its loss or gradient
is not finite, without a host-device synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import torch

StepLosses = Callable[[list[torch.Tensor]], dict[str, torch.Tensor]]


class TrainingStep(Protocol):
    """One training step on one batch, parameter updates included.

    Attributes
    ----------
    optimizers : sequence of torch.optim.Optimizer
        Every optimizer the step updates: the loop checkpoints them, and the
        non-finite guard restores them and lowers their learning rates.
    """

    optimizers: Sequence[torch.optim.Optimizer]

    def __call__(self, batch: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Losses and updates of one batch.

        Returns
        -------
        losses : dict of str to torch.Tensor
            Named 0-dim loss terms, one of them ``"total"``; averaged per epoch
            over the steps that were not skipped.
        skipped : torch.Tensor
            0-dim bool on the device: true when the step left (some of) its
            updates out because a loss or gradient was not finite.
        """
        ...


def _skip_update_if(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()`` that leaves parameters and state untouched when ``skip`` is true.

    Fused optimizers (Adam, AdamW, SGD on CPU and CUDA) take the flag on the
    device through their ``found_inf`` input, as ``torch.amp.GradScaler`` does:
    no host-device synchronisation. Other optimizers get their non-finite
    gradients replaced by zeros, which skips the gradient but not their
    momentum or weight decay.
    """
    if optimizer.defaults.get("fused") and getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.grad_scale = None
        optimizer.found_inf = skip.float()
        try:
            optimizer.step()
        finally:
            del optimizer.grad_scale, optimizer.found_inf
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    torch._foreach_mul_(grads, (~skip).float())
    for grad in grads:
        grad.nan_to_num_(0.0, 0.0, 0.0)
    optimizer.step()


def guarded_update(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter],
    grad_clip: float | None = None,
) -> torch.Tensor:
    """Backward ``loss`` and update ``params`` with ``optimizer``, unless loss or gradient is not finite.

    Gradients of ``params`` are cleared through ``optimizer.zero_grad``,
    clipped to the norm ``grad_clip`` when given, and checked on the device
    (no ``.item()``).

    Parameters
    ----------
    loss : torch.Tensor
        0-dim loss to minimise.
    optimizer : torch.optim.Optimizer
        Optimizer of ``params``.
    params : iterable of torch.nn.Parameter
        Parameters whose gradient norm is checked (and clipped).
    grad_clip : float or None
        Gradient-norm clipping (``None`` or 0: none).

    Returns
    -------
    torch.Tensor
        0-dim bool on the device: true when the update was skipped.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in params if p.grad is not None]
    if grad_clip:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    skipped = ~(torch.isfinite(loss.detach()) & torch.isfinite(norm))
    _skip_update_if(optimizer, skipped)
    return skipped


def optimisation_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, step_losses: StepLosses,
    batch: list[torch.Tensor], grad_clip: float | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One complete training step: losses, backward, gradient clipping, optimizer update.

    A step whose loss or gradient norm is not finite changes nothing (see
    :func:`guarded_update`).

    Returns
    -------
    losses : dict of str to torch.Tensor
        The named loss terms of the step.
    skipped : torch.Tensor
        0-dim bool on the device: true when the update was skipped.
    """
    losses = step_losses(batch)
    return losses, guarded_update(losses["total"], optimizer, model.parameters(), grad_clip)


class GradientStep:
    """The common :class:`TrainingStep`: ``step_losses(batch)["total"]`` minimised by one optimizer.

    Parameters
    ----------
    model : torch.nn.Module
        The network whose parameters' gradient norm is checked and clipped.
    optimizer : torch.optim.Optimizer
        Its optimizer.
    step_losses : callable
        Batch -> named loss terms, one of them ``"total"``.
    grad_clip : float or None
        Gradient-norm clipping (``None`` or 0: none).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step_losses: StepLosses,
                 grad_clip: float | None) -> None:
        self.model, self.optimizer, self.step_losses, self.grad_clip = model, optimizer, step_losses, grad_clip
        self.optimizers = (optimizer,)

    def __call__(self, batch: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return optimisation_step(self.model, self.optimizer, self.step_losses, batch, self.grad_clip)


__all__ = ["GradientStep", "StepLosses", "TrainingStep", "guarded_update", "optimisation_step"]
