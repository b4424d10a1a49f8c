"""Command line of the synthetic cohort: ``python -m datasets.synthetic_psg``.

::

    python -m datasets.synthetic_psg --subjects 8 --minutes 10 --seed 0 --out DIR --jobs 2

``--difficulty realistic`` (the default) writes the calibrated, realistically hard cohort;
``--difficulty easy`` the original regular model, byte for byte as before the option existed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datasets.synthetic_psg.config import DIFFICULTIES, CohortConfig
from datasets.synthetic_psg.edf import write_cohort

__all__ = ["main"]


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
