"""Tests of candidate-to-source assignment and the image metrics."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from benchmark.evaluation import metrics
from benchmark.evaluation.assignment import Assignment, assign_by_mse, pairwise_mse
from benchmark.evaluation.metrics import SSIM_SETTINGS

NAMES = ("triangle", "circle")


def _sources(n: int = 6, size: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 2, size, size)).astype(np.float32)


# ------------------------------------------------------------------------- assignment


def test_pairwise_mse_equals_explicit_loop():
    rng = np.random.default_rng(1)
    candidates = rng.random((5, 3, 4, 6)).astype(np.float32)
    targets = rng.random((5, 2, 4, 6)).astype(np.float32)
    cost = pairwise_mse(candidates, targets)
    assert cost.shape == (2, 3)
    for s in range(2):
        for k in range(3):
            expected = np.mean((candidates[:, k].astype(np.float64) - targets[:, s]) ** 2)
            assert cost[s, k] == pytest.approx(expected, rel=1e-10, abs=1e-14)


def test_pairwise_mse_zero_for_identical_and_1d():
    signals = np.random.default_rng(2).random((4, 2, 50))
    cost = pairwise_mse(signals, signals)
    assert cost[0, 0] == pytest.approx(0.0, abs=1e-12) and cost[1, 1] == pytest.approx(0.0, abs=1e-12)
    assert cost[0, 1] > 0.05 and cost.min() >= 0.0


def test_assign_by_mse_recovers_permutation_and_lists_unused():
    targets = _sources()
    rng = np.random.default_rng(3)
    noise = rng.random(targets[:, 0].shape).astype(np.float32)
    # candidate 0 = noise, 1 = circle (+ small noise), 2 = triangle
    candidates = np.stack(
        [noise, targets[:, 1] + 0.01 * rng.standard_normal(noise.shape), targets[:, 0]], axis=1
    ).astype(np.float32)
    assignment = assign_by_mse(candidates, targets, NAMES)
    assert assignment.mapping == (2, 1)
    assert assignment.unused == (0,)
    assert assignment.source_names == NAMES
    assert len(assignment.cost) == 2 and len(assignment.cost[0]) == 3
    assert assignment.cost[0][2] == pytest.approx(0.0, abs=1e-12)
    assert assignment.to_dict()["by_source"] == {"triangle": 2, "circle": 1}

    estimates = assignment.apply(candidates)
    assert estimates.shape == targets.shape
    np.testing.assert_array_equal(estimates[:, 0], candidates[:, 2])
    np.testing.assert_array_equal(estimates[:, 1], candidates[:, 1])


def test_assign_by_mse_is_globally_optimal():
    """Total cost equals the brute-force optimum over all injective source -> candidate maps."""
    targets = np.zeros((1, 2, 1))
    candidates = np.zeros((1, 2, 1))
    targets[0, :, 0] = [0.0, 3.0]
    candidates[0, :, 0] = [1.0, -2.0]
    # costs s0: [1, 4]; s1: [4, 25]. Greedy in source order takes s0 -> 0 and pays 1 + 25;
    # the optimum is s0 -> 1, s1 -> 0 with 4 + 4.
    assignment = assign_by_mse(candidates, targets, NAMES)
    np.testing.assert_allclose(assignment.cost, [[1.0, 4.0], [4.0, 25.0]])
    assert assignment.mapping == (1, 0)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        t = rng.random((3, 2, 4))
        c = rng.random((3, 4, 4))
        result = assign_by_mse(c, t, NAMES)
        cost = np.array(result.cost)
        best = min(cost[0, a] + cost[1, b] for a in range(4) for b in range(4) if a != b)
        total = sum(cost[s, k] for s, k in enumerate(result.mapping))
        assert total == pytest.approx(best, rel=1e-12)
        assert sorted(result.unused + result.mapping) == [0, 1, 2, 3]


def test_fewer_candidates_than_sources_leaves_a_source_unserved():
    targets = _sources(n=4)
    candidates = targets[:, 1:2].copy()  # only the circle
    assignment = assign_by_mse(candidates, targets, NAMES)
    assert assignment.mapping == (-1, 0)
    assert assignment.unused == ()
    estimates = assignment.apply(candidates)
    assert estimates.shape == (4, 2, 12, 12)
    assert np.all(np.isnan(estimates[:, 0]))
    np.testing.assert_array_equal(estimates[:, 1], targets[:, 1])


def test_apply_reorders_with_a_given_mapping():
    candidates = np.arange(3 * 3 * 2, dtype=np.float32).reshape(3, 3, 2)
    assignment = Assignment(NAMES, (2, 0), (1,), ((0.0,) * 3, (0.0,) * 3))
    out = assignment.apply(candidates)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], candidates[:, 2])
    np.testing.assert_array_equal(out[:, 1], candidates[:, 0])


# ---------------------------------------------------------------------------- metrics


def test_mse_on_known_arrays():
    estimates = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    targets = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.5]])
    np.testing.assert_allclose(metrics.mse(estimates, targets), [1.0, (0 + 1 + 0 + 0.25) / 4])
    images = np.zeros((2, 3, 3))
    np.testing.assert_allclose(metrics.mse(images + 0.5, images), [0.25, 0.25])


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(4)
    base = np.zeros((7, 16, 16))
    for i in range(7):
        r, c = rng.integers(2, 8, size=2)
        base[i, r : r + 7, c : c + 6] = 1.0
    return np.clip(base + 0.1 * rng.random(base.shape), 0, 1)


def test_ssim_identical_images_is_one(images):
    np.testing.assert_allclose(metrics.ssim(images, images), 1.0, rtol=0, atol=1e-12)


def test_ssim_complement_is_far_below_one(images):
    values = metrics.ssim(1.0 - images, images)
    assert values.shape == (7,)
    assert np.all(values < 0.0)


def test_ssim_matches_skimage_with_recorded_settings(images):
    rng = np.random.default_rng(5)
    noisy = np.clip(images + 0.2 * rng.standard_normal(images.shape), 0, 1)
    options = {k: v for k, v in SSIM_SETTINGS.items() if k != "implementation"}
    expected = [structural_similarity(e, t, **options) for e, t in zip(noisy, images, strict=True)]
    got = metrics.ssim(noisy.astype(np.float32), images.astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert 0.05 < float(np.mean(got)) < 0.95
    # the settings are the ones the paper's SSIM uses (data range 1, 7x7 uniform window)
    assert options == {
        "data_range": 1.0, "win_size": 7, "gaussian_weights": False, "K1": 0.01, "K2": 0.03,
        "use_sample_covariance": True,
    }


def test_ssim_parallel_equals_serial(images):
    rng = np.random.default_rng(6)
    noisy = np.clip(images + 0.3 * rng.standard_normal(images.shape), 0, 1)
    serial = metrics.ssim(noisy, images, n_jobs=1, chunk=3)
    parallel = metrics.ssim(noisy, images, n_jobs=2, chunk=3)
    assert serial.shape == (7,)
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_array_equal(serial, metrics.ssim(noisy, images))


def test_ssim_rejects_bad_shapes(images):
    with pytest.raises(ValueError):
        metrics.ssim(images[:, 0], images[:, 0])
    with pytest.raises(ValueError):
        metrics.ssim(images[:3], images[:4])
