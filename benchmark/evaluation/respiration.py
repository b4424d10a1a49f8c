"""Respiratory rate of one-minute respiratory signals, as evaluated in the paper (section 4.2).

The paper extracts the respiratory rate of every one-minute segment (12,288 samples at 200 Hz)
with NeuroKit2 "by measuring the periods between inhalation onsets or troughs" and compares
the rates of an estimated respiratory source with those of the nasal pressure and thoracic
excursion references by their mean absolute error (MAE, breaths per minute).

:func:`respiratory_rate` reproduces that measurement: ``crop`` samples are removed from each
edge (section 3.2 crops 512 samples before evaluation), the rest is cleaned with
``nk.rsp_clean`` (default ``khodadad2018`` method, a 0.05-3 Hz band-pass) and its troughs are
found with ``nk.rsp_peaks``.  NeuroKit2 labels troughs ``RSP_Troughs`` and treats them as
inhalation onsets; the rate is 60 divided by the mean interval between consecutive troughs.
Because only trough-to-trough intervals are used, the polarity of the signal barely matters:
an inverted signal yields (almost) the same rate.

A segment has *no rate* (``np.nan``) when it is flat or non-finite, when fewer than four
troughs are found (NeuroKit2 itself returns NaN rates with three or fewer) or when NeuroKit2
fails on it; :func:`rate_mae` and :func:`coverage` account for such segments explicitly.
"""

from __future__ import annotations

import warnings

import neurokit2 as nk
import numpy as np
from joblib import Parallel, delayed

__all__ = ["MIN_TROUGHS", "coverage", "rate_mae", "rates", "respiratory_rate"]

#: Fewest troughs (inhalation onsets) that give a rate; NeuroKit2 returns NaN with <= 3.
MIN_TROUGHS = 4
#: Rows of a batch handled by one joblib task in :func:`rates`.
_CHUNK_ROWS = 64


def _troughs(signal: np.ndarray, sampling_rate: float) -> np.ndarray:
    """Sample indices of the NeuroKit2 troughs of ``signal``; may raise NeuroKit2 errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cleaned = nk.rsp_clean(signal, sampling_rate=sampling_rate)
        _, info = nk.rsp_peaks(cleaned, sampling_rate=sampling_rate)
    return np.asarray(info["RSP_Troughs"], dtype=np.int64)


def respiratory_rate(signal: np.ndarray, sampling_rate: float = 200.0, crop: int = 512) -> float:
    """Respiratory rate of one segment from the intervals between its troughs.

    Parameters
    ----------
    signal : np.ndarray
        One-dimensional respiratory signal (e.g. 12,288 samples at 200 Hz).
    sampling_rate : float
        Sampling rate of ``signal`` in Hz.
    crop : int
        Samples removed from each edge before processing (0 keeps everything).

    Returns
    -------
    float
        Breaths per minute, ``60 / mean(trough-to-trough interval in s)``, or ``np.nan`` when the
        segment has no rate: flat or non-finite input, too short after cropping, fewer than
        :data:`MIN_TROUGHS` troughs, or any NeuroKit2 error.

    Raises
    ------
    ValueError
        If ``signal`` is not one-dimensional, ``sampling_rate`` is not positive or ``crop`` is
        negative.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"signal must be one-dimensional, got shape {x.shape}")
    if not sampling_rate > 0:
        raise ValueError(f"sampling_rate must be positive, got {sampling_rate}")
    if crop < 0:
        raise ValueError(f"crop must be non-negative, got {crop}")
    if crop:
        x = x[crop:-crop]
    if x.size < 2 or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return float("nan")
    try:
        troughs = _troughs(x, sampling_rate)
    except Exception:  # NeuroKit2 raises IndexError, ValueError, ... on degenerate input
        return float("nan")
    if troughs.size < MIN_TROUGHS:
        return float("nan")
    return float(60.0 / (np.mean(np.diff(troughs)) / sampling_rate))


def _chunk_rates(chunk: np.ndarray, sampling_rate: float, crop: int) -> np.ndarray:
    """Rates of the rows of one chunk."""
    return np.array([respiratory_rate(row, sampling_rate, crop) for row in chunk])


def rates(
    signals: np.ndarray, sampling_rate: float = 200.0, crop: int = 512, n_jobs: int = 1
) -> np.ndarray:
    """Respiratory rate of every row of a batch of segments.

    Parameters
    ----------
    signals : np.ndarray
        Segments of shape (n, L); memory maps work and are not loaded at once.
    sampling_rate : float
        Sampling rate in Hz.
    crop : int
        Samples removed from each edge of every segment.
    n_jobs : int
        Number of joblib workers; chunks of rows are processed in parallel.

    Returns
    -------
    np.ndarray
        Float64 rates (n,) in breaths per minute, NaN where a segment has no rate.
    """
    if np.ndim(signals) != 2:
        raise ValueError(f"signals must be two-dimensional (n, L), got shape {np.shape(signals)}")
    n = len(signals)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    starts = range(0, n, _CHUNK_ROWS)
    tasks = (
        delayed(_chunk_rates)(signals[start : start + _CHUNK_ROWS], sampling_rate, crop)
        for start in starts
    )
    parts = Parallel(n_jobs=n_jobs)(tasks)
    return np.concatenate(parts).astype(np.float64, copy=False)


def rate_mae(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Mean absolute error between two sets of rates where both have a rate.

    Parameters
    ----------
    estimate, reference : np.ndarray
        Rates of the same segments, same shape, NaN where a segment has no rate.

    Returns
    -------
    mae : float
        Mean of ``|estimate - reference|`` over the entries where both are finite; ``np.nan``
        when there is none.
    count : int
        Number of entries used.
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if estimate.shape != reference.shape:
        raise ValueError(f"shapes differ: estimate {estimate.shape}, reference {reference.shape}")
    both = np.isfinite(estimate) & np.isfinite(reference)
    count = int(both.sum())
    if count == 0:
        return float("nan"), 0
    return float(np.mean(np.abs(estimate[both] - reference[both]))), count


def coverage(rates: np.ndarray) -> float:
    """Fraction of segments that have a rate.

    Parameters
    ----------
    rates : np.ndarray
        Rates, NaN where a segment has no rate.

    Returns
    -------
    float
        Finite entries divided by all entries; ``np.nan`` for an empty array.
    """
    values = np.asarray(rates, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float(np.isfinite(values).mean())
