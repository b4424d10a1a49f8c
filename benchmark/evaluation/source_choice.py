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

from benchmark.evaluation.assignment import assign

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
    The same assignment as the image suites' (:func:`benchmark.evaluation.assignment.assign`) with
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


GATE_QUANTILES = tuple(np.round(np.arange(0.0, 0.55, 0.05), 2))
"""Candidate gate thresholds: these quantiles of the validation shares (0: no gate, 0.5: at most
half of the segments abstain)."""


def choose_gate_threshold(
    shares: np.ndarray, estimated_rates: np.ndarray, reference_rates: np.ndarray, fill_rate: float,
    quantiles: tuple[float, ...] = GATE_QUANTILES,
) -> tuple[float, dict[str, float]]:
    """The band-power share below which a segment abstains, chosen on validation segments.

    Every candidate threshold (a quantile of ``shares``) is scored by the MAE against the
    reference with each abstention -- a segment under the threshold or without a rate -- counted
    as ``fill_rate`` (the constant baseline's rate: :func:`benchmark.evaluation.metrics.filled_rate_error`).
    The lowest MAE wins; ties go to the lower threshold (fewer abstentions).

    Parameters
    ----------
    shares : np.ndarray
        ``(n,)`` respiratory-band power share of the output on each validation segment.
    estimated_rates, reference_rates : np.ndarray
        ``(n,)`` rates of the output and of the reference, NaN where none.
    fill_rate : float
        The rate an abstention is scored as.
    quantiles : tuple of float
        Quantiles of the finite shares tried as thresholds.

    Returns
    -------
    tuple
        The threshold (0.0 when nothing can be scored) and ``{"quantile", "filled_mae",
        "coverage"}`` of the chosen threshold on the validation segments.
    """
    from benchmark.evaluation.metrics import filled_rate_error

    shares = np.asarray(shares, dtype=np.float64)
    estimated = np.asarray(estimated_rates, dtype=np.float64)
    reference = np.asarray(reference_rates, dtype=np.float64)
    scored = np.isfinite(reference)
    finite = shares[np.isfinite(shares)]
    if not scored.any() or not finite.size or not np.isfinite(fill_rate):
        return 0.0, {"quantile": 0.0, "filled_mae": float("nan"), "coverage": float("nan")}
    best = None
    for quantile in quantiles:
        threshold = float(np.quantile(finite, quantile)) if quantile > 0 else 0.0
        kept = np.where(shares >= threshold, estimated, np.nan)
        mae = float(np.mean(filled_rate_error(kept - reference, reference, fill_rate)[scored]))
        if best is None or mae < best[1] - 1e-12:
            best = (threshold, mae, quantile, float(np.isfinite(kept).mean()))
    threshold, mae, quantile, coverage = best
    return threshold, {"quantile": quantile, "filled_mae": mae, "coverage": coverage}
