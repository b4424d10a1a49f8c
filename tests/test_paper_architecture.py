"""The paper profiles build the paper's exact networks (PAPER_NOTES, "Exact layer shapes")."""

from __future__ import annotations

import pytest
import torch

from methods.meae import MEAE, MESA_PAPER, TRIANGLES_PAPER
from methods.nn.networks import MultiEncoderAutoencoder, NetworkConfig, count_parameters
from methods.supervised_ae import SupervisedAE


def _meae_network(profile: dict, dims: int) -> MultiEncoderAutoencoder:
    params = {**MEAE.default_params(), **profile}
    config = NetworkConfig(
        dims=dims, n_encoders=params["n_encoders"], channels=tuple(params["channels"]), hidden=params["hidden"],
        kernel_size=params["kernel_size"], batch_norm_momentum=params["batch_norm_momentum"],
    )
    return MultiEncoderAutoencoder(config)


def _decoder_blocks(network: MultiEncoderAutoencoder) -> list[tuple[int, int]]:
    return [(conv.in_channels, conv.out_channels) for conv in network.decoder.convs]


def test_triangles_paper_meae_has_the_papers_parameter_count_and_decoder():
    network = _meae_network(MEAE.profile_params("triangles", "paper"), dims=2)
    assert count_parameters(network) == 1_866_578
    assert count_parameters(network.encoder) == 863_880
    assert (network.decoder.input.in_channels, network.decoder.input.out_channels) == (96, 144)
    assert _decoder_blocks(network) == [(144, 96), (96, 48), (48, 24), (24, 24)]
    assert network.decoder.output.in_channels == 24


def test_ecg_ppg_paper_meae_has_the_papers_parameter_count_and_decoder():
    network = _meae_network(MEAE.profile_params("mesa", "paper"), dims=1)
    assert count_parameters(network) == 1_211_106
    assert _decoder_blocks(network) == [
        (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 32), (32, 32), (32, 32),
    ]


@pytest.mark.parametrize("profile", [TRIANGLES_PAPER, MESA_PAPER])
def test_paper_profiles_use_the_authors_batch_norm_momentum(profile):
    network = _meae_network(profile, dims=2 if profile is TRIANGLES_PAPER else 1)
    momenta = {m.momentum for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.8}


def test_decoder_output_matches_input_shape_for_both_paper_configurations():
    network = _meae_network(TRIANGLES_PAPER, dims=2).eval()
    with torch.no_grad():
        logits, z = network(torch.rand(2, 1, 64, 64))
    assert logits.shape == (2, 1, 64, 64) and z.shape == (2, 96, 4, 4)


def test_supervised_ae_uses_the_same_decoder_rule():
    params = {**SupervisedAE.default_params(), **SupervisedAE.profile_params("triangles", "paper")}
    config = NetworkConfig(
        dims=2, n_encoders=1, channels=tuple(params["channels"]), hidden=params["hidden"],
        kernel_size=params["kernel_size"], out_channels=2, encoding_activation="relu", decoder_norm="batch",
    )
    network = MultiEncoderAutoencoder(config)
    assert _decoder_blocks(network) == [(144, 96), (96, 48), (48, 24), (24, 24)]
    assert count_parameters(network) == 3_588_076
