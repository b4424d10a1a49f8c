"""Tests for the classical respiratory heuristics (methods/respiration_heuristics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from joblib import parallel_config
from scipy.signal import resample_poly

import methods
from benchmark.evaluation.respiration import respiratory_rate
from datasets.synthetic_psg.config import CohortConfig
from datasets.synthetic_psg.subject import simulate_subject
from methods.base import Split

FS = 200.0
LENGTH = 12288
ECG_RESP_BPM = 15.0
PPG_RESP_BPM = 12.0

EDR_NAMES = ("nk_ecg_rsp_vangent2019", "nk_ecg_rsp_soni2019", "nk_ecg_rsp_charlton2016", "nk_ecg_rsp_sarkar2015")
ECG_NAMES = (*EDR_NAMES, "ecg_rav")
PPG_NAMES = ("ppg_riiv", "ppg_riav", "ppg_rifv")
ALL_NAMES = ECG_NAMES + PPG_NAMES

_T = np.arange(LENGTH) / FS


def _beat_times(heart_bpm: float, fm_depth: float, resp_bpm: float) -> np.ndarray:
    """Beat times (s) of an integral pulse frequency modulation model, 2 s margin each side."""
    grid = np.arange(-2 * FS, LENGTH + 2 * FS) / FS
    rate = heart_bpm / 60 * (1 + fm_depth * np.sin(2 * np.pi * resp_bpm / 60 * grid + 0.4))
    cycles = np.floor(np.cumsum(rate) / FS)
    return grid[np.nonzero(np.diff(cycles) > 0)[0]]


def _bump(centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((_T - centre) / width) ** 2)


def _scaled(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / np.ptp(x)


def _ecg(seed: int) -> np.ndarray:
    """ECG-like train at 70 bpm; RR (6 %) and QRS amplitude (25 %) modulated at 15 breaths/min."""
    rng = np.random.default_rng(seed)
    x = np.zeros(LENGTH)
    for b in _beat_times(70.0, 0.06, ECG_RESP_BPM):
        m = 1 + 0.25 * np.sin(2 * np.pi * ECG_RESP_BPM / 60 * b + 0.4)
        x += 0.1 * _bump(b - 0.15, 0.02) + m * _bump(b, 0.012)  # P, R
        x += -0.25 * (2 - m) * _bump(b + 0.03, 0.01) + 0.3 * _bump(b + 0.3, 0.05)  # S, T
    return _scaled(x + 0.02 * rng.standard_normal(LENGTH))


def _ppg(family: str, seed: int) -> np.ndarray:
    """PPG-like pulse train at 72 bpm with ONE modulation at 12 breaths/min.

    ``family``: ``"baseline"`` (additive respiratory baseline), ``"amplitude"`` (30 % pulse
    amplitude modulation) or ``"frequency"`` (8 % inter-beat-interval modulation).
    """
    rng = np.random.default_rng(seed)
    f = PPG_RESP_BPM / 60
    x = np.zeros(LENGTH)
    for b in _beat_times(72.0, 0.08 if family == "frequency" else 0.0, PPG_RESP_BPM):
        m = 1 + 0.3 * np.sin(2 * np.pi * f * b) if family == "amplitude" else 1.0
        x += m * (_bump(b + 0.2, 0.07) + 0.4 * _bump(b + 0.5, 0.1))  # systolic, diastolic
    if family == "baseline":
        x += 0.4 * np.sin(2 * np.pi * f * _T)
    return _scaled(x + 0.01 * rng.standard_normal(LENGTH))


def _run(name: str, mixtures: np.ndarray, **params: object) -> np.ndarray:
    cls = methods.get(name)
    train = Split(mixtures, ("respiration",), input_name=cls.inputs[0], sampling_rate=FS)
    return cls(**params).fit(train).separate(mixtures)


@pytest.fixture(scope="module")
def ecg_batch() -> np.ndarray:
    return np.stack([_ecg(0), _ecg(1)])


# ------------------------------------------------------------------------- registration
def test_all_methods_registered_with_declared_inputs() -> None:
    registry = methods.discover()
    for name in ALL_NAMES:
        cls = registry[name]
        expected = ("ECG",) if name in ECG_NAMES else ("PPG",)
        assert cls.inputs == expected
        assert cls.modalities == ("1d",)
        assert cls.supervised is False
        assert cls.device_support == "none"
        assert cls.description
        assert "n_jobs" in cls.param_names()
        other = "PPG" if expected == ("ECG",) else "ECG"
        assert cls.check_input(expected[0]) is None
        reason = cls.check_input(other)
        assert reason is not None and name in reason
    from benchmark.suites import get_suite

    sarkar = methods.get("nk_ecg_rsp_sarkar2015")
    assert get_suite("mesa").method_fits(sarkar) is None
    assert "handles 1d signals, not 2d" in get_suite("triangles").method_fits(sarkar)
    # A 1-D suite of plain mixtures offers no ECG: the heuristic is skipped with that reason.
    assert "designed for ECG input; the data offers mixture" in sarkar.check_applicable("1d", ("mixture",))


def test_params_stored_unchanged_and_validated_in_fit() -> None:
    cls = methods.get("ppg_riav")
    method = cls(low=0.2, high=0.6, order=3, interpolation="linear", n_jobs=1)
    assert method.get_params() == {
        "low": 0.2,
        "high": 0.6,
        "order": 3,
        "interpolation": "linear",
        "n_jobs": 1,
    }
    split = Split(np.zeros((1, LENGTH)), ("respiration",), input_name="PPG", sampling_rate=FS)
    with pytest.raises(ValueError, match="band"):
        cls(low=0.5, high=0.1).fit(split)
    with pytest.raises(ValueError, match="interpolation"):
        cls(interpolation="quadratic").fit(split)
    fitted = methods.get("nk_ecg_rsp_soni2019")().fit(
        Split(np.zeros((1, LENGTH)), ("respiration",), input_name="ECG")
    )
    assert fitted.sampling_rate_ == 200.0  # default when the split gives none


# ------------------------------------------------------------------------- known rates
@pytest.mark.parametrize("name", ECG_NAMES)
def test_ecg_methods_recover_rate(name: str, ecg_batch: np.ndarray) -> None:
    # All four NeuroKit2 ecg_rsp filters pass 0.25 Hz, so all are asserted (none excluded).
    out = _run(name, ecg_batch)
    for row in out[:, 0]:
        assert respiratory_rate(row, FS) == pytest.approx(ECG_RESP_BPM, abs=1.5)


@pytest.mark.parametrize(
    ("name", "family"),
    [("ppg_riiv", "baseline"), ("ppg_riav", "amplitude"), ("ppg_rifv", "frequency")],
)
def test_ppg_heuristic_recovers_rate_of_its_family(name: str, family: str) -> None:
    out = _run(name, np.stack([_ppg(family, 0), _ppg(family, 1)]))
    for row in out[:, 0]:
        assert respiratory_rate(row, FS) == pytest.approx(PPG_RESP_BPM, abs=1.5)


def test_cubic_and_linear_interpolation_agree_on_rate() -> None:
    x = _ppg("amplitude", 2)[None]
    for kind in ("cubic", "linear"):
        rate = respiratory_rate(_run("ppg_riav", x, interpolation=kind)[0, 0], FS)
        assert rate == pytest.approx(PPG_RESP_BPM, abs=1.5)


def test_realistic_synthetic_cohort_rates() -> None:
    """First minute of 4 simulated subjects (EKG/Pleth resampled 256 -> 200 Hz): every
    heuristic's rate MAE against the true respiration's rate stays small on the regular
    ("easy") model; the default "realistic" one is meant to be hard for them."""
    config = CohortConfig(subjects=4, minutes=1.1, seed=0, difficulty="easy")
    ecg, ppg, truth = [], [], []
    for index in range(config.subjects):
        subject = simulate_subject(index, config)
        ecg.append(resample_poly(subject["signals"]["EKG"], 25, 32)[:LENGTH])
        ppg.append(resample_poly(subject["signals"]["Pleth"], 25, 32)[:LENGTH])
        resp = subject["truth"]["respiration"].astype(np.float64)  # 32 Hz
        truth.append(respiratory_rate(resample_poly(resp, 25, 4)[:LENGTH], FS))
    inputs = {
        "ECG": np.stack([_scaled(x) for x in ecg]),
        "PPG": np.stack([_scaled(x) for x in ppg]),
    }
    truth = np.array(truth)
    assert np.all(np.isfinite(truth))
    for name in ALL_NAMES:
        out = _run(name, inputs[methods.get(name).inputs[0]])
        rates = np.array([respiratory_rate(row, FS) for row in out[:, 0]])
        assert np.all(np.isfinite(rates)), name
        assert np.mean(np.abs(rates - truth)) < 2.5, (name, rates, truth)


# ------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", ALL_NAMES)
def test_bad_segments_give_nan_rows(name: str, ecg_batch: np.ndarray) -> None:
    good = ecg_batch[0] if name in ECG_NAMES else _ppg("baseline", 0)
    with_nan = good.copy()
    with_nan[100] = np.nan
    batch = np.stack([good, np.zeros(LENGTH), np.full(LENGTH, 0.5), with_nan])
    out = _run(name, batch)
    assert out.shape == (4, 1, LENGTH)
    assert out.dtype == np.float32
    assert np.all(np.isnan(out[1:]))
    assert np.all(np.isfinite(out[0]))
    assert out[0].min() == pytest.approx(0.0) and out[0].max() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["nk_ecg_rsp_vangent2019", "ecg_rav", "ppg_riav", "ppg_rifv"])
def test_too_few_beats_gives_nan_row(name: str) -> None:
    x = np.zeros(LENGTH)
    for centre in (10.0, 30.0, 50.0):  # three beats in a minute
        x += _bump(centre, 0.05)
    out = _run(name, x[None])
    assert np.all(np.isnan(out))


def test_empty_batch_and_parallel_matches_serial(ecg_batch: np.ndarray) -> None:
    empty = methods.get("ecg_rav")().separate(np.empty((0, LENGTH)))
    assert empty.shape == (0, 1, LENGTH) and empty.dtype == np.float32
    serial = _run("nk_ecg_rsp_vangent2019", ecg_batch)
    # Threads instead of loky processes: same chunking and ordering, no worker start-up cost.
    with parallel_config(backend="threading"):
        parallel = _run("nk_ecg_rsp_vangent2019", ecg_batch, n_jobs=2)
    np.testing.assert_array_equal(serial, parallel)
