"""Training losses of the multi-encoder autoencoder (paper Eq. 9, 11-16)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between sigmoid(logits) and targets in [0, 1], mean over elements."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


ENCODING_PENALTIES = ("mean", "sum_per_encoder")


def encoding_loss(z: torch.Tensor, penalty: str = "mean", n_encoders: int = 1) -> torch.Tensor:
    """L_z of Eq. 9 without lambda, averaged over the batch.

    Parameters
    ----------
    z : torch.Tensor
        The concatenation of the N encodings along axis 1, ``(B, hidden, *spatial)``.
    penalty : str
        ``"mean"``: Eq. 9's ``1/(N h) sum_n ||z_n||^2``, the mean of ``z**2``.
        ``"sum_per_encoder"``: the sum over encoders of each encoder's mean of ``z_n**2`` (the
        authors' code), N times the mean when the encodings have equal sizes.
    n_encoders : int
        N, for ``"sum_per_encoder"``.
    """
    squared = z.float().pow(2)
    if penalty == "mean":
        return squared.mean()
    if penalty == "sum_per_encoder":
        per_encoder = squared.unflatten(1, (n_encoders, -1)).transpose(0, 1).flatten(1).mean(dim=1)
        return per_encoder.sum()
    raise ValueError(f"unknown encoding penalty {penalty!r} ({' or '.join(ENCODING_PENALTIES)})")


@functools.lru_cache(maxsize=32)
def _cached_block_weighting(n_blocks: int, scheme: str, device: torch.device) -> torch.Tensor:
    # a normal tensor even when first asked for under inference mode, so training can reuse it
    with torch.inference_mode(False):
        return block_weighting(n_blocks, scheme, device)


def block_weighting(n_blocks: int, scheme: str, device: torch.device | None = None) -> torch.Tensor:
    """Per-block factor applied to the mean ``|weight|`` of each block ``B[i, j]``.

    ``i`` indexes input-channel blocks and ``j`` output-channel blocks, as in
    Eq. 11. ``"uniform"`` is Eq. 13: every off-diagonal block counts once.
    ``"position"`` is Eq. 14 taken literally: ``1/(N - i)`` above the diagonal
    (``j > i``) and ``1/i`` below it (``j < i``). ``"banded"`` is the selection the
    authors' MESA experiments used instead: for ``i = 0 .. N-2``, the mean ``|w|`` of the
    strip of row block ``i`` x column blocks ``i+1 ..`` plus that of row block ``i+1`` x
    column blocks ``.. i``. The blocks being equal in size, a strip's mean is the mean of its
    block means, so this is ``1/(N - 1 - i)`` above the diagonal and ``1/i`` below it. Rows
    are the input-channel blocks ``i``: the first axis of the weights of the authors'
    transposed convolutions, which make up their decoder (PyTorch stores those as
    ``(C_in, C_out, *kernel)``). Diagonal blocks are 0.
    """
    i = torch.arange(n_blocks, device=device, dtype=torch.float32)[:, None]
    j = torch.arange(n_blocks, device=device, dtype=torch.float32)[None, :]
    if scheme == "uniform":
        weights = torch.ones(n_blocks, n_blocks, device=device)
    elif scheme == "position":
        upper = 1.0 / (n_blocks - i).clamp(min=1.0)
        lower = 1.0 / i.clamp(min=1.0)
        weights = torch.where(j > i, upper, lower).expand(n_blocks, n_blocks)
    elif scheme == "banded":
        upper = 1.0 / (n_blocks - 1 - i).clamp(min=1.0)
        lower = 1.0 / i.clamp(min=1.0)
        weights = torch.where(j > i, upper, lower).expand(n_blocks, n_blocks)
    else:
        raise ValueError(f"unknown mixing weighting '{scheme}' (uniform, position or banded)")
    return weights * (i != j)


def block_means(weight: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """Mean absolute value of each ``(in block i, out block j)`` of a conv weight.

    ``weight`` has PyTorch's layout ``(C_out, C_in, *kernel)``. Returns
    ``(n_blocks, n_blocks)`` indexed ``[i, j]``. One reshape and one reduction:
    no loop over the N^2 blocks.
    """
    c_out, c_in = weight.shape[:2]
    blocks = weight.abs().reshape(n_blocks, c_out // n_blocks, n_blocks, c_in // n_blocks, -1)
    return blocks.mean(dim=(1, 3, 4)).transpose(0, 1)


def mixing_loss(weights: list[torch.Tensor], n_blocks: int, scheme: str = "uniform") -> torch.Tensor:
    """Sparse mixing loss L_mixing (Eq. 12) summed over decoder layers.

    Each off-diagonal block contributes the mean of its absolute weights (L1
    norm scaled by one over the block's element count, Eq. 13), times the
    block factor of :func:`block_weighting`.
    """
    factors = _cached_block_weighting(n_blocks, scheme, weights[0].device)
    total = weights[0].new_zeros((), dtype=torch.float32)
    for weight in weights:
        total = total + (block_means(weight.float(), n_blocks) * factors).sum()
    return total


def _norm_affine_names(module: nn.Module) -> list[str]:
    cached = module.__dict__.get("_bss_norm_affine_names")
    if cached is not None:
        return cached
    names = []
    for prefix, child in module.named_modules():
        if isinstance(child, (nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            for param_name, param in child.named_parameters(recurse=False):
                if param is not None:
                    names.append(f"{prefix}.{param_name}" if prefix else param_name)
    module.__dict__["_bss_norm_affine_names"] = names  # the module tree is fixed after construction
    return names


def zero_reconstruction_loss(decoder: nn.Module, encoding_shape: tuple[int, ...]) -> torch.Tensor:
    """L_zero recon. (Eq. 15): an all-zero encoding must decode to an all-zero output.

    The decoder sees one all-zero encoding (every sample would give the same
    output). Normalisation affine parameters enter this pass detached, so this
    loss sends no gradient to them. The biases and the weights of the layers
    after the first receive gradient; the first layer's weight multiplies the
    zero encoding and so receives exactly zero.
    """
    reference = next(decoder.parameters())
    zeros = torch.zeros((1, *encoding_shape), device=reference.device, dtype=reference.dtype)
    frozen = {name: getattr_path(decoder, name).detach() for name in _norm_affine_names(decoder)}
    logits = functional_call(decoder, frozen, (zeros,), strict=False)
    return F.binary_cross_entropy_with_logits(logits.float(), torch.zeros_like(logits, dtype=torch.float32))


def getattr_path(module: nn.Module, dotted: str) -> torch.Tensor:
    """``module.a.b.c`` from ``"a.b.c"``."""
    target = module
    for part in dotted.split("."):
        target = getattr(target, part)
    return target
