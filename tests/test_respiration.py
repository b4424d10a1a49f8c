"""Tests for the respiratory-rate evaluation (benchmark/evaluation/respiration.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from benchmark.evaluation.respiration import coverage, rate_mae, rates, respiratory_rate

FS = 200.0
LENGTH = 12288


def _sine(bpm: float, length: int = LENGTH, phase: float = 0.3) -> np.ndarray:
    t = np.arange(length) / FS
    return np.sin(2 * np.pi * bpm / 60.0 * t + phase)


@pytest.mark.parametrize("bpm", [6.0, 12.0, 20.0, 30.0])
def test_rate_of_clean_sinusoid(bpm: float) -> None:
    assert respiratory_rate(_sine(bpm), FS) == pytest.approx(bpm, abs=0.05)


def test_rate_ignores_polarity_and_offset() -> None:
    x = _sine(15.0)
    assert respiratory_rate(-x + 7.0) == pytest.approx(15.0, abs=0.05)


def test_flat_signal_has_no_rate() -> None:
    assert np.isnan(respiratory_rate(np.zeros(LENGTH)))
    assert np.isnan(respiratory_rate(np.full(LENGTH, 3.5)))


def test_nan_input_has_no_rate() -> None:
    x = _sine(12.0)
    x[5000] = np.nan
    assert np.isnan(respiratory_rate(x))
    assert np.isnan(respiratory_rate(np.full(LENGTH, np.nan)))
    x[5000] = np.inf
    assert np.isnan(respiratory_rate(x))


def test_too_short_or_too_few_breaths_have_no_rate() -> None:
    assert np.isnan(respiratory_rate(_sine(12.0, length=1000)))  # nothing left after cropping
    assert np.isnan(respiratory_rate(_sine(12.0, length=1100)))  # a few samples left
    assert np.isnan(respiratory_rate(_sine(3.0)))  # about three breaths in a minute
    assert np.isnan(respiratory_rate(np.array([])))


def test_crop_zero_keeps_everything() -> None:
    assert respiratory_rate(_sine(20.0), FS, crop=0) == pytest.approx(20.0, abs=0.05)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one-dimensional"):
        respiratory_rate(np.zeros((2, LENGTH)))
    with pytest.raises(ValueError, match="sampling_rate"):
        respiratory_rate(_sine(12.0), 0.0)
    with pytest.raises(ValueError, match="crop"):
        respiratory_rate(_sine(12.0), FS, crop=-1)


def test_no_warnings_escape() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        respiratory_rate(np.zeros(LENGTH))
        respiratory_rate(np.random.default_rng(0).standard_normal(LENGTH))
        respiratory_rate(_sine(3.0))


def test_rates_of_batch() -> None:
    batch = np.stack([_sine(12.0), np.zeros(LENGTH), _sine(20.0)])
    out = rates(batch, FS)
    assert out.shape == (3,) and out.dtype == np.float64
    assert out[0] == pytest.approx(12.0, abs=0.05)
    assert np.isnan(out[1])
    assert out[2] == pytest.approx(20.0, abs=0.05)
    assert rates(np.empty((0, LENGTH))).shape == (0,)
    with pytest.raises(ValueError, match="two-dimensional"):
        rates(_sine(12.0))


def test_rate_mae_uses_entries_where_both_are_finite() -> None:
    estimate = np.array([10.0, 12.0, np.nan, 20.0, 15.0])
    reference = np.array([11.0, 15.0, 14.0, np.nan, 15.0])
    mae, count = rate_mae(estimate, reference)
    assert count == 3
    assert mae == pytest.approx((1.0 + 3.0 + 0.0) / 3)


def test_rate_mae_without_common_entries() -> None:
    mae, count = rate_mae(np.array([np.nan, 1.0]), np.array([2.0, np.nan]))
    assert count == 0 and np.isnan(mae)
    with pytest.raises(ValueError, match="shapes"):
        rate_mae(np.zeros(3), np.zeros(4))


def test_coverage() -> None:
    assert coverage(np.array([1.0, np.nan, 3.0, np.nan])) == pytest.approx(0.5)
    assert coverage(np.array([1.0])) == 1.0
    assert np.isnan(coverage(np.array([])))
