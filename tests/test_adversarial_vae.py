"""Tests of the adversarial non-linear ICA and VAE-BSS baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from methods.adversarial_ica import (
    AdversarialICA,
    IndependenceDiscriminator,
    discriminator_loss,
    independent_permutations,
    separator_adversarial_loss,
    shuffle_maps,
)
from methods.base import Split
from methods.vae_bss import VAEBSS, VAEBSSMask, kl_weight, laplace_nll, mask_estimates

SOURCES = ("a", "b")
ADV_2D = dict(n_sources=3, channels=(4, 4), kernel_size=3, disc_channels=4, epochs=1, batch_size=16, seed=0)
ADV_1D = dict(n_sources=2, channels=(4, 4, 4), kernel_size=3, disc_channels=4, epochs=1, batch_size=16, seed=0)
VAE_2D = dict(n_sources=3, channels=(4, 4), latent=4, kernel_size=3, epochs=1, batch_size=16, warmup_epochs=1, seed=0)
VAE_1D = dict(n_sources=2, channels=(4, 4, 4), latent=4, kernel_size=3, epochs=1, batch_size=16, warmup_epochs=1, seed=0)
CASES = [
    pytest.param(AdversarialICA, ADV_2D, "2d", id="adversarial_ica-2d"),
    pytest.param(AdversarialICA, ADV_1D, "1d", id="adversarial_ica-1d"),
    pytest.param(VAEBSS, VAE_2D, "2d", id="vae_bss-2d"),
    pytest.param(VAEBSS, VAE_1D, "1d", id="vae_bss-1d"),
    pytest.param(VAEBSSMask, VAE_2D, "2d", id="vae_bss_mask-2d"),
    pytest.param(VAEBSSMask, VAE_1D, "1d", id="vae_bss_mask-1d"),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _data(modality: str, n: int = 32, seed: int = 0) -> np.ndarray:
    shape = (16, 16) if modality == "2d" else (64,)
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


# ------------------------------------------------------------- per-map resampling


def test_independent_permutations_are_column_permutations():
    perm = independent_permutations(50, 4, "cpu", torch.Generator().manual_seed(0))
    assert perm.shape == (50, 4) and perm.dtype == torch.int64
    for k in range(4):
        assert sorted(perm[:, k].tolist()) == list(range(50))
    assert len({tuple(perm[:, k].tolist()) for k in range(4)}) == 4


@pytest.mark.parametrize("spatial", [(3, 3), (5,)])
def test_shuffle_maps_moves_whole_maps_independently_per_map(spatial):
    batch, k = 20, 3
    ids = torch.arange(batch, dtype=torch.float32)[:, None] * 10 + torch.arange(k, dtype=torch.float32)[None, :]
    # value = 10 * sample + map + 1e-3 * position: names the (sample, map, position) it came from
    position = torch.arange(math.prod(spatial), dtype=torch.float32).view(spatial) * 1e-3
    z = ids.view(batch, k, *([1] * len(spatial))) + position
    out = shuffle_maps(z, torch.Generator().manual_seed(2))
    assert out.shape == z.shape
    source = torch.round(out)
    torch.testing.assert_close(out - source, position.expand_as(out))  # positions are kept
    source = source.flatten(2)
    assert torch.all(source == source[..., :1])  # whole maps move
    source_ids = source[..., 0]
    sample_of = torch.div(source_ids, 10, rounding_mode="floor").long()
    map_of = (source_ids - 10 * sample_of).long()
    # maps stay in their own column ...
    assert torch.all(map_of == torch.arange(k)[None, :])
    # ... each column is a permutation of the original column ...
    for column in range(k):
        assert sorted(sample_of[:, column].tolist()) == list(range(batch))
        torch.testing.assert_close(out[:, column].sum(0), z[:, column].sum(0))
    # ... and the columns use different permutations (resampling, not a batch shuffle)
    assert len({tuple(sample_of[:, column].tolist()) for column in range(k)}) == k
    assert not torch.equal(sample_of, torch.arange(batch)[:, None].expand(batch, k))


def test_shuffle_maps_is_seeded():
    z = torch.randn(16, 3, 4, 4)
    a = shuffle_maps(z, torch.Generator().manual_seed(5))
    b = shuffle_maps(z, torch.Generator().manual_seed(5))
    c = shuffle_maps(z, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ------------------------------------------------------------------ adversarial losses


def test_discriminator_learns_strong_dependence_on_fixed_batch():
    torch.manual_seed(0)
    base = torch.randn(64, 1, 6, 6)
    z = torch.cat([base, base, -base], dim=1)  # map 1 = map 0, map 2 = -map 0: fully dependent
    disc = IndependenceDiscriminator(2, 3, 16)
    optimizer = torch.optim.RMSprop(disc.parameters(), lr=1e-3)

    def evaluate() -> float:
        with torch.no_grad():
            values = [discriminator_loss(disc, z, torch.Generator().manual_seed(100 + i)) for i in range(4)]
        return float(torch.stack(values).mean())

    before = evaluate()
    assert before == pytest.approx(math.log(2), abs=0.05)
    generator = torch.Generator().manual_seed(1)
    for _ in range(40):
        loss = discriminator_loss(disc, z, generator)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate()
    assert after < 0.3, (before, after)
    # the separator's term is the flipped-label loss: it grows as the discriminator wins
    with torch.no_grad():
        adversarial = separator_adversarial_loss(disc, z, torch.Generator().manual_seed(3))
    assert torch.isfinite(adversarial) and float(adversarial) > math.log(2) + 0.2


def test_training_step_updates_both_players_with_finite_losses():
    x = _data("2d", 32)
    method = AdversarialICA(**{**ADV_2D, "disc_steps": 3})
    separator, discriminator = method.setup(Split(x, SOURCES))
    network = method.network_.train()
    disc_before = [p.detach().clone() for p in network.discriminator.parameters()]
    sep_before = [p.detach().clone() for p in network.separator_parameters()]
    losses, skipped = method.training_step(method._prepare(torch.from_numpy(x)), separator, discriminator)
    assert skipped.dim() == 0 and not bool(skipped)
    assert set(losses) == {"total", "recon", "adversarial", "discriminator"}
    for value in losses.values():
        assert value.dim() == 0 and not value.requires_grad and torch.isfinite(value)
    assert float(losses["total"]) == pytest.approx(float(losses["recon"]) + 0.1 * float(losses["adversarial"]), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, network.discriminator.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(sep_before, network.separator_parameters(), strict=True))
    assert all(p.requires_grad for p in network.discriminator.parameters())


def test_adversarial_separate_is_masked_decoding():
    x = _data("2d", 32)
    method = AdversarialICA(**ADV_2D).fit(Split(x, SOURCES))
    out = method.separate(x[:4])
    network = method.network_
    with torch.no_grad():
        z = network.encode(torch.from_numpy(x[:4])[:, None])
        assert z.shape == (4, 3, 4, 4)
        for k in range(3):
            masked = torch.zeros_like(z)
            masked[:, k] = z[:, k]
            expected = torch.sigmoid(network.decode(masked))[:, 0].numpy()
            np.testing.assert_allclose(out[:, k], expected, rtol=1e-4, atol=1e-5)
    assert len(method.history_) == 1 and all(math.isfinite(v) for v in method.history_[0].values())


# -------------------------------------------------------------------------- VAE-BSS


def test_kl_weight_warms_up_linearly_to_beta():
    values = [kl_weight(step, 10, 0.5) for step in range(15)]
    assert values[0] == 0.0
    assert values[5] == pytest.approx(0.25)
    assert values[10:] == [0.5] * 5
    np.testing.assert_allclose(np.diff(values[:11]), 0.05, rtol=1e-12)
    assert kl_weight(0, 0, 0.5) == 0.5


def test_vae_history_reports_the_warm_up():
    x = _data("2d", 32)  # batch 16 -> 2 steps per epoch; 2 warm-up epochs = 4 steps
    method = VAEBSS(**{**VAE_2D, "epochs": 3, "warmup_epochs": 2}).fit(Split(x, SOURCES))
    assert [h["kl_weight"] for h in method.history_] == pytest.approx([0.125, 0.375, 0.5])
    for h in method.history_:
        assert math.isfinite(h["total"]) and math.isfinite(h["recon"]) and h["kl"] >= 0


@pytest.mark.parametrize("modality,params", [("2d", VAE_2D), ("1d", VAE_1D)])
def test_vae_sources_sum_to_the_reconstruction_in_the_loss(modality, params):
    x = _data(modality, 32)
    method = VAEBSS(**params).fit(Split(x, SOURCES))
    inputs = torch.from_numpy(x[:6])
    with torch.no_grad():
        losses, sources, reconstruction = method.loss_terms(method._prepare(inputs), 0.5, sample=False)
    torch.testing.assert_close(reconstruction, sources.sum(1))
    separated = method.separate(x[:6])
    np.testing.assert_allclose(separated, sources.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(method.reconstruct(x[:6]), separated.sum(1), rtol=1e-5, atol=1e-5)
    expected = np.abs(x[:6] - separated.sum(1)).reshape(6, -1).sum(1).mean() / method.laplace_scale
    assert float(losses["recon"]) == pytest.approx(float(expected), rel=1e-4)
    torch.testing.assert_close(losses["recon"], laplace_nll(inputs, torch.from_numpy(separated.sum(1)), math.sqrt(0.5)))
    assert float(losses["total"]) == pytest.approx(float(losses["recon"] + 0.5 * losses["kl"]), rel=1e-6)


@pytest.mark.parametrize("modality,params", [("2d", VAE_2D), ("1d", VAE_1D)])
def test_vae_mask_estimates_sum_to_the_mixture(modality, params):
    x = _data(modality, 32)
    plain = VAEBSS(**params).fit(Split(x, SOURCES))
    masked = VAEBSSMask(**params).fit(Split(x, SOURCES))
    sources, estimates = plain.separate(x[:5]), masked.separate(x[:5])
    np.testing.assert_allclose(estimates.sum(1), x[:5], atol=1e-5)
    # same training (same seed), only the read-out differs: s_k * x / sum_j s_j
    expected = sources * (x[:5] / (sources.sum(1) + 1e-6))[:, None]
    np.testing.assert_allclose(estimates, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(estimates, sources)


def test_mask_estimates_are_epsilon_guarded():
    sources = torch.tensor([[[0.2, 0.0], [0.6, 0.0]]])  # (B=1, K=2, L=2); second position all zero
    x = torch.tensor([[0.4, 0.3]])
    out = mask_estimates(sources, x)
    assert torch.all(torch.isfinite(out))
    torch.testing.assert_close(out[0, :, 0], torch.tensor([0.1, 0.3]), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out[0, :, 1], torch.zeros(2))


# -------------------------------------------------------------- shared method behaviour


@pytest.mark.parametrize("cls,params,modality", CASES)
def test_fit_separate_shapes_seed_and_round_trip(cls, params, modality, tmp_path):
    x = _data(modality, 32)
    split = Split(x, SOURCES)
    method = cls(**params).fit(split)
    out = method.separate(x[:5])
    k = params["n_sources"]
    assert out.shape == (5, k, *x.shape[1:])
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert out.min() >= 0 and (getattr(cls, "mask", False) or out.max() <= 1)
    assert method.n_parameters_ > 0 and len(method.history_) == params["epochs"]

    again = cls(**params).fit(split).separate(x[:5])
    np.testing.assert_array_equal(out, again)
    other = cls(**{**params, "seed": 1}).fit(split).separate(x[:5])
    assert not np.allclose(out, other)

    method.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model")
    assert type(loaded) is cls and loaded.history_ == method.history_
    assert loaded.get_params() == {**method.get_params(), "channels": list(params["channels"])}  # JSON: tuple -> list
    np.testing.assert_array_equal(loaded.separate(x[:5]), out)


def test_profiles_and_registry_rows():
    import methods

    registry = methods.discover()
    assert registry["adversarial_ica"] is AdversarialICA
    assert registry["vae_bss"] is VAEBSS and registry["vae_bss_mask"] is VAEBSSMask
    assert VAEBSSMask.param_names() == VAEBSS.param_names() and VAEBSSMask.mask and not VAEBSS.mask
    assert AdversarialICA.default_params()["adv_weight"] == 0.1
    assert VAEBSS.default_params()["beta"] == 0.5
    for cls in (AdversarialICA, VAEBSS):
        for suite in ("triangles", "mesa"):
            for profile in ("paper", "quick", "tiny"):
                assert cls.profile_params(suite, profile), (cls.name, suite, profile)
        assert cls.profile_params("mesa", "quick")["batch_size"] <= 32
