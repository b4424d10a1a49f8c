"""MESA preprocessing configuration: channel constants, errors and :class:`PreprocessConfig`.

This module holds what every other part of :mod:`datasets.mesa` shares and nothing else: the
channel label map and channel names, the split names, the pipeline version, the two exceptions
(:class:`RecordingError`, :class:`NoUsableRecordingsError`), the frozen
:class:`PreprocessConfig` with its stable hash key, and the hashing helper used for cache keys.
It imports no sibling module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "CHANNELS",
    "DEFAULT_LABELS",
    "INPUT_CHANNELS",
    "PIPELINE_VERSION",
    "SPLITS",
    "TRUE_RESPIRATION",
    "NoUsableRecordingsError",
    "PreprocessConfig",
    "RecordingError",
]

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
