"""Multi-encoder autoencoder (MEAE) for blind source separation, written from the paper.

Training minimises ``L_recon + lambda_mix L_mixing + lambda_zero L_zero + lambda_z L_z``
(Eq. 16/21) on mixtures alone; sources are estimated by decoding one encoder's
encoding with the others masked to zero (Eq. 17-18).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from methods.base import Split, modality_profiles, register
from methods.nn.batches import BatchSource, predict_in_batches, reconstruct_full
from methods.nn.losses import (
    encoding_loss,
    mixing_loss,
    reconstruction_loss,
    zero_reconstruction_loss,
)
from methods.nn.network_method import MultiEncoderMethod
from methods.nn.networks import NetworkConfig

TRIANGLES_PAPER: dict[str, Any] = dict(
    n_encoders=3, channels=(24, 48, 96, 144), hidden=96, kernel_size=7,
    epochs=100, batch_size=256, lr=1e-3, weight_decay=1e-5, lr_step_epochs=50, lr_gamma=0.1,
    lambda_mix=0.5, lambda_zero=1e-2, lambda_z=1e-2, mixing_weighting="uniform", grad_clip=0.5,
    keep_best=False, batch_norm_momentum=0.8, encoding_activation="relu",
    encoding_penalty="sum_per_encoder", decoder_conv="transposed",
)
MESA_PAPER: dict[str, Any] = dict(
    n_encoders=8, channels=(32, 32, 64, 64, 128, 128, 256, 256), hidden=64, kernel_size=7,
    epochs=50, batch_size=256, lr=1e-3, weight_decay=1e-6, lr_step_epochs=0, lr_gamma=1.0,
    lambda_mix=1e-3, lambda_zero=1e-2, lambda_z=1e-2, mixing_weighting="banded", grad_clip=0.5,
    keep_best=True, batch_norm_momentum=0.8, encoding_activation="relu",
)
# The paper profiles follow the authors' code where it differs from the text (what produced the
# published tables): ReLU encodings, and the banded mixing selection for ECG/PPG; for the
# triangles also the encoding penalty summed per encoder and stride-1 transposed decoder
# convolutions (PAPER_NOTES documents them for the triangles model only).
# Reduced configurations for a 2-core CPU; documented in the README's profile table.
# The small 4-level network that suites without their own entry (sines, images) run; it keeps the text's choices (linear encoding, one mean of z**2, plain
# convolutions): the images and sines recipes were chosen with them.
SMALL_QUICK: dict[str, Any] = dict(
    TRIANGLES_PAPER, channels=(12, 24, 48, 72), hidden=48, kernel_size=5, epochs=12,
    batch_size=64, lr_step_epochs=9, encoding_activation="linear", encoding_penalty="mean", decoder_conv="conv",
)
# Triangles quick: LR 3e-3 separated best of the CPU sweep (results/sweeps/triangles_quick_cpu/,
# seed 0: circle MSE 0.133 -> 0.089, SSIM 0.49 / 0.50 -> 0.61 / 0.61). fp32: no fp32-vs-bf16
# check of the verdicts exists, so CPU bf16 stays off. The authors' three choices (ReLU encodings,
# penalty summed per encoder, transposed decoder convolutions) together separated the triangle on
# the most seeds of the quick-budget ablation (results/sweeps/meae_authors_ablation/ablation.md).
TRIANGLES_QUICK: dict[str, Any] = dict(
    SMALL_QUICK, lr=3e-3, encoding_activation="relu", encoding_penalty="sum_per_encoder", decoder_conv="transposed",
)
MESA_QUICK: dict[str, Any] = dict(
    MESA_PAPER, channels=(8, 8, 16, 16, 32, 32, 64, 64), hidden=32, kernel_size=5,
    epochs=6, batch_size=16, encoding_activation="linear",
)

# Smoke-test configurations (contract tests, CI): seconds on a CPU.
TRIANGLES_TINY: dict[str, Any] = dict(
    SMALL_QUICK, channels=(6, 6, 12, 12), hidden=12, kernel_size=3, epochs=1, batch_size=32,
)
# 8 epochs: with fewer (6 since the banded mixing selection), the tiny 1-D network's outputs
# stay flat and no test segment gets a rate.
MESA_TINY: dict[str, Any] = dict(
    MESA_QUICK, channels=(8,) * 8, hidden=16, kernel_size=3, epochs=8, batch_size=16,
)


@register
class MEAE(MultiEncoderMethod):
    """Multi-encoder autoencoder with sparse mixing and zero-reconstruction losses.

    Parameters
    ----------
    n_encoders : int
        Number of encoders N (candidate outputs).
    channels : tuple of int
        Total channels per level (each encoder gets ``c // N``); see
        :class:`methods.nn.networks.NetworkConfig`.
    hidden : int
        Concatenated encoding channels.
    kernel_size : int
        Convolution kernel size.
    epochs, batch_size, lr, weight_decay : int, int, float, float
        Training schedule (Adam).
    lr_step_epochs, lr_gamma : int, float
        Step learning-rate schedule (0 disables it).
    lambda_mix, lambda_zero, lambda_z : float
        Loss weights of Eq. 21.
    mixing_weighting : {"uniform", "position", "banded"}
        ``"uniform"`` (Eq. 13), ``"position"`` (Eq. 14, literal) or ``"banded"`` (the selection
        of the authors' MESA code, which produced Table 2: the MESA profiles' default); see
        :func:`methods.nn.losses.block_weighting`.
    grad_clip : float
        Gradient-norm clipping (0 disables it).
    keep_best : bool
        Keep the epoch with the lowest validation reconstruction loss.
    patience : int or None
        Early stopping: stop after this many epochs without a validation improvement
        (``None``: train every epoch); implies validating and ``keep_best``, needs a validation
        split (see :func:`methods.nn.loop.run_epochs`).
    encoding_activation : {"linear", "relu"}
        ``"linear"`` (the paper's text) or ``"relu"`` (the authors' code).
    encoding_penalty : {"mean", "sum_per_encoder"}
        ``"mean"`` (Eq. 9: one mean of z² over all encoders) or ``"sum_per_encoder"`` (the
        authors' code: each encoder's mean of z², summed; N times stronger); see
        :func:`methods.nn.losses.encoding_loss`.
    decoder_conv : {"conv", "transposed"}
        ``"conv"`` or ``"transposed"`` (stride-1 transposed convolutions in the decoder's
        upsampling blocks, as in the authors' code: the same functions, another initial weight
        scale); see :class:`methods.nn.networks.NetworkConfig`.
    batch_norm_momentum : float
        Encoder BatchNorm momentum (0.8 in the authors' code, the paper profiles).
    amp : bool
        bf16 autocast on CUDA.
    cpu_bf16 : bool
        bf16 autocast on a CPU with AMX-BF16 (oneDNN runs the convolutions on the tiles);
        ignored on other CPUs, which stay in fp32. The cell records the precision used.
    compile_model : bool
        Wrap the network in ``torch.compile``.
    seed : int
        Seed of initialisation and batch order.
    """

    name = "meae"
    neutral_params = {"cpu_bf16": False, "patience": None, "encoding_penalty": "mean", "decoder_conv": "conv"}
    description = "Multi-encoder autoencoder (the paper's method): masking inference, blind"
    supervised = False
    quality_gate = True
    show_outputs = True
    param_constraints = {"lambda_mix": ">=0", "lambda_zero": ">=0", "lambda_z": ">=0",
                         "mixing_weighting": "uniform|position|banded", "encoding_activation": "linear|relu",
                         "encoding_penalty": "mean|sum_per_encoder", "decoder_conv": "conv|transposed"}
    profiles = {
        ("triangles", "paper"): TRIANGLES_PAPER, ("triangles", "quick"): TRIANGLES_QUICK,
        ("triangles", "tiny"): TRIANGLES_TINY, ("mesa", "paper"): MESA_PAPER,
        ("mesa", "quick"): MESA_QUICK, ("mesa", "tiny"): MESA_TINY,
        **modality_profiles(TRIANGLES_TINY, SMALL_QUICK),  # other suites: the small 4-level network
        # sines quick: train to convergence (early stopping on validation, patience 5, at most 100 epochs)
        ("sines", "quick"): dict(SMALL_QUICK, epochs=100, lr_step_epochs=50, patience=5),
    }

    def __init__(
        self, n_encoders: int = 3, channels: tuple[int, ...] = (24, 48, 96, 144), hidden: int = 96,
        kernel_size: int = 7, epochs: int = 100, batch_size: int = 256, lr: float = 1e-3,
        weight_decay: float = 1e-5, lr_step_epochs: int = 50, lr_gamma: float = 0.1,
        lambda_mix: float = 0.5, lambda_zero: float = 1e-2, lambda_z: float = 1e-2,
        mixing_weighting: str = "uniform", grad_clip: float = 0.5, keep_best: bool = False,
        patience: int | None = None, encoding_activation: str = "linear", encoding_penalty: str = "mean",
        decoder_conv: str = "conv", batch_norm_momentum: float = 0.1,
        amp: bool = True, cpu_bf16: bool = False, compile_model: bool = False, seed: int = 0,
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
        self.patience = patience
        self.encoding_activation = encoding_activation
        self.encoding_penalty = encoding_penalty
        self.decoder_conv = decoder_conv
        self.batch_norm_momentum = batch_norm_momentum
        self.amp = amp
        self.cpu_bf16 = cpu_bf16
        self.compile_model = compile_model
        self.seed = seed

    def _network_config(self, train: Split) -> NetworkConfig:
        return NetworkConfig(
            dims=1 if train.modality == "1d" else 2, n_encoders=self.n_encoders,
            channels=tuple(self.channels), hidden=self.hidden, kernel_size=self.kernel_size,
            encoding_activation=self.encoding_activation, decoder_norm="group",
            batch_norm_momentum=self.batch_norm_momentum, decoder_conv=self.decoder_conv,
        )

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All loss terms for a batch of inputs ``(B, 1, *shape)`` (Eq. 21)."""
        network = self.network_
        with self._autocast(x):
            logits, z = self._forward(x)
            zero = zero_reconstruction_loss(network.decoder, self.encoding_shape_)
        recon = reconstruction_loss(logits, x)
        mix = mixing_loss(network.decoder.mixing_weights(), self.n_encoders, self.mixing_weighting)
        enc = encoding_loss(z, self.encoding_penalty, self.n_encoders)
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
            with self._autocast(x):
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
            with self._autocast(x):
                z = network.encoder(x)
                logits = network.masked_decode(z)
            return torch.sigmoid(logits.float())[:, :, 0]

        return predict_in_batches(estimate, mixtures, self.context.device, batch_size=128)

    def reconstruct(self, mixtures: np.ndarray) -> np.ndarray:
        """The full reconstruction (all encoders active), shape like ``mixtures``."""
        return reconstruct_full(self.network_, self._prepare, mixtures, self.context.device)

    def diagnostics(self) -> dict[str, np.ndarray]:
        """``|decoder weights|`` summed over the kernel, per layer (paper Figure 4)."""
        out = {}
        for index, weight in enumerate(self.network_.decoder.mixing_weights()):
            matrix = weight.detach().abs().float().flatten(2).sum(-1).cpu().numpy()
            out[f"decoder_weights_{index}"] = matrix
        return out
