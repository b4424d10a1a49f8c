"""Fusion of respiratory modulations (Karlen et al. 2013): one rate from three, or none.

Respiration modulates a cardiac signal three ways: its baseline / intensity, its beat
amplitude and its beat frequency (see :mod:`methods.respiration_heuristics`). Each gives a
rate; *smart fusion* reports their mean when they agree and abstains when they do not.

============================  =====  ==============================================================
name                          input  rate of a segment
============================  =====  ==============================================================
``ppg_smart_fusion``          PPG    mean of the ``ppg_riiv``, ``ppg_riav`` and ``ppg_rifv`` rates
                                     when all three exist and their standard deviation is at most
                                     ``max_sd_bpm`` (4 breaths/min); otherwise none (abstains)
``ecg_smart_fusion``          ECG    the same with ``ecg_bw``, ``ecg_rav`` and ``ecg_rifv``
``ppg_mean_fusion``           PPG    mean of the rates that exist, never abstains on purpose
``ecg_mean_fusion``           ECG    the same with the ECG modulations
============================  =====  ==============================================================

The rate of each modulation is read with the suites' own protocol
(:func:`benchmark.evaluation.respiration.respiratory_rate`: ``crop`` samples cut from each edge, NeuroKit2
troughs). The standard deviation is the sample one (``ddof=1``, as MATLAB's ``std`` in which
the reference implementations are written). The benchmark scores waveforms, so a fused rate
is returned as a sine at that rate (the same carrier as ``median_rate``), which the suites'
protocol reads back to within a few hundredths of a breath per minute; an abstention is a row
of NaN, which the suites report as "no rate" (coverage). The sine is not a waveform estimate:
these rows' waveform correlations mean nothing.

References
----------
Karlen W, Raman S, Ansermino JM, Dumont GA (2013). Multiparameter respiratory rate estimation
from the photoplethysmogram. IEEE Trans Biomed Eng 60(7):1946-1953 (smart fusion, threshold
4 breaths/min).
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import numpy as np

from methods.base import register
from methods.respiration_heuristics import (
    ECGBW,
    ECGRAV,
    ECGRIFV,
    PPGRIAV,
    PPGRIFV,
    PPGRIIV,
    RespiratoryHeuristic,
)

__all__ = ["KARLEN_MAX_SD_BPM", "ModulationFusion", "fuse_rates"]

#: Karlen et al. (2013): the modulations agree when their rates' SD is at most 4 breaths/min.
KARLEN_MAX_SD_BPM = 4.0


class _Abstain(ValueError):
    """The modulations disagree (or too few have a rate): this segment gets no rate."""


def fuse_rates(rates: np.ndarray, max_sd_bpm: float | None) -> float:
    """One rate from the rates of a segment's modulations, or NaN.

    Parameters
    ----------
    rates : np.ndarray
        The modulations' rates in breaths/min, NaN where a modulation has none.
    max_sd_bpm : float or None
        Smart fusion: the mean when every rate exists and their sample standard deviation is
        at most this, else NaN. ``None``: the plain mean of the rates that exist (NaN if none).
    """
    rates = np.asarray(rates, dtype=np.float64)
    found = rates[np.isfinite(rates)]
    if max_sd_bpm is None:
        return float(found.mean()) if found.size else float("nan")
    if found.size < rates.size or found.size < 2 or float(np.std(found, ddof=1)) > max_sd_bpm:
        return float("nan")
    return float(found.mean())


class ModulationFusion(RespiratoryHeuristic):
    """Rates of three respiratory modulations of one input, fused per segment.

    Subclasses set ``name``, ``inputs`` and ``modulations`` (the heuristic classes whose
    waveforms give the rates), and the default of ``max_sd_bpm``.

    Parameters
    ----------
    max_sd_bpm : float or None
        Agreement threshold of smart fusion (breaths/min); ``None``: the plain mean, no
        abstention.
    low, high, order, interpolation :
        The band-pass and beat interpolation of every modulation (as in
        :mod:`methods.respiration_heuristics`).
    crop : int
        Samples cut from each edge before a modulation's rate is read (the suites' protocol).
    n_jobs : int
        joblib workers over chunks of segments.
    """

    modulations: ClassVar[tuple[type[RespiratoryHeuristic], ...]] = ()
    param_constraints: ClassVar[dict[str, str]] = {
        "low": ">0", "high": ">0", "order": ">=1", "crop": ">=0", "interpolation": "linear|cubic"}

    def __init__(
        self, max_sd_bpm: float | None = KARLEN_MAX_SD_BPM, low: float = 0.1, high: float = 0.5,
        order: int = 2, interpolation: str = "cubic", crop: int = 512, n_jobs: int = 1,
    ) -> None:
        self.max_sd_bpm = max_sd_bpm
        self.low = low
        self.high = high
        self.order = order
        self.interpolation = interpolation
        self.crop = crop
        self.n_jobs = n_jobs

    def _validate(self, sampling_rate: float) -> None:
        if self.max_sd_bpm is not None and not self.max_sd_bpm > 0:
            raise ValueError(f"max_sd_bpm must be positive or None, got {self.max_sd_bpm}")
        for modulation in self._modulation_methods():
            modulation._validate(sampling_rate)

    def _modulation_methods(self) -> list[RespiratoryHeuristic]:
        made = []
        for cls in self.modulations:
            kwargs = {"low": self.low, "high": self.high, "order": self.order}
            if "interpolation" in inspect.signature(cls).parameters:
                kwargs["interpolation"] = self.interpolation
            made.append(cls(**kwargs))
        return made

    def modulation_rates(self, segment: np.ndarray, sampling_rate: float) -> np.ndarray:
        """The rate of each modulation of one segment (breaths/min, NaN where none)."""
        from benchmark.evaluation.respiration import respiratory_rate

        return np.array([respiratory_rate(m._segment(segment, sampling_rate), sampling_rate, self.crop)
                         for m in self._modulation_methods()])

    def _extract(self, x: np.ndarray, fs: float) -> np.ndarray:
        rate = fuse_rates(self.modulation_rates(x, fs), self.max_sd_bpm)
        if not np.isfinite(rate):
            raise _Abstain("the modulations disagree or too few have a rate")
        return np.sin(2 * np.pi * rate / 60.0 * np.arange(x.size) / fs)


@register
class PPGSmartFusion(ModulationFusion):
    """Smart fusion (Karlen et al. 2013) of the PPG's intensity, amplitude and frequency rates."""

    name = "ppg_smart_fusion"
    description = ("Smart fusion (Karlen et al. 2013): mean of the RIIV/RIAV/RIFV rates when their SD "
                   "<= 4 breaths/min, else abstains")
    inputs = ("PPG",)
    modulations = (PPGRIIV, PPGRIAV, PPGRIFV)


@register
class ECGSmartFusion(ModulationFusion):
    """Smart fusion (Karlen et al. 2013) of the ECG's baseline, QRS-amplitude and RR-interval rates."""

    name = "ecg_smart_fusion"
    description = ("Smart fusion (Karlen et al. 2013) on ECG: mean of the baseline/QRS-amplitude/RR-interval "
                   "rates when their SD <= 4 breaths/min, else abstains")
    inputs = ("ECG",)
    modulations = (ECGBW, ECGRAV, ECGRIFV)


class _MeanFusion(ModulationFusion):
    """The plain mean of the modulation rates: ``max_sd_bpm`` defaults to ``None`` (no abstention)."""

    def __init__(self, max_sd_bpm: float | None = None, low: float = 0.1, high: float = 0.5, order: int = 2,
                 interpolation: str = "cubic", crop: int = 512, n_jobs: int = 1) -> None:
        super().__init__(max_sd_bpm, low, high, order, interpolation, crop, n_jobs)


@register
class PPGMeanFusion(_MeanFusion):
    """The plain mean of the PPG's modulation rates, without abstaining."""

    name = "ppg_mean_fusion"
    description = "Mean of the PPG RIIV/RIAV/RIFV rates (no abstention)"
    inputs = ("PPG",)
    modulations = (PPGRIIV, PPGRIAV, PPGRIFV)


@register
class ECGMeanFusion(_MeanFusion):
    """The plain mean of the ECG's modulation rates, without abstaining."""

    name = "ecg_mean_fusion"
    description = "Mean of the ECG baseline/QRS-amplitude/RR-interval rates (no abstention)"
    inputs = ("ECG",)
    modulations = (ECGBW, ECGRAV, ECGRIFV)
