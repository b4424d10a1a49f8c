"""Tests of the multi-encoder network and the MEAE / supervised AE methods."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from methods.base import Split
from methods.meae import MEAE
from methods.nn.losses import (
    encoding_loss,
    mixing_loss,
    reconstruction_loss,
    zero_reconstruction_loss,
)
from methods.nn.networks import MultiEncoder, MultiEncoderAutoencoder, NetworkConfig
from methods.supervised_ae import SupervisedAE

SOURCES = ("a", "b")
TINY_2D = dict(n_encoders=3, channels=(3, 3), hidden=3, kernel_size=3, epochs=1, batch_size=16, seed=0)
TINY_1D = dict(n_encoders=2, channels=(2, 4), hidden=2, kernel_size=3, epochs=1, batch_size=16, seed=0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _images(n: int = 32, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size)).astype(np.float32)


def _signals(n: int = 32, length: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, length)).astype(np.float32)


# ------------------------------------------------------------------ grouped encoders


def _perturb_encoder(encoder: MultiEncoder, index: int, n: int) -> None:
    """Add noise to every parameter slice that belongs to encoder ``index``."""
    generator = torch.Generator().manual_seed(123 + index)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.modules.batchnorm._BatchNorm)):
                width = module.weight.shape[0] // n
                rows = slice(index * width, (index + 1) * width)
                for tensor in (module.weight, module.bias):
                    part = tensor[rows]
                    part.add_(torch.randn(part.shape, generator=generator))


@pytest.mark.parametrize("dims,shape", [(2, (16, 16)), (1, (32,))])
@pytest.mark.parametrize("train_mode", [False, True])
def test_grouped_encoders_are_independent(dims, shape, train_mode):
    torch.manual_seed(0)
    n, hidden = 2, 4
    config = NetworkConfig(dims=dims, n_encoders=n, channels=(4, 8), hidden=hidden, kernel_size=3)
    encoder = MultiEncoder(config).train(train_mode)
    x = torch.rand(3, 1, *shape)
    with torch.no_grad():
        before = encoder(x).clone()
    assert before.shape == (3, hidden, *(s // 4 for s in shape))
    per = hidden // n

    _perturb_encoder(encoder, 1, n)
    with torch.no_grad():
        after = encoder(x)
    torch.testing.assert_close(after[:, :per], before[:, :per], rtol=0, atol=0)
    assert (after[:, per:] - before[:, per:]).abs().max() > 1e-3

    _perturb_encoder(encoder, 0, n)
    with torch.no_grad():
        again = encoder(x)
    torch.testing.assert_close(again[:, per:], after[:, per:], rtol=0, atol=0)
    assert (again[:, :per] - after[:, :per]).abs().max() > 1e-3


def test_encoder_layers_are_grouped_after_the_first_conv():
    config = NetworkConfig(dims=2, n_encoders=2, channels=(4, 8), hidden=4, kernel_size=3)
    convs = [m for m in MultiEncoder(config).modules() if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 2, 2, 2]
    assert convs[-1].out_channels == 4 and convs[-1].kernel_size == (1, 1)


# ------------------------------------------------------------------------ masked decode


@pytest.mark.parametrize("dims,spatial", [(2, (2, 2)), (1, (4,))])
def test_masked_decode_equals_loop_over_encoders(dims, spatial):
    torch.manual_seed(1)
    n, hidden = 3, 6
    net = MultiEncoderAutoencoder(NetworkConfig(dims=dims, n_encoders=n, channels=(6, 6), hidden=hidden, kernel_size=3, out_channels=2)).eval()
    z = torch.randn(4, hidden, *spatial)
    with torch.no_grad():
        out = net.masked_decode(z)
        assert out.shape == (4, n, 2, *(s * 4 for s in spatial))
        per = hidden // n
        for k in range(n):
            masked = torch.zeros_like(z)
            masked[:, k * per : (k + 1) * per] = z[:, k * per : (k + 1) * per]
            torch.testing.assert_close(out[:, k], net.decoder(masked), rtol=1e-5, atol=1e-6)
        # the masked copies really differ from each other and from the full decode
        assert (out[:, 0] - out[:, 1]).abs().max() > 1e-4
        assert (out[:, 0] - net.decoder(z)).abs().max() > 1e-4


# ----------------------------------------------------------------------- MEAE fit/separate


@pytest.fixture(scope="module")
def fitted_2d() -> MEAE:
    return MEAE(**TINY_2D).fit(Split(_images(), SOURCES))


def _check_history(history: list[dict], method: MEAE) -> None:
    assert len(history) == method.epochs
    last = history[-1]
    for key in ("total", "recon", "mixing", "zero", "encoding"):
        assert math.isfinite(last[key]), key
    expected = (
        last["recon"] + method.lambda_mix * last["mixing"] + method.lambda_zero * last["zero"]
        + method.lambda_z * last["encoding"]
    )
    assert last["total"] == pytest.approx(expected, rel=1e-5)
    assert 0 < last["recon"] < 5 and last["mixing"] > 0 and last["zero"] > 0


def test_meae_fit_and_separate_2d(fitted_2d):
    _check_history(fitted_2d.history_, fitted_2d)
    assert fitted_2d.encoding_shape_ == (3, 4, 4)
    assert fitted_2d.n_parameters_ > 0
    out = fitted_2d.separate(_images(5, seed=1))
    assert out.shape == (5, 3, 16, 16)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
    assert fitted_2d.reconstruct(_images(2, seed=1)).shape == (2, 16, 16)
    weights = fitted_2d.diagnostics()
    assert sorted(weights) == ["decoder_weights_0", "decoder_weights_1", "decoder_weights_2"]
    assert weights["decoder_weights_0"].shape == (3, 3)


def test_meae_fit_and_separate_1d():
    method = MEAE(**TINY_1D).fit(Split(_signals(), SOURCES))
    _check_history(method.history_, method)
    out = method.separate(_signals(3, seed=2))
    assert out.shape == (3, 2, 64)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1


def test_meae_separate_is_masked_decoding(fitted_2d):
    x = _images(4, seed=3)
    out = fitted_2d.separate(x)
    net = fitted_2d.network_.eval()
    with torch.no_grad():
        z = net.encoder(torch.from_numpy(x)[:, None])
        per = net.config.hidden // net.config.n_encoders
        for k in range(net.config.n_encoders):
            masked = torch.zeros_like(z)
            masked[:, k * per : (k + 1) * per] = z[:, k * per : (k + 1) * per]
            expected = torch.sigmoid(net.decoder(masked))[:, 0].numpy()
            np.testing.assert_allclose(out[:, k], expected, rtol=1e-4, atol=1e-5)


def test_meae_losses_terms_and_norm_gradients(fitted_2d):
    method = fitted_2d
    network = method.network_.train()
    x = torch.from_numpy(_images(8, seed=4))[:, None]
    losses = method.losses(x)
    logits, z = network(x)
    torch.testing.assert_close(losses["recon"], reconstruction_loss(logits, x))
    torch.testing.assert_close(losses["encoding"], encoding_loss(z))
    torch.testing.assert_close(losses["mixing"], mixing_loss(network.decoder.mixing_weights(), 3, "uniform"))
    expected_total = (
        losses["recon"] + 0.5 * losses["mixing"] + 0.01 * losses["zero"] + 0.01 * losses["encoding"]
    )
    torch.testing.assert_close(losses["total"], expected_total)
    # the output layer is not part of the mixing loss
    assert len(network.decoder.mixing_weights()) == len(method.channels) + 1

    norms = [m for m in network.decoder.modules() if isinstance(m, nn.GroupNorm)]
    assert norms
    network.zero_grad(set_to_none=True)
    losses["zero"].backward(retain_graph=True)
    for norm in norms:
        for param in (norm.weight, norm.bias):
            assert param.grad is None or torch.all(param.grad == 0)
    # the zero term does train the decoder convolutions
    assert network.decoder.convs[0].weight.grad.abs().sum() > 0

    network.zero_grad(set_to_none=True)
    losses["recon"].backward()
    assert any(n.weight.grad is not None and n.weight.grad.abs().sum() > 0 for n in norms)

    network.zero_grad(set_to_none=True)
    zero_reconstruction_loss(network.decoder, method.encoding_shape_).backward()
    for norm in norms:
        assert norm.weight.grad is None or torch.all(norm.weight.grad == 0)
        assert norm.bias.grad is None or torch.all(norm.bias.grad == 0)
    network.zero_grad(set_to_none=True)
    network.eval()


def test_meae_fit_is_deterministic():
    data = Split(_images(), SOURCES)
    x = _images(4, seed=5)
    first = MEAE(**TINY_2D).fit(data).separate(x)
    second = MEAE(**TINY_2D).fit(data).separate(x)
    np.testing.assert_array_equal(first, second)
    other = MEAE(**{**TINY_2D, "seed": 1}).fit(data).separate(x)
    assert np.abs(other - first).max() > 1e-4


def test_meae_save_load_round_trip(fitted_2d, tmp_path):
    fitted_2d.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["method"] == "meae"
    assert config["params"]["n_encoders"] == 3 and config["params"]["seed"] == 0
    state = torch.load(tmp_path / "model" / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = MEAE.load(tmp_path / "model")
    x = _images(4, seed=6)
    np.testing.assert_array_equal(loaded.separate(x), fitted_2d.separate(x))
    assert loaded.encoding_shape_ == fitted_2d.encoding_shape_
    assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in loaded.get_params().items()} == {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in fitted_2d.get_params().items()
    }
    with pytest.raises(ValueError, match="not 'supervised_ae'"):
        SupervisedAE.load(tmp_path / "model")


def test_meae_keep_best_restores_best_validation_epoch():
    train = Split(_images(32, seed=7), SOURCES)
    valid = Split(_images(8, seed=8), SOURCES)
    method = MEAE(**{**TINY_2D, "epochs": 3, "keep_best": True, "lr": 5e-2}).fit(train, valid)
    scores = [h["valid"] for h in method.history_]
    assert len(scores) == 3 and all(math.isfinite(s) for s in scores)
    assert method._validation_score(valid) == pytest.approx(min(scores), rel=1e-5)


def test_meae_rejects_input_not_divisible_by_downsampling():
    with pytest.raises(ValueError, match="divisible"):
        MEAE(**TINY_2D).fit(Split(_images(8, size=10), SOURCES))


# ---------------------------------------------------------------------- supervised AE


def test_supervised_ae_fit_and_separate():
    rng = np.random.default_rng(9)
    targets = rng.random((32, 2, 16, 16)).astype(np.float32)
    mixtures = targets.mean(axis=1)
    method = SupervisedAE(channels=(2, 2), hidden=2, kernel_size=3, epochs=1, batch_size=16)
    method.fit(Split(mixtures, SOURCES, targets))
    assert math.isfinite(method.history_[-1]["total"])
    out = method.separate(mixtures[:5])
    assert out.shape == (5, 2, 16, 16) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_supervised_ae_needs_targets():
    mixtures = _images(8)
    with pytest.raises(ValueError, match="targets"):
        SupervisedAE(channels=(2, 2), hidden=2, kernel_size=3, epochs=1).fit(Split(mixtures, SOURCES))
    targets = np.stack([mixtures, mixtures], axis=1)
    with pytest.raises(ValueError, match="targets"):
        SupervisedAE(channels=(2, 2), hidden=2, kernel_size=3, epochs=1).fit(Split(mixtures, SOURCES, targets).blind())


@pytest.mark.parametrize("dims, spatial", [(2, (16, 16)), (1, (64,))])
def test_transposed_decoder_is_the_conv_decoder_with_flipped_swapped_kernels(dims, spatial):
    """A stride-1 transposed convolution equals a convolution with its kernel flipped and its
    in/out axes swapped: with copied weights both decoders compute the same output and the same
    sparse mixing loss; only PyTorch's initial scale differs."""
    kwargs = dict(dims=dims, n_encoders=3, channels=(6, 12), hidden=6, kernel_size=3)
    torch.manual_seed(0)
    transposed = MultiEncoderAutoencoder(NetworkConfig(**kwargs, decoder_conv="transposed")).eval()
    plain = MultiEncoderAutoencoder(NetworkConfig(**kwargs)).eval()
    assert sum(p.numel() for p in transposed.parameters()) == sum(p.numel() for p in plain.parameters())
    plain.load_state_dict({
        name: (value.transpose(0, 1).flip(-1, -2) if name.startswith("decoder.convs.") and name.endswith("weight")
               else value)
        for name, value in transposed.state_dict().items()
    })
    x = torch.rand(2, 1, *spatial)
    with torch.no_grad():
        torch.testing.assert_close(transposed(x)[0], plain(x)[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(transposed.decoder.mixing_weights(), plain.decoder.mixing_weights(), strict=True):
        assert a.shape == b.shape
    torch.testing.assert_close(mixing_loss(transposed.decoder.mixing_weights(), 3),
                               mixing_loss(plain.decoder.mixing_weights(), 3))


def test_meae_summed_encoding_penalty_is_n_times_the_mean(fitted_2d):
    import copy

    summed = copy.copy(fitted_2d)
    summed.encoding_penalty = "sum_per_encoder"
    x = torch.from_numpy(_images(8, seed=4))[:, None]
    fitted_2d.network_.eval()
    with torch.no_grad():
        assert float(summed.losses(x)["encoding"]) == pytest.approx(3 * float(fitted_2d.losses(x)["encoding"]), rel=1e-5)
    # the project's defaults are neutral: committed cell keys do not move
    assert MEAE.neutral_params["encoding_penalty"] == MEAE().encoding_penalty == "mean"
    assert MEAE.neutral_params["decoder_conv"] == MEAE().decoder_conv == "conv"
