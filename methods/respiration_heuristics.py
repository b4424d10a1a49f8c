"""Classical respiratory-signal extraction from single-channel ECG or PPG (MESA suite).

These heuristics are the non-learned references beside the separation methods of the MESA
suite (paper section 4.2, Table 2): each turns one ECG or PPG segment (one minute, 12,288
samples at 200 Hz) into ONE respiratory waveform estimate, which the benchmark scores with
the NeuroKit2 respiratory rate of :mod:`benchmark.evaluation.respiration`.  Terminology follows Karlen et
al. (2013) and Charlton et al. (2016, 2018): respiration modulates the cardiac signal's
baseline / intensity (RIIV), its beat amplitude (RIAV) and its beat frequency (RIFV, i.e.
respiratory sinus arrhythmia).

============================  =====  ======  ===============================================
name                          input  family  estimate (band)
============================  =====  ======  ===============================================
``nk_ecg_rsp_vangent2019``    ECG    RIFV    ``nk.ecg_rsp`` on heart rate, band-pass 0.1-0.4
                                             Hz, Butterworth order 2 (van Gent et al. 2019)
``nk_ecg_rsp_soni2019``       ECG    RIFV    ``nk.ecg_rsp`` on heart rate, low-pass 0.5 Hz,
                                             order 6 (Soni & Muniyandi 2019)
``nk_ecg_rsp_charlton2016``   ECG    RIFV    ``nk.ecg_rsp`` on heart rate, band-pass 4/60-1
                                             Hz, order 6 (Charlton et al. 2016)
``nk_ecg_rsp_sarkar2015``     ECG    RIFV    ``nk.ecg_rsp`` on heart rate, band-pass 0.1-0.7
                                             Hz, order 6 (Sarkar et al. 2015)
``ecg_bw``                    ECG    RIIV    the ECG itself band-passed 0.1-0.5 Hz, order 2
                                             (baseline wander; Charlton et al. 2016)
``ecg_rav``                   ECG    RIAV    QRS amplitude per beat, interpolated, band-pass
                                             0.1-0.5 Hz, order 2 (Charlton et al. 2016)
``ecg_rifv``                  ECG    RIFV    RR intervals, interpolated, band-pass 0.1-0.5
                                             Hz, order 2 (respiratory sinus arrhythmia)
``ppg_riiv``                  PPG    RIIV    the PPG itself band-passed 0.1-0.5 Hz, order 2
                                             (Karlen et al. 2013)
``ppg_riav``                  PPG    RIAV    pulse amplitude (peak minus preceding trough),
                                             interpolated, band-pass 0.1-0.5 Hz, order 2
``ppg_rifv``                  PPG    RIFV    inter-beat intervals, interpolated, band-pass
                                             0.1-0.5 Hz, order 2
============================  =====  ======  ===============================================

The ``nk_ecg_rsp_*`` rows are NeuroKit2's ``ecg_rsp`` filters of the heart-rate signal with the
cut-offs of the papers they are named after; they are not those papers' algorithms, hence the
``nk_`` names (the paper's Table 2 rows keep their references as labels).

The default 0.1-0.5 Hz band is 6-30 breaths/min, the range of the synthetic cohort's rates.
All band-passes of this module are zero-phase Butterworth filters
(:func:`scipy.signal.sosfiltfilt`); NeuroKit2's ``ecg_rsp`` filters are its own (also
zero-phase Butterworth).

Every estimate is min-max scaled per segment to ``[0, 1]`` and returned as a single candidate
(``K = 1``): output shape ``(n, 1, L)`` float32.  A segment on which a heuristic fails (flat or
non-finite input, fewer than :data:`MIN_BEATS` detected beats, any NeuroKit2 error, a flat or
non-finite estimate) gets a row of NaN, which the benchmark reports as "no rate"; no segment
makes :meth:`~RespiratoryHeuristic.separate` raise.  Nothing is learned: ``fit`` only records
the sampling rate.

References
----------
Karlen W, Raman S, Ansermino JM, Dumont GA (2013). Multiparameter respiratory rate estimation
from the photoplethysmogram. IEEE Trans Biomed Eng 60(7):1946-1953.

Charlton PH, Bonnici T, Tarassenko L, et al. (2016). An assessment of algorithms to estimate
respiratory rate from the electrocardiogram and photoplethysmogram. Physiol Meas 37(4):610-626.

Charlton PH, Birrenkott DA, Bonnici T, et al. (2018). Breathing rate estimation from the
electrocardiogram and photoplethysmogram: a review. IEEE Rev Biomed Eng 11:2-20.

van Gent P, Farah H, van Nes N, van Arem B (2019). HeartPy: a novel heart rate algorithm for the
analysis of noisy signals. Transp Res Part F 66:368-378.

Soni A, Rawal K (2019). A novel approach for the extraction of breath rate variability.
International Journal of Yoga 12(1):45.

Sarkar S, Bhattacharyya P, Mitra M, Pal S (2015). A novel approach for the extraction of
respiration signal from ECG for respiratory rate estimation. Proc. IEEE ICCE/ReTIS.
"""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from typing import ClassVar

import neurokit2 as nk
import numpy as np
from joblib import Parallel, delayed
from scipy.interpolate import CubicSpline
from scipy.signal import butter, sosfiltfilt

from methods.base import Method, Split, register

__all__ = [
    "DEFAULT_SAMPLING_RATE",
    "MIN_BEATS",
    "RespiratoryHeuristic",
    "EDRNeuroKit",
    "EDRVanGent2019",
    "EDRSoni2019",
    "EDRCharlton2016",
    "EDRSarkar2015",
    "ECGBW",
    "ECGRAV",
    "ECGRIFV",
    "PPGRIIV",
    "PPGRIAV",
    "PPGRIFV",
]

#: Sampling rate used when a split does not give one (the MESA suite's 200 Hz).
DEFAULT_SAMPLING_RATE = 200.0
#: Fewest detected beats for a beat-based estimate (a minute with fewer is not a heart rate).
MIN_BEATS = 8
#: Most rows handled by one joblib task.
_CHUNK_ROWS = 64
#: Half-width (s) of the window around an R peak searched for the Q/S trough (``ecg_rav``).
_QRS_HALF_WIDTH_S = 0.1

# ------------------------------------------------------------------------------ helpers
def _check_band(low: float, high: float, order: int, sampling_rate: float) -> None:
    """Raise ``ValueError`` unless ``0 < low < high < sampling_rate / 2`` and ``order >= 1``."""
    if not 0 < low < high < sampling_rate / 2:
        raise ValueError(
            f"band must satisfy 0 < low < high < {sampling_rate / 2} Hz, got {low}-{high} Hz"
        )
    if int(order) != order or order < 1:
        raise ValueError(f"order must be a positive integer, got {order}")


def _bandpass(x: np.ndarray, fs: float, low: float, high: float, order: int) -> np.ndarray:
    """Zero-phase Butterworth band-pass (second-order sections, forward-backward)."""
    sos = butter(int(order), [low, high], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x)


def _interpolate(times: np.ndarray, values: np.ndarray, length: int, kind: str) -> np.ndarray:
    """Beat-wise ``values`` at sample indices ``times`` onto ``0..length-1``.

    ``kind`` is ``"linear"`` or ``"cubic"`` (a cubic spline); outside the first and last beat
    the edge values are held, so a spline never extrapolates.
    """
    grid = np.arange(length, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if kind == "linear":
        return np.interp(grid, times, values)
    if kind == "cubic":
        inside = np.clip(grid, times[0], times[-1])
        return CubicSpline(times, values)(inside)
    raise ValueError(f"interpolation must be 'linear' or 'cubic', got {kind!r}")


def _ecg_r_peaks(ecg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """NeuroKit2-cleaned ECG and its R-peak indices; ``ValueError`` with too few beats."""
    cleaned = np.asarray(nk.ecg_clean(ecg, sampling_rate=fs), dtype=np.float64)
    _, info = nk.ecg_peaks(cleaned, sampling_rate=fs)
    peaks = np.unique(np.asarray(info["ECG_R_Peaks"], dtype=np.int64))
    if peaks.size < MIN_BEATS:
        raise ValueError(f"only {peaks.size} R peaks found")
    return cleaned, peaks


def _ppg_beats(ppg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NeuroKit2-cleaned PPG, its systolic peaks and the trough before each peak but the first.

    Returns ``(cleaned, peaks, troughs)`` with ``troughs[i]`` the minimum value of ``cleaned``
    from ``peaks[i]`` up to ``peaks[i + 1]`` (so ``len(troughs) == len(peaks) - 1``).
    """
    cleaned = np.asarray(nk.ppg_clean(ppg, sampling_rate=fs), dtype=np.float64)
    info = nk.ppg_findpeaks(cleaned, sampling_rate=fs)
    peaks = np.unique(np.asarray(info["PPG_Peaks"], dtype=np.int64))
    if peaks.size < MIN_BEATS:
        raise ValueError(f"only {peaks.size} pulse peaks found")
    troughs = np.minimum.reduceat(cleaned, peaks)[:-1]
    return cleaned, peaks, troughs


def _run_chunk(method: RespiratoryHeuristic, chunk: np.ndarray, fs: float) -> np.ndarray:
    """Estimates (rows, L) float32 of one chunk of segments (a joblib task)."""
    return np.stack([method._segment(row, fs) for row in np.asarray(chunk)]).astype(np.float32)


# ------------------------------------------------------------------------------ base
class RespiratoryHeuristic(Method):
    """Base of the per-segment respiratory heuristics: the shared loop, scaling and guards.

    Subclasses implement :meth:`_extract` (one segment in, one respiratory waveform of the
    same length out, raising on failure) and set ``name``, ``description`` and ``inputs``.

    Parameters
    ----------
    n_jobs : int
        joblib workers over chunks of segments in :meth:`separate` (1: a plain loop).
    """

    supervised: ClassVar[bool] = False
    learns: ClassVar[bool] = False
    modalities: ClassVar[tuple[str, ...]] = ("1d",)
    device_support: ClassVar[str] = "none"
    dependencies: ClassVar[tuple[str, ...]] = ("numpy", "scipy", "neurokit2")

    def __init__(self, n_jobs: int = 1) -> None:
        self.n_jobs = n_jobs

    def fit(self, train: Split, valid: Split | None = None) -> RespiratoryHeuristic:
        """Record ``train.sampling_rate`` (200 Hz when missing); nothing is learned."""
        rate = train.sampling_rate
        self.sampling_rate_ = float(rate) if rate else DEFAULT_SAMPLING_RATE
        self._validate(self.sampling_rate_)
        return self

    def _validate(self, sampling_rate: float) -> None:
        """Check the parameters against the sampling rate (override; default: nothing)."""

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        """Respiratory waveform of every segment.

        Parameters
        ----------
        mixtures : np.ndarray
            ECG or PPG segments, shape ``(n, L)``; memory maps are read chunk by chunk.

        Returns
        -------
        np.ndarray
            Shape ``(n, 1, L)``, float32, every row min-max scaled to ``[0, 1]``, or all NaN
            where the heuristic failed on that segment.
        """
        if np.ndim(mixtures) != 2:
            raise ValueError(f"mixtures must have shape (n, L), got {np.shape(mixtures)}")
        n, length = mixtures.shape
        if n == 0:
            return np.empty((0, 1, length), dtype=np.float32)
        fs = getattr(self, "sampling_rate_", DEFAULT_SAMPLING_RATE)
        self._validate(fs)  # a bad parameter raises here, not as NaN rows
        jobs = max(1, int(self.n_jobs))
        rows = min(_CHUNK_ROWS, math.ceil(n / jobs))
        chunks = [mixtures[start : start + rows] for start in range(0, n, rows)]
        if jobs == 1 or len(chunks) == 1:
            parts = [_run_chunk(self, chunk, fs) for chunk in chunks]
        else:
            parts = Parallel(n_jobs=jobs)(delayed(_run_chunk)(self, c, fs) for c in chunks)
        return np.concatenate(parts)[:, None, :]

    def _segment(self, row: np.ndarray, fs: float) -> np.ndarray:
        """Scaled estimate of one segment, or a NaN row when the heuristic fails on it."""
        x = np.asarray(row, dtype=np.float64)
        failed = np.full(x.shape, np.nan)
        if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
            return failed
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimate = np.asarray(self._extract(x, fs), dtype=np.float64)
        except Exception:  # NeuroKit2 raises IndexError, ValueError, ... on degenerate input
            return failed
        if estimate.shape != x.shape or not np.all(np.isfinite(estimate)):
            return failed
        span = np.ptp(estimate)
        if not span > 0:
            return failed
        return (estimate - estimate.min()) / span

    @abstractmethod
    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        """Respiratory waveform (same length) of one finite, non-flat segment; raise on failure."""


# ------------------------------------------------------------------------------ ECG
class EDRNeuroKit(RespiratoryHeuristic):
    """ECG-derived respiration from the heart rate (RSA) with ``nk.ecg_rsp``.

    ECG cleaned with ``nk.ecg_clean`` (``neurokit``), R peaks by ``nk.ecg_peaks``, heart rate
    interpolated to every sample by ``nk.ecg_rate(..., desired_length=L)``, then filtered by
    ``nk.ecg_rsp(method=nk_method)``.  Subclasses only set ``name`` and ``nk_method``.
    """

    inputs: ClassVar[tuple[str, ...] | None] = ("ECG",)
    nk_method: ClassVar[str] = ""

    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        _, peaks = _ecg_r_peaks(x, fs)
        rate = nk.ecg_rate(peaks, sampling_rate=fs, desired_length=x.size)
        return nk.ecg_rsp(rate, sampling_rate=fs, method=self.nk_method)


@register
class EDRVanGent2019(EDRNeuroKit):
    """EDR ``vangent2019``: heart rate band-passed 0.1-0.4 Hz, Butterworth order 2.

    References
    ----------
    van Gent P et al. (2019). HeartPy: a novel heart rate algorithm for the analysis of noisy
    signals. Transp Res Part F 66:368-378.
    """

    name = "nk_ecg_rsp_vangent2019"
    description = "NeuroKit2 ecg_rsp(method=vangent2019): heart rate band-passed 0.1-0.4 Hz (not the paper's algorithm)"
    nk_method = "vangent2019"


@register
class EDRSoni2019(EDRNeuroKit):
    """EDR ``soni2019``: heart rate low-passed at 0.5 Hz, Butterworth order 6.

    References
    ----------
    Soni A, Rawal K (2019). A novel approach for the extraction of breath rate variability.
    International Journal of Yoga 12(1):45.
    """

    name = "nk_ecg_rsp_soni2019"
    description = "NeuroKit2 ecg_rsp(method=soni2019): heart rate low-passed 0.5 Hz (not the paper's algorithm)"
    nk_method = "soni2019"


@register
class EDRCharlton2016(EDRNeuroKit):
    """EDR ``charlton2016``: heart rate band-passed 4/60-1 Hz, Butterworth order 6.

    References
    ----------
    Charlton PH et al. (2016). An assessment of algorithms to estimate respiratory rate from
    the electrocardiogram and photoplethysmogram. Physiol Meas 37(4):610-626.
    """

    name = "nk_ecg_rsp_charlton2016"
    description = "NeuroKit2 ecg_rsp(method=charlton2016): heart rate band-passed 0.067-1 Hz (not the paper's algorithm)"
    nk_method = "charlton2016"


@register
class EDRSarkar2015(EDRNeuroKit):
    """EDR ``sarkar2015``: heart rate band-passed 0.1-0.7 Hz, Butterworth order 6.

    References
    ----------
    Sarkar S et al. (2015). A novel approach for the extraction of respiration signal from ECG
    for respiratory rate estimation. Proc. IEEE ICCE/ReTIS.
    """

    name = "nk_ecg_rsp_sarkar2015"
    description = "NeuroKit2 ecg_rsp(method=sarkar2015): heart rate band-passed 0.1-0.7 Hz (not the paper's algorithm)"
    nk_method = "sarkar2015"


class _Banded(RespiratoryHeuristic):
    """A heuristic whose last step is a zero-phase Butterworth band-pass.

    Parameters
    ----------
    low, high : float
        Respiratory band in Hz (default 0.1-0.5 Hz, 6-30 breaths/min).
    order : int
        Butterworth order of the zero-phase band-pass.
    n_jobs : int
        joblib workers over chunks of segments.
    """

    param_constraints: ClassVar[dict[str, str]] = {"low": ">0", "high": ">0", "order": ">=1"}

    def __init__(self, low: float = 0.1, high: float = 0.5, order: int = 2, n_jobs: int = 1):
        self.low = low
        self.high = high
        self.order = order
        self.n_jobs = n_jobs

    def _validate(self, sampling_rate: float) -> None:
        _check_band(self.low, self.high, self.order, sampling_rate)

    def _bandpassed(self, x: np.ndarray, fs: float) -> np.ndarray:
        return _bandpass(x, fs, self.low, self.high, self.order)


class _BeatModulation(_Banded):
    """A beat-wise modulation interpolated onto the segment, then band-passed.

    Parameters
    ----------
    low, high : float
        Respiratory band in Hz (default 0.1-0.5 Hz, 6-30 breaths/min).
    order : int
        Butterworth order of the zero-phase band-pass.
    interpolation : str
        ``"cubic"`` (spline; edge values held outside the first and last beat) or
        ``"linear"`` interpolation of the beat-wise values.
    n_jobs : int
        joblib workers over chunks of segments.
    """

    param_constraints: ClassVar[dict[str, str]] = {"interpolation": "linear|cubic"}

    def __init__(
        self,
        low: float = 0.1,
        high: float = 0.5,
        order: int = 2,
        interpolation: str = "cubic",
        n_jobs: int = 1,
    ) -> None:
        super().__init__(low=low, high=high, order=order, n_jobs=n_jobs)
        self.interpolation = interpolation

    def _validate(self, sampling_rate: float) -> None:
        super()._validate(sampling_rate)
        if self.interpolation not in ("linear", "cubic"):
            raise ValueError(
                f"interpolation must be 'linear' or 'cubic', got {self.interpolation!r}"
            )

    def _beatwise(
        self, times: np.ndarray, values: np.ndarray, length: int, fs: float
    ) -> np.ndarray:
        """Beat-wise ``values`` at sample indices ``times`` interpolated, then band-passed."""
        return self._bandpassed(_interpolate(times, values, length, self.interpolation), fs)


@register
class ECGRAV(_BeatModulation):
    """ECG amplitude variation (RIAV): QRS amplitude per beat, band-passed 0.1-0.5 Hz.

    The ECG is cleaned and R peaks found as for the EDR methods; each beat's QRS amplitude is
    its R value minus the deepest Q/S trough within +-100 ms on the cleaned ECG (robust to the
    baseline), interpolated at the R-peak times onto every sample and band-passed with a
    zero-phase Butterworth filter (default 0.1-0.5 Hz, order 2).

    References
    ----------
    Charlton PH et al. (2016). An assessment of algorithms to estimate respiratory rate from
    the electrocardiogram and photoplethysmogram. Physiol Meas 37(4):610-626 (feature "QRS
    amplitude").
    """

    name = "ecg_rav"
    description = "ECG QRS-amplitude variation, interpolated, band-pass 0.1-0.5 Hz"
    inputs = ("ECG",)

    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        cleaned, peaks = _ecg_r_peaks(x, fs)
        half = max(1, int(round(_QRS_HALF_WIDTH_S * fs)))
        troughs = np.array(
            [cleaned[max(0, p - half) : p + half + 1].min() for p in peaks], dtype=np.float64
        )
        return self._beatwise(peaks, cleaned[peaks] - troughs, x.size, fs)


@register
class ECGBW(_Banded):
    """ECG baseline wander (RIIV): the ECG band-passed 0.1-0.5 Hz.

    The raw segment goes through a zero-phase Butterworth band-pass (default 0.1-0.5 Hz, order
    2), which keeps the respiratory baseline modulation and removes the QRS complexes; no beat
    detection. The ECG counterpart of ``ppg_riiv``.

    References
    ----------
    Charlton PH et al. (2016). An assessment of algorithms to estimate respiratory rate from
    the electrocardiogram and photoplethysmogram. Physiol Meas 37(4):610-626 (feature
    "baseline wander").
    """

    name = "ecg_bw"
    description = "ECG baseline wander: band-pass 0.1-0.5 Hz"
    inputs = ("ECG",)

    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        return self._bandpassed(x, fs)


@register
class ECGRIFV(_BeatModulation):
    """ECG frequency variation (RIFV, respiratory sinus arrhythmia): RR intervals, band-passed.

    R peaks are found as for ``ecg_rav``; each RR interval (s) is placed at the time of the
    later peak, interpolated onto every sample and band-passed (zero-phase Butterworth, default
    0.1-0.5 Hz, order 2). The ECG counterpart of ``ppg_rifv``; the ``nk_ecg_rsp_*`` rows filter
    NeuroKit2's heart rate instead.

    References
    ----------
    Charlton PH et al. (2016). An assessment of algorithms to estimate respiratory rate from
    the electrocardiogram and photoplethysmogram. Physiol Meas 37(4):610-626 (feature "RR
    interval").
    """

    name = "ecg_rifv"
    description = "ECG RR-interval (frequency) variation, interpolated, band-pass 0.1-0.5 Hz"
    inputs = ("ECG",)

    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        _, peaks = _ecg_r_peaks(x, fs)
        return self._beatwise(peaks[1:], np.diff(peaks) / fs, x.size, fs)


# ------------------------------------------------------------------------------ PPG
@register
class PPGRIIV(_Banded):
    """PPG intensity variation (RIIV, baseline): the PPG band-passed 0.1-0.5 Hz.

    The raw segment goes through a zero-phase Butterworth band-pass (default 0.1-0.5 Hz, order
    2), which keeps the respiratory baseline modulation and removes the cardiac pulses; no
    beat detection.

    References
    ----------
    Karlen W et al. (2013). Multiparameter respiratory rate estimation from the
    photoplethysmogram. IEEE Trans Biomed Eng 60(7):1946-1953.
    """

    name = "ppg_riiv"
    description = "PPG intensity (baseline) variation: band-pass 0.1-0.5 Hz"
    inputs = ("PPG",)

    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        return self._bandpassed(x, fs)


@register
class PPGRIAV(_BeatModulation):
    """PPG amplitude variation (RIAV): pulse amplitude per beat, band-passed 0.1-0.5 Hz.

    Pulses are found with ``nk.ppg_findpeaks`` (``elgendi``) on ``nk.ppg_clean`` output (0.5-8
    Hz band-pass); the trough of a pulse is the minimum of the cleaned PPG between the previous
    peak and its peak, and its amplitude is peak minus trough.  Amplitudes are interpolated at
    the peak times onto every sample and band-passed (zero-phase Butterworth, default 0.1-0.5
    Hz, order 2).

    References
    ----------
    Karlen W et al. (2013). Multiparameter respiratory rate estimation from the
    photoplethysmogram. IEEE Trans Biomed Eng 60(7):1946-1953.
    """

    name = "ppg_riav"
    description = "PPG pulse-amplitude variation, interpolated, band-pass 0.1-0.5 Hz"
    inputs = ("PPG",)

    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        cleaned, peaks, troughs = _ppg_beats(x, fs)
        return self._beatwise(peaks[1:], cleaned[peaks[1:]] - troughs, x.size, fs)


@register
class PPGRIFV(_BeatModulation):
    """PPG frequency variation (RIFV): inter-beat intervals, band-passed 0.1-0.5 Hz.

    Pulses are found as for ``ppg_riav``; each inter-beat interval (s) is placed at the time
    of the later peak, interpolated onto every sample and band-passed (zero-phase Butterworth,
    default 0.1-0.5 Hz, order 2).

    References
    ----------
    Karlen W et al. (2013). Multiparameter respiratory rate estimation from the
    photoplethysmogram. IEEE Trans Biomed Eng 60(7):1946-1953.
    """

    name = "ppg_rifv"
    description = "PPG pulse-interval (frequency) variation, interpolated, band-pass 0.1-0.5 Hz"
    inputs = ("PPG",)

    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        _, peaks, _ = _ppg_beats(x, fs)
        return self._beatwise(peaks[1:], np.diff(peaks) / fs, x.size, fs)
