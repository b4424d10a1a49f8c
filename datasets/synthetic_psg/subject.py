"""One subject of the synthetic MESA-like cohort, at the cohort's difficulty.

One job: :func:`simulate_subject` draws a subject's breathing and turns it into the four MESA
channels (``EKG``, ``Pleth``, ``Flow``, ``Thor``) plus the true respiration, from the pieces of
:mod:`datasets.synthetic_psg.physiology` (``difficulty="easy"``, described there) or through
:mod:`datasets.synthetic_psg.realistic` (the default ``"realistic"`` difficulty).
"""

from __future__ import annotations

import numpy as np

from datasets.synthetic_psg.config import CohortConfig
from datasets.synthetic_psg.physiology import (
    CARDIAC_RATE,
    PAD_S,
    RESP_RATE,
    draw_beat_times,
    draw_events,
    package_subject,
    simulate_breathing,
    simulate_ecg,
    simulate_nasal_pressure,
    simulate_ppg,
    simulate_thoracic,
    subject_rng,
)
from datasets.synthetic_psg.realistic import simulate_realistic

__all__ = ["simulate_subject"]


def simulate_subject(index: int, config: CohortConfig) -> dict[str, object]:
    """Simulate the recordings and the true respiration of one subject.

    Parameters
    ----------
    index : int
        0-based subject index (file number ``index + 1``).
    config : CohortConfig
        Cohort parameters; ``subjects`` does not influence a subject's signals.  With
        ``difficulty="realistic"`` the subject comes from :mod:`datasets.synthetic_psg.realistic`.

    Returns
    -------
    dict
        ``"signals"``: EDF label -> float64 array (EKG, Pleth, Flow, Thor); ``"rates"``: EDF
        label -> sampling rate in Hz; ``"truth"``: the arrays of the truth file (see the module
        docstring); ``"params"``: the subject's drawn scalar parameters.
    """
    if not 0 <= index < config.subjects:
        raise ValueError(f"index must lie in 0..{config.subjects - 1}, got {index}")
    if config.difficulty != "easy":
        return simulate_realistic(index, config)
    rng = subject_rng(index, config)
    seconds = config.seconds
    span = (-PAD_S, seconds + PAD_S)
    noise = config.noise_scale
    per_hour = rng.uniform(*config.apnea_per_hour)
    breathing, params = simulate_breathing(rng, *span, per_hour)
    beats, cardiac = draw_beat_times(rng, breathing, span)
    motion = draw_events(rng, rng.uniform(0.05, 0.4) / 60.0, 0.0, seconds, (1.0, 6.0))
    n_cardiac = seconds * CARDIAC_RATE
    ecg, ecg_params = simulate_ecg(rng, n_cardiac, breathing, beats, span, motion, noise)
    ppg, ppg_params = simulate_ppg(rng, n_cardiac, breathing, beats, span, motion, noise)
    volume = breathing.volume(np.arange(seconds * RESP_RATE) / RESP_RATE)
    pressure, pressure_params = simulate_nasal_pressure(rng, volume, span, noise)
    belt, belt_params = simulate_thoracic(rng, breathing, volume.size, span, noise)
    params.update(cardiac, **ecg_params, **ppg_params, **pressure_params, **belt_params)
    params["motion_events"] = int(motion[0].size)
    signals = {"EKG": ecg, "Pleth": ppg, "Flow": pressure, "Thor": belt}
    return package_subject(breathing, beats, seconds, signals, params)
