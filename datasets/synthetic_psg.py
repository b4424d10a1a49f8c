"""Synthetic polysomnography cohort laid out like the MESA Sleep data set.

MESA recordings are not freely redistributable, so this module writes a stand-in cohort with the
same file layout and channel labels, plus the *true* respiratory signal, which real data never
has.  For every subject ``NNNN`` (zero-padded, starting at 0001) it writes::

    OUT/polysomnography/edfs/mesa-sleep-NNNN.edf         EDF+ with EKG, Pleth, Flow and Thor
    OUT/polysomnography/truth/mesa-sleep-NNNN-resp.npz   true respiration (see below)
    OUT/cohort.json                                      the CohortConfig that made the files

EDF channels, labelled as in MESA: ``EKG`` 256 Hz (mV), ``Pleth`` 256 Hz (PPG, arbitrary units),
``Flow`` 32 Hz (nasal pressure cannula, cmH2O; NSRR names the cannula ``Flow``) and ``Thor``
32 Hz (thoracic inductance belt, arbitrary units).  Samples are 16-bit with digital range
-32768..32767 and physical limits taken from the data with a 5 % margin.

The truth file (plain arrays, no pickles) holds, at ``sampling_rate`` = 32 Hz from the start
of the recording: ``respiration`` (the lung-volume signal below, about 0 at end-expiration and 1
at a mean-depth inspiration), ``rate`` (instantaneous breathing rate, 60 / duration of the
current breath, breaths/min), ``apnea`` (inside an apnea/hypopnea event), plus
``breath_onsets`` and ``beat_times`` (seconds) and the scalar ``sampling_rate``.

Physiological model
-------------------
All random quantities are drawn per subject from ``np.random.SeedSequence(seed).spawn``, so a
subject depends only on the seed, its index and the model parameters.  "Slow" processes are
cubic splines through standard-normal knots every few minutes; a slowly varying *strength*
is ``base * (1 + spread * tanh(slow process))``, which makes the mixing system change in time.

Respiration.  The subject's mean breathing rate is uniform in 8-24 breaths/min; it drifts as
``mean * exp(0.12 * slow process)`` (2-minute knots), clipped to 6-30 breaths/min.  The nominal
breath boundaries follow from integrating that rate; each breath's duration is then jittered
(log-normal, subject coefficient of variation 4-12 %, durations clipped to 2-10 s) and so is its
depth (log-normal, 5-20 %) and its inspiratory fraction (subject mean 0.35-0.45).  Within a breath
the lung volume rises as a raised cosine during inspiration and falls back to zero during
expiration (a raised cosine on a warped time axis, so expiration is fast at first).  Apneas and
hypopneas arrive as a Poisson process (subject rate uniform in ``apnea_per_hour``), last 10-40 s
and scale the volume down to 0-30 % with 3 s ramps.  ``r(t)`` below is this volume.

ECG (EKG).  Beats follow an integral pulse frequency modulation model: the instantaneous heart
rate ``hr(t) * (1 + a_rsa(t) * tanh(2 * (r(t - lag) - 0.5)))`` (mean 50-90 bpm per subject,
slow drift) is integrated and a beat is placed at every whole cycle, plus 4 ms jitter; the
saturating ``tanh`` term is respiratory sinus arrhythmia (RR shortens during inspiration).  Each
beat is a PQRST sum of five Gaussians (P and T delays scale with sqrt(RR)).  Respiration rotates
the electrical axis: the R wave is scaled by ``m = 1 + a_am(t) * tanh(3 * (r - 0.5))`` and the S
wave by ``2 - m``.  Baseline wander is ``a_bw(t) * (r + k * r**2)``, a quadratic coupling.  The
strengths ``a_rsa``, ``a_am`` and ``a_bw`` are subject-specific and slowly time-varying.  Added
are a slow electrode drift, white electrode noise, motion-artifact bursts (Hann-windowed 3 Hz
low-pass noise lasting 1-6 s) and 60 Hz mains hum of slowly varying amplitude.

PPG (Pleth).  Each beat launches a pulse (systolic and diastolic Gaussians, delays scaled by
sqrt(RR)) after a pulse transit time of 0.18-0.30 s that shortens slightly with inspiration, so
the frequency modulation is the ECG's.  Pulse amplitude is scaled by
``1 - a_pam(t) * sat(r)`` with the saturating ``sat(r) = 1.4 * r / (0.4 + |r|)``; the baseline
(intensity variation) is ``a_iv(t) * r(t - lag)``.  Added are 0.1 Hz vasomotor (Mayer) waves,
white noise and motion artifacts at the same moments as the ECG's (movement affects both).

Nasal pressure (Flow).  Airflow is the time derivative of the volume (mean depth 0.5 L); the
cannula pressure is ``k * sign(flow) * flow**2`` (inspiration positive) plus a slow offset
drift and white noise.

Thoracic belt (Thor).  The volume delayed by 0.1-0.5 s, times a gain that drifts slowly
(about +-20 %), plus slow baseline drift and white noise.

``noise_scale`` multiplies every noise, drift and artifact amplitude.  The module doubles as
a command line tool::

    python -m datasets.synthetic_psg --subjects 8 --minutes 10 --seed 0 --out DIR --jobs 2
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pyedflib
from joblib import Parallel, delayed
from scipy.interpolate import CubicSpline
from scipy.signal import butter, sosfiltfilt
from tqdm import tqdm

__all__ = [
    "CHANNEL_RATES",
    "TRUTH_RATE",
    "CohortConfig",
    "edf_path",
    "main",
    "simulate_subject",
    "truth_path",
    "write_cohort",
]

#: Bumped whenever the model changes its output, so that stale files are not reused.
MODEL_VERSION = 1
#: EDF label -> sampling rate in Hz, as in MESA.
CHANNEL_RATES: dict[str, int] = {"EKG": 256, "Pleth": 256, "Flow": 32, "Thor": 32}
#: Sampling rate of the arrays in the truth files.
TRUTH_RATE = 32
_CARDIAC_RATE = 256
_RESP_RATE = 32
_CONTROL_RATE = 4.0
#: Extra seconds simulated before and after the recording so that edges look like the middle.
_PAD_S = 30.0
_EDF_INFO = {
    "EKG": ("mV", "ECG electrodes"),
    "Pleth": ("", "Pulse oximeter"),
    "Flow": ("cmH2O", "Nasal pressure cannula"),
    "Thor": ("", "Inductance belt"),
}
_START = datetime.datetime(2000, 1, 1, 22, 0, 0)

Slow = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CohortConfig:
    """Parameters of a synthetic MESA-like cohort.

    Parameters
    ----------
    subjects : int
        Number of subjects (recordings), at most 9999.
    minutes : float
        Length of every recording in minutes; rounded to whole seconds.
    seed : int
        Seed of the root ``np.random.SeedSequence``.
    apnea_per_hour : tuple of float
        Range from which each subject's apnea/hypopnea rate (events per hour) is drawn.
    noise_scale : float
        Multiplier of all noise, drift and artifact amplitudes (0 gives clean signals).
    """

    subjects: int = 8
    minutes: float = 10.0
    seed: int = 0
    apnea_per_hour: tuple[float, float] = (0.0, 20.0)
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "apnea_per_hour", tuple(float(v) for v in self.apnea_per_hour))
        if not 1 <= self.subjects <= 9999:
            raise ValueError(f"subjects must lie in 1..9999, got {self.subjects}")
        if not math.isfinite(self.minutes) or round(self.minutes * 60) < 1:
            raise ValueError(f"minutes must be at least 1/60 (one second), got {self.minutes}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        rates = self.apnea_per_hour
        if len(rates) != 2 or not 0 <= rates[0] <= rates[1]:
            raise ValueError(
                f"apnea_per_hour must be (low, high) with 0 <= low <= high, got "
                f"{self.apnea_per_hour}"
            )
        if not self.noise_scale >= 0:
            raise ValueError(f"noise_scale must be non-negative, got {self.noise_scale}")

    @property
    def seconds(self) -> int:
        """Length of every recording in whole seconds."""
        return int(round(self.minutes * 60))

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a JSON-friendly dictionary.

        Returns
        -------
        dict
            Field name to value (tuples become lists).
        """
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CohortConfig:
        """Build a configuration from :meth:`to_dict` output, ignoring unknown keys.

        Parameters
        ----------
        data : dict
            Field name to value.

        Returns
        -------
        CohortConfig
            The configuration.
        """
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    def key(self) -> str:
        """Return a short, stable hash of the configuration and the model version.

        Returns
        -------
        str
            First 16 hex digits of the SHA-256 of the sorted JSON of the fields.
        """
        return _hash({**self.to_dict(), "version": MODEL_VERSION})

    def subject_key(self) -> str:
        """Hash of everything a single subject depends on (all fields but ``subjects``).

        Returns
        -------
        str
            First 16 hex digits of a SHA-256.
        """
        data = self.to_dict()
        data.pop("subjects")
        return _hash({**data, "version": MODEL_VERSION})


def _hash(data: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def edf_path(out_dir: str | Path, index: int) -> Path:
    """Path of the EDF file of subject ``index`` (0-based; file numbers start at 0001).

    Parameters
    ----------
    out_dir : str or Path
        Cohort folder.
    index : int
        Subject index.

    Returns
    -------
    Path
        ``out_dir/polysomnography/edfs/mesa-sleep-NNNN.edf``.
    """
    return Path(out_dir) / "polysomnography" / "edfs" / f"mesa-sleep-{index + 1:04d}.edf"


def truth_path(out_dir: str | Path, index: int) -> Path:
    """Path of the true-respiration file of subject ``index`` (0-based).

    Parameters
    ----------
    out_dir : str or Path
        Cohort folder.
    index : int
        Subject index.

    Returns
    -------
    Path
        ``out_dir/polysomnography/truth/mesa-sleep-NNNN-resp.npz``.
    """
    return Path(out_dir) / "polysomnography" / "truth" / f"mesa-sleep-{index + 1:04d}-resp.npz"


# --------------------------------------------------------------------------- random helpers


def _slow_process(rng: np.random.Generator, start: float, stop: float, timescale: float) -> Slow:
    """Smooth zero-mean process of roughly unit variance: a spline through normal knots."""
    knots = np.arange(start - 2 * timescale, stop + 3 * timescale, timescale)
    return CubicSpline(knots, rng.standard_normal(knots.size))


def _strength(
    rng: np.random.Generator,
    base: float,
    span: tuple[float, float],
    timescale: float,
    spread: float = 0.4,
) -> Slow:
    """Slowly time-varying positive strength ``base * (1 + spread * tanh(slow process))``."""
    process = _slow_process(rng, *span, timescale)
    return lambda t: base * (1.0 + spread * np.tanh(process(t)))


def _lowpass_noise(rng: np.random.Generator, n: int, fs: float, cutoff: float) -> np.ndarray:
    """Unit-variance Gaussian noise low-pass filtered at ``cutoff`` Hz."""
    sos = butter(2, cutoff, fs=fs, output="sos")
    noise = sosfiltfilt(sos, rng.standard_normal(n + int(4 * fs)))[int(2 * fs) : int(2 * fs) + n]
    return noise / max(float(noise.std()), 1e-12)


def _events(
    rng: np.random.Generator,
    per_second: float,
    start: float,
    stop: float,
    duration: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson event onsets in [start, stop) and their uniform durations."""
    count = rng.poisson(per_second * (stop - start))
    onsets = np.sort(rng.uniform(start, stop, count))
    return onsets, rng.uniform(*duration, count)


def _burst_envelope(t: np.ndarray, onsets: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Sum of Hann windows, one per event, on the time grid ``t``."""
    envelope = np.zeros_like(t)
    dt = t[1] - t[0]
    for onset, length in zip(onsets, durations, strict=True):
        lo = max(int(np.ceil((onset - t[0]) / dt)), 0)
        hi = min(int((onset + length - t[0]) / dt) + 1, t.size)
        if hi > lo:
            envelope[lo:hi] += np.sin(np.pi * (t[lo:hi] - onset) / length) ** 2
    return envelope


def _gaussians(
    n: int, fs: float, centers: np.ndarray, widths: np.ndarray, amplitudes: np.ndarray
) -> np.ndarray:
    """Sum of Gaussian bumps on a grid of ``n`` samples at ``fs`` Hz starting at time 0.

    Each bump is evaluated over +-4 widths around its centre and all are added with one
    ``np.bincount``, so the cost is linear in the number of bumps.
    """
    half = int(np.ceil(4 * widths.max() * fs))
    index = np.rint(centers * fs).astype(np.int64)[:, None] + np.arange(-half, half + 1)
    z = (index / fs - centers[:, None]) / widths[:, None]
    values = amplitudes[:, None] * np.exp(-0.5 * z * z)
    inside = (index >= 0) & (index < n)
    return np.bincount(index[inside], weights=values[inside], minlength=n)


# --------------------------------------------------------------------------- respiration


@dataclass(frozen=True)
class _Breathing:
    """Breath-by-breath respiration: boundaries, depths, inspiratory fractions, events."""

    boundaries: np.ndarray
    depths: np.ndarray
    insp_fractions: np.ndarray
    control_t: np.ndarray
    envelope_c: np.ndarray
    apnea_c: np.ndarray

    def _breath(self, t: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.boundaries, t, side="right") - 1
        return np.clip(index, 0, self.depths.size - 1)

    def volume(self, t: np.ndarray) -> np.ndarray:
        """Lung-volume-like signal (0 at end-expiration, about 1 at mean depth)."""
        k = self._breath(t)
        duration = self.boundaries[k + 1] - self.boundaries[k]
        phase = np.clip((t - self.boundaries[k]) / duration, 0.0, 1.0)
        shape = _breath_shape(phase, self.insp_fractions[k])
        return shape * self.depths[k] * np.interp(t, self.control_t, self.envelope_c)

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Instantaneous breathing rate, 60 / duration of the breath containing ``t``."""
        k = self._breath(t)
        return 60.0 / (self.boundaries[k + 1] - self.boundaries[k])

    def apnea(self, t: np.ndarray) -> np.ndarray:
        """Whether ``t`` lies inside an apnea/hypopnea event."""
        return np.interp(t, self.control_t, self.apnea_c) > 0.5


def _breath_shape(phase: np.ndarray, insp: np.ndarray) -> np.ndarray:
    """Volume within one breath: raised-cosine inspiration, faster-then-slower expiration."""
    inhale = 0.5 * (1.0 - np.cos(np.pi * np.clip(phase / insp, 0.0, 1.0)))
    x = np.clip((phase - insp) / (1.0 - insp), 0.0, 1.0) ** 0.75
    exhale = 0.5 * (1.0 + np.cos(np.pi * x))
    return np.where(phase < insp, inhale, exhale)


def _breath_boundaries(
    rng: np.random.Generator, start: float, stop: float, mean_rate: float, duration_cv: float
) -> np.ndarray:
    """Breath boundaries covering [start, stop] from a drifting rate with jittered durations."""
    drift = _slow_process(rng, start, stop, 120.0)
    grid = np.arange(start, stop + 0.2 * (stop - start) + 120.0, 1.0 / _CONTROL_RATE)
    rate = np.clip(mean_rate * np.exp(0.12 * drift(grid)), 6.0, 30.0)
    cycles = np.concatenate([[0.0], np.cumsum(rate[:-1] / 60.0 / _CONTROL_RATE)])
    nominal = np.interp(np.arange(math.floor(cycles[-1]) + 1), cycles, grid)
    durations = np.diff(nominal) * np.exp(duration_cv * rng.standard_normal(nominal.size - 1))
    durations = np.clip(durations, 2.0, 10.0)
    boundaries = (
        start - rng.uniform(0.0, durations[0]) + np.concatenate([[0.0], np.cumsum(durations)])
    )
    if boundaries[-1] <= stop:  # jitter made the breaths too short overall: extend regularly
        extra = np.arange(1, math.ceil((stop - boundaries[-1]) / durations[-1]) + 2)
        boundaries = np.concatenate([boundaries, boundaries[-1] + extra * durations[-1]])
    last = np.searchsorted(boundaries, stop, side="right")
    return boundaries[: last + 1]


def _apnea_profile(
    rng: np.random.Generator, grid: np.ndarray, per_hour: float
) -> tuple[np.ndarray, np.ndarray]:
    """Volume envelope (down to 0-30 % in events) and event indicator on the control grid."""
    onsets, durations = _events(rng, per_hour / 3600.0, grid[0], grid[-1], (10.0, 40.0))
    residual = rng.uniform(0.0, 0.3, onsets.size)
    envelope = np.ones_like(grid)
    inside = np.zeros_like(grid)
    ramp = 3.0
    for onset, length, level in zip(onsets, durations, residual, strict=True):
        rise = np.minimum(grid - onset, onset + length - grid) / ramp
        trapezoid = np.clip(rise, 0.0, 1.0)
        envelope *= 1.0 - (1.0 - level) * trapezoid
        inside[(grid >= onset) & (grid < onset + length)] = 1.0
    return envelope, inside


def _simulate_breathing(
    rng: np.random.Generator, start: float, stop: float, per_hour: float
) -> tuple[_Breathing, dict[str, float]]:
    """Draw a subject's breathing pattern."""
    params = {
        "resp_rate_mean": rng.uniform(8.0, 24.0),
        "breath_duration_cv": rng.uniform(0.04, 0.12),
        "breath_depth_cv": rng.uniform(0.05, 0.20),
        "insp_fraction": rng.uniform(0.35, 0.45),
        "apnea_per_hour": per_hour,
    }
    boundaries = _breath_boundaries(
        rng, start, stop, params["resp_rate_mean"], params["breath_duration_cv"]
    )
    n = boundaries.size - 1
    depths = np.exp(params["breath_depth_cv"] * rng.standard_normal(n))
    insp = np.clip(params["insp_fraction"] + 0.03 * rng.standard_normal(n), 0.3, 0.5)
    control = np.arange(start, stop + 1.0 / _CONTROL_RATE, 1.0 / _CONTROL_RATE)
    envelope, inside = _apnea_profile(rng, control, per_hour)
    return _Breathing(boundaries, depths, insp, control, envelope, inside), params


# --------------------------------------------------------------------------- cardiac


def _beat_times(
    rng: np.random.Generator, breathing: _Breathing, span: tuple[float, float]
) -> tuple[np.ndarray, dict[str, float]]:
    """Beat times by integral pulse frequency modulation with non-linear RSA."""
    params = {
        "heart_rate_mean": rng.uniform(50.0, 90.0),
        "rsa_strength": rng.uniform(0.02, 0.10),
        "rsa_lag_s": rng.uniform(0.0, 0.8),
    }
    rsa = _strength(rng, params["rsa_strength"], span, 150.0)
    drift = _slow_process(rng, *span, 180.0)
    t = np.arange(span[0], span[1], 1.0 / _CARDIAC_RATE)
    r = breathing.volume(t - params["rsa_lag_s"])
    heart_rate = params["heart_rate_mean"] * np.exp(0.04 * drift(t))
    heart_rate = heart_rate * (1.0 + rsa(t) * np.tanh(2.0 * (r - 0.5)))
    cycles = np.cumsum(heart_rate / 60.0 / _CARDIAC_RATE)
    targets = np.arange(math.ceil(cycles[0]), math.floor(cycles[-1])) + rng.uniform()
    beats = np.interp(targets, cycles, t) + 0.004 * rng.standard_normal(targets.size)
    return np.sort(beats), params


def _rr_intervals(beats: np.ndarray) -> np.ndarray:
    """RR interval preceding each beat (the first beat reuses the next interval)."""
    rr = np.diff(beats)
    return np.concatenate([rr[:1], rr])


def _artifacts(
    rng: np.random.Generator,
    n: int,
    fs: float,
    onsets: np.ndarray,
    durations: np.ndarray,
    amplitude: float,
) -> np.ndarray:
    """Motion-artifact bursts: low-pass noise under Hann windows at the given events."""
    if onsets.size == 0:
        return np.zeros(n)
    t = np.arange(n) / fs
    return amplitude * _lowpass_noise(rng, n, fs, 3.0) * _burst_envelope(t, onsets, durations)


def _ecg(
    rng: np.random.Generator,
    n: int,
    breathing: _Breathing,
    beats: np.ndarray,
    span: tuple[float, float],
    motion: tuple[np.ndarray, np.ndarray],
    noise: float,
) -> tuple[np.ndarray, dict[str, float]]:
    """ECG in mV on ``n`` samples at 256 Hz."""
    params = {
        "ecg_gain_mv": rng.uniform(0.6, 1.8),
        "qrs_am_strength": rng.uniform(0.03, 0.20),
        "baseline_wander_mv": rng.uniform(0.02, 0.25),
        "baseline_quadratic": rng.uniform(0.5, 2.0),
        "ecg_noise_mv": rng.uniform(0.005, 0.03),
        "mains_mv": rng.uniform(0.002, 0.03),
    }
    fs = _CARDIAC_RATE
    t = np.arange(n) / fs
    am = _strength(rng, params["qrs_am_strength"], span, 180.0)
    bw = _strength(rng, params["baseline_wander_mv"], span, 180.0)
    mains = _strength(rng, params["mains_mv"], span, 120.0, spread=0.3)
    morphology = rng.uniform(0.7, 1.3, 5)
    r_beat = breathing.volume(beats)
    m = 1.0 + am(beats) * np.tanh(3.0 * (r_beat - 0.5))
    stretch = np.sqrt(np.clip(_rr_intervals(beats), 0.3, 2.0))
    # P, Q, R, S, T: delay from R (s), width (s), amplitude (relative to R), per-beat factor
    waves = [
        (-0.17 * stretch, 0.022, 0.12, 1.0),
        (np.full_like(beats, -0.028), 0.009, -0.10, 1.0),
        (np.zeros_like(beats), 0.011, 1.0, m),
        (np.full_like(beats, 0.028), 0.010, -0.22, 2.0 - m),
        (0.26 * stretch, 0.045, 0.28, 1.0 + 0.5 * (m - 1.0)),
    ]
    ecg = np.zeros(n)
    for (delay, width, amp, factor), shape in zip(waves, morphology, strict=True):
        amplitudes = params["ecg_gain_mv"] * amp * shape * np.broadcast_to(factor, beats.shape)
        ecg += _gaussians(n, fs, beats + delay, np.full_like(beats, width), amplitudes)
    r = breathing.volume(t)
    ecg += bw(t) * (r + params["baseline_quadratic"] * r * r)
    ecg += noise * 0.05 * _slow_process(rng, *span, 20.0)(t)
    ecg += noise * params["ecg_noise_mv"] * rng.standard_normal(n)
    ecg += _artifacts(rng, n, fs, *motion, noise * rng.uniform(0.3, 1.5))
    ecg += noise * mains(t) * np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 2 * np.pi))
    return ecg, params


def _ppg(
    rng: np.random.Generator,
    n: int,
    breathing: _Breathing,
    beats: np.ndarray,
    span: tuple[float, float],
    motion: tuple[np.ndarray, np.ndarray],
    noise: float,
) -> tuple[np.ndarray, dict[str, float]]:
    """PPG in arbitrary units on ``n`` samples at 256 Hz."""
    params = {
        "pulse_transit_s": rng.uniform(0.18, 0.30),
        "pulse_am_strength": rng.uniform(0.05, 0.30),
        "intensity_strength": rng.uniform(0.05, 0.40),
        "intensity_lag_s": rng.uniform(0.2, 1.0),
        "diastolic_ratio": rng.uniform(0.3, 0.6),
        "vasomotor": rng.uniform(0.02, 0.15),
        "ppg_noise": rng.uniform(0.005, 0.03),
    }
    fs = _CARDIAC_RATE
    t = np.arange(n) / fs
    pam = _strength(rng, params["pulse_am_strength"], span, 180.0)
    riiv = _strength(rng, params["intensity_strength"], span, 180.0)
    r_beat = breathing.volume(beats)
    feet = beats + params["pulse_transit_s"] - 0.01 * (r_beat - 0.5)
    stretch = np.sqrt(np.clip(_rr_intervals(beats), 0.3, 2.0))
    amplitude = 1.0 - pam(beats) * 1.4 * r_beat / (0.4 + np.abs(r_beat))
    ppg = _gaussians(n, fs, feet + 0.14 * stretch, np.full_like(beats, 0.06), amplitude)
    ppg += _gaussians(
        n,
        fs,
        feet + 0.36 * stretch,
        np.full_like(beats, 0.09),
        params["diastolic_ratio"] * amplitude,
    )
    ppg += riiv(t) * breathing.volume(t - params["intensity_lag_s"])
    mayer = params["vasomotor"] * (1.0 + 0.3 * np.tanh(_slow_process(rng, *span, 60.0)(t)))
    ppg += noise * mayer * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 2 * np.pi))
    ppg += noise * params["ppg_noise"] * rng.standard_normal(n)
    ppg += _artifacts(rng, n, fs, *motion, noise * rng.uniform(0.5, 2.0))
    return ppg, params


# --------------------------------------------------------------------------- respiratory channels


def _nasal_pressure(
    rng: np.random.Generator, volume: np.ndarray, span: tuple[float, float], noise: float
) -> tuple[np.ndarray, dict[str, float]]:
    """Cannula pressure (cmH2O) ~ k * sign(flow) * flow**2 from the 32 Hz volume."""
    params = {"pressure_gain": rng.uniform(2.0, 6.0), "pressure_noise": rng.uniform(0.005, 0.03)}
    t = np.arange(volume.size) / _RESP_RATE
    flow = np.gradient(0.5 * volume, 1.0 / _RESP_RATE)
    pressure = params["pressure_gain"] * np.sign(flow) * flow * flow
    pressure += noise * 0.02 * _slow_process(rng, *span, 60.0)(t)
    pressure += noise * params["pressure_noise"] * rng.standard_normal(volume.size)
    return pressure, params


def _thoracic(
    rng: np.random.Generator,
    breathing: _Breathing,
    n: int,
    span: tuple[float, float],
    noise: float,
) -> tuple[np.ndarray, dict[str, float]]:
    """Inductance belt: delayed volume with drifting gain, baseline drift and noise."""
    params = {
        "thor_lag_s": rng.uniform(0.1, 0.5),
        "thor_gain": rng.uniform(0.5, 2.0),
        "thor_noise": rng.uniform(0.01, 0.04),
    }
    t = np.arange(n) / _RESP_RATE
    gain = params["thor_gain"] * np.exp(0.2 * np.tanh(_slow_process(rng, *span, 200.0)(t)))
    belt = gain * breathing.volume(t - params["thor_lag_s"])
    belt += noise * 0.1 * _slow_process(rng, *span, 90.0)(t)
    belt += noise * params["thor_noise"] * rng.standard_normal(n)
    return belt, params


# --------------------------------------------------------------------------- subject


def _subject_rng(index: int, config: CohortConfig) -> np.random.Generator:
    """Generator of subject ``index``; depends only on the seed and the index."""
    return np.random.default_rng(np.random.SeedSequence(config.seed).spawn(index + 1)[index])


def simulate_subject(index: int, config: CohortConfig) -> dict[str, object]:
    """Simulate the recordings and the true respiration of one subject.

    Parameters
    ----------
    index : int
        0-based subject index (file number ``index + 1``).
    config : CohortConfig
        Cohort parameters; ``subjects`` does not influence a subject's signals.

    Returns
    -------
    dict
        ``"signals"``: EDF label -> float64 array (EKG, Pleth, Flow, Thor); ``"rates"``: EDF
        label -> sampling rate in Hz; ``"truth"``: the arrays of the truth file (see the module
        docstring); ``"params"``: the subject's drawn scalar parameters.
    """
    if not 0 <= index < config.subjects:
        raise ValueError(f"index must lie in 0..{config.subjects - 1}, got {index}")
    rng = _subject_rng(index, config)
    seconds = config.seconds
    span = (-_PAD_S, seconds + _PAD_S)
    noise = config.noise_scale
    per_hour = rng.uniform(*config.apnea_per_hour)
    breathing, params = _simulate_breathing(rng, *span, per_hour)
    beats, cardiac = _beat_times(rng, breathing, span)
    motion = _events(rng, rng.uniform(0.05, 0.4) / 60.0, 0.0, seconds, (1.0, 6.0))
    n_cardiac = seconds * _CARDIAC_RATE
    ecg, ecg_params = _ecg(rng, n_cardiac, breathing, beats, span, motion, noise)
    ppg, ppg_params = _ppg(rng, n_cardiac, breathing, beats, span, motion, noise)
    t_resp = np.arange(seconds * _RESP_RATE) / _RESP_RATE
    volume = breathing.volume(t_resp)
    pressure, pressure_params = _nasal_pressure(rng, volume, span, noise)
    belt, belt_params = _thoracic(rng, breathing, t_resp.size, span, noise)
    onsets = breathing.boundaries[(breathing.boundaries >= 0) & (breathing.boundaries < seconds)]
    truth = {
        "respiration": volume.astype(np.float32),
        "rate": breathing.rate(t_resp).astype(np.float32),
        "apnea": breathing.apnea(t_resp),
        "breath_onsets": onsets,
        "beat_times": beats[(beats >= 0) & (beats < seconds)],
        "sampling_rate": np.float64(TRUTH_RATE),
    }
    params.update(cardiac, **ecg_params, **ppg_params, **pressure_params, **belt_params)
    params["motion_events"] = int(motion[0].size)
    return {
        "signals": {"EKG": ecg, "Pleth": ppg, "Flow": pressure, "Thor": belt},
        "rates": dict(CHANNEL_RATES),
        "truth": truth,
        "params": params,
    }


# --------------------------------------------------------------------------- writing


def _edf_limits(x: np.ndarray, margin: float = 0.05) -> tuple[float, float]:
    """Physical minimum and maximum around ``x`` that fit the 8 characters of an EDF header."""
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = margin * (hi - lo) if hi > lo else max(1e-3, 1e-3 * abs(lo))
    lo, hi = lo - pad, hi + pad
    for decimals in range(6, -1, -1):
        scale = 10.0**decimals
        lo_text = f"{math.floor(lo * scale) / scale:.{decimals}f}"
        hi_text = f"{math.ceil(hi * scale) / scale:.{decimals}f}"
        if len(lo_text) <= 8 and len(hi_text) <= 8 and float(lo_text) < float(hi_text):
            return float(lo_text), float(hi_text)
    raise ValueError(f"signal range {lo}..{hi} does not fit an EDF header")


def _channel_header(label: str, data: np.ndarray) -> dict[str, object]:
    dimension, transducer = _EDF_INFO[label]
    low, high = _edf_limits(data)
    return {
        "label": label,
        "dimension": dimension,
        "sample_frequency": CHANNEL_RATES[label],
        "physical_min": low,
        "physical_max": high,
        "digital_min": -32768,
        "digital_max": 32767,
        "transducer": transducer,
        "prefilter": "",
    }


def _publish(tmp_name: str, path: Path) -> None:
    """Give a finished temporary file the usual permissions and rename it to ``path``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    os.replace(tmp_name, path)


def _write_edf(signals: dict[str, np.ndarray], path: Path, patient: str) -> None:
    """Write the channels to an EDF+ file atomically (temporary sibling, then rename)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = pyedflib.EdfWriter(tmp_name, len(signals), file_type=pyedflib.FILETYPE_EDFPLUS)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                writer.setSignalHeaders([_channel_header(k, v) for k, v in signals.items()])
            writer.setPatientCode(patient)
            writer.setEquipment("bss-bench_synthetic_psg")
            writer.setStartdatetime(_START)
            writer.writeSamples(
                [np.ascontiguousarray(v, dtype=np.float64) for v in signals.values()]
            )
        finally:
            writer.close()
        _publish(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Write ``arrays`` to a compressed .npz atomically."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        _publish(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_text(text: str, path: Path) -> None:
    """Write a text file atomically."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        _publish(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_subject(index: int, config: CohortConfig, out_dir: Path) -> Path:
    """Simulate subject ``index`` and write its truth file and then its EDF file."""
    subject = simulate_subject(index, config)
    _write_npz(subject["truth"], truth_path(out_dir, index))
    path = edf_path(out_dir, index)
    _write_edf(subject["signals"], path, patient=path.stem)
    return path


def _check_cohort_file(config: CohortConfig, out_dir: Path) -> None:
    """Refuse to mix cohorts: an existing cohort.json must describe the same subjects."""
    marker = out_dir / "cohort.json"
    if not marker.exists():
        return
    try:
        stored = CohortConfig.from_dict(json.loads(marker.read_text())["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{marker}: unreadable cohort description ({err})") from err
    if stored.subject_key() != config.subject_key():
        raise ValueError(
            f"{out_dir} already holds a cohort with another configuration "
            f"({marker}); use an empty folder"
        )


def write_cohort(
    config: CohortConfig, out_dir: str | Path, n_jobs: int = 1, progress: bool = True
) -> list[Path]:
    """Write a synthetic cohort in the MESA layout.

    Subjects whose EDF and truth files both exist are skipped, provided ``out_dir/cohort.json``
    records a configuration that yields the same subjects (only ``subjects`` may differ, and
    files of further subjects are left in place); every file is written atomically, so an
    interrupted run can simply be repeated.

    Parameters
    ----------
    config : CohortConfig
        Cohort parameters.
    out_dir : str or Path
        Cohort folder; created if missing.
    n_jobs : int
        Number of joblib worker processes.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of Path
        EDF paths of all ``config.subjects`` subjects, in order.

    Raises
    ------
    ValueError
        If ``out_dir`` already holds a cohort made with another configuration.
    """
    out_dir = Path(out_dir)
    edf_path(out_dir, 0).parent.mkdir(parents=True, exist_ok=True)
    truth_path(out_dir, 0).parent.mkdir(parents=True, exist_ok=True)
    _check_cohort_file(config, out_dir)
    description = {
        "config": config.to_dict(),
        "key": config.key(),
        "model_version": MODEL_VERSION,
        "channels": CHANNEL_RATES,
        "truth_rate": TRUTH_RATE,
    }
    _write_text(json.dumps(description, indent=2, sort_keys=True), out_dir / "cohort.json")
    todo = [
        i
        for i in range(config.subjects)
        if not (edf_path(out_dir, i).exists() and truth_path(out_dir, i).exists())
    ]
    tasks = (delayed(_write_subject)(i, config, out_dir) for i in todo)
    results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    for _ in tqdm(results, total=len(todo), desc="subjects", disable=not progress):
        pass
    return [edf_path(out_dir, i) for i in range(config.subjects)]


# --------------------------------------------------------------------------- command line


class _UsageError(Exception):
    """Command line error, reported on one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m datasets.synthetic_psg",
        description="Write a synthetic MESA-like PSG cohort (EDF files plus true respiration).",
    )
    parser.add_argument("--subjects", type=int, default=8, help="number of subjects (default 8)")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes per recording")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--jobs", type=int, default=1, help="parallel workers (default 1)")
    parser.add_argument("--noise-scale", type=float, default=1.0, help="noise multiplier")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see ``python -m datasets.synthetic_psg --help``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on error (reported as one line on stderr).
    """
    try:
        args = _parse(argv)
        if args.jobs == 0:
            raise _UsageError("--jobs must not be 0")
        config = CohortConfig(
            subjects=args.subjects,
            minutes=args.minutes,
            seed=args.seed,
            noise_scale=args.noise_scale,
        )
        if args.out.exists() and not args.out.is_dir():
            raise _UsageError(f"--out is not a folder: {args.out}")
        paths = write_cohort(config, args.out, n_jobs=args.jobs, progress=not args.quiet)
    except (_UsageError, ValueError, OSError) as err:
        print(f"synthetic_psg: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} recordings to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
