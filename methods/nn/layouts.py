"""Execution layouts: the same convolutions of a multi-encoder network, computed by other kernels.

The N encoders are grouped convolutions and the paper's decoder uses stride-1
transposed convolutions. Which kernels run them fastest depends on the device
(cuDNN's grouped kernels, for one, are suspected slow), so these layers can
compute the very same function from the very same parameters in other ways:
:data:`ENCODER_LAYOUTS` and :data:`DECODER_LAYOUTS`, chosen per run
(``--layout``, :class:`methods.base.RunContext`) and measured by
``python -m benchmark.tools.speed --layouts all``. The state dict never changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_LAYOUTS = ("grouped", "split", "dense")
"""How the encoders' grouped convolutions run: ``"grouped"``, one convolution with ``groups=N``;
``"split"``, N convolutions on the channel blocks of the input, concatenated; ``"dense"``, one
ungrouped convolution with the block-diagonal weight (N times the FLOPs, dense kernels)."""
DECODER_LAYOUTS = ("native", "conv")
"""How the decoder's stride-1 transposed convolutions run: ``"native"``, as transposed
convolutions; ``"conv"``, as plain convolutions with the kernel swapped and flipped."""


def block_diagonal(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The ungrouped convolution weight equal to a grouped one: its blocks on the diagonal.

    ``weight`` is ``(groups * c_out, c_in, *kernel)``; the result is
    ``(groups * c_out, groups * c_in, *kernel)``, zero off the diagonal blocks,
    and differentiable in ``weight``.
    """
    c_out, c_in, *kernel = weight.shape
    blocks = weight.view(groups, c_out // groups, 1, c_in, *kernel)
    eye = torch.eye(groups, dtype=weight.dtype, device=weight.device)
    dense = blocks * eye.view(groups, 1, groups, 1, *([1] * len(kernel)))
    return dense.reshape(c_out, groups * c_in, *kernel)


def parse_layout(text: str | None) -> tuple[str, str]:
    """``"encoder/decoder"`` (decoder optional; ``None``: the default) -> ``(encoder, decoder)`` layout.

    Raises
    ------
    ValueError
        For a layout not in :data:`ENCODER_LAYOUTS` / :data:`DECODER_LAYOUTS`.
    """
    if text is None:
        return "grouped", "native"
    encoder, _, decoder = text.strip().partition("/")
    decoder = decoder or "native"
    if encoder not in ENCODER_LAYOUTS or decoder not in DECODER_LAYOUTS:
        raise ValueError(f"unknown layout {text!r}: give encoder/decoder with the encoder one of "
                         f"{', '.join(ENCODER_LAYOUTS)} and the decoder one of {', '.join(DECODER_LAYOUTS)}")
    return encoder, decoder


class LayoutConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same state dict) whose grouped form can run another way.

    ``layout`` is one of :data:`ENCODER_LAYOUTS`; an ungrouped convolution always
    runs as one.
    """

    layout = "grouped"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1 or self.layout == "grouped":
            return super().forward(x)
        if self.layout == "dense":
            weight = block_diagonal(self.weight, self.groups)
            return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)
        parts = zip(x.chunk(self.groups, 1), self.weight.chunk(self.groups, 0), self.bias.chunk(self.groups, 0),
                    strict=True)
        return torch.cat([F.conv2d(xi, wi, bi, self.stride, self.padding, self.dilation) for xi, wi, bi in parts], 1)


class LayoutConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` of stride 1 that can run as the equal plain convolution.

    ``layout`` is one of :data:`DECODER_LAYOUTS`: with ``"conv"`` it computes
    ``conv2d(x, flip(swap(W)), padding=k - 1 - p)``, the same function.
    """

    layout = "native"

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.layout == "native" or output_size is not None:
            return super().forward(x, output_size)
        padding = tuple(k - 1 - p for k, p in zip(self.kernel_size, self.padding, strict=True))
        weight = self.weight.transpose(0, 1).flip(-2, -1)
        return F.conv2d(x, weight, self.bias, 1, padding)


__all__ = [
    "DECODER_LAYOUTS", "ENCODER_LAYOUTS", "LayoutConv2d", "LayoutConvTranspose2d", "block_diagonal", "parse_layout",
]
