"""Classical decomposition baselines (methods/decompositions.py): dataset level and delay embedding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import methods
from methods.base import Split
from methods.decomposition_tools.embedding import diagonal_average, hankel

REGISTRY = methods.discover()
FAMILIES = ("fastica", "nmf", "sparsepca", "kernelpca")
DATASET = FAMILIES
EMBED = tuple(f"{f}_embed" for f in FAMILIES)
FS = 200.0
LENGTH = 12_288


def _toy(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``a1 * s1 + a2 * s2`` (8 x 8 images), independent exponential coefficients.

    Returns mixtures ``(n, 8, 8)`` in [0, 1] and the per-row contributions ``(n, 2, 8, 8)``.
    """
    rng = np.random.default_rng(seed)
    s1 = np.zeros((8, 8))
    s1[1:4, 1:7] = 1.0
    s1[2, 2] = 0.5
    s2 = np.zeros((8, 8))
    s2[np.arange(8), np.arange(8)] = 1.0
    s2[3:6, 6] = 0.7
    a = rng.exponential(1.0, size=(n, 2))
    contributions = a[:, :, None, None] * np.stack([s1, s2])[None]
    scale = contributions.sum(axis=1).max()
    return (contributions.sum(axis=1) / scale).astype(np.float32), (contributions / scale).astype(np.float32)


def _best_correlations(candidates: np.ndarray, truth: np.ndarray) -> list[float]:
    """Pearson r of each source with its candidate under the best one-to-one assignment."""
    k, s = candidates.shape[1], truth.shape[1]
    r = np.array([[np.corrcoef(candidates[:, i].ravel(), truth[:, j].ravel())[0, 1] for j in range(s)] for i in range(k)])
    best = max(itertools.permutations(range(k), s), key=lambda p: sum(r[p[j], j] for j in range(s)))
    return [float(r[best[j], j]) for j in range(s)]


def _segment(seed: int = 0) -> np.ndarray:
    """One minute at 200 Hz: 15 breaths/min sine + 1.2 Hz pulse train + noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / FS
    x = (0.2 * np.sin(2 * np.pi * 0.25 * t + 0.7) + 0.15 * (np.mod(t * 1.2, 1.0) < 0.08)
         + 0.02 * rng.standard_normal(LENGTH))
    return ((x - x.min()) / np.ptp(x)).astype(np.float32)


def _dominant_frequency(signal: np.ndarray, crop: int = 512) -> float:
    x = np.asarray(signal, dtype=np.float64)[crop:-crop]
    x = x - x.mean()
    n = 8 * len(x)  # zero-padded: 0.002 Hz bins
    power = np.abs(np.fft.rfft(x, n)) ** 2
    return float(np.fft.rfftfreq(n, 1 / FS)[np.argmax(power)])


def _pulse_to_breath_power(signal: np.ndarray, crop: int = 512) -> float:
    """Power of the pulse train (1.2 Hz and its harmonic) over that of the breathing (0.25 Hz)."""
    x = np.asarray(signal, dtype=np.float64)[crop:-crop]
    x = x - x.mean()
    n = 8 * len(x)
    power = np.abs(np.fft.rfft(x, n)) ** 2
    f = np.fft.rfftfreq(n, 1 / FS)
    pulse = power[(f > 1.0) & (f < 1.4)].sum() + power[(f > 2.2) & (f < 2.6)].sum()
    return float(pulse / power[(f > 0.2) & (f < 0.3)].sum())


def _embed(name: str, **params):
    cls = REGISTRY[name]
    params = {**cls.profile_params("mesa", "quick"), **params}
    segments = np.stack([_segment(0), _segment(1)])
    return cls(**params).fit(Split(segments, ("nasal_pressure",), sampling_rate=FS))


# ------------------------------------------------------------------ registration
def test_all_eight_registered_with_their_capabilities():
    from benchmark.suites import get_suite

    triangles, mesa = get_suite("triangles"), get_suite("mesa")
    for name in DATASET:
        cls = REGISTRY[name]
        assert set(cls.modalities) == {"1d", "2d"} and cls.inputs is None
        assert not cls.supervised and cls.check_input("ECG") is None
        assert triangles.method_fits(cls) is None and mesa.method_fits(cls) is None
    for name in EMBED:
        cls = REGISTRY[name]
        assert cls.modalities == ("1d",)
        reason = triangles.method_fits(cls)
        assert reason is not None and "1d" in reason and "2d" in reason
        assert cls.check_applicable("2d", ("mixture",)) == reason
        assert mesa.method_fits(cls) is None
    assert len({REGISTRY[n].family for n in DATASET}) == 4
    assert [REGISTRY[n].family for n in DATASET] == [REGISTRY[n].family for n in EMBED]


def test_profiles_cap_rows_and_iterations():
    for name in DATASET:
        for suite in ("triangles", "mesa"):
            quick, paper, tiny = (REGISTRY[name].profile_params(suite, p) for p in ("quick", "paper", "tiny"))
            assert tiny["max_rows"] <= quick["max_rows"] <= paper["max_rows"]
    assert REGISTRY["kernelpca"].profile_params("triangles", "quick")["max_rows"] <= 3000


# ------------------------------------------------------------------ dataset level
@pytest.mark.parametrize("name", ["fastica", "nmf", "sparsepca"])
def test_dataset_level_recovers_a_linear_mixture(name):
    mixtures, contributions = _toy()
    method = REGISTRY[name](n_components=2, seed=0).fit(Split(mixtures[:300], ("a", "b")))
    candidates = method.separate(mixtures[300:])
    assert candidates.shape == (100, 2, 8, 8) and candidates.dtype == np.float32
    assert min(_best_correlations(candidates, contributions[300:])) > 0.9
    # the candidates share the whole reconstruction: they sum to (nearly) the mixture
    np.testing.assert_allclose(candidates.sum(axis=1), mixtures[300:], atol=0.02)


def test_dataset_level_kernelpca_shapes_and_rows_cap():
    mixtures, _ = _toy(200)
    method = REGISTRY["kernelpca"](n_components=3, max_rows=50, seed=0).fit(Split(mixtures, ("a", "b")))
    assert method.estimator_.X_transformed_fit_.shape[0] == 50
    candidates = method.separate(mixtures[:7])
    assert candidates.shape == (7, 3, 8, 8) and candidates.dtype == np.float32
    assert np.all(np.isfinite(candidates))


@pytest.mark.parametrize("name", DATASET)
def test_dataset_level_deterministic_and_nan_rows(name):
    mixtures, _ = _toy(120, seed=3)
    train = Split(mixtures[:100].reshape(100, -1), ("a", "b"), sampling_rate=FS)
    probe = np.array(mixtures[100:104].reshape(4, -1))
    probe[1, 5] = np.nan
    first = REGISTRY[name](n_components=2, max_iter=30, seed=1).fit(train).separate(probe)
    second = REGISTRY[name](n_components=2, max_iter=30, seed=1).fit(train).separate(probe)
    assert first.shape == (4, 2, 64) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    assert np.all(np.isnan(first[1])) and np.all(np.isfinite(first[[0, 2, 3]]))


def test_dataset_level_clamps_components_to_the_rows():
    mixtures, _ = _toy(10)
    method = REGISTRY["fastica"](n_components=5).fit(Split(mixtures[:3], ("a", "b")))
    assert method.separate(mixtures[:2]).shape == (2, 2, 8, 8)  # 3 rows - 1 (mean) = 2


# ------------------------------------------------------------------ delay embedding
def test_diagonal_average_inverts_hankel():
    x = np.random.default_rng(0).standard_normal(101)
    trajectory = hankel(x, 20)
    assert trajectory.shape == (82, 20) and trajectory[5, 7] == x[12]
    np.testing.assert_allclose(diagonal_average(trajectory), x, rtol=0, atol=1e-12)
    stacked = np.stack([trajectory, 2 * trajectory])
    np.testing.assert_allclose(diagonal_average(stacked), np.stack([x, 2 * x]), atol=1e-12)
    # entry t is the mean over i + j = t
    m = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(diagonal_average(m), [0.0, 2.0, 3.0, 5.0])


@pytest.mark.parametrize("name", ["fastica_embed", "nmf_embed", "sparsepca_embed"])
def test_embedding_finds_the_breathing_rhythm(name):
    method = _embed(name)
    candidates = method.separate(_segment(0)[None])
    assert candidates.shape == (1, 6, LENGTH) and candidates.dtype == np.float32
    frequencies = [_dominant_frequency(c) for c in candidates[0]]
    assert min(abs(f - 0.25) for f in frequencies) < 0.03, frequencies
    # Separated, not passed through: the breathing output carries far less of the pulse than
    # the input does (input 0.03; the methods reach about 0.001).
    cleanest = min(_pulse_to_breath_power(c) for c in candidates[0])
    assert cleanest < _pulse_to_breath_power(_segment(0)) / 5


def test_fastica_embed_separates_breathing_from_pulse():
    candidates = _embed("fastica_embed").separate(_segment(2)[None])[0]
    frequencies = [_dominant_frequency(c) for c in candidates]
    assert any(abs(f - 0.25) < 0.03 for f in frequencies), frequencies
    assert any(abs(f - 1.2) < 0.03 for f in frequencies), frequencies
    # largest variance first
    variances = candidates[:, 512:-512].var(axis=1)
    assert variances[0] == pytest.approx(variances.max(), rel=0.05)


@pytest.mark.parametrize("name", EMBED)
def test_embedding_flat_and_nan_segments_give_nan_rows(name):
    method = _embed(name, n_components=3, max_iter=20)
    segments = np.stack([_segment(0), np.full(LENGTH, 0.5, np.float32), _segment(1)])
    segments[2, 100] = np.nan
    candidates = method.separate(segments)
    assert candidates.shape == (3, 3, LENGTH) and candidates.dtype == np.float32
    assert np.all(np.isfinite(candidates[0]))
    assert np.all(np.isnan(candidates[1])) and np.all(np.isnan(candidates[2]))


def test_embedding_deterministic_and_parallel_matches_serial():
    segments = np.stack([_segment(3), _segment(4), _segment(5)])
    serial = _embed("fastica_embed", n_components=4).separate(segments)
    again = _embed("fastica_embed", n_components=4).separate(segments)
    np.testing.assert_array_equal(serial, again)
    parallel = _embed("fastica_embed", n_components=4, n_jobs=2).separate(segments)
    np.testing.assert_allclose(parallel, serial, atol=1e-5)


def test_embedding_needs_a_sampling_rate_and_fit():
    cls = REGISTRY["nmf_embed"]
    with pytest.raises(ValueError, match="sampling rate"):
        cls().fit(Split(np.stack([_segment(0)] * 2), ("nasal_pressure",)))
    with pytest.raises(RuntimeError, match="before fit"):
        cls().separate(_segment(0)[None])
