"""Synthetic polysomnography cohort laid out like the MESA Sleep data set: command line.

MESA recordings are not freely redistributable, so this package writes a stand-in cohort with the
same file layout and channel labels, plus the *true* respiratory signal, which real data never
has.  The work is split along three modules:

- :mod:`datasets.psg_config`: :class:`CohortConfig`, the parameters of a cohort;
- :mod:`datasets.psg_model`: the physiological model, :func:`simulate_subject` (one subject);
- :mod:`datasets.psg_realism`: the ``realistic`` difficulty (irregular breathing, movement,
  ectopic beats, weak coupling, a realistic nasal cannula) on top of that model;
- :mod:`datasets.psg_edf`: :func:`write_cohort`, the MESA-layout EDF and truth files.

This module is the command line interface and re-exports their public names, so
``from datasets.synthetic_psg import CohortConfig, write_cohort`` keeps working::

    python -m datasets.synthetic_psg --subjects 8 --minutes 10 --seed 0 --out DIR --jobs 2

``--difficulty realistic`` (the default) writes the calibrated, realistically hard cohort;
``--difficulty easy`` the original regular model, byte for byte as before the option existed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datasets.psg_config import (
    CHANNEL_RATES,
    DIFFICULTIES,
    MODEL_VERSION,
    TRUTH_RATE,
    CohortConfig,
)
from datasets.psg_edf import edf_path, truth_path, write_cohort
from datasets.psg_model import simulate_subject

__all__ = [
    "CHANNEL_RATES",
    "DIFFICULTIES",
    "MODEL_VERSION",
    "TRUTH_RATE",
    "CohortConfig",
    "edf_path",
    "main",
    "simulate_subject",
    "truth_path",
    "write_cohort",
]


# --------------------------------------------------------------------------- command line


class _UsageError(Exception):
    """Command line error, reported on one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m datasets.synthetic_psg",
        description="Write a synthetic MESA-like PSG cohort (EDF files plus true respiration).",
    )
    parser.add_argument("--subjects", type=int, default=8, help="number of subjects (default 8)")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes per recording")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--jobs", type=int, default=1, help="parallel workers (default 1)")
    parser.add_argument("--noise-scale", type=float, default=1.0, help="noise multiplier")
    parser.add_argument(
        "--difficulty",
        choices=DIFFICULTIES,
        default="realistic",
        help="realistic (default): irregular breathing, movement, ectopic beats, weak and "
        "variable cardiorespiratory coupling and a realistic nasal cannula, calibrated to be "
        "about as hard as real sleep recordings; easy: the original regular model",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see ``python -m datasets.synthetic_psg --help``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on error (reported as one line on stderr).
    """
    try:
        args = _parse(argv)
        if args.jobs == 0:
            raise _UsageError("--jobs must not be 0")
        config = CohortConfig(
            subjects=args.subjects,
            minutes=args.minutes,
            seed=args.seed,
            noise_scale=args.noise_scale,
            difficulty=args.difficulty,
        )
        if args.out.exists() and not args.out.is_dir():
            raise _UsageError(f"--out is not a folder: {args.out}")
        paths = write_cohort(config, args.out, n_jobs=args.jobs, progress=not args.quiet)
    except (_UsageError, ValueError, OSError) as err:
        print(f"synthetic_psg: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} recordings to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
