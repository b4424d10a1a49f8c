"""Realistic difficulty of the synthetic MESA-like cohort (``CohortConfig.difficulty``).

One job: :func:`simulate_realistic`, the ``difficulty="realistic"`` subject: the model of
:mod:`datasets.synthetic_psg.physiology` (the unchanged ``"easy"`` difficulty) plus what real overnight
recordings show.  Ranges are per-subject uniform draws unless stated otherwise; the levels
come from the sleep literature and were then calibrated on the quick cohort so that the
classical ECG/PPG respiratory-rate heuristics score MAEs of about 2.5-3.5 breaths/min
against the thoracic belt (real MESA: about 2-2.4) while belt and cannula agree to about
1-1.2 breaths/min (real MESA: 1.33).  The base draws come from the subject's generator as in
the easy model, everything added from an independent child stream of the subject's
``SeedSequence``: a subject depends only on the seed, its index and the parameters.

Breathing (replaces the easy breath sequence; the true respiration is this volume).  The easy
rate trend (averaged over 1 min) changes within the minute by ``exp(w * slow process)``, 20-s
knots, ``w`` 5-15 %.  Breath-to-breath duration variability is log-normal with CV 10-22 %
(doubled in irregular periods); depth CV 12-30 % plus a slow +-15 % drift.  Irregular shallow
periods (REM-like, 1-5 min, 0-35 % of the time) are 10 % faster and 45 % shallower.  Sighs,
3-12 per hour, are 2-3.5 times deeper and 1.3-1.8 times longer; half of them are followed by
a 3-8 s pause.  Central pauses of 2-6 s end 5-30 breaths per hour (flat end-expiration).  A
breath with its pause lasts 2-10 s, so rates stay within 6-30 breaths/min.  Apneas and
hypopneas are the easy events, mostly hypopneas: residual volume ``e**0.5`` of the easy ``e``
(0-30 % becomes 0-55 %).

Heart.  Respiratory sinus arrhythmia is scaled by a subject factor: weak (0.15-0.4) in a
quarter of the subjects, 0.5-1 otherwise, varying +-60 % over the night (4-min knots).
Non-respiratory heart-rate variability: a 0.04-0.15 Hz time warp of the beat train (heart
rate modulated by 0.6-1.8 % SD) and 2-5 ms beat-to-beat jitter.  Ectopic beats: none in 40 %
of the subjects, 0.05-0.5 per minute in 45 %, 1-4 per minute in 15 %; each is 20-40 %
premature.  Ventricular ones (30-80 % of them) keep a full compensatory pause and add a wide
(40-60 ms) QRS of 0.5-1.2 R amplitudes with a discordant T wave; supraventricular ones reset
the rhythm (30-70 % of the prematurity carried over).

ECG.  Respiratory QRS-amplitude modulation and baseline wander are scaled by a subject
factor of 0.1-0.6 (+-50 % over the night) and joined by a non-respiratory amplitude
fluctuation (0.02-0.15 Hz, SD 0.05-0.2 of a full breath's effect) and 1.5-4 % beat-to-beat R
amplitude jitter.  Added: electrode baseline wander (0.05-0.5 Hz, 0.03-0.15 mV SD), muscle
(EMG, above 20 Hz) noise of 0.01-0.04 mV varying +-50 % with muscle tone, so with the easy
noise an SNR of roughly 25-35 dB, and 0.3-1.5 mV artefacts during body movements.

PPG.  Pulse-amplitude and intensity modulations are scaled by a subject factor of 0.2-1
(+-50 %) and share a vasomotor fluctuation (0.02-0.15 Hz, SD 0.03-0.15 of a full breath's
effect); pulse amplitudes jitter by 3-8 % per beat; a premature pulse is 30-70 % smaller and
the one after it 10-30 % larger; body movements add artefacts of 1-4 pulse amplitudes.

Body movements, 1-6 per hour, 3-15 s, hit all four channels at once (the easy short ECG/PPG
bursts remain).  The belt gets 1 Hz low-pass artefacts of 1-3 breath amplitudes, a posture
step of up to 0.5 breath amplitudes and a second slow baseline drift as large as the easy one.

Nasal pressure (Flow).  ``gain * sign(q) * q**2`` (the easy cannula gain) of the nasal flow
``q``: the volume's derivative through the cannula tubing (causal 2nd-order 4 Hz low-pass),
with inspirations capped at 50-75 % of the breath's peak in flow-limitation periods (1-5
min, 10-30 % of the time) and scaled by 0.5-0.8 in mouth-breathing periods (0.5-4 per hour,
1-6 min).  Relative to the median breath's peak pressure ``P`` it has 0.2-0.8 % white noise
(peak-to-noise SNR 42-54 dB), 0.5-2 % cardiogenic oscillations (a bump per heartbeat), a
3 % slow offset drift and 0.3-1 ``P`` artefacts during body movements.  Why the easy
cannula disagrees with the belt (MAE 3.3 breaths/min on the quick cohort): its noise is
fixed in cmH2O while its events leave 0-9 % of the pressure, so in weak breathing the flat
end-expiratory stretch of ``q**2``, which lies on the zero line of NeuroKit2's band-passed
signal, is crossed by noise many times and the trough detection counts 30-75 "breaths" per
minute; noise relative to the breaths and shallower hypopneas remove most double counts.

``noise_scale`` multiplies every noise, drift and artefact amplitude added here; the
physiological irregularities (breathing pattern, ectopy, heart-rate variability, coupling
strengths, mouth breathing, flow limitation) do not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt, sosfiltfilt

from datasets.synthetic_psg.config import CohortConfig
from datasets.synthetic_psg.physiology import (
    CARDIAC_RATE,
    CONTROL_RATE,
    PAD_S,
    RESP_RATE,
    Breathing,
    breath_shape,
    burst_envelope,
    draw_beat_times,
    draw_events,
    gaussians,
    lowpass_noise,
    package_subject,
    simulate_breathing,
    simulate_ecg,
    simulate_nasal_pressure,
    simulate_ppg,
    simulate_thoracic,
    slow_process,
    slow_strength,
    subject_rng,
)

__all__ = ["simulate_realistic"]

# Calibrated levels (per-subject uniform ranges; see the module docstring).
EVENT_EXPONENT = 0.5  # residual volume in apneas/hypopneas: easy envelope ** this
WEAK_RSA_SHARE = 0.25  # share of subjects with weak RSA ...
WEAK_RSA = (0.15, 0.4)  # ... whose RSA is scaled by this factor; the others' by RSA
RSA = (0.5, 1.0)
LF_HRV = (0.006, 0.018)  # SD of the non-respiratory (0.04-0.15 Hz) heart-rate modulation
BEAT_JITTER_S = (0.002, 0.005)
AM_WEIGHT = (0.1, 0.6)  # scale of the ECG's respiratory amplitude modulation and wander
AM_OTHER = (0.05, 0.2)  # non-respiratory ECG amplitude fluctuation (breath effects)
QRS_JITTER = (0.015, 0.04)  # beat-to-beat R amplitude SD (fraction of the R wave)
VASOMOTION = (0.03, 0.15)  # PPG vasomotor fluctuation (breath effects)
PULSE_JITTER = (0.03, 0.08)  # beat-to-beat pulse amplitude SD
MOUTH_LOSS = (0.2, 0.5)  # nasal flow lost in mouth-breathing periods
CANNULA_NOISE = (0.002, 0.008)  # white noise SD / median breath peak pressure

Slow = Callable[[np.ndarray], np.ndarray]
Events = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- helpers


def _realism_rng(index: int, config: CohortConfig) -> np.random.Generator:
    """Independent child stream of subject ``index``'s ``SeedSequence``."""
    subject = np.random.SeedSequence(config.seed).spawn(index + 1)[index]
    return np.random.default_rng(subject.spawn(1)[0])


def _band_noise(rng: np.random.Generator, grid: np.ndarray, low: float, high: float) -> Slow:
    """Unit-variance noise band-limited to ``low``-``high`` Hz, as a function of time."""
    fs = 1.0 / (grid[1] - grid[0])
    sos = butter(2, [low, high], btype="bandpass", fs=fs, output="sos")
    pad = int(60 * fs)
    x = sosfiltfilt(sos, rng.standard_normal(grid.size + 2 * pad))[pad:-pad]
    x = x / max(float(x.std()), 1e-12)
    return lambda t: np.interp(t, grid, x)


def _periods(rng: np.random.Generator, t: np.ndarray, fraction: float, mean_s: float) -> Slow:
    """Indicator in [0, 1] of random periods (1-5 min scaled by ``mean_s``) with soft edges."""
    onsets, lengths = draw_events(rng, fraction / mean_s, t[0], t[-1], (0.3 * mean_s, 1.7 * mean_s))
    grid = np.arange(t[0], t[-1] + 1.0, 1.0)
    inside = np.zeros_like(grid)
    for onset, length in zip(onsets, lengths, strict=True):
        inside = np.maximum(
            inside, np.clip(np.minimum(grid - onset, onset + length - grid) / 10.0, 0, 1)
        )
    return lambda x: np.interp(x, grid, inside)


def _weight(
    rng: np.random.Generator, low: float, high: float, span: tuple[float, float], spread: float
) -> tuple[Slow, float]:
    """Subject coupling factor uniform in ``low``-``high``, varying ``+-spread`` over the night."""
    base = rng.uniform(low, high)
    return slow_strength(rng, base, span, 240.0, spread), base


@dataclass(frozen=True)
class _Drive:
    """Stand-in for a breathing object in a coupling: ``0.5 + w(t) (volume - 0.5) + extra(t)``.

    The easy model's couplings all saturate around ``volume = 0.5``, so ``w`` scales the
    respiratory modulation and ``extra`` adds a non-respiratory one.
    """

    breathing: Breathing
    weight: Slow
    extra: Slow | None = None

    def volume(self, t: np.ndarray) -> np.ndarray:
        """Weighted volume (plus the non-respiratory part)."""
        drive = 0.5 + self.weight(t) * (self.breathing.volume(t) - 0.5)
        return drive if self.extra is None else drive + self.extra(t)


# --------------------------------------------------------------------------- breathing


@dataclass(frozen=True)
class _IrregularBreathing(Breathing):
    """Breathing whose breaths may end in an end-expiratory pause (volume 0)."""

    active: np.ndarray

    def volume(self, t: np.ndarray) -> np.ndarray:
        """Lung-volume-like signal; flat at 0 during the pause that ends a breath."""
        k = self._breath(t)
        phase = np.clip((t - self.boundaries[k]) / self.active[k], 0.0, 1.0)
        shape = breath_shape(phase, self.insp_fractions[k])
        return shape * self.depths[k] * np.interp(t, self.control_t, self.envelope_c)


def _irregular_breathing(
    rng: np.random.Generator, base: Breathing, span: tuple[float, float]
) -> tuple[_IrregularBreathing, dict[str, float]]:
    """Irregular breath sequence following the easy breathing's rate trend (module docstring)."""
    start, stop = span
    p = {
        "rate_wobble": rng.uniform(0.05, 0.15),
        "breath_cv_irregular": rng.uniform(0.10, 0.22),
        "depth_cv_irregular": rng.uniform(0.12, 0.30),
        "irregular_fraction": rng.uniform(0.0, 0.35),
        "sighs_per_hour": rng.uniform(3.0, 12.0),
        "pauses_per_hour": rng.uniform(5.0, 30.0),
    }
    grid = np.arange(start, stop + 0.5 * (stop - start) + 120.0, 1.0 / CONTROL_RATE)
    centres = 0.5 * (base.boundaries[1:] + base.boundaries[:-1])
    trend = np.interp(grid, centres, 60.0 / np.diff(base.boundaries))
    width = int(60 * CONTROL_RATE)
    trend = np.convolve(np.pad(trend, width, mode="edge"), np.ones(width) / width, "same")
    trend = trend[width:-width]
    irregular = _periods(rng, grid, p["irregular_fraction"], 180.0)
    wobble = np.exp(p["rate_wobble"] * slow_process(rng, start, grid[-1], 20.0)(grid))
    rate = np.clip(trend * wobble * (1.0 + 0.1 * irregular(grid)), 6.0, 30.0)
    cycles = np.concatenate([[0.0], np.cumsum(rate[:-1] / 60.0 / CONTROL_RATE)])
    nominal = np.interp(np.arange(math.floor(cycles[-1]) + 1), cycles, grid)
    n = nominal.size - 1
    irr = irregular(nominal[:-1])
    active = np.diff(nominal) * np.exp(
        p["breath_cv_irregular"] * (1 + irr) * rng.standard_normal(n)
    )
    mean_s = float(np.mean(active))
    sigh = rng.uniform(size=n) < p["sighs_per_hour"] * mean_s / 3600.0
    active = np.clip(active * np.where(sigh, rng.uniform(1.3, 1.8, n), 1.0), 2.0, 10.0)
    pause = np.where(
        rng.uniform(size=n) < p["pauses_per_hour"] * mean_s / 3600.0, rng.uniform(2.0, 6.0, n), 0.0
    )
    pause = np.where(sigh & (rng.uniform(size=n) < 0.5), rng.uniform(3.0, 8.0, n), pause)
    total = np.minimum(active + pause, 10.0)
    boundaries = start - rng.uniform(0.0, total[0]) + np.concatenate([[0.0], np.cumsum(total)])
    if boundaries[-1] <= stop:  # far too many pauses: continue with the mean breath
        extra = np.arange(1, math.ceil((stop - boundaries[-1]) / mean_s) + 2)
        boundaries = np.concatenate([boundaries, boundaries[-1] + extra * mean_s])
        active = np.concatenate([active, np.full(extra.size, mean_s)])
        sigh = np.concatenate([sigh, np.zeros(extra.size, bool)])
    keep = int(np.searchsorted(boundaries, stop, side="right"))
    boundaries, active, sigh = boundaries[: keep + 1], active[:keep], sigh[:keep]
    mid = boundaries[:-1] + 0.5 * active
    irr = irregular(mid)
    depth_drift = np.exp(0.15 * np.tanh(slow_process(rng, start, stop, 120.0)(mid)))
    depths = np.exp(p["depth_cv_irregular"] * (1 + 0.5 * irr) * rng.standard_normal(keep))
    depths *= depth_drift * (1.0 - 0.45 * irr) * np.where(sigh, rng.uniform(2.0, 3.5, keep), 1.0)
    insp = np.clip(np.mean(base.insp_fractions) + 0.04 * rng.standard_normal(keep), 0.3, 0.5)
    p["sighs"] = int(sigh[(boundaries[:-1] >= 0)].sum())
    envelope = base.envelope_c**EVENT_EXPONENT  # mostly hypopneas: residual 0-30 % -> 0-55 %
    breathing = _IrregularBreathing(
        boundaries, depths, insp, base.control_t, envelope, base.apnea_c, active
    )
    return breathing, p


# --------------------------------------------------------------------------- heart


def _irregular_beats(
    rng: np.random.Generator, beats: np.ndarray, span: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Add low-frequency HRV, jitter and ectopic beats; also return the ectopic beat type.

    The type is 0 (sinus), 1 (ventricular, full compensatory pause) or 2 (supraventricular).
    """
    category = rng.uniform()
    per_minute = (
        0.0
        if category < 0.4
        else (rng.uniform(0.05, 0.5) if category < 0.85 else rng.uniform(1.0, 4.0))
    )
    p = {
        "lf_hrv": rng.uniform(*LF_HRV),
        "beat_jitter_s": rng.uniform(*BEAT_JITTER_S),
        "ectopic_per_min": per_minute,
        "ventricular_share": rng.uniform(0.3, 0.8),
    }
    grid = np.arange(span[0], span[1] + 1.0, 1.0 / CONTROL_RATE)
    stretch = -p["lf_hrv"] * _band_noise(rng, grid, 0.04, 0.15)(grid)  # d(shift)/dt
    shift = np.cumsum(stretch) / CONTROL_RATE
    beats = beats + np.interp(beats, grid, shift)
    beats = np.sort(beats + p["beat_jitter_s"] * rng.standard_normal(beats.size))
    rr = np.diff(beats, prepend=beats[0] - 1.0)
    n = beats.size
    ectopic = (rng.uniform(size=n) < per_minute * np.mean(rr) / 60.0) & (np.arange(n) > 0)
    ectopic[1:] &= ~ectopic[:-1]  # no couplets
    kind = np.where(ectopic, np.where(rng.uniform(size=n) < p["ventricular_share"], 1, 2), 0)
    early = np.where(ectopic, rng.uniform(0.2, 0.4, n) * rr, 0.0)
    reset = np.where(kind == 2, rng.uniform(0.3, 0.7, n) * early, 0.0)
    beats = beats - early - (np.cumsum(reset) - reset)
    p["ectopic_beats"] = int(ectopic.sum())
    return beats, kind, p


# --------------------------------------------------------------------------- channels


def _movement_artifacts(
    rng: np.random.Generator, n: int, fs: float, moves: Events, cutoff: float, amplitude: float
) -> np.ndarray:
    """Low-pass noise bursts under Hann windows at the body movements."""
    if moves[0].size == 0:
        return np.zeros(n)
    t = np.arange(n) / fs
    return amplitude * lowpass_noise(rng, n, fs, cutoff) * burst_envelope(t, *moves)


def _posture_steps(rng: np.random.Generator, n: int, moves: Events) -> np.ndarray:
    """Belt baseline shifts of up to 0.5 (breath amplitudes) across each body movement."""
    t = np.arange(n) / RESP_RATE
    steps = np.zeros(n)
    for onset, length, size in zip(*moves, rng.uniform(-0.5, 0.5, moves[0].size), strict=True):
        steps += size * np.clip((t - onset) / length, 0.0, 1.0)
    return steps


def _ecg_extras(
    rng: np.random.Generator,
    n: int,
    beats: np.ndarray,
    kind: np.ndarray,
    gain: float,
    span: tuple[float, float],
    moves: Events,
    noise: float,
) -> tuple[np.ndarray, dict[str, float]]:
    """Ventricular QRS shapes, electrode wander, EMG noise and movement artefacts (mV)."""
    p = {
        "ecg_wander_mv": rng.uniform(0.03, 0.15),
        "emg_mv": rng.uniform(0.01, 0.04),
        "qrs_jitter": rng.uniform(*QRS_JITTER),
    }
    fs = CARDIAC_RATE
    t = np.arange(n) / fs
    jitter = gain * p["qrs_jitter"] * rng.standard_normal(beats.size)
    extra = gaussians(n, fs, beats, np.full(beats.size, 0.011), jitter)
    pvc = beats[kind == 1]
    if pvc.size:  # wide ventricular QRS and discordant T wave on top of the beat
        polarity = rng.choice([-1.0, 1.0], pvc.size) * rng.uniform(0.5, 1.2, pvc.size)
        extra += gaussians(n, fs, pvc + 0.01, rng.uniform(0.04, 0.06, pvc.size), gain * polarity)
        extra += gaussians(n, fs, pvc + 0.3, np.full(pvc.size, 0.06), -0.3 * gain * polarity)
    grid = np.arange(*span, 0.25)
    extra += noise * p["ecg_wander_mv"] * _band_noise(rng, grid, 0.05, 0.5)(t)
    emg = sosfilt(butter(2, 20.0, btype="highpass", fs=fs, output="sos"), rng.standard_normal(n))
    tone = slow_strength(rng, 1.0, span, 60.0, 0.5)(t)
    extra += noise * p["emg_mv"] * tone * emg / max(float(emg.std()), 1e-12)
    extra += _movement_artifacts(rng, n, fs, moves, 5.0, noise * rng.uniform(0.3, 1.5))
    return extra, p


def _ppg_extras(
    rng: np.random.Generator,
    n: int,
    beats: np.ndarray,
    kind: np.ndarray,
    ppg_params: dict[str, float],
    moves: Events,
    noise: float,
) -> np.ndarray:
    """Smaller premature pulses, larger post-pause pulses and movement artefacts."""
    fs = CARDIAC_RATE
    after = np.flatnonzero(kind[:-1] > 0) + 1
    change = rng.uniform(*PULSE_JITTER) * rng.standard_normal(beats.size)
    change[kind > 0] = -rng.uniform(0.3, 0.7, int(np.sum(kind > 0)))
    change[after] += rng.uniform(0.1, 0.3, after.size)
    rr = np.sqrt(np.clip(np.diff(beats, prepend=beats[0] - 1.0), 0.3, 2.0))
    feet = beats + ppg_params["pulse_transit_s"]
    extra = gaussians(n, fs, feet + 0.14 * rr, np.full(rr.size, 0.06), change)
    extra += gaussians(
        n, fs, feet + 0.36 * rr, np.full(rr.size, 0.09), ppg_params["diastolic_ratio"] * change
    )
    return extra + _movement_artifacts(rng, n, fs, moves, 3.0, noise * rng.uniform(1.0, 4.0))


def _cannula(
    rng: np.random.Generator,
    breathing: Breathing,
    n: int,
    beats: np.ndarray,
    gain: float,
    moves: Events,
    noise: float,
) -> tuple[np.ndarray, dict[str, float]]:
    """Nasal pressure with tubing, mouth breathing, flow limitation and relative noise."""
    p = {
        "mouth_per_hour": rng.uniform(0.5, 4.0),
        "flow_limited_fraction": rng.uniform(0.1, 0.3),
        "cannula_noise": rng.uniform(*CANNULA_NOISE),
        "cardiogenic": rng.uniform(0.005, 0.02),
    }
    fs = RESP_RATE
    t = np.arange(n) / fs
    flow = np.gradient(0.5 * breathing.volume(t), 1.0 / fs)
    flow = sosfilt(butter(2, 4.0, fs=fs, output="sos"), flow)
    k = np.clip(np.searchsorted(breathing.boundaries, t, side="right") - 1, 0, None)
    k -= k[0]
    starts = np.flatnonzero(np.diff(k, prepend=-1))
    peak = np.maximum.reduceat(np.maximum(flow, 0.0), starts)[k]
    limited = _periods(rng, t, p["flow_limited_fraction"], 180.0)(t)
    cap = peak * (1.0 - limited * rng.uniform(0.25, 0.5))
    flow = np.where(flow > 0, np.minimum(flow, cap), flow)
    mouth = _periods(rng, t, p["mouth_per_hour"] * 210.0 / 3600.0, 210.0)(t)
    nasal = flow * (1.0 - mouth * rng.uniform(*MOUTH_LOSS))
    pressure = gain * np.sign(nasal) * nasal * nasal
    typical = max(float(np.median(np.maximum.reduceat(np.abs(pressure), starts))), 1e-6)
    pressure += noise * typical * p["cannula_noise"] * rng.standard_normal(n)
    near = beats[(beats > -1.0) & (beats < t[-1] + 1.0)] + 0.1
    bumps = gaussians(n, fs, near, np.full(near.size, 0.08), np.ones(near.size))
    pressure += noise * typical * p["cardiogenic"] * bumps
    pressure += noise * 0.03 * typical * slow_process(rng, -PAD_S, t[-1] + PAD_S, 60.0)(t)
    pressure += _movement_artifacts(rng, n, fs, moves, 2.0, noise * typical * rng.uniform(0.3, 1.0))
    return pressure, p


# --------------------------------------------------------------------------- subject


def simulate_realistic(index: int, config: CohortConfig) -> dict[str, object]:
    """Simulate one subject at ``difficulty="realistic"`` (see the module docstring).

    Parameters
    ----------
    index : int
        0-based subject index; the caller (:func:`datasets.synthetic_psg.subject.simulate_subject`)
        checks it.
    config : CohortConfig
        Cohort parameters.

    Returns
    -------
    dict
        As :func:`datasets.synthetic_psg.subject.simulate_subject`.
    """
    rng, child = subject_rng(index, config), _realism_rng(index, config)
    seconds = config.seconds
    span = (-PAD_S, seconds + PAD_S)
    noise = config.noise_scale
    base, params = simulate_breathing(rng, *span, rng.uniform(*config.apnea_per_hour))
    breathing, extra = _irregular_breathing(child, base, span)
    params.update(extra)
    weak = child.uniform() < WEAK_RSA_SHARE
    rsa, params["rsa_weight"] = _weight(child, *(WEAK_RSA if weak else RSA), span, 0.6)
    beats, cardiac = draw_beat_times(rng, _Drive(breathing, rsa), span)
    beats, kind, extra = _irregular_beats(child, beats, span)
    params.update(cardiac, **extra)
    motion = draw_events(rng, rng.uniform(0.05, 0.4) / 60.0, 0.0, seconds, (1.0, 6.0))
    moves = draw_events(child, child.uniform(1.0, 6.0) / 3600.0, 0.0, seconds, (3.0, 15.0))
    n_cardiac = seconds * CARDIAC_RATE
    am, params["ecg_am_weight"] = _weight(child, *AM_WEIGHT, span, 0.5)
    params["ecg_am_other"] = child.uniform(*AM_OTHER)
    am_other = _band_noise(child, np.arange(*span, 0.25), 0.02, 0.15)
    am_drive = _Drive(breathing, am, lambda t: params["ecg_am_other"] * am_other(t))
    ecg, ecg_params = simulate_ecg(rng, n_cardiac, am_drive, beats, span, motion, noise)
    ecg_extra, extra = _ecg_extras(
        child, n_cardiac, beats, kind, ecg_params["ecg_gain_mv"], span, moves, noise
    )
    params.update(ecg_params, **extra)
    pm, params["ppg_weight"] = _weight(child, 0.2, 1.0, span, 0.5)
    vaso = child.uniform(*VASOMOTION)
    vasomotion = _band_noise(child, np.arange(*span, 0.25), 0.02, 0.15)
    ppg_drive = _Drive(breathing, pm, lambda t: vaso * vasomotion(t))
    ppg, ppg_params = simulate_ppg(rng, n_cardiac, ppg_drive, beats, span, motion, noise)
    ppg_extra = _ppg_extras(child, n_cardiac, beats, kind, ppg_params, moves, noise)
    params.update(ppg_params, vasomotion=vaso)
    n_resp = seconds * RESP_RATE
    volume = breathing.volume(np.arange(n_resp) / RESP_RATE)
    _, pressure_params = simulate_nasal_pressure(rng, volume, span, noise)  # its gain only
    pressure, extra = _cannula(
        child, breathing, n_resp, beats, pressure_params["pressure_gain"], moves, noise
    )
    params.update(pressure_params, **extra)
    belt, belt_params = simulate_thoracic(rng, breathing, n_resp, span, noise)
    amplitude = belt_params["thor_gain"]
    belt += noise * 0.1 * slow_process(child, *span, 90.0)(np.arange(n_resp) / RESP_RATE)
    belt += _movement_artifacts(
        child, n_resp, RESP_RATE, moves, 1.0, noise * amplitude * child.uniform(1.0, 3.0)
    )
    belt += noise * amplitude * _posture_steps(child, n_resp, moves)
    params.update(belt_params, motion_events=int(motion[0].size), body_movements=int(moves[0].size))
    signals = {"EKG": ecg + ecg_extra, "Pleth": ppg + ppg_extra, "Flow": pressure, "Thor": belt}
    return package_subject(breathing, beats, seconds, signals, params)
