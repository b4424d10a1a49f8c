"""Physiological model of the synthetic MESA-like cohort: the pieces a subject is built from.

One job: the building blocks (slow processes, breathing, beats, ECG, PPG, nasal pressure,
thoracic belt, the truth arrays) that :mod:`datasets.synthetic_psg.subject` assembles into the
``difficulty="easy"`` subject and :mod:`datasets.synthetic_psg.realistic` into the default
``"realistic"`` one; writing files is :mod:`datasets.synthetic_psg.edf`'s job.  This docstring
describes the easy model; the realistic one adds irregularities to its pieces.

The true respiration (``"truth"``, written by :mod:`datasets.synthetic_psg.edf` as the truth file of
plain arrays, no pickles) holds, at ``sampling_rate`` = 32 Hz from the start of the recording:
``respiration`` (the lung-volume signal below, about 0 at end-expiration and 1
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

``noise_scale`` multiplies every noise, drift and artifact amplitude.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.signal import butter, sosfiltfilt

from datasets.synthetic_psg.config import CHANNEL_RATES, TRUTH_RATE, CohortConfig

__all__ = [
    "Breathing",
    "CARDIAC_RATE",
    "CONTROL_RATE",
    "PAD_S",
    "RESP_RATE",
    "Slow",
    "breath_shape",
    "burst_envelope",
    "draw_beat_times",
    "draw_events",
    "gaussians",
    "lowpass_noise",
    "package_subject",
    "simulate_breathing",
    "simulate_ecg",
    "simulate_nasal_pressure",
    "simulate_ppg",
    "simulate_thoracic",
    "slow_process",
    "slow_strength",
    "subject_rng",
]

CARDIAC_RATE = 256
RESP_RATE = 32
CONTROL_RATE = 4.0
#: Extra seconds simulated before and after the recording so that edges look like the middle.
PAD_S = 30.0

Slow = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- random helpers


def slow_process(rng: np.random.Generator, start: float, stop: float, timescale: float) -> Slow:
    """Smooth zero-mean process of roughly unit variance: a spline through normal knots."""
    knots = np.arange(start - 2 * timescale, stop + 3 * timescale, timescale)
    return CubicSpline(knots, rng.standard_normal(knots.size))


def slow_strength(
    rng: np.random.Generator,
    base: float,
    span: tuple[float, float],
    timescale: float,
    spread: float = 0.4,
) -> Slow:
    """Slowly time-varying positive strength ``base * (1 + spread * tanh(slow process))``."""
    process = slow_process(rng, *span, timescale)
    return lambda t: base * (1.0 + spread * np.tanh(process(t)))


def lowpass_noise(rng: np.random.Generator, n: int, fs: float, cutoff: float) -> np.ndarray:
    """Unit-variance Gaussian noise low-pass filtered at ``cutoff`` Hz."""
    sos = butter(2, cutoff, fs=fs, output="sos")
    noise = sosfiltfilt(sos, rng.standard_normal(n + int(4 * fs)))[int(2 * fs) : int(2 * fs) + n]
    return noise / max(float(noise.std()), 1e-12)


def draw_events(
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


def burst_envelope(t: np.ndarray, onsets: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Sum of Hann windows, one per event, on the time grid ``t``."""
    envelope = np.zeros_like(t)
    dt = t[1] - t[0]
    for onset, length in zip(onsets, durations, strict=True):
        lo = max(int(np.ceil((onset - t[0]) / dt)), 0)
        hi = min(int((onset + length - t[0]) / dt) + 1, t.size)
        if hi > lo:
            envelope[lo:hi] += np.sin(np.pi * (t[lo:hi] - onset) / length) ** 2
    return envelope


def gaussians(
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
class Breathing:
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
        shape = breath_shape(phase, self.insp_fractions[k])
        return shape * self.depths[k] * np.interp(t, self.control_t, self.envelope_c)

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Instantaneous breathing rate, 60 / duration of the breath containing ``t``."""
        k = self._breath(t)
        return 60.0 / (self.boundaries[k + 1] - self.boundaries[k])

    def apnea(self, t: np.ndarray) -> np.ndarray:
        """Whether ``t`` lies inside an apnea/hypopnea event."""
        return np.interp(t, self.control_t, self.apnea_c) > 0.5


def breath_shape(phase: np.ndarray, insp: np.ndarray) -> np.ndarray:
    """Volume within one breath: raised-cosine inspiration, faster-then-slower expiration."""
    inhale = 0.5 * (1.0 - np.cos(np.pi * np.clip(phase / insp, 0.0, 1.0)))
    x = np.clip((phase - insp) / (1.0 - insp), 0.0, 1.0) ** 0.75
    exhale = 0.5 * (1.0 + np.cos(np.pi * x))
    return np.where(phase < insp, inhale, exhale)


def _breath_boundaries(
    rng: np.random.Generator, start: float, stop: float, mean_rate: float, duration_cv: float
) -> np.ndarray:
    """Breath boundaries covering [start, stop] from a drifting rate with jittered durations."""
    drift = slow_process(rng, start, stop, 120.0)
    grid = np.arange(start, stop + 0.2 * (stop - start) + 120.0, 1.0 / CONTROL_RATE)
    rate = np.clip(mean_rate * np.exp(0.12 * drift(grid)), 6.0, 30.0)
    cycles = np.concatenate([[0.0], np.cumsum(rate[:-1] / 60.0 / CONTROL_RATE)])
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
    onsets, durations = draw_events(rng, per_hour / 3600.0, grid[0], grid[-1], (10.0, 40.0))
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


def simulate_breathing(
    rng: np.random.Generator, start: float, stop: float, per_hour: float
) -> tuple[Breathing, dict[str, float]]:
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
    control = np.arange(start, stop + 1.0 / CONTROL_RATE, 1.0 / CONTROL_RATE)
    envelope, inside = _apnea_profile(rng, control, per_hour)
    return Breathing(boundaries, depths, insp, control, envelope, inside), params


# --------------------------------------------------------------------------- cardiac


def draw_beat_times(
    rng: np.random.Generator, breathing: Breathing, span: tuple[float, float]
) -> tuple[np.ndarray, dict[str, float]]:
    """Beat times by integral pulse frequency modulation with non-linear RSA."""
    params = {
        "heart_rate_mean": rng.uniform(50.0, 90.0),
        "rsa_strength": rng.uniform(0.02, 0.10),
        "rsa_lag_s": rng.uniform(0.0, 0.8),
    }
    rsa = slow_strength(rng, params["rsa_strength"], span, 150.0)
    drift = slow_process(rng, *span, 180.0)
    t = np.arange(span[0], span[1], 1.0 / CARDIAC_RATE)
    r = breathing.volume(t - params["rsa_lag_s"])
    heart_rate = params["heart_rate_mean"] * np.exp(0.04 * drift(t))
    heart_rate = heart_rate * (1.0 + rsa(t) * np.tanh(2.0 * (r - 0.5)))
    cycles = np.cumsum(heart_rate / 60.0 / CARDIAC_RATE)
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
    return amplitude * lowpass_noise(rng, n, fs, 3.0) * burst_envelope(t, onsets, durations)


def simulate_ecg(
    rng: np.random.Generator,
    n: int,
    breathing: Breathing,
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
    fs = CARDIAC_RATE
    t = np.arange(n) / fs
    am = slow_strength(rng, params["qrs_am_strength"], span, 180.0)
    bw = slow_strength(rng, params["baseline_wander_mv"], span, 180.0)
    mains = slow_strength(rng, params["mains_mv"], span, 120.0, spread=0.3)
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
        ecg += gaussians(n, fs, beats + delay, np.full_like(beats, width), amplitudes)
    r = breathing.volume(t)
    ecg += bw(t) * (r + params["baseline_quadratic"] * r * r)
    ecg += noise * 0.05 * slow_process(rng, *span, 20.0)(t)
    ecg += noise * params["ecg_noise_mv"] * rng.standard_normal(n)
    ecg += _artifacts(rng, n, fs, *motion, noise * rng.uniform(0.3, 1.5))
    ecg += noise * mains(t) * np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 2 * np.pi))
    return ecg, params


def simulate_ppg(
    rng: np.random.Generator,
    n: int,
    breathing: Breathing,
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
    fs = CARDIAC_RATE
    t = np.arange(n) / fs
    pam = slow_strength(rng, params["pulse_am_strength"], span, 180.0)
    riiv = slow_strength(rng, params["intensity_strength"], span, 180.0)
    r_beat = breathing.volume(beats)
    feet = beats + params["pulse_transit_s"] - 0.01 * (r_beat - 0.5)
    stretch = np.sqrt(np.clip(_rr_intervals(beats), 0.3, 2.0))
    amplitude = 1.0 - pam(beats) * 1.4 * r_beat / (0.4 + np.abs(r_beat))
    ppg = gaussians(n, fs, feet + 0.14 * stretch, np.full_like(beats, 0.06), amplitude)
    ppg += gaussians(
        n,
        fs,
        feet + 0.36 * stretch,
        np.full_like(beats, 0.09),
        params["diastolic_ratio"] * amplitude,
    )
    ppg += riiv(t) * breathing.volume(t - params["intensity_lag_s"])
    mayer = params["vasomotor"] * (1.0 + 0.3 * np.tanh(slow_process(rng, *span, 60.0)(t)))
    ppg += noise * mayer * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 2 * np.pi))
    ppg += noise * params["ppg_noise"] * rng.standard_normal(n)
    ppg += _artifacts(rng, n, fs, *motion, noise * rng.uniform(0.5, 2.0))
    return ppg, params


# --------------------------------------------------------------------------- respiratory channels


def simulate_nasal_pressure(
    rng: np.random.Generator, volume: np.ndarray, span: tuple[float, float], noise: float
) -> tuple[np.ndarray, dict[str, float]]:
    """Cannula pressure (cmH2O) ~ k * sign(flow) * flow**2 from the 32 Hz volume."""
    params = {"pressure_gain": rng.uniform(2.0, 6.0), "pressure_noise": rng.uniform(0.005, 0.03)}
    t = np.arange(volume.size) / RESP_RATE
    flow = np.gradient(0.5 * volume, 1.0 / RESP_RATE)
    pressure = params["pressure_gain"] * np.sign(flow) * flow * flow
    pressure += noise * 0.02 * slow_process(rng, *span, 60.0)(t)
    pressure += noise * params["pressure_noise"] * rng.standard_normal(volume.size)
    return pressure, params


def simulate_thoracic(
    rng: np.random.Generator,
    breathing: Breathing,
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
    t = np.arange(n) / RESP_RATE
    gain = params["thor_gain"] * np.exp(0.2 * np.tanh(slow_process(rng, *span, 200.0)(t)))
    belt = gain * breathing.volume(t - params["thor_lag_s"])
    belt += noise * 0.1 * slow_process(rng, *span, 90.0)(t)
    belt += noise * params["thor_noise"] * rng.standard_normal(n)
    return belt, params


# --------------------------------------------------------------------------- subject


def subject_rng(index: int, config: CohortConfig) -> np.random.Generator:
    """Generator of subject ``index``; depends only on the seed and the index."""
    return np.random.default_rng(np.random.SeedSequence(config.seed).spawn(index + 1)[index])


def package_subject(
    breathing: Breathing,
    beats: np.ndarray,
    seconds: int,
    signals: dict[str, np.ndarray],
    params: dict[str, float],
) -> dict[str, object]:
    """The dictionary :func:`datasets.synthetic_psg.subject.simulate_subject` returns (truth arrays from ``breathing``)."""
    t_resp = np.arange(seconds * RESP_RATE) / RESP_RATE
    onsets = breathing.boundaries[(breathing.boundaries >= 0) & (breathing.boundaries < seconds)]
    truth = {
        "respiration": breathing.volume(t_resp).astype(np.float32),
        "rate": breathing.rate(t_resp).astype(np.float32),
        "apnea": breathing.apnea(t_resp),
        "breath_onsets": onsets,
        "beat_times": beats[(beats >= 0) & (beats < seconds)],
        "sampling_rate": np.float64(TRUTH_RATE),
    }
    return {"signals": signals, "rates": dict(CHANNEL_RATES), "truth": truth, "params": params}
