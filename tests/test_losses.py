"""Tests of the MEAE training losses (methods/nn/losses.py, paper Eq. 9 and 11-15)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from methods.nn.losses import (
    block_means,
    block_weighting,
    encoding_loss,
    mixing_loss,
    reconstruction_loss,
    zero_reconstruction_loss,
)
from methods.nn.networks import Decoder, MultiEncoderAutoencoder, NetworkConfig


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _bce(p: float, t: float) -> float:
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


# ------------------------------------------------------------------ reconstruction (BCE)


def test_reconstruction_loss_is_hand_computed_bce():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    target = torch.tensor([[1.0, 0.0], [0.25, 1.0]])
    probabilities = [1 / (1 + math.exp(-v)) for v in (0.0, 2.0, -1.0, 0.5)]
    expected = sum(
        _bce(p, t) for p, t in zip(probabilities, (1.0, 0.0, 0.25, 1.0), strict=True)
    ) / 4
    assert float(reconstruction_loss(logits, target)) == pytest.approx(expected, rel=1e-6)
    # sigmoid(0) = 0.5 against 1 -> log 2 exactly
    assert float(reconstruction_loss(torch.zeros(3), torch.ones(3))) == pytest.approx(math.log(2), rel=1e-6)


def test_reconstruction_loss_is_smaller_for_better_predictions():
    target = torch.tensor([1.0, 0.0, 1.0])
    good = reconstruction_loss(torch.tensor([5.0, -5.0, 5.0]), target)
    bad = reconstruction_loss(torch.tensor([-5.0, 5.0, -5.0]), target)
    assert float(good) < 0.01 < 4 < float(bad)


# ------------------------------------------------------------------------- encoding (Eq. 9)


def test_encoding_loss_matches_eq9_with_explicit_loop():
    torch.manual_seed(0)
    n_encoders, per_encoder, spatial = 3, 2, (4, 5)
    batch = 4
    z = torch.randn(batch, n_encoders * per_encoder, *spatial) * 3.0
    h = per_encoder * spatial[0] * spatial[1]
    per_sample = []
    for b in range(batch):
        total = 0.0
        for n in range(n_encoders):
            z_n = z[b, n * per_encoder : (n + 1) * per_encoder]
            total += float((z_n**2).sum())
        per_sample.append(total / (n_encoders * h))
    expected = sum(per_sample) / batch
    assert float(encoding_loss(z)) == pytest.approx(expected, rel=1e-5)


def test_encoding_loss_zero_only_for_zero_encoding():
    assert float(encoding_loss(torch.zeros(2, 6, 3))) == 0.0
    assert float(encoding_loss(torch.full((2, 6, 3), 2.0))) == pytest.approx(4.0)


# ---------------------------------------------------------------- block means (Eq. 11, 13)


def _explicit_block_means(weight: torch.Tensor, n: int) -> torch.Tensor:
    c_out, c_in = weight.shape[:2]
    bo, bi = c_out // n, c_in // n
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):  # input-channel block
        for j in range(n):  # output-channel block
            block = weight[j * bo : (j + 1) * bo, i * bi : (i + 1) * bi]
            out[i, j] = float(block.abs().double().mean())
    return out


def test_block_means_hand_built_weight_indexing():
    # C_out=4, C_in=6, kernel 2, N=2 -> blocks of 2 out x 3 in x 2 taps = 12 elements.
    weight = torch.zeros(4, 6, 2)
    weight[0:2, 0:3] = 1.0  # in block 0 -> out block 0
    weight[0:2, 3:6] = -2.0  # in block 1 -> out block 0
    weight[2:4, 0:3] = 3.0  # in block 0 -> out block 1
    weight[2:4, 3:6] = 4.0  # in block 1 -> out block 1
    weight[0, 3, 0] = 10.0  # one element of B[1, 0] changed: |10| instead of |-2|
    means = block_means(weight, 2)
    expected = torch.tensor([[1.0, 3.0], [2.0 + 8.0 / 12.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(means.double(), expected)
    torch.testing.assert_close(means.double(), _explicit_block_means(weight, 2))


@pytest.mark.parametrize("shape,n", [((6, 9, 3), 3), ((8, 4, 3, 3), 2), ((12, 12, 1), 4)])
def test_block_means_random_weights_match_loops(shape, n):
    torch.manual_seed(1)
    weight = torch.randn(*shape)
    torch.testing.assert_close(block_means(weight, n).double(), _explicit_block_means(weight, n), rtol=1e-5, atol=1e-6)


def test_block_means_channels_last_weight():
    torch.manual_seed(2)
    weight = torch.randn(6, 6, 3, 3)
    cl = weight.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(block_means(cl, 3), block_means(weight, 3))


# ---------------------------------------------------------------- weighting (Eq. 13, 14)


def test_uniform_weighting_is_off_diagonal_ones():
    for n in (1, 2, 3, 5):
        expected = torch.ones(n, n) - torch.eye(n)
        torch.testing.assert_close(block_weighting(n, "uniform"), expected)


def test_position_weighting_n3_by_hand():
    # rows i (input block), columns j (output block); 1/(N-i) above, 1/i below, 0 diagonal
    expected = torch.tensor([
        [0.0, 1 / 3, 1 / 3],
        [1 / 1, 0.0, 1 / 2],
        [1 / 2, 1 / 2, 0.0],
    ])
    torch.testing.assert_close(block_weighting(3, "position"), expected)


def test_position_weighting_n4_by_hand():
    expected = torch.tensor([
        [0.0, 1 / 4, 1 / 4, 1 / 4],
        [1 / 1, 0.0, 1 / 3, 1 / 3],
        [1 / 2, 1 / 2, 0.0, 1 / 2],
        [1 / 3, 1 / 3, 1 / 3, 0.0],
    ])
    torch.testing.assert_close(block_weighting(4, "position"), expected)


def test_unknown_weighting_scheme_raises():
    with pytest.raises(ValueError, match="unknown mixing weighting"):
        block_weighting(3, "nope")
    with pytest.raises(ValueError):
        mixing_loss([torch.ones(3, 3, 1)], 3, "diagonal")


# ------------------------------------------------------------------- mixing loss (Eq. 12)


def _explicit_mixing(weights: list[torch.Tensor], n: int, factor) -> float:
    total = 0.0
    for weight in weights:
        c_out, c_in = weight.shape[:2]
        bo, bi = c_out // n, c_in // n
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                block = weight[j * bo : (j + 1) * bo, i * bi : (i + 1) * bi]
                total += factor(i, j) * float(block.abs().double().sum()) / block.numel()
    return total


def test_mixing_loss_uniform_matches_loop_over_blocks():
    torch.manual_seed(3)
    weights = [torch.randn(6, 9, 1), torch.randn(6, 6, 3, 3), torch.randn(12, 6, 5)]
    expected = _explicit_mixing(weights, 3, lambda i, j: 1.0)
    assert float(mixing_loss(weights, 3, "uniform")) == pytest.approx(expected, rel=1e-5)


def test_mixing_loss_position_matches_loop_over_blocks():
    torch.manual_seed(4)
    n = 4
    weights = [torch.randn(8, 8, 3), torch.randn(4, 8, 1)]

    def eq14(i: int, j: int) -> float:
        return 1.0 / (n - i) if j > i else 1.0 / i

    expected = _explicit_mixing(weights, n, eq14)
    assert float(mixing_loss(weights, n, "position")) == pytest.approx(expected, rel=1e-5)


def test_mixing_loss_banded_is_the_strip_selection():
    """Banded: row block i x column blocks i+1.. and row block i+1 x column blocks ..i, each
    strip's mean |w| (rows = input-channel blocks), i = 0..N-2, computed on the strips."""
    torch.manual_seed(5)
    n = 4
    weights = [torch.randn(8, 12, 3), torch.randn(4, 8, 1, 1)]
    expected = 0.0
    for weight in weights:
        bo, bi = weight.shape[0] // n, weight.shape[1] // n
        for i in range(n - 1):
            upper = weight[(i + 1) * bo :, i * bi : (i + 1) * bi]  # in block i -> out blocks i+1..
            lower = weight[: (i + 1) * bo, (i + 1) * bi : (i + 2) * bi]  # in block i+1 -> out ..i
            expected += float(upper.abs().double().mean()) + float(lower.abs().double().mean())
    assert float(mixing_loss(weights, n, "banded")) == pytest.approx(expected, rel=1e-5)
    # It differs from Eq. 14 taken literally only above the diagonal.
    banded, position = block_weighting(n, "banded"), block_weighting(n, "position")
    torch.testing.assert_close(torch.tril(banded), torch.tril(position))
    assert not torch.allclose(torch.triu(banded), torch.triu(position))


def test_mixing_loss_zero_when_off_diagonal_blocks_are_zero():
    torch.manual_seed(5)
    config = NetworkConfig(dims=1, n_encoders=3, channels=(6, 12), hidden=6, kernel_size=3)
    decoder = Decoder(config)
    with torch.no_grad():
        for weight in decoder.mixing_weights():
            c_out, c_in = weight.shape[:2]
            bo, bi = c_out // 3, c_in // 3
            mask = torch.zeros_like(weight)
            for b in range(3):
                mask[b * bo : (b + 1) * bo, b * bi : (b + 1) * bi] = 1.0
            weight.mul_(mask)
        for scheme in ("uniform", "position"):
            assert float(mixing_loss(decoder.mixing_weights(), 3, scheme)) == 0.0
        # and one non-zero off-diagonal entry makes it positive
        decoder.input.weight[0, 5, 0] = 1.0  # out block 0, in block 2
        assert float(mixing_loss(decoder.mixing_weights(), 3, "uniform")) > 0.0


def test_mixing_loss_has_gradient_only_on_off_diagonal_blocks():
    torch.manual_seed(6)
    weight = torch.randn(4, 4, 3, requires_grad=True)
    mixing_loss([weight], 2, "uniform").backward()
    grad = weight.grad
    assert torch.all(grad[0:2, 0:2] == 0) and torch.all(grad[2:4, 2:4] == 0)
    assert torch.all(grad[0:2, 2:4] != 0) and torch.all(grad[2:4, 0:2] != 0)


# ------------------------------------------------------------- zero reconstruction (Eq. 15)


@pytest.fixture()
def decoder_and_shape():
    torch.manual_seed(7)
    config = NetworkConfig(dims=2, n_encoders=2, channels=(4, 8), hidden=4, kernel_size=3)
    net = MultiEncoderAutoencoder(config)
    # non-trivial norm affine parameters so they matter in the forward pass
    with torch.no_grad():
        for module in net.decoder.modules():
            if isinstance(module, nn.GroupNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    net.train()
    return net.decoder, net.encoding_shape((8, 8))


def test_zero_reconstruction_equals_direct_bce(decoder_and_shape):
    decoder, shape = decoder_and_shape
    loss = zero_reconstruction_loss(decoder, shape).detach()
    with torch.no_grad():
        logits = decoder(torch.zeros(1, *shape))
    assert logits.shape == (1, 1, 8, 8)
    p = torch.sigmoid(logits.double())
    expected = float((-torch.log(1 - p)).mean())
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_zero_reconstruction_gradients_skip_norm_affine(decoder_and_shape):
    decoder, shape = decoder_and_shape
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    decoder.zero_grad(set_to_none=True)
    zero_reconstruction_loss(decoder, shape).backward()

    norms = [m for m in decoder.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 3
    for norm in norms:
        for param in (norm.weight, norm.bias):
            assert param.grad is None or torch.all(param.grad == 0)

    # the input conv multiplies an all-zero encoding: its weight can get no gradient,
    # but its bias, every other conv and the output layer do.
    assert decoder.input.weight.grad is None or torch.all(decoder.input.weight.grad == 0)
    assert decoder.input.bias.grad is not None and decoder.input.bias.grad.abs().sum() > 0
    for conv in decoder.convs:
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
        assert conv.bias.grad is not None and conv.bias.grad.abs().sum() > 0
    output_grads = [p.grad for name, p in decoder.output.named_parameters()]
    assert len(output_grads) == 3  # bias, weight_norm's g and v
    assert all(g is not None and g.abs().sum() > 0 for g in output_grads)

    after = decoder.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
    # the norm modules are still real parameters of the decoder (not replaced)
    assert all(isinstance(n.weight, nn.Parameter) for n in norms)


def test_norm_affine_gets_gradient_from_an_ordinary_pass(decoder_and_shape):
    """Control: the same decoder on a non-zero encoding does train the norm parameters."""
    decoder, shape = decoder_and_shape
    decoder.zero_grad(set_to_none=True)
    torch.manual_seed(8)
    logits = decoder(torch.randn(2, *shape))
    reconstruction_loss(logits, torch.rand_like(logits)).backward()
    norm = decoder.input_norm
    assert norm.weight.grad is not None and norm.weight.grad.abs().sum() > 0
    assert norm.bias.grad is not None and norm.bias.grad.abs().sum() > 0


def test_encoding_penalty_sum_per_encoder_is_each_encoders_mean_summed():
    z = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3) / 10
    by_hand = sum(float(z[:, 2 * n:2 * n + 2].pow(2).mean()) for n in range(3))
    assert float(encoding_loss(z, "sum_per_encoder", 3)) == pytest.approx(by_hand, rel=1e-6)
    assert float(encoding_loss(z, "sum_per_encoder", 3)) == pytest.approx(3 * float(encoding_loss(z)), rel=1e-6)
    with pytest.raises(ValueError, match="unknown encoding penalty"):
        encoding_loss(z, "max")
