"""Smart fusion of respiratory modulations on signals with known modulation rates."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.evaluation.respiration import respiratory_rate
from methods.base import Split
from methods.respiration_fusion import (
    KARLEN_MAX_SD_BPM,
    ECGMeanFusion,
    ECGSmartFusion,
    PPGMeanFusion,
    PPGSmartFusion,
    fuse_rates,
)

FS = 200.0
LENGTH = 12_288


def _cardiac(baseline_bpm: float, amplitude_bpm: float, frequency_bpm: float, kind: str, seed: int = 0) -> np.ndarray:
    """One minute of ECG- or PPG-like beats at 72 beats/min whose baseline, beat amplitude and
    beat rate are modulated by sines at the three given respiratory rates."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / FS
    heart_hz = 1.2 + 0.12 * np.sin(2 * np.pi * frequency_bpm / 60 * t)
    phase = np.cumsum(heart_hz) / FS
    beats = np.searchsorted(phase, np.arange(1, int(phase[-1]) + 1))
    width = 0.012 if kind == "ECG" else 0.12
    signal = np.zeros(LENGTH)
    for b in beats:
        amplitude = 1.0 + 0.3 * np.sin(2 * np.pi * amplitude_bpm / 60 * t[b])
        signal += amplitude * np.exp(-0.5 * ((t - t[b]) / width) ** 2)
    signal += 0.3 * np.sin(2 * np.pi * baseline_bpm / 60 * t)
    return signal + 0.005 * rng.standard_normal(LENGTH)


@pytest.mark.parametrize("kind, smart, plain", [("PPG", PPGSmartFusion, PPGMeanFusion),
                                               ("ECG", ECGSmartFusion, ECGMeanFusion)])
def test_fusion_returns_the_agreed_rate_and_abstains_on_disagreement(kind, smart, plain):
    agree = _cardiac(15.0, 15.0, 15.0, kind)
    disagree = _cardiac(8.0, 15.0, 24.0, kind, seed=1)
    method = smart().fit(Split(np.zeros((0, LENGTH), np.float32), ("respiration",), sampling_rate=FS))
    modulation_rates = method.modulation_rates(agree, FS)
    assert np.allclose(modulation_rates, 15.0, atol=1.0), modulation_rates
    spread = method.modulation_rates(disagree, FS)
    assert np.all(np.isfinite(spread)) and np.std(spread, ddof=1) > KARLEN_MAX_SD_BPM, spread

    out = method.separate(np.stack([agree, disagree]).astype(np.float32))
    assert out.shape == (2, 1, LENGTH)
    assert respiratory_rate(out[0, 0], FS) == pytest.approx(np.mean(modulation_rates), abs=0.1)
    assert np.isnan(out[1]).all()  # abstains

    mean = plain().fit(Split(np.zeros((0, LENGTH), np.float32), ("respiration",), sampling_rate=FS))
    both = mean.separate(np.stack([agree, disagree]).astype(np.float32))
    assert respiratory_rate(both[1, 0], FS) == pytest.approx(np.mean(spread), abs=0.1)


def test_fuse_rates_rules():
    assert fuse_rates(np.array([14.0, 15.0, 16.0]), 4.0) == pytest.approx(15.0)
    assert np.isnan(fuse_rates(np.array([8.0, 15.0, 24.0]), 4.0))  # SD 8 > 4
    assert np.isnan(fuse_rates(np.array([14.0, np.nan, 16.0]), 4.0))  # agreement needs all three
    # sample SD: 10, 14, 18 have SD 4 exactly (ddof=1): fused; 10, 14, 18.5 do not
    assert fuse_rates(np.array([10.0, 14.0, 18.0]), 4.0) == pytest.approx(14.0)
    assert np.isnan(fuse_rates(np.array([10.0, 14.0, 18.5]), 4.0))
    assert fuse_rates(np.array([8.0, np.nan, 24.0]), None) == pytest.approx(16.0)
    assert np.isnan(fuse_rates(np.array([np.nan, np.nan, np.nan]), None))


def test_fusion_threshold_is_a_checked_parameter():
    with pytest.raises(ValueError, match="max_sd_bpm"):
        PPGSmartFusion(max_sd_bpm=0).fit(Split(np.zeros((0, LENGTH), np.float32), ("respiration",), sampling_rate=FS))
    assert PPGSmartFusion().max_sd_bpm == 4.0 and PPGMeanFusion().max_sd_bpm is None
