"""Choosing the respiratory output among a method's K candidates (MESA suite).

Two rules, both decided on the validation recordings and then fixed for the test:

* ``reference``: the candidate whose respiratory rate has the lowest MAE against
  the nasal-pressure rate (uses a reference signal, like the paper);
* ``spectral``: the candidate with the largest share of its spectral power in
  the respiratory band (default 0.1-0.5 Hz) — label-free, so the method stays blind.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import welch

from benchmark.assignment import assign

RESPIRATORY_BAND = (0.1, 0.5)


def band_power_share(signals: np.ndarray, sampling_rate: float, band: tuple[float, float] = RESPIRATORY_BAND, crop: int = 512) -> np.ndarray:
    """Share of each row's power (Welch, mean removed) inside ``band``.

    Parameters
    ----------
    signals : np.ndarray
        ``(..., L)``; rows with non-finite values give NaN.
    sampling_rate : float
        Samples per second.
    band : tuple of float
        Band edges in Hz.
    crop : int
        Samples dropped at each edge first.

    Returns
    -------
    np.ndarray
        Shape ``signals.shape[:-1]``, values in ``[0, 1]`` or NaN.
    """
    x = np.asarray(signals, dtype=np.float64)
    if crop and x.shape[-1] > 2 * crop:
        x = x[..., crop:-crop]
    finite = np.all(np.isfinite(x), axis=-1)
    x = np.where(finite[..., None], x, 0.0)
    frequencies, power = welch(x, fs=sampling_rate, nperseg=min(x.shape[-1], int(sampling_rate * 32)), axis=-1, detrend="constant")
    inside = (frequencies >= band[0]) & (frequencies <= band[1])
    total = power[..., 1:].sum(axis=-1)
    share = np.divide(power[..., inside].sum(axis=-1), total, out=np.full(total.shape, np.nan), where=total > 0)
    return np.where(finite, share, np.nan)


def pairwise_rate_mae(candidate_rates: np.ndarray, reference_rates: np.ndarray) -> np.ndarray:
    """Rate MAE of every (reference, candidate) pair over the segments both have a rate for.

    ``candidate_rates`` is ``(n, K)``, ``reference_rates`` ``(n, S)``, NaN = no rate; the
    result is ``(S, K)``, ``inf`` for a pair with no segment in common.
    """
    candidates = np.asarray(candidate_rates, dtype=np.float64)
    references = np.asarray(reference_rates, dtype=np.float64)
    costs = np.full((references.shape[1], candidates.shape[1]), np.inf)
    for s in range(references.shape[1]):
        for k in range(candidates.shape[1]):
            both = np.isfinite(candidates[:, k]) & np.isfinite(references[:, s])
            if both.any():
                costs[s, k] = float(np.abs(candidates[both, k] - references[both, s]).mean())
    return costs


def choose_by_reference(candidate_rates: np.ndarray, reference_rates: np.ndarray) -> tuple[int, list[float]]:
    """Candidate with the lowest rate MAE against the reference on shared segments.

    ``candidate_rates`` is ``(n, K)``, ``reference_rates`` ``(n,)``, NaN = no rate.
    The same assignment as the image suites' (:func:`benchmark.assignment.assign`) with
    :func:`pairwise_rate_mae` as its cost. A candidate with no segment in common with the
    reference never wins (unless none has one: then the first candidate).
    Returns the index and every candidate's MAE.
    """
    reference = np.asarray(reference_rates, dtype=np.float64).reshape(-1, 1)
    costs = pairwise_rate_mae(candidate_rates, reference)
    if not np.isfinite(costs).any():
        return 0, costs[0].tolist()
    choice = assign(np.asarray(candidate_rates), reference, ("reference",), lambda *_: costs)  # computed once
    return choice.mapping[0], costs[0].tolist()


def choose_by_spectrum(shares: np.ndarray) -> tuple[int, list[float]]:
    """Candidate with the largest mean respiratory-band power share over segments.

    ``shares`` is ``(n, K)``, from :func:`band_power_share` of the candidates.
    Returns the index and every candidate's mean share.
    """
    means = [float(np.nanmean(shares[:, k])) if np.isfinite(shares[:, k]).any() else -1.0 for k in range(shares.shape[1])]
    return int(np.argmax(means)), means
