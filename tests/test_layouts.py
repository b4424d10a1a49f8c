"""Execution layouts of the multi-encoder network: other kernels, the same model.

Every layout of :data:`methods.nn.layouts.ENCODER_LAYOUTS` and
:data:`methods.nn.layouts.DECODER_LAYOUTS` must give today's (``grouped`` /
``native``) losses, gradients and updated parameters on the MEAE training step,
within float tolerance, with the same state dict.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from methods.base import RunContext, Split
from methods.meae import MEAE
from methods.nn.layouts import DECODER_LAYOUTS, ENCODER_LAYOUTS, block_diagonal, parse_layout
from methods.nn.networks import MultiEncoderAutoencoder, NetworkConfig
from methods.nn.steps import optimisation_step

LAYOUTS = list(itertools.product(ENCODER_LAYOUTS, DECODER_LAYOUTS))
# The paper's triangles recipe (ReLU encodings, per-encoder penalty, transposed decoder), narrow.
SMALL = dict(n_encoders=3, channels=(6, 12, 12), hidden=12, kernel_size=5, batch_size=16, lr=1e-3,
             encoding_activation="relu", encoding_penalty="sum_per_encoder", decoder_conv="transposed",
             batch_norm_momentum=0.8, grad_clip=0.5, seed=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _step(dims: int, encoder: str, decoder: str) -> dict:
    """Losses, gradients, and parameters after one update, of the MEAE step in one layout."""
    # 1-D: 16 signals of 256 samples; shorter ones left a BatchNorm channel nearly constant, whose
    # gradient then amplifies rounding (1e4) in every layout alike.
    n, shape = (8, (16, 16)) if dims == 2 else (16, (256,))
    mixtures = np.random.default_rng(0).random((n, *shape), dtype=np.float32)
    method = MEAE(**SMALL).with_context(RunContext("cpu", 1, layout=f"{encoder}/{decoder}"))
    optimizer, _ = method.setup(Split(mixtures, ("a", "b")))
    method.network_.train()
    batch = [torch.from_numpy(mixtures)]
    raw = method._step_losses(batch)
    raw["total"].backward()
    losses = {k: v.detach().clone() for k, v in raw.items()}
    grads = {n: p.grad.clone() for n, p in method.network_.named_parameters()}
    method.network_.zero_grad(set_to_none=True)
    optimisation_step(method.network_, optimizer, method._step_losses, batch, method.grad_clip)
    state = {k: v.detach().clone() for k, v in method.network_.state_dict().items()}
    return {"losses": losses, "grads": grads, "state": state, "layout": method.network_.layout()}


@pytest.mark.parametrize("dims", [2, 1])
def test_every_layout_gives_the_grouped_step(dims):
    reference = _step(dims, "grouped", "native")
    assert reference["layout"] == ("grouped", "native")
    for encoder, decoder in LAYOUTS[1:]:
        other = _step(dims, encoder, decoder)
        assert other["layout"] == (encoder, decoder)
        assert other["state"].keys() == reference["state"].keys()
        for name, value in reference["losses"].items():
            torch.testing.assert_close(other["losses"][name], value, rtol=1e-4, atol=1e-6, msg=f"{encoder}/{decoder} {name}")
        for name, grad in reference["grads"].items():
            scale = grad.abs().max().item()
            torch.testing.assert_close(other["grads"][name], grad, rtol=1e-3, atol=1e-4 * max(scale, 1e-3),
                                       msg=f"{encoder}/{decoder} grad {name}")
        for name, value in reference["state"].items():
            torch.testing.assert_close(other["state"][name].float(), value.float(), rtol=1e-4, atol=1e-5,
                                       msg=f"{encoder}/{decoder} after the update: {name}")


def test_block_diagonal_weight_is_the_grouped_convolution():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 2, 3, 3, generator=generator)
    dense = block_diagonal(weight, 3)
    assert dense.shape == (6, 6, 3, 3)
    for g in range(3):
        rows, cols = slice(2 * g, 2 * g + 2), slice(2 * g, 2 * g + 2)
        assert torch.equal(dense[rows, cols], weight[rows])
        off = torch.ones(6, dtype=torch.bool)
        off[cols] = False
        assert torch.count_nonzero(dense[rows][:, off]) == 0
    x = torch.randn(2, 6, 8, 8, generator=generator)
    torch.testing.assert_close(torch.nn.functional.conv2d(x, dense, padding=1),
                               torch.nn.functional.conv2d(x, weight, padding=1, groups=3), rtol=1e-5, atol=1e-5)


def test_layout_does_not_change_the_saved_model():
    config = NetworkConfig(dims=2, channels=(6, 12), hidden=6, kernel_size=3, decoder_conv="transposed")
    torch.manual_seed(0)
    network = MultiEncoderAutoencoder(config)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    network.set_layout("dense", "conv")
    assert network.layout() == ("dense", "conv")
    assert network.state_dict().keys() == before.keys()
    assert all(torch.equal(network.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("encoder,decoder", [("blocked", "native"), ("grouped", "transposed")])
def test_unknown_layout_is_refused(encoder, decoder):
    network = MultiEncoderAutoencoder(NetworkConfig(channels=(3,), hidden=3, kernel_size=3))
    with pytest.raises(ValueError, match="layout must be one of"):
        network.set_layout(encoder, decoder)


def test_layouts_parse_with_the_default_decoder_and_refuse_unknown_names():
    assert parse_layout(None) == ("grouped", "native")
    assert parse_layout("dense") == ("dense", "native") and parse_layout("split/conv") == ("split", "conv")
    with pytest.raises(ValueError, match="unknown layout 'grouped/transposed'"):
        parse_layout("grouped/transposed")
    assert "layout" not in MEAE.param_names()  # an execution choice, not a parameter: not in cell keys


def test_only_multi_encoder_cells_record_the_execution_choices():
    from benchmark.run.runner import execution_choices
    from methods.mixture import MixtureAsEstimate
    from methods.supervised_ae import SupervisedAE

    assert execution_choices(MEAE, "dense/conv", True) == {"layout": "dense/conv", "compiled": True}
    assert execution_choices(SupervisedAE, None, True) == {"compiled": True}
    assert execution_choices(MEAE, None, False) == {}  # a default run's record is unchanged
    assert execution_choices(MixtureAsEstimate, "dense/conv", True) == {}
