"""Configuration of a synthetic MESA-like PSG cohort.

One job: :class:`CohortConfig` (the parameters of a cohort, validated, with stable hashes) and
the output constants that the physiological model (:mod:`datasets.synthetic_psg.physiology`), the EDF writer
(:mod:`datasets.synthetic_psg.edf`) and the command line (:mod:`datasets.synthetic_psg`) share.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields

__all__ = ["CHANNEL_RATES", "DIFFICULTIES", "MODEL_VERSION", "TRUTH_RATE", "CohortConfig"]

#: Bumped whenever the model changes its output, so that stale files are not reused.
MODEL_VERSION = 1
#: EDF label -> sampling rate in Hz, as in MESA.
CHANNEL_RATES: dict[str, int] = {"EKG": 256, "Pleth": 256, "Flow": 32, "Thor": 32}
#: Sampling rate of the arrays in the truth files.
TRUTH_RATE = 32
#: Model difficulties: ``"easy"`` is the original model (:mod:`datasets.synthetic_psg.physiology` alone),
#: ``"realistic"`` adds the irregularities and artefacts of :mod:`datasets.synthetic_psg.realistic`.
DIFFICULTIES = ("easy", "realistic")


@dataclass(frozen=True)
class CohortConfig:
    """Parameters of a synthetic MESA-like cohort.

    Parameters
    ----------
    subjects : int
        Number of subjects (recordings), at most 9999.
    minutes : float
        Length of every recording in minutes; rounded to whole seconds.
    seed : int
        Seed of the root ``np.random.SeedSequence``.
    apnea_per_hour : tuple of float
        Range from which each subject's apnea/hypopnea rate (events per hour) is drawn.
    noise_scale : float
        Multiplier of all noise, drift and artifact amplitudes (0 gives clean signals).
    difficulty : {"realistic", "easy"}
        ``"easy"`` is the original, regular model (version 1 cohorts, unchanged bytes and
        keys); ``"realistic"`` adds irregular breathing, movement, ectopic beats, weak and
        variable cardiorespiratory coupling and a realistic nasal cannula
        (:mod:`datasets.synthetic_psg.realistic`), calibrated so that the classical heuristics are about
        as hard as on real sleep recordings.

    Notes
    -----
    ``difficulty="easy"`` is left out of :meth:`to_dict` (and so of the hashes and of
    ``cohort.json``), which keeps the keys and files of cohorts written before the field
    existed; for the same reason :meth:`from_dict` reads a missing ``difficulty`` as
    ``"easy"``.
    """

    subjects: int = 8
    minutes: float = 10.0
    seed: int = 0
    apnea_per_hour: tuple[float, float] = (0.0, 20.0)
    noise_scale: float = 1.0
    difficulty: str = "realistic"

    def __post_init__(self) -> None:
        object.__setattr__(self, "apnea_per_hour", tuple(float(v) for v in self.apnea_per_hour))
        if not 1 <= self.subjects <= 9999:
            raise ValueError(f"subjects must lie in 1..9999, got {self.subjects}")
        if not math.isfinite(self.minutes) or round(self.minutes * 60) < 1:
            raise ValueError(f"minutes must be at least 1/60 (one second), got {self.minutes}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        rates = self.apnea_per_hour
        if len(rates) != 2 or not 0 <= rates[0] <= rates[1]:
            raise ValueError(
                f"apnea_per_hour must be (low, high) with 0 <= low <= high, got "
                f"{self.apnea_per_hour}"
            )
        if not self.noise_scale >= 0:
            raise ValueError(f"noise_scale must be non-negative, got {self.noise_scale}")
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(
                f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {self.difficulty!r}"
            )

    @property
    def seconds(self) -> int:
        """Length of every recording in whole seconds."""
        return int(round(self.minutes * 60))

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a JSON-friendly dictionary.

        Returns
        -------
        dict
            Field name to value (tuples become lists); ``difficulty`` is omitted when it is
            ``"easy"``, so that easy cohorts keep the keys they had before the field existed.
        """
        data = {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}
        if data["difficulty"] == "easy":
            del data["difficulty"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CohortConfig:
        """Build a configuration from :meth:`to_dict` output, ignoring unknown keys.

        A missing ``difficulty`` means ``"easy"`` (what :meth:`to_dict` omits, and what every
        cohort written before the field existed used).

        Parameters
        ----------
        data : dict
            Field name to value.

        Returns
        -------
        CohortConfig
            The configuration.
        """
        names = {f.name for f in fields(cls)}
        known = {key: value for key, value in data.items() if key in names}
        return cls(**{"difficulty": "easy", **known})

    def key(self) -> str:
        """Return a short, stable hash of the configuration and the model version.

        Returns
        -------
        str
            First 16 hex digits of the SHA-256 of the sorted JSON of the fields.
        """
        return _hash({**self.to_dict(), "version": MODEL_VERSION})

    def subject_key(self) -> str:
        """Hash of everything a single subject depends on (all fields but ``subjects``).

        Returns
        -------
        str
            First 16 hex digits of a SHA-256.
        """
        data = self.to_dict()
        data.pop("subjects")
        return _hash({**data, "version": MODEL_VERSION})


def _hash(data: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
