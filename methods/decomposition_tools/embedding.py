"""Time-delay (Hankel) embedding of single-channel segments for the decomposition baselines.

This module's one job is the per-segment delay-embedding pipeline of the ``*_embed``
methods in :mod:`methods.decompositions`: build a segment's trajectory matrix
(:func:`hankel`), map component trajectory matrices back to signals by anti-diagonal
averaging (:func:`diagonal_average`), resample between the recording rate and the
embedding rate (:func:`rate_ratio`), and decompose one segment (:func:`embed_parts`) or
a batch of segments with NaN candidates for failing ones (:func:`embed_batch`). It
registers no method.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from methods.decomposition_tools.families import Family, component_parts, fit_estimator, input_scale


def hankel(signal: np.ndarray, window: int) -> np.ndarray:
    """Trajectory matrix ``H[i, j] = signal[i + j]``, shape ``(len - window + 1, window)``."""
    return np.lib.stride_tricks.sliding_window_view(np.asarray(signal), window)


def diagonal_average(matrices: np.ndarray) -> np.ndarray:
    """Anti-diagonal averaging (Hankelisation) of ``(..., rows, cols)`` matrices.

    Returns ``(..., rows + cols - 1)``: entry ``t`` is the mean of ``M[i, j]`` over
    ``i + j = t``; the inverse of :func:`hankel` on an exact trajectory matrix.
    """
    m = np.asarray(matrices, dtype=np.float64)
    rows, cols = m.shape[-2:]
    length = rows + cols - 1
    batch = m.reshape(-1, rows, cols)
    diagonal = (np.arange(rows)[:, None] + np.arange(cols)[None, :]).ravel()
    index = (np.arange(len(batch))[:, None] * length + diagonal[None, :]).ravel()
    sums = np.bincount(index, weights=batch.ravel(), minlength=len(batch) * length)
    counts = np.bincount(diagonal, minlength=length)
    return (sums.reshape(len(batch), length) / counts).reshape(*m.shape[:-2], length)


def rate_ratio(sampling_rate: float, target_rate: float) -> tuple[int, int]:
    """``(up, down)`` integers with ``up / down ~= target_rate / sampling_rate``."""
    ratio = Fraction(float(target_rate) / float(sampling_rate)).limit_denominator(1000)
    if ratio <= 0:
        raise ValueError(f"target_rate must be positive, got {target_rate}")
    return ratio.numerator, ratio.denominator


def embed_parts(
    signal: np.ndarray, family: Family, n_components: int, window: int, up: int, down: int,
    max_iter: int | None, seed: int,
) -> np.ndarray:
    """Candidates ``(K, len(signal))`` of one segment; raises on degenerate input."""
    x = np.asarray(signal, dtype=np.float64)
    if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        raise ValueError("flat or non-finite segment")
    low = resample_poly(x, up, down)
    trajectory = np.array(hankel(low, window))
    offset = float(trajectory.min()) if family.nonnegative else 0.0
    trajectory -= offset
    scale = input_scale(family, trajectory)
    estimator = fit_estimator(family, trajectory * scale, n_components, max_iter, seed)
    parts = component_parts(family, estimator, trajectory * scale) / scale  # (rows, K, window)
    k = parts.shape[1]
    low_parts = diagonal_average(parts.transpose(1, 0, 2)) + offset / k  # (K, len(low))
    # Each segment has its own decomposition, whose component order is arbitrary
    # (FastICA, NMF): order by variance, largest first, as SSA orders by eigenvalue.
    low_parts = low_parts[np.argsort(-low_parts.var(axis=1), kind="stable")]
    high = resample_poly(low_parts, down, up, axis=1)
    if high.shape[1] < len(x):
        high = np.pad(high, ((0, 0), (0, len(x) - high.shape[1])), mode="edge")
    high = high[:, : len(x)]
    if not np.all(np.isfinite(high)):
        raise FloatingPointError("non-finite reconstruction")
    return high


def embed_batch(
    signals: np.ndarray, family: Family, n_components: int, window: int, up: int, down: int,
    max_iter: int | None, seed: int, k: int,
) -> np.ndarray:
    """Candidates of a batch of segments; NaN rows where a segment fails."""
    out = np.full((len(signals), k, signals.shape[1]), np.nan, dtype=np.float32)
    # Small matrices: one BLAS thread is ~50x faster than two on busy cores.
    with warnings.catch_warnings(), np.errstate(all="ignore"), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, signal in enumerate(signals):
            try:
                parts = embed_parts(signal, family, n_components, window, up, down, max_iter, seed)
            except Exception:  # noqa: BLE001 - a failing segment gives NaN candidates
                continue
            out[i, : parts.shape[0]] = parts
    return out
