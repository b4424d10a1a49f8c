"""Reading MESA recordings: EDF files (pyedflib) and synthetic true-respiration files.

Finds the configured channels of an EDF file through the label map with aliases (first alias
present wins, compared case-insensitively without spaces), checks their sampling rates, reads
them with pyedflib and resamples them to the common rate into a :class:`Recording`; absent or
constant channels are listed as missing.  Also locates and loads the true respiration that a
synthetic cohort keeps beside each EDF file.  Depends on :mod:`datasets.mesa.config` and
:mod:`datasets.mesa.resampling` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyedflib

from datasets.mesa.config import INPUT_CHANNELS, PreprocessConfig, RecordingError
from datasets.mesa.resampling import resample

__all__ = ["Recording", "read_recording", "read_true_respiration", "truth_file"]


@dataclass(frozen=True)
class Recording:
    """One recording, every present channel resampled to a common rate.

    Attributes
    ----------
    path : Path
        The EDF file.
    record_id : str
        Identifier, the file name without extension (e.g. ``mesa-sleep-0001``).
    sampling_rate : float
        Common rate of ``signals`` in Hz.
    signals : dict of str to np.ndarray
        Channel name -> float64 samples, all of the same length.
    source_rates : dict of str to float
        Channel name -> sampling rate in the file.
    source_labels : dict of str to str
        Channel name -> EDF label it was read from.
    missing : dict of str to str
        Channel name -> why it is absent (not in the file, or constant).
    """

    path: Path
    record_id: str
    sampling_rate: float
    signals: dict[str, np.ndarray]
    source_rates: dict[str, float] = field(default_factory=dict)
    source_labels: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        """Number of samples of every channel."""
        return min((len(x) for x in self.signals.values()), default=0)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sampling_rate


def _normalize_label(label: str) -> str:
    return "".join(label.split()).lower()


def _match_channels(
    labels: Sequence[str], label_map: Mapping[str, tuple[str, ...]]
) -> dict[str, int]:
    """Channel name -> index of the first EDF signal matching one of its aliases, in order."""
    positions: dict[str, int] = {}
    for index, label in enumerate(labels):
        positions.setdefault(_normalize_label(label), index)
    found = {}
    for channel, aliases in label_map.items():
        for alias in aliases:
            if _normalize_label(alias) in positions:
                found[channel] = positions[_normalize_label(alias)]
                break
    return found


def _check_rate(
    path: Path, channel: str, label: str, rate: float, config: PreprocessConfig
) -> None:
    """Raise RecordingError for an implausible or unexpected sampling rate."""
    if not config.min_rate <= rate <= config.max_rate:
        raise RecordingError(
            path,
            f"implausible sampling rate {rate:g} Hz of {channel} (label {label!r}); "
            f"expected {config.min_rate:g}-{config.max_rate:g} Hz",
        )
    allowed = (config.expected_rates or {}).get(channel)
    if allowed and not np.any(np.isclose(rate, allowed)):
        raise RecordingError(
            path,
            f"unexpected sampling rate {rate:g} Hz of {channel} (label {label!r}); "
            f"expected {', '.join(f'{r:g}' for r in allowed)} Hz",
        )


def _read_edf_channels(path: Path, config: PreprocessConfig) -> tuple[dict, dict, dict]:
    """Raw samples, rates and labels of the channels of ``config.labels`` found in ``path``."""
    try:
        reader = pyedflib.EdfReader(str(path))
    except Exception as err:  # pyedflib raises OSError, but be safe with odd files
        reason = str(err).removeprefix(f"{path}: ")
        raise RecordingError(path, f"unreadable EDF file ({reason})") from err
    try:
        labels = reader.getSignalLabels()
        raw, rates, found = {}, {}, {}
        for channel, index in _match_channels(labels, config.labels).items():
            rate = float(reader.getSampleFrequency(index))
            _check_rate(path, channel, labels[index], rate, config)
            try:
                raw[channel] = reader.readSignal(index)
            except Exception as err:
                raise RecordingError(path, f"cannot read {labels[index]!r} ({err})") from err
            rates[channel], found[channel] = rate, labels[index]
    finally:
        reader.close()
    return raw, rates, found


def read_recording(path: str | Path, config: PreprocessConfig | None = None) -> Recording:
    """Read an EDF recording and resample its channels to ``config.target_rate``.

    Parameters
    ----------
    path : str or Path
        EDF file.
    config : PreprocessConfig, optional
        Preprocessing parameters (default: ``PreprocessConfig()``).

    Returns
    -------
    Recording
        The present channels, all of equal length; absent or constant channels are listed in
        ``missing``.

    Raises
    ------
    RecordingError
        For an unreadable, corrupt or truncated file, an implausible or unexpected sampling
        rate, a recording without a usable ECG and PPG, or one shorter than one segment.
    """
    config = config or PreprocessConfig()
    path = Path(path)
    raw, rates, found = _read_edf_channels(path, config)
    missing = {
        channel: f"no channel labelled {' or '.join(config.labels[channel])}"
        for channel in config.labels
        if channel not in raw
    }
    signals = {}
    for channel, x in raw.items():
        if x.size == 0 or np.ptp(x) == 0:
            missing[channel] = "constant signal" if x.size else "no samples"
            continue
        signals[channel] = resample(x, rates[channel], config.target_rate)
    if not any(channel in signals for channel in INPUT_CHANNELS):
        reasons = "; ".join(f"{c}: {missing.get(c, 'not configured')}" for c in INPUT_CHANNELS)
        raise RecordingError(path, f"no usable ECG and no usable PPG ({reasons})")
    n = min(len(x) for x in signals.values())
    if n < config.segment_length:
        raise RecordingError(
            path,
            f"shorter than one segment ({n / config.target_rate:.1f} s < "
            f"{config.segment_length / config.target_rate:.2f} s)",
        )
    return Recording(
        path=path,
        record_id=path.stem,
        sampling_rate=float(config.target_rate),
        signals={channel: x[:n] for channel, x in signals.items()},
        source_rates={c: rates[c] for c in signals},
        source_labels=found,
        missing=missing,
    )


def truth_file(edf: str | Path) -> Path:
    """Where a synthetic cohort keeps the true respiration of ``edf``.

    Parameters
    ----------
    edf : str or Path
        EDF file ``.../edfs/<stem>.edf``.

    Returns
    -------
    Path
        ``.../truth/<stem>-resp.npz`` (a sibling ``truth`` folder of the EDF folder).
    """
    edf = Path(edf)
    return edf.parent.parent / "truth" / f"{edf.stem}-resp.npz"


def read_true_respiration(edf: str | Path, target_rate: float) -> np.ndarray | None:
    """Load the synthetic true respiration beside an EDF file, resampled to ``target_rate``.

    Parameters
    ----------
    edf : str or Path
        EDF file of the recording.
    target_rate : float
        Sampling rate of the result in Hz.

    Returns
    -------
    np.ndarray or None
        Float64 signal from the start of the recording, or None when there is no truth file.

    Raises
    ------
    RecordingError
        If the truth file exists but cannot be read.
    """
    path = truth_file(edf)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            signal = np.asarray(data["respiration"], dtype=np.float64)
            rate = float(data["sampling_rate"])
    except Exception as err:
        raise RecordingError(path, f"unreadable true-respiration file ({err})") from err
    if signal.ndim != 1 or not rate > 0:
        raise RecordingError(path, "true respiration must be 1-D with a positive sampling_rate")
    return resample(signal, rate, target_rate)
