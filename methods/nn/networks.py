"""Convolutional (multi-)encoder / single-decoder networks for 1-D and 2-D signals.

The N encoders of a multi-encoder autoencoder are built as *grouped*
convolutions: one convolution with ``groups=N`` is exactly N independent
convolutions whose outputs sit side by side along the channel axis, so the
concatenated encoding ``Z = E_0(x) (+) ... (+) E_{N-1}(x)`` (paper Eq. 10) comes
out of one kernel call with no Python loop over encoders. Batch norm is
per-channel, so one ``BatchNorm`` over ``N*c`` channels equals N separate ones.

How the grouped convolutions and the decoder's stride-1 transposed convolutions
are *computed* is an execution choice, not part of the model
(:mod:`methods.nn.layouts`, set with :meth:`MultiEncoderAutoencoder.set_layout`).

The plain convolutional encoder and decoder stacks of VAE-BSS and
adversarial ICA (:class:`ConvEncoderBody`, :class:`ConvDecoderBody`,
:func:`check_divisible`) live here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from methods.nn.layouts import (
    DECODER_LAYOUTS,
    ENCODER_LAYOUTS,
    LayoutConv2d,
    LayoutConvTranspose2d,
)


def _layers(dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    """Plain torch ``(Conv, BatchNorm, MaxPool)`` classes for 1-D or 2-D signals."""
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d
    raise ValueError(f"dims must be 1 or 2, got {dims}")


class Layers:
    """Layer factory for 1-D or 2-D signals.

    1-D signals run as images of height 1 (kernels ``(1, k)``): oneDNN and cuDNN
    have faster channels-last 2-D convolutions than 1-D ones (measured 1.5-1.8x
    on a 2-core CPU), and the results are identical.
    """

    def __init__(self, dims: int) -> None:
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {dims}")
        self.dims = dims

    def _size(self, k: int) -> int | tuple[int, int]:
        return k if self.dims == 2 else (1, k)

    def conv(self, c_in: int, c_out: int, k: int, groups: int = 1, cls: type[nn.Conv2d] = nn.Conv2d) -> nn.Conv2d:
        padding = k // 2 if self.dims == 2 else (0, k // 2)
        return cls(c_in, c_out, self._size(k), padding=padding, groups=groups)

    def conv_transpose(self, c_in: int, c_out: int, k: int) -> LayoutConvTranspose2d:
        """A stride-1 transposed convolution: the same function family as :meth:`conv`, but
        PyTorch initialises it from ``c_out`` (its weight's second axis), not ``c_in``."""
        padding = k // 2 if self.dims == 2 else (0, k // 2)
        return LayoutConvTranspose2d(c_in, c_out, self._size(k), padding=padding)

    def batch_norm(self, channels: int, momentum: float = 0.1) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, momentum=momentum)

    def pool(self) -> nn.MaxPool2d:
        return nn.MaxPool2d(self._size(2))

    def upsample(self) -> nn.Upsample:
        return nn.Upsample(scale_factor=2 if self.dims == 2 else (1, 2), mode="nearest")


def to_image(x: torch.Tensor, dims: int) -> torch.Tensor:
    """``(B, C, L)`` -> ``(B, C, 1, L)`` channels-last for 1-D; images pass through."""
    if dims == 1:
        x = x.unsqueeze(2)
    return x.contiguous(memory_format=torch.channels_last)


def from_image(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Inverse of :func:`to_image` (drops the unit height of 1-D signals)."""
    return x.squeeze(2) if dims == 1 else x


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
    decoder_conv : str
        Convolution of the decoder's upsampling blocks: ``"conv"`` or ``"transposed"`` (stride 1,
        as in the authors' model code). Both compute the same family of functions; they differ
        in PyTorch's initial weight scale (fan-in of the output width instead of the input
        width: up to sqrt(2) larger where a block halves the width).
    batch_norm_momentum : float
        Momentum of every BatchNorm (PyTorch convention: the weight of the
        newest batch in the running statistics). The authors' model code uses
        0.8; PyTorch's default is 0.1.
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
    batch_norm_momentum: float = 0.1
    decoder_conv: str = "conv"

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
        if self.decoder_conv not in ("conv", "transposed"):
            raise ValueError(f"decoder_conv must be conv or transposed: {self.decoder_conv}")

    def decoder_widths(self) -> tuple[int, ...]:
        """Output channels of the decoder's upsampling blocks, deep to shallow.

        The paper's decoder (Figure 6, and the authors' model code) walks the
        list ``[C0, C0, C1, ..., C_last]`` backwards: after the 1x1 input
        convolution to ``C_last`` channels, block ``i`` maps the width of level
        ``L-i`` to that of level ``L-i-1``, and the last block repeats the
        shallowest width (144->96, 96->48, 48->24, 24->24 for the triangles).
        """
        return tuple(reversed((self.channels[0], *self.channels[:-1])))

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
        make = Layers(config.dims)
        self.dims = config.dims
        n, k = config.n_encoders, config.kernel_size
        layers: list[nn.Module] = []
        previous = config.in_channels
        for level, width in enumerate(config.channels):
            # The first convolution reads the shared input: an ungrouped conv to
            # N*c channels is N independent encoders of the same input.
            groups = 1 if level == 0 else n
            layers += [
                make.conv(previous, width, k, groups=groups, cls=LayoutConv2d),
                nn.ReLU(inplace=True),
                make.batch_norm(width, config.batch_norm_momentum),
                make.conv(width, width, k, groups=n, cls=LayoutConv2d),
                nn.ReLU(inplace=True),
                make.pool(),
                make.batch_norm(width, config.batch_norm_momentum),
            ]
            previous = width
        self.body = nn.Sequential(*layers)
        self.encoding = make.conv(previous, config.hidden, 1, groups=n, cls=LayoutConv2d)
        self.activation = nn.ReLU() if config.encoding_activation == "relu" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(to_image(x, self.dims))
        return from_image(self.activation(self.encoding(h)), self.dims)


class Decoder(nn.Module):
    """Single decoder: 1x1 input conv, then upsample -> conv -> ReLU -> norm per level."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        make = Layers(config.dims)
        self.dims = config.dims
        n, k = config.n_encoders, config.kernel_size
        widths = list(reversed(config.channels))

        def norm(width: int) -> nn.Module:
            if config.decoder_norm == "group":
                return nn.GroupNorm(n, width)
            return make.batch_norm(width, config.batch_norm_momentum)

        self.input = make.conv(config.hidden, widths[0], 1)
        self.input_norm = norm(widths[0])
        self.upsample = make.upsample()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        previous = widths[0]
        block_conv = make.conv_transpose if config.decoder_conv == "transposed" else make.conv
        for width in config.decoder_widths():
            self.convs.append(block_conv(previous, width, k))
            self.norms.append(norm(width))
            previous = width
        self.output = weight_norm(make.conv(previous, config.out_channels, 1))

    def mixing_weights(self) -> list[torch.Tensor]:
        """Weights the sparse mixing loss acts on: every layer but the output, each in the
        ``(C_out, C_in, *kernel)`` layout (a transposed convolution's weight is swapped)."""
        blocks = [c.weight.transpose(0, 1) if isinstance(c, nn.ConvTranspose2d) else c.weight
                  for c in self.convs]
        return [self.input.weight, *blocks]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.input_norm(torch.relu(self.input(to_image(z, self.dims))))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(torch.relu(conv(self.upsample(h))))
        return from_image(self.output(h), self.dims)


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

    def set_layout(self, encoder: str = "grouped", decoder: str = "native") -> MultiEncoderAutoencoder:
        """Choose how the grouped and the transposed convolutions run (same parameters, same function).

        Parameters
        ----------
        encoder : str
            One of :data:`ENCODER_LAYOUTS`.
        decoder : str
            One of :data:`DECODER_LAYOUTS`.

        Returns
        -------
        MultiEncoderAutoencoder
            ``self``.
        """
        if encoder not in ENCODER_LAYOUTS:
            raise ValueError(f"encoder layout must be one of {', '.join(ENCODER_LAYOUTS)}: {encoder!r}")
        if decoder not in DECODER_LAYOUTS:
            raise ValueError(f"decoder layout must be one of {', '.join(DECODER_LAYOUTS)}: {decoder!r}")
        for module in self.modules():
            if isinstance(module, LayoutConv2d):
                module.layout = encoder
            elif isinstance(module, LayoutConvTranspose2d):
                module.layout = decoder
        return self

    def layout(self) -> tuple[str, str]:
        """The ``(encoder, decoder)`` layout the network runs with (see :meth:`set_layout`)."""
        encoder = next(m.layout for m in self.modules() if isinstance(m, LayoutConv2d))
        decoders = [m.layout for m in self.modules() if isinstance(m, LayoutConvTranspose2d)]
        return encoder, decoders[0] if decoders else "native"

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


# ---------------------------------------- plain conv stacks (VAE-BSS, adversarial ICA)
class ConvEncoderBody(nn.Module):
    """Per level: conv -> ReLU -> batch norm -> max-pool(2); ``len(channels)`` levels.

    Works in the image layout of this module (1-D signals as height-1
    images, ``(B, C, 1, L)``; see :func:`to_image`).
    """

    def __init__(self, dims: int, in_channels: int, channels: Sequence[int], kernel_size: int) -> None:
        super().__init__()
        make = Layers(dims)
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [
                make.conv(previous, width, kernel_size), nn.ReLU(inplace=True),
                make.batch_norm(width), make.pool(),
            ]
            previous = width
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ConvDecoderBody(nn.Module):
    """Per level (deep to shallow): upsample x2 -> conv -> ReLU -> batch norm; 1x1 output conv.

    The last (full-resolution) level has no batch norm: the 1x1 output conv
    follows directly, and a norm there is the costliest one on a CPU.

    Takes ``channels[-1]`` channels at the coarse resolution and returns
    ``out_channels`` logits at the input resolution (image layout, as
    :class:`ConvEncoderBody`).
    """

    def __init__(self, dims: int, channels: Sequence[int], kernel_size: int, out_channels: int = 1) -> None:
        super().__init__()
        make = Layers(dims)
        layers: list[nn.Module] = []
        previous = channels[-1]
        for level, width in enumerate(reversed(channels)):
            layers += [make.upsample(), make.conv(previous, width, kernel_size), nn.ReLU(inplace=True)]
            if level < len(channels) - 1:  # no norm at full resolution (CPU cost)
                layers.append(make.batch_norm(width))
            previous = width
        layers.append(make.conv(previous, out_channels, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.body(h)


def check_divisible(signal_shape: Sequence[int], levels: int) -> tuple[int, ...]:
    """Coarse shape after ``levels`` poolings; ``ValueError`` if the sizes do not divide."""
    factor = 2**levels
    if any(size % factor for size in signal_shape):
        raise ValueError(f"input size {tuple(signal_shape)} must be divisible by {factor} (2 ** levels)")
    return tuple(size // factor for size in signal_shape)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
