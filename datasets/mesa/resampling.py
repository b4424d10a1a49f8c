"""Polyphase resampling of MESA signals to the common target rate.

:func:`resample` changes the sampling rate by a rational factor with
``scipy.signal.resample_poly``, using a Kaiser-window filter whose polyphase branches have unit
DC gain so that constant stretches stay exactly constant.  It is used by the EDF reader and the
true-respiration loader (:mod:`datasets.mesa.reader`) and imports no sibling module.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import firwin, resample_poly

__all__ = ["resample"]


def _polyphase_filter(up: int, down: int) -> np.ndarray:
    """Low-pass FIR for ``resample_poly`` whose polyphase branches each have unit DC gain.

    The filter is the one ``resample_poly`` designs by default (Kaiser window, beta 5); each
    branch is rescaled so that a constant stretch of signal stays exactly constant instead of
    picking up a ripple of the size of the stopband attenuation, which keeps flat segments
    detectable after resampling.
    """
    max_rate = max(up, down)
    h = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    for phase in range(up):
        h[phase::up] /= h[phase::up].sum() * up  # resample_poly multiplies by ``up`` again
    return h


def resample(x: np.ndarray, rate: float, target: float) -> np.ndarray:
    """Resample with a polyphase filter by the rational factor ``target / rate``.

    Uses ``scipy.signal.resample_poly`` with its default Kaiser-window filter, each polyphase
    branch scaled to unit DC gain, and edge-value padding, so that constant stretches (and
    constant signals) stay exactly constant.

    Parameters
    ----------
    x : np.ndarray
        One-dimensional signal.
    rate, target : float
        Sampling rates in Hz before and after.

    Returns
    -------
    np.ndarray
        Float64 signal of ``ceil(len(x) * target / rate)`` samples.
    """
    ratio = (Fraction(target) / Fraction(rate)).limit_denominator(1000)
    x = np.asarray(x, dtype=np.float64)
    if ratio == 1:
        return x.copy()
    up, down = ratio.numerator, ratio.denominator
    return resample_poly(x, up, down, window=_polyphase_filter(up, down), padtype="edge")
