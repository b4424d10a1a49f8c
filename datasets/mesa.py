"""MESA Sleep polysomnography: EDF reader, preprocessing, recording splits and segment cache.

Preprocessing follows section 4.2 of "Blind Source Separation of Single-Channel Mixtures via
Multi-Encoder Autoencoders":

1. every channel is read at its own sampling rate (MESA: ``EKG`` and ``Pleth`` 256 Hz, ``Flow``
   and ``Thor`` 32 Hz) and resampled to 200 Hz with a polyphase filter
   (``scipy.signal.resample_poly``, rational factor from the two rates);
2. the recording is cut into non-overlapping 12,288-sample segments (61.44 s), aligned across
   channels;
3. each segment of each channel is min-max scaled to [0, 1];
4. segments whose mean heart rate (NeuroKit2 R peaks of the ECG, or pulse peaks of the PPG when
   the ECG is unavailable) lies outside 40-180 bpm or cannot be determined are dropped.

Channels are found through a configurable label map with aliases (:data:`DEFAULT_LABELS`; first
alias present wins, compared case-insensitively without spaces).  A channel that is absent or
entirely constant is *missing* for the recording; a segment of a channel that is constant or
contains a non-finite value is *unavailable* for that segment.  Both are recorded, never fatal,
as long as the recording has an ECG or a PPG.  Recordings that cannot be used raise
:class:`RecordingError`; :func:`build_segment_cache` logs and skips them.

Splits are made by recording, never by segment (:func:`split_recordings`).  The cache holds one
folder per split with memory-mappable float32 arrays, see :func:`build_segment_cache`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import neurokit2 as nk
import numpy as np
import pyedflib
from joblib import Parallel, delayed
from scipy.signal import firwin, resample_poly
from tqdm import tqdm

from datasets.npy import NpyWriter

__all__ = [
    "CHANNELS",
    "DEFAULT_LABELS",
    "INPUT_CHANNELS",
    "SPLITS",
    "TRUE_RESPIRATION",
    "NoUsableRecordingsError",
    "PreprocessConfig",
    "Recording",
    "RecordingError",
    "SegmentBatch",
    "SegmentCache",
    "build_segment_cache",
    "find_recordings",
    "heart_rate",
    "read_recording",
    "read_true_respiration",
    "resample",
    "segment_recording",
    "split_recordings",
    "truth_file",
]

logger = logging.getLogger("bss_bench.mesa")

#: Channel name -> EDF labels to look for, in order of preference.
DEFAULT_LABELS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ECG": ("EKG", "ECG"),
        "PPG": ("Pleth", "PPG"),
        "nasal_pressure": ("Pres", "Flow"),
        "thoracic": ("Thor",),
    }
)
CHANNELS: tuple[str, ...] = tuple(DEFAULT_LABELS)
#: Channels the separation methods take as input; the others are respiratory references.
INPUT_CHANNELS: tuple[str, ...] = ("ECG", "PPG")
#: Name of the synthetic ground-truth respiration in a recording and in the cache.
TRUE_RESPIRATION = "true_respiration"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
#: Bumped whenever preprocessing changes its output, so that stale caches are not reused.
PIPELINE_VERSION = 1
#: A segment is flat when its range is at most this fraction of its largest magnitude (or 1).
_FLAT_RTOL = 1e-9
_MIN_BEATS = 3


class RecordingError(Exception):
    """A recording that cannot be used.

    Parameters
    ----------
    path : str or Path
        The recording's file.
    reason : str
        What is wrong with it.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        return type(self), (self.path, self.reason)


class NoUsableRecordingsError(Exception):
    """A data folder without a single usable recording."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing parameters.

    Parameters
    ----------
    target_rate : int
        Common sampling rate in Hz after resampling.
    segment_length : int
        Samples per segment at ``target_rate``.
    hr_range : tuple of float
        Mean heart rates (bpm) outside this closed range drop a segment.
    labels : Mapping of str to tuple of str
        Channel name -> EDF labels to look for, first match wins (case-insensitive, spaces
        ignored).
    expected_rates : Mapping of str to tuple of float, optional
        Channel name -> allowed sampling rates in Hz; any other rate makes the recording
        unusable.  Channels not listed (or all, when None) accept any rate within
        ``[min_rate, max_rate]``.
    min_rate, max_rate : float
        Plausible sampling rates in Hz; rates outside make the recording unusable.
    """

    target_rate: int = 200
    segment_length: int = 12288
    hr_range: tuple[float, float] = (40.0, 180.0)
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    expected_rates: Mapping[str, tuple[float, ...]] | None = None
    min_rate: float = 1.0
    max_rate: float = 20000.0

    def __post_init__(self) -> None:
        labels = {str(k): _as_tuple(v) for k, v in dict(self.labels).items()}
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "hr_range", tuple(float(v) for v in self.hr_range))
        if self.expected_rates is not None:
            rates = {
                str(k): tuple(float(r) for r in _as_tuple(v))
                for k, v in dict(self.expected_rates).items()
            }
            object.__setattr__(self, "expected_rates", rates)
        if self.target_rate <= 0 or self.segment_length <= 0:
            raise ValueError("target_rate and segment_length must be positive")
        if len(self.hr_range) != 2 or not 0 < self.hr_range[0] < self.hr_range[1]:
            raise ValueError(f"hr_range must be (low, high) with 0 < low < high: {self.hr_range}")
        if not labels or any(not aliases for aliases in labels.values()):
            raise ValueError("labels must map every channel to at least one EDF label")
        if TRUE_RESPIRATION in labels:
            raise ValueError(f"{TRUE_RESPIRATION!r} is reserved and cannot be an EDF channel")
        if not 0 < self.min_rate < self.max_rate:
            raise ValueError("need 0 < min_rate < max_rate")

    def __hash__(self) -> int:
        return hash(self.key())

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a JSON-friendly dictionary.

        Returns
        -------
        dict
            Field name to value.
        """
        return {
            "target_rate": self.target_rate,
            "segment_length": self.segment_length,
            "hr_range": list(self.hr_range),
            "labels": {k: list(v) for k, v in self.labels.items()},
            "expected_rates": None
            if self.expected_rates is None
            else {k: list(v) for k, v in sorted(self.expected_rates.items())},
            "min_rate": self.min_rate,
            "max_rate": self.max_rate,
        }

    def key(self) -> str:
        """Return a short, stable hash of the configuration and the pipeline version.

        Returns
        -------
        str
            First 16 hex digits of the SHA-256 of the JSON of the fields.
        """
        return _hash({**self.to_dict(), "version": PIPELINE_VERSION})


def _as_tuple(value: object) -> tuple:
    return (value,) if isinstance(value, str | int | float) else tuple(value)


def _hash(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- reading


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


# --------------------------------------------------------------------------- segmenting


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


# --------------------------------------------------------------------------- recordings & splits


def find_recordings(data_dir: str | Path) -> list[Path]:
    """Find the EDF recordings of a MESA-style data folder.

    Parameters
    ----------
    data_dir : str or Path
        Either a MESA root holding ``polysomnography/edfs/mesa-sleep-*.edf`` or a folder that
        directly holds ``.edf`` files.

    Returns
    -------
    list of Path
        Sorted EDF paths; possibly empty.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is not a folder.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    nested = root / "polysomnography" / "edfs"
    if nested.is_dir():
        return sorted(p for p in nested.glob("mesa-sleep-*.edf") if p.is_file())
    return sorted(
        p
        for p in root.iterdir()
        if p.is_file() and p.suffix.lower() == ".edf" and not p.name.startswith(".")
    )


def split_recordings(
    ids: Sequence[str],
    seed: int,
    n_select: int = 1000,
    n_train: int = 500,
    valid_fraction: float = 0.1,
) -> dict[str, list[str]]:
    """Split recordings (never segments) into training, validation and test recordings.

    The rule of the paper, scaled to small cohorts:

    1. draw ``m = min(n_select, len(ids))`` recordings at random (seeded) and shuffle them;
    2. the first ``n_train`` go to training and the rest to test; when fewer than ``n_select``
       recordings exist, training gets the same proportion, ``floor(m * n_train / n_select)``
       (half with the defaults), but at least one recording and, when ``m >= 2``, leaving at
       least one for test;
    3. ``round(valid_fraction * n_train_recordings)`` of the training recordings (at least one
       when there are three or more) become validation recordings.

    Parameters
    ----------
    ids : sequence of str
        Unique recording identifiers.
    seed : int
        Seed of the random selection.
    n_select : int
        Recordings to select (1,000 in the paper).
    n_train : int
        Training recordings among them, validation included (500 in the paper).
    valid_fraction : float
        Fraction of the training recordings used for validation.

    Returns
    -------
    dict of str to list of str
        Sorted, disjoint ``"train"``, ``"valid"`` and ``"test"`` identifiers.
    """
    ids = [str(i) for i in ids]
    if not ids:
        raise ValueError("no recordings to split")
    if len(set(ids)) != len(ids):
        raise ValueError("recording identifiers must be unique")
    if not 0 < n_train <= n_select:
        raise ValueError(f"need 0 < n_train <= n_select, got {n_train} and {n_select}")
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must lie in [0, 1), got {valid_fraction}")
    rng = np.random.default_rng(seed)
    m = min(n_select, len(ids))
    chosen = [ids[i] for i in rng.choice(len(ids), size=m, replace=False)]
    rng.shuffle(chosen)
    n_tr = n_train if m == n_select else (m * n_train) // n_select
    n_tr = max(1, min(n_tr, m - 1)) if m >= 2 else m
    n_valid = round(valid_fraction * n_tr)
    if n_tr >= 3:
        n_valid = min(max(n_valid, 1), n_tr - 1)
    train, test = chosen[:n_tr], chosen[n_tr:]
    return {
        "train": sorted(train[n_valid:]),
        "valid": sorted(train[:n_valid]),
        "test": sorted(test),
    }


# --------------------------------------------------------------------------- cache


class SegmentCache:
    """A built segment cache: one folder per split with memory-mappable arrays.

    Parameters
    ----------
    root : str or Path
        Cache folder (``cache_dir/mesa-<key>``) holding ``summary.json``.

    Attributes
    ----------
    root : Path
        Cache folder.
    summary : dict
        Contents of ``summary.json``.
    splits : tuple of str
        ``("train", "valid", "test")``.
    """

    splits: tuple[str, ...] = SPLITS

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        summary = self.root / "summary.json"
        if not summary.is_file():
            raise FileNotFoundError(f"not a segment cache (no summary.json): {self.root}")
        self.summary: dict = json.loads(summary.read_text())

    @property
    def channels(self) -> list[str]:
        """Signal arrays of every split (channels, and the true respiration if present)."""
        return list(self.summary["channels"])

    def split(self, name: str) -> dict[str, np.ndarray]:
        """Read-only memory maps of one split.

        To read rows without mapping them into memory (training batches over a whole split),
        wrap an array in :class:`datasets.rows.RowView`: ``RowView(arrays["ECG"], rows)``.

        Parameters
        ----------
        name : {"train", "valid", "test"}
            Split name.

        Returns
        -------
        dict of str to np.ndarray
            Per channel ``C``: float32 ``C`` (n, segment_length), NaN rows where unavailable,
            and bool ``available_C`` (n,); ``recording`` (str ids), ``segment_index``,
            ``start_time`` (s) and ``heart_rate`` (bpm), all (n,).
        """
        if name not in self.splits:
            raise ValueError(f"unknown split {name!r}; choose one of {', '.join(self.splits)}")
        folder = self.root / name
        return {
            path.stem: np.load(path, mmap_mode="r", allow_pickle=False)
            for path in sorted(folder.glob("*.npy"))
        }

    def __repr__(self) -> str:
        counts = {s: self.summary["splits"][s]["segments"] for s in self.splits}
        return f"SegmentCache({str(self.root)!r}, segments={counts})"


def _file_stamp(path: Path) -> list[object] | None:
    """Name, size and modification time of a file (None when absent) for the cache key."""
    if not path.exists():
        return None
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def _stored_channels(config: PreprocessConfig, signals: Sequence[str]) -> list[str]:
    """Input channels asked for, then the reference channels."""
    return list(signals) + [c for c in config.labels if c not in INPUT_CHANNELS]


def _save_part(
    batch: SegmentBatch, keep: np.ndarray, channels: Iterable[str], folder: Path
) -> None:
    """Write the kept rows of one recording as small .npy files."""
    folder.mkdir(parents=True)
    for channel in channels:
        np.save(folder / f"{channel}.npy", batch.signals[channel][keep])
        np.save(folder / f"available_{channel}.npy", batch.available[channel][keep])
    np.save(folder / "segment_index.npy", batch.segment_index[keep])
    np.save(folder / "start_time.npy", batch.start_time[keep])
    np.save(folder / "heart_rate.npy", batch.heart_rate[keep])


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Truncate ``x`` to ``n`` samples or pad it with NaN (unavailable) up to ``n``."""
    if x.size >= n:
        return x[:n]
    return np.concatenate([x, np.full(n - x.size, np.nan)])


def _process_recording(
    path: Path, config: PreprocessConfig, signals: tuple[str, ...], part_dir: Path
) -> dict[str, object]:
    """Worker: read, segment and store one recording; returns what the summary needs."""
    meta: dict[str, object] = {"id": path.stem, "file": path.name}
    try:
        recording = read_recording(path, config)
        if not any(s in recording.signals for s in signals):
            raise RecordingError(path, f"none of {', '.join(signals)} is usable")
        truth = read_true_respiration(path, config.target_rate)
        if truth is not None:
            truth = _fit_length(truth, recording.n_samples)
            recording = replace(recording, signals={**recording.signals, TRUE_RESPIRATION: truth})
        batch = segment_recording(recording, config)
    except RecordingError as err:
        return {**meta, "error": err.reason}
    keep = np.zeros(len(batch), dtype=bool)
    for channel in signals:
        keep |= batch.available[channel]
    channels = _stored_channels(config, signals) + ([TRUE_RESPIRATION] if truth is not None else [])
    _save_part(batch, keep, channels, part_dir)
    return {
        **meta,
        "segments": int(keep.sum()),
        "total_segments": batch.n_total,
        "dropped_hr": batch.dropped_hr,
        "dropped_unavailable": int(len(batch) - keep.sum()),
        "missing_channels": recording.missing,
        "has_truth": truth is not None,
        "part": str(part_dir),
    }


_ROW_DTYPES = {"segment_index": np.int64, "start_time": np.float64, "heart_rate": np.float64}


def _stream_rows(
    parts: list[dict],
    name: str,
    target: Path,
    dtype: type,
    row_shape: tuple[int, ...],
    fill: object,
) -> None:
    """Concatenate array ``name`` of all parts into ``target``, one part at a time.

    A part without the array (a recording without true respiration) contributes ``fill`` rows.
    """
    total = sum(int(p["segments"]) for p in parts)
    with NpyWriter(target, dtype, (total, *row_shape)) as out:
        for part in parts:
            source = Path(part["part"]) / f"{name}.npy"
            n = int(part["segments"])
            if not source.exists():
                out.fill(n, fill)
            elif out.append_file(source) != n:
                raise ValueError(f"{source} does not hold {n} rows")


def _count_unavailable(flags: Path, part: dict) -> int:
    """Segments of one part whose channel is unavailable (all when the flags file is absent)."""
    if not flags.exists():
        return int(part["segments"])
    return int((~np.load(flags, allow_pickle=False)).sum())


def _write_split(parts: list[dict], channels: list[str], folder: Path, length: int) -> dict:
    """Write the arrays of one split; returns per-channel missing counts.

    Every file is streamed part by part (:class:`datasets.npy.NpyWriter`), so the memory used
    does not depend on the number of recordings or segments.
    """
    folder.mkdir()
    missing = {}
    for channel in channels:
        _stream_rows(parts, channel, folder / f"{channel}.npy", np.float32, (length,), np.nan)
        name = f"available_{channel}"
        _stream_rows(parts, name, folder / f"{name}.npy", np.bool_, (), False)
        missing[channel] = sum(
            _count_unavailable(Path(p["part"]) / f"{name}.npy", p) for p in parts
        )
    for name, dtype in _ROW_DTYPES.items():
        _stream_rows(parts, name, folder / f"{name}.npy", dtype, (), np.nan)
    total = sum(int(p["segments"]) for p in parts)
    width = max((len(p["id"]) for p in parts), default=1)
    with NpyWriter(folder / "recording.npy", f"<U{width}", (total,)) as out:
        for part in parts:
            out.fill(int(part["segments"]), part["id"])
    return missing


def _run_workers(
    paths: list[Path],
    config: PreprocessConfig,
    signals: tuple[str, ...],
    parts: Path,
    n_jobs: int,
    progress: bool,
) -> list[dict]:
    tasks = (
        delayed(_process_recording)(path, config, signals, parts / path.stem) for path in paths
    )
    results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    return list(tqdm(results, total=len(paths), desc="recordings", disable=not progress))


def _summarize_split(metas: list[dict], missing: dict[str, int]) -> dict[str, object]:
    used = [m for m in metas if "error" not in m]
    return {
        "assigned": [m["id"] for m in metas],
        "recordings": [m["id"] for m in used if m["segments"] > 0],
        "segments": sum(m["segments"] for m in used),
        "missing": missing,
        "dropped_hr": sum(m["dropped_hr"] for m in used),
        "dropped_unavailable": sum(m["dropped_unavailable"] for m in used),
    }


def _remove_stale_tmp_dirs(cache_dir: Path, key: str) -> None:
    """Remove half-written caches of ``key`` whose writing process is gone."""
    for path in cache_dir.glob(f".mesa-{key}.tmp-*"):
        try:
            os.kill(int(path.name.split(".tmp-")[1].split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, OSError):
            continue


def build_segment_cache(
    data_dir: str | Path,
    config: PreprocessConfig | None,
    cache_dir: str | Path,
    seed: int = 0,
    n_select: int = 1000,
    n_train: int = 500,
    max_recordings: int | None = None,
    signals: Sequence[str] = INPUT_CHANNELS,
    n_jobs: int = 1,
    progress: bool = True,
    valid_fraction: float = 0.1,
) -> SegmentCache:
    """Preprocess a MESA-style data folder into a cached, split set of segments.

    Recordings are split with :func:`split_recordings`, then processed in parallel, one
    recording per task, each writing its segments to small files in a temporary folder;
    these are finally concatenated split by split into float32 ``.npy`` files, streamed part
    by part with plain file writes (:class:`datasets.npy.NpyWriter`, no memory map), so the
    resident memory of the workers and of the calling process does not grow with the number
    of recordings.  Layout of ``cache_dir/mesa-<key>/``::

        summary.json
        train/ valid/ test/
            ECG.npy PPG.npy nasal_pressure.npy thoracic.npy    float32 (n, segment_length)
            [true_respiration.npy]                             when truth files exist
            available_<channel>.npy                            bool (n,)
            recording.npy segment_index.npy start_time.npy heart_rate.npy      (n,)

    A segment is kept when its heart rate is plausible and at least one of ``signals`` is
    available.  Unusable recordings are logged (logger ``bss_bench.mesa``), listed under
    ``"skipped"`` in the summary with the reason, and skipped.  ``<key>`` hashes the
    configuration, the recording files (name, size, modification time), the seed and the split
    parameters; an existing cache with the same key is returned without processing anything.
    The cache is built in a temporary folder renamed into place when complete.

    Parameters
    ----------
    data_dir : str or Path
        MESA root or folder of EDF files (see :func:`find_recordings`).
    config : PreprocessConfig or None
        Preprocessing parameters (None: defaults).
    cache_dir : str or Path
        Folder holding caches; created if missing.
    seed, n_select, n_train, valid_fraction
        Split parameters, see :func:`split_recordings`.
    max_recordings : int, optional
        Only consider the first ``max_recordings`` files (sorted by name), for quick runs.
    signals : sequence of str
        Input channels to keep (ECG and/or PPG); reference channels are always stored.
    n_jobs : int
        Number of joblib worker processes.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    SegmentCache
        The cache.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is not a folder.
    NoUsableRecordingsError
        If no recording is found or none yields a segment.
    """
    config = config or PreprocessConfig()
    signals = tuple(signals)
    if not signals or any(s not in INPUT_CHANNELS or s not in config.labels for s in signals):
        raise ValueError(
            f"signals must be a non-empty subset of {INPUT_CHANNELS} present in "
            f"the label map, got {signals}"
        )
    paths = find_recordings(data_dir)
    if max_recordings is not None:
        paths = paths[:max_recordings]
    if not paths:
        raise NoUsableRecordingsError(f"no EDF recordings found in {data_dir}")
    if len({p.stem for p in paths}) != len(paths):
        raise ValueError(f"recording file names in {data_dir} are not unique")
    split = split_recordings([p.stem for p in paths], seed, n_select, n_train, valid_fraction)
    key = _hash(
        {
            "config": config.key(),
            "files": [[_file_stamp(p), _file_stamp(truth_file(p))] for p in paths],
            "seed": seed,
            "n_select": n_select,
            "n_train": n_train,
            "valid_fraction": valid_fraction,
            "signals": signals,
        }
    )
    cache_dir = Path(cache_dir)
    target = cache_dir / f"mesa-{key}"
    if (target / "summary.json").is_file():
        logger.info("using cached segments in %s", target)
        return SegmentCache(target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(cache_dir, key)
    tmp = Path(tempfile.mkdtemp(prefix=f".mesa-{key}.tmp-{os.getpid()}-", dir=cache_dir))
    try:
        summary = _build(paths, split, config, signals, tmp, n_jobs, progress, data_dir)
        summary.update(
            key=key,
            seed=seed,
            n_select=n_select,
            n_train=n_train,
            valid_fraction=valid_fraction,
            max_recordings=max_recordings,
        )
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "summary.json").is_file():
                raise
            # Another process finished the same cache first; keep its copy.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SegmentCache(target)


def _build(
    paths: list[Path],
    split: dict[str, list[str]],
    config: PreprocessConfig,
    signals: tuple[str, ...],
    tmp: Path,
    n_jobs: int,
    progress: bool,
    data_dir: str | Path,
) -> dict[str, object]:
    """Process the selected recordings, write all splits into ``tmp``; return the summary."""
    by_id = {p.stem: p for p in paths}
    selected = [by_id[i] for name in SPLITS for i in split[name]]
    metas = {
        m["id"]: m for m in _run_workers(selected, config, signals, tmp / "parts", n_jobs, progress)
    }
    skipped = []
    for name in SPLITS:
        for record_id in split[name]:
            if "error" in metas[record_id]:
                reason = metas[record_id]["error"]
                logger.warning("skipping %s: %s", metas[record_id]["file"], reason)
                skipped.append({"file": metas[record_id]["file"], "split": name, "reason": reason})
    usable = [m for m in metas.values() if "error" not in m and m["segments"] > 0]
    if not usable:
        raise NoUsableRecordingsError(
            f"no usable recording in {data_dir}: {len(skipped)} of {len(metas)} unreadable or "
            f"unusable, the rest without a segment passing the heart-rate filter"
        )
    channels = _stored_channels(config, signals)
    if any(m.get("has_truth") for m in usable):
        channels.append(TRUE_RESPIRATION)
    splits = {}
    for name in SPLITS:
        assigned = [metas[i] for i in split[name]]
        parts = [m for m in assigned if "error" not in m and m["segments"] > 0]
        missing = _write_split(parts, channels, tmp / name, config.segment_length)
        splits[name] = _summarize_split(assigned, missing)
    shutil.rmtree(tmp / "parts")
    return {
        "data_dir": str(data_dir),
        "config": config.to_dict(),
        "signals": list(signals),
        "channels": channels,
        "sampling_rate": config.target_rate,
        "segment_length": config.segment_length,
        "candidates": len(paths),
        "splits": splits,
        "skipped": skipped,
        "missing_channels": {
            m["id"]: m["missing_channels"]
            for m in metas.values()
            if "error" not in m and m["missing_channels"]
        },
    }
