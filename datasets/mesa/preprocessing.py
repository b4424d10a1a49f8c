"""Segmenting MESA recordings: cutting, min-max scaling and heart-rate screening.

Cuts a :class:`~datasets.mesa.reader.Recording` into non-overlapping, channel-aligned segments,
min-max scales each segment of each channel to [0, 1] (flat or non-finite segments become NaN
and unavailable), and drops the segments whose mean heart rate (NeuroKit2 beats of the ECG, or
of the PPG where the ECG is unavailable) is implausible or undeterminable; the result is a
:class:`SegmentBatch`.  Depends on :mod:`datasets.mesa.config` and :mod:`datasets.mesa.reader`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import neurokit2 as nk
import numpy as np

from datasets.mesa.config import INPUT_CHANNELS, PreprocessConfig
from datasets.mesa.reader import Recording

__all__ = ["SegmentBatch", "heart_rate", "segment_recording"]

#: A segment is flat when its range is at most this fraction of its largest magnitude (or 1).
_FLAT_RTOL = 1e-9
_MIN_BEATS = 3


@dataclass(frozen=True)
class SegmentBatch:
    """The kept segments of one recording.

    Attributes
    ----------
    record_id : str
        Recording identifier.
    signals : dict of str to np.ndarray
        Channel name -> float32 (n, segment_length), each row min-max scaled to [0, 1]; rows
        are NaN where the channel is unavailable.
    available : dict of str to np.ndarray
        Channel name -> bool (n,).
    segment_index : np.ndarray
        Int64 (n,) position of each segment in the recording (before dropping).
    start_time : np.ndarray
        Float64 (n,) start of each segment in seconds from the start of the recording.
    heart_rate : np.ndarray
        Float64 (n,) mean heart rate (bpm) of each segment.
    heart_rate_source : np.ndarray
        Str (n,) channel the heart rate came from (``"ECG"`` or ``"PPG"``).
    n_total : int
        Segments in the recording before the heart-rate filter.
    dropped_hr : int
        Segments dropped for an implausible or undeterminable heart rate.
    """

    record_id: str
    signals: dict[str, np.ndarray]
    available: dict[str, np.ndarray]
    segment_index: np.ndarray
    start_time: np.ndarray
    heart_rate: np.ndarray
    heart_rate_source: np.ndarray
    n_total: int
    dropped_hr: int

    def __len__(self) -> int:
        return len(self.segment_index)


def heart_rate(segment: np.ndarray, sampling_rate: float, source: str = "ECG") -> float:
    """Mean heart rate of one segment from NeuroKit2 beat detection.

    Parameters
    ----------
    segment : np.ndarray
        ECG or PPG samples.
    sampling_rate : float
        Sampling rate in Hz.
    source : {"ECG", "PPG"}
        ECG: ``nk.ecg_clean`` then R peaks of ``nk.ecg_peaks``; PPG: ``nk.ppg_clean`` then
        ``nk.ppg_findpeaks``.

    Returns
    -------
    float
        ``60 / mean(beat interval in s)``, or ``np.nan`` with fewer than three beats or when
        NeuroKit2 fails.
    """
    if source not in INPUT_CHANNELS:
        raise ValueError(f"source must be 'ECG' or 'PPG', got {source!r}")
    x = np.asarray(segment, dtype=np.float64)
    if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return float("nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if source == "ECG":
                cleaned = nk.ecg_clean(x, sampling_rate=sampling_rate)
                peaks = nk.ecg_peaks(cleaned, sampling_rate=sampling_rate)[1]["ECG_R_Peaks"]
            else:
                cleaned = nk.ppg_clean(x, sampling_rate=sampling_rate)
                peaks = nk.ppg_findpeaks(cleaned, sampling_rate=sampling_rate)["PPG_Peaks"]
    except Exception:  # NeuroKit2 fails in many ways on degenerate segments
        return float("nan")
    peaks = np.asarray(peaks)
    if peaks.size < _MIN_BEATS:
        return float("nan")
    return float(60.0 / (np.mean(np.diff(peaks)) / sampling_rate))


def _cut(x: np.ndarray | None, n_segments: int, length: int) -> np.ndarray:
    """(n_segments, length) float64 view of the start of ``x``; all-NaN when ``x`` is None."""
    if x is None:
        return np.full((n_segments, length), np.nan)
    return np.asarray(x[: n_segments * length], dtype=np.float64).reshape(n_segments, length)


def _scale_rows(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max scale rows to [0, 1]; flat or non-finite rows become NaN and unavailable."""
    finite = np.isfinite(segments).all(axis=1)
    safe = np.where(finite[:, None], segments, 0.0)
    lo, hi = safe.min(axis=1), safe.max(axis=1)
    magnitude = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), 1.0)
    available = finite & (hi - lo > _FLAT_RTOL * magnitude)
    span = np.where(available, hi - lo, 1.0)
    scaled = ((safe - lo[:, None]) / span[:, None]).astype(np.float32)
    scaled[~available] = np.nan
    return scaled, available


def _segment_heart_rates(
    raw: dict[str, np.ndarray], available: dict[str, np.ndarray], fs: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment heart rate from the ECG where available, else from the PPG."""
    n = len(next(iter(available.values())))
    rates = np.full(n, np.nan)
    sources = np.full(n, "", dtype="<U3")
    for i in range(n):
        for source in INPUT_CHANNELS:
            if source in available and available[source][i]:
                rates[i], sources[i] = heart_rate(raw[source][i], fs, source), source
                break
    return rates, sources


def segment_recording(recording: Recording, config: PreprocessConfig | None = None) -> SegmentBatch:
    """Cut a recording into min-max scaled segments and drop implausible heart rates.

    Every channel of ``config.labels`` gets a column (all-NaN and unavailable where missing);
    further signals of the recording (such as :data:`TRUE_RESPIRATION`) are segmented the
    same way.  A segment is kept when its mean heart rate, from the ECG if that segment's ECG
    is available and otherwise from the PPG, lies within ``config.hr_range``.

    Parameters
    ----------
    recording : Recording
        Recording at ``config.target_rate``.
    config : PreprocessConfig, optional
        Preprocessing parameters (default: ``PreprocessConfig()``).

    Returns
    -------
    SegmentBatch
        The kept segments.
    """
    config = config or PreprocessConfig()
    if not np.isclose(recording.sampling_rate, config.target_rate):
        raise ValueError(
            f"{recording.path}: sampling rate {recording.sampling_rate:g} Hz differs from the "
            f"target rate {config.target_rate} Hz"
        )
    length = config.segment_length
    n_total = recording.n_samples // length
    channels = list(config.labels) + [c for c in recording.signals if c not in config.labels]
    raw = {c: _cut(recording.signals.get(c), n_total, length) for c in channels}
    signals, available = {}, {}
    for channel in channels:
        signals[channel], available[channel] = _scale_rows(raw[channel])
    rates, sources = _segment_heart_rates(raw, available, recording.sampling_rate)
    low, high = config.hr_range
    keep = np.isfinite(rates) & (rates >= low) & (rates <= high)
    index = np.flatnonzero(keep)
    return SegmentBatch(
        record_id=recording.record_id,
        signals={c: signals[c][keep] for c in channels},
        available={c: available[c][keep] for c in channels},
        segment_index=index.astype(np.int64),
        start_time=index * length / recording.sampling_rate,
        heart_rate=rates[keep],
        heart_rate_source=sources[keep],
        n_total=n_total,
        dropped_hr=int(n_total - keep.sum()),
    )
