"""Supervised U-Net separator: the mixture in, one sigmoid image per source out, trained with MSE.

The architecture follows the U-Net separators of MNIST + Fashion-MNIST sums (32x32, padded):
three encoder blocks and three decoder blocks with skip connections, each block two
3x3 convolution / batch-norm / ReLU layers; 2x2 max pooling down, 2x2 stride-2 transposed
convolutions up, skips concatenated; a bottleneck block in between; a 1x1 convolution to one
channel per source through a sigmoid. Widths double at each level: ``width``, ``2 width``,
``4 width`` and ``8 width`` at the bottleneck. ``width=40`` has 3,009,042 parameters with
two sources (the projects' 3-block model: 3.0 M).

It sees the true sources, so like the supervised autoencoder it is an upper reference, not a
blind method.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods.base import Split, modality_profiles, register
from methods.nn.batches import BatchSource, predict_in_batches
from methods.nn.device import autocast, seed_and_threads
from methods.nn.network_method import NetworkMethod
from methods.nn.networks import check_divisible
from methods.nn.steps import GradientStep

LEVELS = 3
PRIOR_ROWS = 10_000  # training targets whose mean sets the output bias
IMAGES_PAPER: dict[str, Any] = dict(width=40, epochs=69, batch_size=128, lr=1e-3)  # the seed: 3.0 M, 69 epochs
IMAGES_QUICK: dict[str, Any] = dict(width=16, epochs=12, batch_size=32, lr=2e-3)  # 482,466 parameters
IMAGES_TINY: dict[str, Any] = dict(width=8, epochs=6, batch_size=16, lr=5e-3)
TINY: dict[str, Any] = dict(width=4, epochs=1, batch_size=32, lr=1e-3)
QUICK: dict[str, Any] = dict(width=8, epochs=6, batch_size=64, lr=1e-3)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolution / batch norm / ReLU layers (no convolution bias before a batch norm)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A 3-level U-Net: ``(B, 1, H, W)`` -> source logits ``(B, out_channels, H, W)``.

    Parameters
    ----------
    config : dict
        ``width`` (channels of the first level), ``out_channels`` (one per source) and
        ``levels`` (3); ``H`` and ``W`` must be divisible by ``2 ** levels``.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = {"width": int(config["width"]), "out_channels": int(config["out_channels"]),
                       "levels": int(config.get("levels", LEVELS))}
        width, levels = self.config["width"], self.config["levels"]
        widths = [width * 2**level for level in range(levels + 1)]  # w, 2w, 4w | 8w (bottleneck)
        self.down = nn.ModuleList(_block(c_in, c_out) for c_in, c_out in zip([1, *widths[:-2]], widths[:-1], strict=True))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _block(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, stride=2) for c in reversed(widths[1:]))
        self.decode = nn.ModuleList(_block(c, c // 2) for c in reversed(widths[1:]))
        self.head = nn.Conv2d(width, self.config["out_channels"], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decode, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)


@register
class UNetSeparator(NetworkMethod):
    """Supervised U-Net separator trained with MSE on the true sources (upper reference, not blind).

    Training: Adam, MSE between the sigmoid outputs and the sources (one output per source of
    the training split), gradient-norm clipping, the epochs and checkpoints of the shared
    training loop; with ``keep_best`` the weights of the epoch with the lowest validation MSE.
    The output biases start at the logit of each source's mean training intensity (the
    images are mostly background), so training starts from the per-pixel prior instead of 0.5.

    Parameters
    ----------
    width : int
        Channels of the first level (then 2x, 4x, and 8x at the bottleneck).
    epochs, batch_size, lr, weight_decay, grad_clip : int, int, float, float, float
        Training (Adam; ``grad_clip`` 0: none).
    keep_best : bool
        Keep the epoch with the lowest validation MSE (when a validation split is given).
    patience : int or None
        Early stopping: stop after this many epochs without a validation improvement
        (``None``: train every epoch); implies ``keep_best`` and needs a validation split with
        the true sources (see :func:`methods.nn.loop.run_epochs`).
    amp : bool
        bf16 autocast on CUDA.
    compile_model : bool
        Wrap the network in ``torch.compile``.
    seed : int
        Weights and batch order.
    """

    name = "unet"
    neutral_params = {"patience": None}
    description = "Supervised U-Net (3 levels, skip connections), MSE on the true sources (upper reference, not blind)"
    supervised = True
    modalities = ("2d",)
    network_class = UNet
    param_constraints = {"width": ">=1"}
    profiles = {
        ("images", "paper"): IMAGES_PAPER, ("images", "quick"): IMAGES_QUICK, ("images", "tiny"): IMAGES_TINY,
        **modality_profiles(TINY, QUICK, ("2d",)),  # other 2-D suites (triangles: 64x64)
    }

    def __init__(
        self, width: int = 40, epochs: int = 69, batch_size: int = 128, lr: float = 1e-3,
        weight_decay: float = 0.0, grad_clip: float = 1.0, keep_best: bool = True,
        patience: int | None = None, amp: bool = True, compile_model: bool = False, seed: int = 0,
    ) -> None:
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.keep_best = keep_best
        self.patience = patience
        self.amp = amp
        self.compile_model = compile_model
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).contiguous(memory_format=torch.channels_last)

    def _arrays(self, split: Split) -> list[np.ndarray]:
        return [split.mixtures, split.targets]

    def _estimate(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device.type, self.amp):
            logits = self._forward(self._prepare(x))
        return torch.sigmoid(logits.float())

    def _step_losses(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"total": F.mse_loss(self._estimate(batch[0]), batch[1].float())}

    @torch.no_grad()
    def _validation_mse(self, valid: Split) -> float:
        self.network_.eval()
        total, count = 0.0, 0
        for x, y in BatchSource([valid.mixtures, valid.targets], self.context.device).epoch(256, None):
            total += float(F.mse_loss(self._estimate(x), y, reduction="sum"))
            count += y.numel()
        self.network_.train()
        return total / max(count, 1)

    @torch.no_grad()
    def _set_prior_bias(self, targets: np.ndarray) -> None:
        """Output biases = logit of each source's mean training intensity (clipped to [1e-3, 0.999])."""
        rows = np.asarray(targets[: min(len(targets), PRIOR_ROWS)], dtype=np.float64)
        means = np.clip(rows.mean(axis=tuple(i for i in range(rows.ndim) if i != 1)), 1e-3, 1 - 1e-3)
        self.network_.head.bias.copy_(torch.as_tensor([math.log(m / (1 - m)) for m in means]))

    def fit(self, train: Split, valid: Split | None = None) -> UNetSeparator:
        if train.targets is None:
            raise ValueError("unet needs the true sources (train.targets)")
        if train.modality != "2d":
            raise ValueError(f"unet separates images (n, H, W), got mixtures of shape {train.mixtures.shape}")
        check_divisible(train.signal_shape, LEVELS)
        seed_and_threads(self.seed, self.context.device, self.context.n_threads)
        self._install(UNet({"width": self.width, "out_channels": train.targets.shape[1], "levels": LEVELS}),
                      compile_model=self.compile_model)
        self._set_prior_bias(train.targets)
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True)
        self._train(GradientStep(self.network_, optimizer, self._step_losses, self.grad_clip or None), train,
                    **self._validation_args(valid, self._validation_mse, self.keep_best, needs_targets=True))
        return self

    # --------------------------------------------------------------- separation
    @torch.no_grad()
    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        self.network_.eval()
        return predict_in_batches(self._estimate, mixtures, self.context.device, batch_size=256)


__all__ = ["UNet", "UNetSeparator"]
