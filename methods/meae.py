"""Multi-encoder autoencoder (MEAE) for blind source separation, written from the paper.

Training minimises ``L_recon + lambda_mix L_mixing + lambda_zero L_zero + lambda_z L_z``
(Eq. 16/21) on mixtures alone; sources are estimated by decoding one encoder's
encoding with the others masked to zero (Eq. 17-18).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from methods._losses import (
    encoding_loss,
    mixing_loss,
    reconstruction_loss,
    zero_reconstruction_loss,
)
from methods._networks import MultiEncoderAutoencoder, NetworkConfig, count_parameters
from methods._training import (
    BatchSource,
    autocast,
    load_torch_state,
    predict_in_batches,
    reconstruct_full,
    save_torch_state,
    seed_and_threads,
    train_epochs,
)
from methods.base import Method, Split, register

TRIANGLES_PAPER: dict[str, Any] = dict(
    n_encoders=3, channels=(24, 48, 96, 144), hidden=96, kernel_size=7,
    epochs=100, batch_size=256, lr=1e-3, weight_decay=1e-5, lr_step_epochs=50, lr_gamma=0.1,
    lambda_mix=0.5, lambda_zero=1e-2, lambda_z=1e-2, mixing_weighting="uniform", grad_clip=0.5,
    keep_best=False, batch_norm_momentum=0.8,
)
MESA_PAPER: dict[str, Any] = dict(
    n_encoders=8, channels=(32, 32, 64, 64, 128, 128, 256, 256), hidden=64, kernel_size=7,
    epochs=50, batch_size=256, lr=1e-3, weight_decay=1e-6, lr_step_epochs=0, lr_gamma=1.0,
    lambda_mix=1e-3, lambda_zero=1e-2, lambda_z=1e-2, mixing_weighting="position", grad_clip=0.5,
    keep_best=True, batch_norm_momentum=0.8,
)
# Reduced configurations for a 2-core CPU; documented in the README's profile table.
TRIANGLES_QUICK: dict[str, Any] = dict(
    TRIANGLES_PAPER, channels=(12, 24, 48, 72), hidden=48, kernel_size=5, epochs=12,
    batch_size=64, lr_step_epochs=9,
)
MESA_QUICK: dict[str, Any] = dict(
    MESA_PAPER, channels=(8, 8, 16, 16, 32, 32, 64, 64), hidden=32, kernel_size=5,
    epochs=30, batch_size=16,
)

# Smoke-test configurations (contract tests, CI): seconds on a CPU.
TRIANGLES_TINY: dict[str, Any] = dict(
    TRIANGLES_QUICK, channels=(6, 6, 12, 12), hidden=12, kernel_size=3, epochs=1, batch_size=32,
)
# 6 epochs: with fewer, the tiny 1-D network's outputs stay flat and no test segment gets a rate.
MESA_TINY: dict[str, Any] = dict(
    MESA_QUICK, channels=(8,) * 8, hidden=16, kernel_size=3, epochs=6, batch_size=16,
)


class _NetworkMethod(Method):
    """Shared fit/separate plumbing for the autoencoder methods."""

    device_support = "optional"
    network_: MultiEncoderAutoencoder | None = None

    def _network_config(self, train: Split) -> NetworkConfig:
        raise NotImplementedError

    def _step_losses(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _arrays(self, split: Split) -> list[np.ndarray]:
        return [split.mixtures]

    def _validation_score(self, valid: Split) -> float:
        raise NotImplementedError

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *shape)`` batch -> network input ``(B, 1, *shape)``."""
        x = x.unsqueeze(1)
        if self.network_.config.dims == 2:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def setup(self, train: Split) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        """Build the network for ``train``'s signal shape; return its optimizer and scheduler.

        Called by :meth:`fit`; public so :mod:`benchmark.speed` times the very same step.
        """
        device = self.context.device
        seed_and_threads(self.seed, device, self.context.n_threads)
        config = self._network_config(train)
        # channels-last convolutions are faster on both oneDNN (CPU) and cuDNN.
        network = MultiEncoderAutoencoder(config).to(device, memory_format=torch.channels_last)
        self.encoding_shape_ = network.encoding_shape(train.signal_shape)
        self.network_ = network
        self._forward = torch.compile(network) if self.compile_model else network
        self.n_parameters_ = count_parameters(network)
        optimizer = torch.optim.Adam(
            network.parameters(), lr=self.lr, weight_decay=self.weight_decay,
            fused=True,
        )
        scheduler = (
            torch.optim.lr_scheduler.StepLR(optimizer, self.lr_step_epochs, self.lr_gamma)
            if self.lr_step_epochs
            else None
        )
        return optimizer, scheduler

    def fit(self, train: Split, valid: Split | None = None) -> _NetworkMethod:
        optimizer, scheduler = self.setup(train)
        validate = None
        if valid is not None and len(valid) and self.keep_best:
            validate = lambda: self._validation_score(valid)  # noqa: E731
        run = train_epochs(
            self.network_, optimizer, scheduler, BatchSource(self._arrays(train), self.context.device),
            self._step_losses, epochs=self.epochs, batch_size=min(self.batch_size, len(train)),
            grad_clip=self.grad_clip, seed=self.seed, progress=self.context.progress,
            label=f"{self.name} fit", validate=validate, keep_best=self.keep_best,
            checkpoint_dir=self.context.work_dir, time_limit=self.context.time_limit,
        )
        self.history_ = [
            {"epoch": h.epoch, "seconds": h.seconds, "samples": h.samples, "complete": h.complete, **h.losses}
            for h in run.history
        ]
        self.training_events_ = run.events.to_dict()
        self.training_budget_ = run.budget.to_dict()
        self.network_.eval()
        return self

    def _save_state(self, directory: Path) -> None:
        save_torch_state(
            directory,
            {"network": self.network_.config.to_dict(), "encoding_shape": list(self.encoding_shape_),
             "history": getattr(self, "history_", None), "n_parameters": self.n_parameters_,
             "training_events": getattr(self, "training_events_", None),
             "training_budget": getattr(self, "training_budget_", None)},
            self.network_.state_dict(),
        )

    def _load_state(self, directory: Path) -> None:
        config, state = load_torch_state(directory)
        network = MultiEncoderAutoencoder(NetworkConfig.from_dict(config["network"]))
        network.load_state_dict(state)
        self.network_ = network.to(self.context.device, memory_format=torch.channels_last).eval()
        self._forward = self.network_
        self.encoding_shape_ = tuple(config["encoding_shape"])
        self.history_ = config.get("history")
        self.training_events_ = config.get("training_events")
        self.training_budget_ = config.get("training_budget")
        self.n_parameters_ = config.get("n_parameters", count_parameters(network))


@register
class MEAE(_NetworkMethod):
    """Multi-encoder autoencoder with sparse mixing and zero-reconstruction losses.

    Parameters
    ----------
    n_encoders : int
        Number of encoders N (candidate outputs).
    channels : tuple of int
        Total channels per level (each encoder gets ``c // N``); see
        :class:`methods._networks.NetworkConfig`.
    hidden : int
        Concatenated encoding channels.
    kernel_size : int
        Convolution kernel size.
    epochs, batch_size, lr, weight_decay : training schedule (Adam).
    lr_step_epochs, lr_gamma : step learning-rate schedule (0 disables it).
    lambda_mix, lambda_zero, lambda_z : loss weights of Eq. 21.
    mixing_weighting : ``"uniform"`` (Eq. 13) or ``"position"`` (Eq. 14, literal).
    grad_clip : gradient-norm clipping (0 disables it).
    keep_best : keep the epoch with the lowest validation reconstruction loss.
    encoding_activation : ``"linear"`` (the paper's text) or ``"relu"`` (the authors' code).
    batch_norm_momentum : encoder BatchNorm momentum (0.8 in the authors' code, the paper profiles).
    amp : bf16 autocast on CUDA.
    compile_model : wrap the network in ``torch.compile``.
    seed : seed of initialisation and batch order.
    """

    name = "meae"
    description = "Multi-encoder autoencoder (the paper's method): masking inference, blind"
    suites = ("triangles", "mesa")
    supervised = False
    profiles = {
        ("triangles", "paper"): TRIANGLES_PAPER, ("triangles", "quick"): TRIANGLES_QUICK,
        ("triangles", "tiny"): TRIANGLES_TINY, ("mesa", "paper"): MESA_PAPER,
        ("mesa", "quick"): MESA_QUICK, ("mesa", "tiny"): MESA_TINY,
    }

    def __init__(
        self, n_encoders: int = 3, channels: tuple[int, ...] = (24, 48, 96, 144), hidden: int = 96,
        kernel_size: int = 7, epochs: int = 100, batch_size: int = 256, lr: float = 1e-3,
        weight_decay: float = 1e-5, lr_step_epochs: int = 50, lr_gamma: float = 0.1,
        lambda_mix: float = 0.5, lambda_zero: float = 1e-2, lambda_z: float = 1e-2,
        mixing_weighting: str = "uniform", grad_clip: float = 0.5, keep_best: bool = False,
        encoding_activation: str = "linear", batch_norm_momentum: float = 0.1,
        amp: bool = True, compile_model: bool = False, seed: int = 0,
    ) -> None:
        self.n_encoders = n_encoders
        self.channels = channels
        self.hidden = hidden
        self.kernel_size = kernel_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_step_epochs = lr_step_epochs
        self.lr_gamma = lr_gamma
        self.lambda_mix = lambda_mix
        self.lambda_zero = lambda_zero
        self.lambda_z = lambda_z
        self.mixing_weighting = mixing_weighting
        self.grad_clip = grad_clip
        self.keep_best = keep_best
        self.encoding_activation = encoding_activation
        self.batch_norm_momentum = batch_norm_momentum
        self.amp = amp
        self.compile_model = compile_model
        self.seed = seed

    def _network_config(self, train: Split) -> NetworkConfig:
        return NetworkConfig(
            dims=1 if train.modality == "1d" else 2, n_encoders=self.n_encoders,
            channels=tuple(self.channels), hidden=self.hidden, kernel_size=self.kernel_size,
            encoding_activation=self.encoding_activation, decoder_norm="group",
            batch_norm_momentum=self.batch_norm_momentum,
        )

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All loss terms for a batch of inputs ``(B, 1, *shape)`` (Eq. 21)."""
        network = self.network_
        with autocast(x.device.type, self.amp):
            logits, z = self._forward(x)
            zero = zero_reconstruction_loss(network.decoder, self.encoding_shape_)
        recon = reconstruction_loss(logits, x)
        mix = mixing_loss(network.decoder.mixing_weights(), self.n_encoders, self.mixing_weighting)
        enc = encoding_loss(z)
        total = recon + self.lambda_mix * mix + self.lambda_zero * zero + self.lambda_z * enc
        return {"total": total, "recon": recon, "mixing": mix, "zero": zero, "encoding": enc}

    def _step_losses(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.losses(self._prepare(batch[0]))

    @torch.no_grad()
    def _validation_score(self, valid: Split) -> float:
        self.network_.eval()
        total, count = 0.0, 0
        for (x,) in BatchSource([valid.mixtures], self.context.device).epoch(self.batch_size, None):
            x = self._prepare(x)
            with autocast(x.device.type, self.amp):
                logits, _ = self._forward(x)
            total += float(reconstruction_loss(logits, x)) * x.shape[0]
            count += x.shape[0]
        self.network_.train()
        return total / max(count, 1)

    @torch.no_grad()
    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        network = self.network_.eval()

        def estimate(x: torch.Tensor) -> torch.Tensor:
            x = self._prepare(x)
            with autocast(x.device.type, self.amp):
                z = network.encoder(x)
                logits = network.masked_decode(z)
            return torch.sigmoid(logits.float())[:, :, 0]

        return predict_in_batches(estimate, mixtures, self.context.device, batch_size=128)

    def reconstruct(self, mixtures: np.ndarray) -> np.ndarray:
        """The full reconstruction (all encoders active), shape like ``mixtures``."""
        return reconstruct_full(self.network_, self._prepare, mixtures, self.context.device)

    def diagnostics(self) -> dict[str, np.ndarray]:
        """|decoder weights| summed over the kernel, per layer (paper Figure 4)."""
        out = {}
        for index, weight in enumerate(self.network_.decoder.mixing_weights()):
            matrix = weight.detach().abs().float().flatten(2).sum(-1).cpu().numpy()
            out[f"decoder_weights_{index}"] = matrix
        return out
