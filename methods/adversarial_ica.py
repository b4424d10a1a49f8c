"""Adversarial non-linear ICA (Brakel & Bengio 2017, arXiv 1710.05050; reference [8] of the paper).

An autoencoder whose K features are pushed towards mutual independence by a
discriminator that tells their joint distribution from the product of their
marginals. Samples of the product of the marginals come from the *resampling
trick*: every feature is shuffled across the batch with its own permutation.
Adapted here to single-channel mixtures with convolutional feature maps and
masked decoding (see :class:`AdversarialICA`). The two players train through
the shared epoch loop (:func:`methods.nn.loop.run_epochs`) with
:class:`AdversarialStep` as its step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods.base import Split, modality_profiles, register
from methods.nn.batches import predict_in_batches, reconstruct_full
from methods.nn.device import autocast, seed_and_threads
from methods.nn.network_method import NetworkMethod
from methods.nn.networks import (
    ConvDecoderBody,
    ConvEncoderBody,
    Layers,
    check_divisible,
    from_image,
    to_image,
)
from methods.nn.steps import guarded_update

# --------------------------------------------------------------------------- profiles
# "paper": our choice of full-size GPU settings (neither the MEAE paper nor [8] gives any
# for these data); K mirrors the MEAE paper's number of encoders (3 triangles, 8 MESA).
TRIANGLES_PAPER: dict[str, Any] = dict(
    n_sources=3, channels=(32, 64, 128), kernel_size=5, disc_channels=64, epochs=100,
    batch_size=256, lr=2e-4, disc_lr=2e-4, disc_steps=5, adv_weight=0.1,
)
MESA_PAPER: dict[str, Any] = dict(
    n_sources=8, channels=(16, 32, 32, 64, 64, 128), kernel_size=7, disc_channels=64,
    epochs=50, batch_size=128, lr=2e-4, disc_lr=2e-4, disc_steps=5, adv_weight=0.1,
)
# 2-core CPU budget: about 60 s per fit (6,000 images of 64x64; ~200 segments of 12,288).
TRIANGLES_QUICK: dict[str, Any] = dict(
    TRIANGLES_PAPER, channels=(8, 16), kernel_size=3, disc_channels=16, epochs=4,
    batch_size=64, lr=1e-3, disc_lr=1e-3, disc_steps=2,
)
MESA_QUICK: dict[str, Any] = dict(
    MESA_PAPER, n_sources=4, channels=(8, 8, 16, 16, 32), kernel_size=5, disc_channels=16,
    epochs=4, batch_size=16, lr=1e-3, disc_lr=1e-3, disc_steps=2,
)
# Smoke tests: seconds.
TRIANGLES_TINY: dict[str, Any] = dict(
    TRIANGLES_QUICK, channels=(4, 4), disc_channels=4, epochs=1, batch_size=32,
)
MESA_TINY: dict[str, Any] = dict(
    MESA_QUICK, n_sources=3, channels=(4, 4, 4), kernel_size=3, disc_channels=4, epochs=1,
    batch_size=16,
)
PROFILES = {
    ("triangles", "paper"): TRIANGLES_PAPER, ("triangles", "quick"): TRIANGLES_QUICK,
    ("triangles", "tiny"): TRIANGLES_TINY, ("mesa", "paper"): MESA_PAPER,
    ("mesa", "quick"): MESA_QUICK, ("mesa", "tiny"): MESA_TINY,
    **modality_profiles(TRIANGLES_TINY, TRIANGLES_QUICK),  # other suites: the small network
    # sines quick: trained to convergence (early stopping on validation, patience 5, at most 100 epochs)
    ("sines", "quick"): dict(TRIANGLES_QUICK, epochs=100, patience=5),
}


# ------------------------------------------------------------ resampling and losses
def independent_permutations(batch: int, n_maps: int, device: torch.device | str,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """A ``(batch, n_maps)`` index whose every column is its own random permutation of the batch."""
    return torch.rand(batch, n_maps, device=device, generator=generator).argsort(dim=0)


def shuffle_maps(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Resample whole feature maps across the batch, independently for each map.

    ``out[b, k] = z[perm[b, k], k]`` with an independent permutation ``perm[:, k]``
    per map: a sample of the product of the marginals of the K maps (the
    resampling trick of Brakel & Bengio). One advanced-indexing gather, no
    loop over K.

    Parameters
    ----------
    z : torch.Tensor
        Feature maps ``(B, K, *spatial)``.
    """
    batch, n_maps = z.shape[:2]
    perm = independent_permutations(batch, n_maps, z.device, generator)
    return z[perm, torch.arange(n_maps, device=z.device)[None, :]]


def discriminator_loss(discriminator: nn.Module, z: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Binary cross-entropy of the discriminator: joint maps -> 1, resampled maps -> 0."""
    joint = discriminator(z).float()
    marginal = discriminator(shuffle_maps(z, generator)).float()
    return 0.5 * (
        F.binary_cross_entropy_with_logits(joint, torch.ones_like(joint))
        + F.binary_cross_entropy_with_logits(marginal, torch.zeros_like(marginal))
    )


def separator_adversarial_loss(discriminator: nn.Module, z: torch.Tensor,
                               generator: torch.Generator | None = None) -> torch.Tensor:
    """The separator's term: the discriminator's loss with flipped labels (non-saturating).

    Gradients reach the encoder through both the joint and the resampled maps.
    """
    joint = discriminator(z).float()
    marginal = discriminator(shuffle_maps(z, generator)).float()
    return 0.5 * (
        F.binary_cross_entropy_with_logits(joint, torch.zeros_like(joint))
        + F.binary_cross_entropy_with_logits(marginal, torch.ones_like(marginal))
    )


def reconstruction_l1(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of the sigmoid reconstruction ``logits`` against the inputs ``x``."""
    return (torch.sigmoid(logits.float()) - x.float()).abs().mean()


# --------------------------------------------------------------------------- network
class IndependenceDiscriminator(nn.Module):
    """Small conv net reading the whole K-map stack; global average pool; MLP to one logit.

    No batch norm: joint and resampled batches go through it separately and
    must not share batch statistics.
    """

    def __init__(self, dims: int, n_maps: int, width: int) -> None:
        super().__init__()
        self.dims = dims
        make = Layers(dims)
        stride = 2 if dims == 2 else (1, 2)
        self.features = nn.Sequential(
            make.conv(n_maps, width, 3), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, make._size(3), stride=stride, padding=1 if dims == 2 else (0, 1)),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Sequential(nn.Linear(width, width), nn.LeakyReLU(0.2), nn.Linear(width, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """One logit per sample ("joint") from maps ``(B, K, *spatial)``."""
        return self.head(self.features(to_image(z, self.dims)).flatten(2).mean(-1))[:, 0]


class AdversarialICANetwork(nn.Module):
    """Conv encoder -> K batch-normalized maps -> conv decoder, plus the independence discriminator.

    Parameters
    ----------
    config : dict
        ``dims``, ``n_sources``, ``channels``, ``kernel_size``, ``disc_channels``.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = dict(config, channels=list(config["channels"]))
        self.dims = dims = config["dims"]
        k, channels = config["n_sources"], list(config["channels"])
        make = Layers(dims)
        self.encoder = nn.Sequential(
            ConvEncoderBody(dims, 1, channels, config["kernel_size"]),
            make.conv(channels[-1], k, 1),
            # per-map standardisation over batch and positions, no affine parameters
            nn.BatchNorm2d(k, affine=False),
        )
        self.decoder = nn.Sequential(
            make.conv(k, channels[-1], 1), nn.ReLU(inplace=True), make.batch_norm(channels[-1]),
            ConvDecoderBody(dims, channels, config["kernel_size"], 1),
        )
        self.discriminator = IndependenceDiscriminator(dims, k, config["disc_channels"])

    def separator_parameters(self) -> list[nn.Parameter]:
        """Encoder and decoder parameters (what the separator optimizer updates)."""
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(B, K, *spatial)`` of inputs ``(B, 1, *shape)``."""
        return from_image(self.encoder(to_image(x, self.dims)), self.dims)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, *shape)`` from feature maps ``(B, K, *spatial)``."""
        return from_image(self.decoder(to_image(z, self.dims)), self.dims)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction logits ``(B, 1, *shape)`` and feature maps ``(B, K, *spatial)``."""
        z = self.encode(x)
        return self.decode(z), z

    def masked_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode each map alone (the others zeroed): logits ``(B, K, 1, *shape)``, one batch of B*K."""
        batch, k = z.shape[:2]
        eye = torch.eye(k, device=z.device, dtype=z.dtype).view(1, k, k, *([1] * (z.dim() - 2)))
        out = self.decode((z.unsqueeze(1) * eye).flatten(0, 1))
        return out.reshape(batch, k, *out.shape[1:])


# ---------------------------------------------------------------------------- method
class AdversarialStep:
    """The :class:`methods.nn.steps.TrainingStep` of adversarial ICA: both players' updates on one batch.

    Parameters
    ----------
    method : AdversarialICA
        The method whose network is trained (see :meth:`AdversarialICA.training_step`).
    separator, discriminator : torch.optim.Optimizer
        Optimizers of the encoder + decoder and of the discriminator.
    """

    def __init__(self, method: AdversarialICA, separator: torch.optim.Optimizer,
                 discriminator: torch.optim.Optimizer) -> None:
        self.method, self.separator, self.discriminator = method, separator, discriminator
        self.optimizers = (separator, discriminator)

    def __call__(self, batch: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return self.method.training_step(self.method._prepare(batch[0]), self.separator, self.discriminator)


@register
class AdversarialICA(NetworkMethod):
    """Adversarial non-linear ICA (Brakel & Bengio 2017) adapted to single-channel mixtures.

    Original: an encoder maps a mixture to K features, standardised per batch;
    a decoder maps them back to the mixture; a discriminator learns to tell
    the joint feature distribution from batches whose feature columns were
    shuffled independently (the product of the marginals); the separator
    (encoder + decoder) minimises L1 reconstruction + ``adv_weight`` (0.1) x an
    adversarial term that makes its joint features indistinguishable from the
    shuffled ones; RMSProp, several discriminator updates per separator update.

    Single-channel adaptation (ours):

    * The encoder is convolutional and outputs K feature **maps**
      (``K x H/2^d x W/2^d`` for images, ``K x L/2^d`` for signals, with
      ``d = len(channels)``), standardised per map over batch and positions by
      a batch norm without affine parameters.
    * Independence is judged on whole maps: the resampling trick moves **whole
      maps** across samples, with an independent permutation for each map
      (:func:`shuffle_maps`), and the discriminator is a small convolutional
      net reading the full K-map stack (so it sees co-located structure of the
      maps) followed by global average pooling.
    * The decoder is convolutional with a sigmoid output (data in [0, 1]); the
      estimate of source k decodes map k with all other maps zeroed (masking,
      as in MEAE), the K masked copies going through the decoder as one batch.
    * The discriminator takes ``disc_steps`` updates per separator update on
      the current batch's (detached) maps, each with fresh permutations, so the
      encoder runs once per batch. The separator's adversarial term is the
      discriminator's cross-entropy with flipped labels on both the joint and
      the resampled maps (non-saturating form).
    * Training runs through the shared epoch loop with :class:`AdversarialStep`:
      an update whose loss or gradient is not finite is left out, repeated
      ones roll the network and both optimizers back to the last epoch with
      lowered learning rates, and every epoch is checkpointed for resumption.
    * ``valid`` is used only for early stopping (``patience``): its score is the
      L1 reconstruction error.
    * 1-D signals run as height-1 channels-last 2-D convolutions (as in
      :mod:`methods.nn.networks`): same results, faster on oneDNN and cuDNN.

    Parameters
    ----------
    n_sources : int
        Number K of feature maps / candidate outputs.
    channels : tuple of int
        Encoder widths per level (one 2x pooling each); the decoder mirrors them.
    kernel_size : int
        Odd convolution kernel size of encoder and decoder.
    disc_channels : int
        Width of the discriminator.
    epochs, batch_size : int
        Training length and minibatch size.
    lr, disc_lr : float
        RMSProp learning rates of the separator and the discriminator.
    disc_steps : int
        Discriminator updates per separator update.
    adv_weight : float
        Weight of the adversarial term (0.1 in [8]).
    patience : int or None
        Early stopping: stop after this many epochs without an improvement of the validation
        reconstruction; ends with the best validation epoch's weights and needs a validation
        split (``None``: train every epoch, no validation).
    amp : bool
        bf16 autocast on CUDA.
    seed : int
        Seed of initialisation, batch order and permutations.
    """

    network_class = AdversarialICANetwork
    name = "adversarial_ica"
    description = "Adversarial non-linear ICA (Brakel & Bengio 2017) with conv feature maps, masked decoding, blind"
    supervised = False
    device_support = "optional"
    profiles = PROFILES
    param_constraints = {"kernel_size": ">=1, odd", "disc_channels": ">=1", "disc_lr": ">0",
                         "disc_steps": ">=1", "adv_weight": ">=0"}
    neutral_params = {"patience": None}

    def __init__(
        self, n_sources: int = 3, channels: tuple[int, ...] = (32, 64, 128), kernel_size: int = 5,
        disc_channels: int = 64, epochs: int = 100, batch_size: int = 256, lr: float = 2e-4,
        disc_lr: float = 2e-4, disc_steps: int = 5, adv_weight: float = 0.1,
        patience: int | None = None, amp: bool = True, seed: int = 0,
    ) -> None:
        self.n_sources = n_sources
        self.channels = channels
        self.kernel_size = kernel_size
        self.disc_channels = disc_channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.disc_lr = disc_lr
        self.disc_steps = disc_steps
        self.adv_weight = adv_weight
        self.patience = patience
        self.amp = amp
        self.seed = seed

    # ------------------------------------------------------------------ plumbing
    def setup(self, train: Split) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """Seed, build the network for ``train``'s shape; return (separator, discriminator) optimizers."""
        seed_and_threads(self.seed, self.context.device, self.context.n_threads)
        check_divisible(train.signal_shape, len(self.channels))
        config = {
            "dims": 1 if train.modality == "1d" else 2, "n_sources": self.n_sources,
            "channels": list(self.channels), "kernel_size": self.kernel_size,
            "disc_channels": self.disc_channels,
        }
        self._install(AdversarialICANetwork(config))
        separator = torch.optim.RMSprop(self.network_.separator_parameters(), lr=self.lr)
        discriminator = torch.optim.RMSprop(self.network_.discriminator.parameters(), lr=self.disc_lr)
        return separator, discriminator

    def training_step(self, x: torch.Tensor, separator: torch.optim.Optimizer,
                      discriminator: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``disc_steps`` discriminator updates, then one separator update, on one batch.

        ``x`` is ``(B, 1, *shape)``. Each update is left out when its loss or
        gradient is not finite (:func:`methods.nn.steps.guarded_update`).

        Returns
        -------
        losses : dict of str to torch.Tensor
            Detached 0-dim losses (no host sync): ``discriminator`` (mean over
            its updates), ``recon`` (L1), ``adversarial``, ``total``.
        skipped : torch.Tensor
            0-dim bool: true when any of the step's updates was left out.
        """
        network = self.network_
        device = x.device.type
        with autocast(device, self.amp):
            logits, z = network(x)
        features = z.detach()
        disc_params = list(network.discriminator.parameters())
        disc_total = torch.zeros((), device=x.device)
        skipped = torch.zeros((), dtype=torch.bool, device=x.device)
        for _ in range(self.disc_steps):
            with autocast(device, self.amp):
                d_loss = discriminator_loss(network.discriminator, features)
            skipped = skipped | guarded_update(d_loss, discriminator, disc_params)
            disc_total = disc_total + d_loss.detach()
        for p in disc_params:
            p.requires_grad_(False)
        try:
            with autocast(device, self.amp):
                adversarial = separator_adversarial_loss(network.discriminator, z)
            recon = reconstruction_l1(logits, x)
            total = recon + self.adv_weight * adversarial
            skipped = skipped | guarded_update(total, separator, network.separator_parameters())
        finally:
            for p in disc_params:
                p.requires_grad_(True)
        losses = {
            "total": total.detach(), "recon": recon.detach(), "adversarial": adversarial.detach(),
            "discriminator": disc_total / max(self.disc_steps, 1),
        }
        return losses, skipped

    def fit(self, train: Split, valid: Split | None = None) -> AdversarialICA:
        separator, discriminator = self.setup(train)
        self._train(AdversarialStep(self, separator, discriminator), train,
                    **self._validation_args(valid, self._validation_loss, False))
        return self

    def _validation_loss(self, valid: Split) -> float:
        """The L1 reconstruction error on ``valid``."""

        def score(x: torch.Tensor) -> torch.Tensor:
            with autocast(x.device.type, self.amp):
                logits, _ = self.network_(x)
            return reconstruction_l1(logits, x)

        return self._mean_score(valid, score)

    # --------------------------------------------------------------- inference
    @torch.no_grad()
    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        network = self.network_.eval()

        def estimate(x: torch.Tensor) -> torch.Tensor:
            x = self._prepare(x)
            with autocast(x.device.type, self.amp):
                logits = network.masked_decode(network.encode(x))
            return torch.sigmoid(logits.float())[:, :, 0]

        batch = 128 if mixtures.ndim == 3 else 32
        return predict_in_batches(estimate, mixtures, self.context.device, batch_size=batch)

    def reconstruct(self, mixtures: np.ndarray) -> np.ndarray:
        """The full reconstruction (all maps active), shaped like ``mixtures``."""
        return reconstruct_full(self.network_, self._prepare, mixtures, self.context.device)


__all__ = [
    "AdversarialICA", "AdversarialICANetwork", "AdversarialStep", "IndependenceDiscriminator",
    "discriminator_loss", "independent_permutations", "reconstruction_l1", "separator_adversarial_loss", "shuffle_maps",
]
