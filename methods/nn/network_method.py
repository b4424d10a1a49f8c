"""The base class of the methods that fit one torch network.

:class:`NetworkMethod` holds what MEAE, the supervised autoencoder, VAE-BSS and
adversarial ICA share: installing the network on the run device, training it
through the one epoch loop (:func:`methods.nn.loop.run_epochs`) with the run
context's checkpoint folder and time limit, validation with best-epoch
selection and early stopping (``patience``), recording the history, events
and training budget, and saving / loading the fitted weights.
:class:`MultiEncoderMethod` adds the (multi-)encoder autoencoder of
:mod:`methods.nn.networks` trained by Adam on method-defined losses (MEAE and
the supervised autoencoder).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from methods.base import FitInfo, Method, Split
from methods.nn.batches import BatchSource
from methods.nn.checkpoint import load_torch_state, save_torch_state
from methods.nn.device import autocast, seed_and_threads
from methods.nn.layouts import parse_layout
from methods.nn.loop import EpochPlan, EpochResult, TrainingLog, run_epochs
from methods.nn.networks import MultiEncoderAutoencoder, NetworkConfig, count_parameters
from methods.nn.steps import GradientStep, TrainingStep


class NetworkMethod(Method):
    """A method holding one torch network ``network_``, trained by the shared epoch loop.

    Subclasses set ``network_class`` (built from the network's JSON-able
    ``config`` attribute when a saved model is loaded), have ``epochs``,
    ``batch_size``, ``patience`` and ``seed`` parameters, build their network with
    :meth:`_install` and train it with :meth:`_train` (validation arguments from
    :meth:`_validation_args`). Networks take
    ``(B, 1, *shape)`` inputs and live channels-last on the method's device.
    Weights are saved as a state dict and read back with ``weights_only=True``.
    """

    device_support: ClassVar[str] = "optional"
    network_class: ClassVar[type[nn.Module]]
    network_: nn.Module | None = None
    fit_info_: FitInfo | None = None

    # ------------------------------------------------------------------ network
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *shape)`` batch -> network input ``(B, 1, *shape)``."""
        return x.unsqueeze(1)

    def _install(self, network: nn.Module, compile_model: bool = False) -> None:
        """Move ``network`` to the run device (channels-last) and make it the method's network.

        ``_forward`` is the network, or its ``torch.compile`` wrapper with ``compile_model``.
        """
        # channels-last convolutions are faster on both oneDNN (CPU) and cuDNN
        self.network_ = network.to(self.context.device, memory_format=torch.channels_last)
        self._forward = torch.compile(self.network_) if compile_model else self.network_
        self.n_parameters_ = count_parameters(network)

    # ----------------------------------------------------------------- training
    def _arrays(self, split: Split) -> list[np.ndarray]:
        """The aligned arrays a training batch holds (the mixtures; the sources too when supervised)."""
        return [split.mixtures]

    def _batch_size(self, train: Split) -> int:
        """The training batch size: ``batch_size``, at most the number of training samples."""
        return min(self.batch_size, len(train))

    def _validation_args(self, valid: Split | None, score: Callable[[Split], float], keep_best: bool, *,
                         needs_targets: bool = False) -> dict[str, Any]:
        """The ``validate``, ``keep_best`` and ``patience`` arguments of :meth:`_train`.

        Training validates (``score(valid)`` after every epoch, lower is better) when it keeps
        the best epoch: with ``keep_best``, or with the method's ``patience``, since early
        stopping implies validating and ending with the best validation epoch's weights.
        ``patience`` without a usable validation split (non-empty; with the true sources when
        ``needs_targets``) raises :class:`ValueError`.
        """
        patience = self.patience
        usable = valid is not None and len(valid) > 0 and not (needs_targets and valid.targets is None)
        if patience is not None and not usable:
            raise ValueError(f"{self.name}: patience={patience} (early stopping) needs a validation split"
                             + (" with the true sources" if needs_targets else ""))
        keep_best = keep_best or patience is not None
        validate = (lambda: score(valid)) if usable and keep_best else None
        return {"validate": validate, "keep_best": keep_best, "patience": patience}

    @torch.no_grad()
    def _mean_score(self, valid: Split, score: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """Mean over ``valid``'s mixtures of ``score(x)``, a batch-mean loss of network inputs, in eval mode."""
        self.network_.eval()
        total, count = 0.0, 0
        for (x,) in BatchSource([valid.mixtures], self.context.device).epoch(self.batch_size, None):
            total += float(score(self._prepare(x))) * x.shape[0]
            count += x.shape[0]
        self.network_.train()
        return total / max(count, 1)

    def _train(
        self, step: TrainingStep, train: Split, *,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        validate: Callable[[], float] | None = None, keep_best: bool = False,
        patience: int | None = None, patience_start: int = 0,
        on_resume: Callable[[int], None] | None = None,
    ) -> TrainingLog:
        """Train ``network_`` with ``step`` on ``train`` through :func:`methods.nn.loop.run_epochs`.

        The run context gives the device, the progress bar, the checkpoint
        folder (``work_dir``: per-epoch checkpoints, resumption) and the time
        limit. Sets ``fit_info_`` (the epoch history, one :meth:`_history_entry` per
        epoch, the training events and budget, the parameter count), and leaves the
        network in eval mode.

        Parameters
        ----------
        step : TrainingStep
            The method's step (losses and updates of one batch).
        train : Split
            Training data; :meth:`_arrays` picks what batches hold.
        scheduler : LRScheduler or None
            Advanced once per complete epoch.
        validate : callable or None
            ``() -> float`` score after every epoch (lower is better).
        keep_best : bool
            End with the weights of the best validation epoch.
        patience, patience_start : int or None, int
            Early stopping (see :func:`methods.nn.loop.run_epochs`).
        on_resume : callable or None
            ``(first_epoch) -> None``, called when a checkpoint is resumed.
        """
        context = self.context
        plan = EpochPlan(
            epochs=self.epochs, batch_size=self._batch_size(train), seed=self.seed, label=f"{self.name} fit",
            progress=context.progress, keep_best=keep_best, checkpoint_dir=context.work_dir,
            time_limit=getattr(context, "time_limit", None), patience=patience, patience_start=patience_start,
        )
        run = run_epochs(self.network_, step, BatchSource(self._arrays(train), context.device), plan, scheduler,
                         validate, on_resume)
        self.fit_info_ = FitInfo(
            history=[self._history_entry(h) for h in run.history], events=run.events.to_dict(),
            budget=run.budget.to_dict(), n_parameters=self.n_parameters_,
        )
        self.network_.eval()
        return run

    def fit_info(self) -> FitInfo:
        """The epoch history, training events, training budget and parameter count of the fit."""
        return self.fit_info_ if self.fit_info_ is not None else FitInfo(n_parameters=getattr(self, "n_parameters_", None))

    @property
    def history_(self) -> list[dict[str, Any]] | None:
        """One entry per epoch of the fit (:meth:`_history_entry`); ``None`` before fitting."""
        return self.fit_info().history

    @property
    def training_events_(self) -> dict[str, Any] | None:
        """Non-finite-loss and resume events of the fit; ``None`` before fitting."""
        return self.fit_info().events

    @property
    def training_budget_(self) -> dict[str, Any] | None:
        """How much training the fit got; ``None`` before fitting."""
        return self.fit_info().budget

    def _history_entry(self, epoch: EpochResult) -> dict[str, Any]:
        """One epoch of ``history_``: number, seconds, samples, completeness and mean losses."""
        return {
            "epoch": epoch.epoch, "seconds": epoch.seconds, "samples": epoch.samples,
            "complete": epoch.complete, **epoch.losses,
        }

    # -------------------------------------------------------------- persistence
    def _network_json(self) -> dict:
        """The network's ``config`` in JSON form."""
        config = self.network_.config
        return config.to_dict() if hasattr(config, "to_dict") else dict(config)

    def _network_from_json(self, config: dict) -> nn.Module:
        """A new network from what :meth:`_network_json` wrote."""
        return self.network_class(config)

    def _state_extras(self) -> dict[str, Any]:
        """Fitted attributes besides the weights to save (JSON-able)."""
        return {}

    def _restore_extras(self, config: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Set what :meth:`_state_extras` saved."""

    def _save_state(self, directory: Path) -> None:
        save_torch_state(
            directory,
            {"network": self._network_json(), **self._state_extras(),
             "history": self.history_, "n_parameters": self.n_parameters_,
             "training_events": self.training_events_, "training_budget": self.training_budget_},
            self.network_.state_dict(),
        )

    def _load_state(self, directory: Path) -> None:
        config, state = load_torch_state(directory)
        network = self._network_from_json(config["network"])
        network.load_state_dict(state)
        self._install(network)
        self.network_.eval()
        self._restore_extras(config)
        self.fit_info_ = FitInfo(
            history=config.get("history"), events=config.get("training_events"),
            budget=config.get("training_budget"), n_parameters=self.n_parameters_,
        )


class MultiEncoderMethod(NetworkMethod):
    """A :class:`methods.nn.networks.MultiEncoderAutoencoder` minimising method-defined losses with Adam.

    Subclasses define the network (:meth:`_network_config`), the loss terms of
    a batch (:meth:`_step_losses`, one of them ``"total"``) and the validation
    score (:meth:`_validation_score`), and have the parameters ``lr``,
    ``weight_decay``, ``lr_step_epochs``, ``lr_gamma``, ``grad_clip``,
    ``keep_best``, ``patience``, ``amp``, ``cpu_bf16`` and ``compile_model``. Training: fused Adam, a step
    learning-rate schedule (``lr_step_epochs = 0``: none), gradient-norm
    clipping, the best validation epoch's weights with ``keep_best`` or ``patience``, and early
    stopping with ``patience``.
    """

    network_class = MultiEncoderAutoencoder
    param_constraints = {"kernel_size": ">=1, odd", "lr_step_epochs": ">=0", "lr_gamma": ">0",
                         "batch_norm_momentum": ">=0, <=1"}
    network_: MultiEncoderAutoencoder | None = None

    def _network_config(self, train: Split) -> NetworkConfig:
        raise NotImplementedError

    def _step_losses(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _validation_score(self, valid: Split) -> float:
        raise NotImplementedError

    def _autocast(self, x: torch.Tensor):
        """The precision context of the network on ``x``'s device (``amp``, ``cpu_bf16``)."""
        return autocast(x.device.type, self.amp, self.cpu_bf16)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *shape)`` batch -> network input ``(B, 1, *shape)``, channels-last for images."""
        x = x.unsqueeze(1)
        if self.network_.config.dims == 2:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def setup(self, train: Split) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        """Build the network for ``train``'s signal shape; return its optimizer and scheduler.

        Called by :meth:`fit`; public so :mod:`benchmark.tools.speed` times the very same step.
        """
        seed_and_threads(self.seed, self.context.device, self.context.n_threads)
        network = MultiEncoderAutoencoder(self._network_config(train)).set_layout(*parse_layout(self.context.layout))
        self._install(network, compile_model=self.compile_model or self.context.compile)
        self.encoding_shape_ = network.encoding_shape(train.signal_shape)
        optimizer = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True)
        scheduler = (
            torch.optim.lr_scheduler.StepLR(optimizer, self.lr_step_epochs, self.lr_gamma)
            if self.lr_step_epochs
            else None
        )
        return optimizer, scheduler

    def fit(self, train: Split, valid: Split | None = None) -> MultiEncoderMethod:
        optimizer, scheduler = self.setup(train)
        self._train(
            GradientStep(self.network_, optimizer, self._step_losses, self.grad_clip), train,
            scheduler=scheduler, **self._validation_args(valid, self._validation_score, self.keep_best),
        )
        return self

    def _network_from_json(self, config: dict) -> MultiEncoderAutoencoder:
        return MultiEncoderAutoencoder(NetworkConfig.from_dict(config))

    def _state_extras(self) -> dict[str, Any]:
        return {"encoding_shape": list(self.encoding_shape_)}

    def _restore_extras(self, config: dict[str, Any]) -> None:
        self.encoding_shape_ = tuple(config["encoding_shape"])


__all__ = ["MultiEncoderMethod", "NetworkMethod"]
