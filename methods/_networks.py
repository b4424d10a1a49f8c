"""Convolutional (multi-)encoder / single-decoder networks for 1-D and 2-D signals.

The N encoders of a multi-encoder autoencoder are built as *grouped*
convolutions: one convolution with ``groups=N`` is exactly N independent
convolutions whose outputs sit side by side along the channel axis, so the
concatenated encoding ``Z = E_0(x) (+) ... (+) E_{N-1}(x)`` (paper Eq. 10) comes
out of one kernel call with no Python loop over encoders. Batch norm is
per-channel, so one ``BatchNorm`` over ``N*c`` channels equals N separate ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _layers(dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d
    raise ValueError(f"dims must be 1 or 2, got {dims}")


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of a (multi-)encoder autoencoder.

    Parameters
    ----------
    dims : int
        1 for signals ``(B, C, L)``, 2 for images ``(B, C, H, W)``.
    n_encoders : int
        Number of encoders N (1 gives a plain autoencoder).
    channels : sequence of int
        Total channels per level, shallow to deep (paper Figure 6, "decoder
        channels"). Each encoder gets ``channels[i] // n_encoders`` of them; the
        decoder walks the list in reverse. One pooling per level, so the input
        length must be divisible by ``2 ** len(channels)``.
    hidden : int
        Channels of the concatenated encoding (``hidden // n_encoders`` each).
    kernel_size : int
        Odd convolution kernel size (7 in the paper).
    in_channels, out_channels : int
        Input channels, and output channels of the decoder (one per source for
        the supervised autoencoder).
    encoding_activation : str
        ``"linear"`` (MEAE) or ``"relu"`` (supervised AE).
    decoder_norm : str
        ``"group"`` (GroupNorm with N groups, MEAE) or ``"batch"``.
    """

    dims: int = 2
    n_encoders: int = 3
    channels: tuple[int, ...] = (24, 48, 96, 144)
    hidden: int = 96
    kernel_size: int = 7
    in_channels: int = 1
    out_channels: int = 1
    encoding_activation: str = "linear"
    decoder_norm: str = "group"

    def __post_init__(self) -> None:
        n = self.n_encoders
        bad = [c for c in (*self.channels, self.hidden) if c % n]
        if bad:
            raise ValueError(f"channels and hidden must be divisible by n_encoders={n}: {bad}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.encoding_activation not in ("linear", "relu"):
            raise ValueError(f"encoding_activation must be linear or relu: {self.encoding_activation}")
        if self.decoder_norm not in ("group", "batch"):
            raise ValueError(f"decoder_norm must be group or batch: {self.decoder_norm}")

    @property
    def downsampling(self) -> int:
        """Total downsampling factor from input to encoding."""
        return 2 ** len(self.channels)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> NetworkConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "channels": tuple(data["channels"])})


class MultiEncoder(nn.Module):
    """N parallel encoders as grouped convolutions; returns the concatenated encoding."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        conv, batch_norm, max_pool = _layers(config.dims)
        n, k = config.n_encoders, config.kernel_size
        layers: list[nn.Module] = []
        previous = config.in_channels
        for level, width in enumerate(config.channels):
            # The first convolution reads the shared input: an ungrouped conv to
            # N*c channels is N independent encoders of the same input.
            groups = 1 if level == 0 else n
            layers += [
                conv(previous, width, k, padding=k // 2, groups=groups),
                nn.ReLU(inplace=True),
                batch_norm(width),
                conv(width, width, k, padding=k // 2, groups=n),
                nn.ReLU(inplace=True),
                max_pool(2),
                batch_norm(width),
            ]
            previous = width
        self.body = nn.Sequential(*layers)
        self.encoding = conv(previous, config.hidden, 1, groups=n)
        self.activation = nn.ReLU() if config.encoding_activation == "relu" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.encoding(self.body(x)))


class Decoder(nn.Module):
    """Single decoder: 1x1 input conv, then upsample -> conv -> ReLU -> norm per level."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        conv, batch_norm, _ = _layers(config.dims)
        n, k = config.n_encoders, config.kernel_size
        widths = list(reversed(config.channels))

        def norm(width: int) -> nn.Module:
            if config.decoder_norm == "group":
                return nn.GroupNorm(n, width)
            return batch_norm(width)

        self.input = conv(config.hidden, widths[0], 1)
        self.input_norm = norm(widths[0])
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        previous = widths[0]
        for width in widths:
            self.convs.append(conv(previous, width, k, padding=k // 2))
            self.norms.append(norm(width))
            previous = width
        self.output = weight_norm(conv(previous, config.out_channels, 1))

    def mixing_weights(self) -> list[torch.Tensor]:
        """Weights the sparse mixing loss acts on: every layer but the output."""
        return [self.input.weight, *(c.weight for c in self.convs)]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.input_norm(torch.relu(self.input(z)))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(torch.relu(conv(self.upsample(h))))
        return self.output(h)


class MultiEncoderAutoencoder(nn.Module):
    """Multi-encoder single-decoder autoencoder (paper section 3.2, Figure 6).

    ``forward`` returns reconstruction *logits* and the concatenated encoding.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = MultiEncoder(config)
        self.decoder = Decoder(config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z

    def encoding_shape(self, signal_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape ``(hidden, *spatial)`` of the encoding of one input."""
        factor = self.config.downsampling
        for size in signal_shape:
            if size % factor:
                raise ValueError(
                    f"input size {tuple(signal_shape)} must be divisible by {factor} "
                    f"(2 ** number of levels)"
                )
        return (self.config.hidden, *(s // factor for s in signal_shape))

    def masked_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode each encoder's encoding alone, the others zeroed (Eq. 17-18).

        Parameters
        ----------
        z : torch.Tensor
            Concatenated encoding ``(B, hidden, *spatial)``.

        Returns
        -------
        torch.Tensor
            Logits ``(B, N, out_channels, *spatial_out)``; all N masked copies go
            through the decoder as one batch.
        """
        n = self.config.n_encoders
        batch = z.shape[0]
        block = torch.arange(self.config.hidden, device=z.device) // (self.config.hidden // n)
        mask = (block[None, :] == torch.arange(n, device=z.device)[:, None]).to(z.dtype)
        mask = mask.view(n, 1, self.config.hidden, *([1] * (z.dim() - 2)))
        masked = (z.unsqueeze(0) * mask).flatten(0, 1)  # (N*B, hidden, ...)
        out = self.decoder(masked)
        out = out.view(n, batch, *out.shape[1:])
        return out.transpose(0, 1)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
