"""Recording-level selection: finding the EDF files of a data folder and splitting them.

:func:`find_recordings` lists the recordings of a MESA root or of a flat folder of EDF files;
:func:`split_recordings` draws a seeded selection of recording identifiers and divides it into
training, validation and test recordings, so that no recording contributes segments to two
splits.  Imports no sibling module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["find_recordings", "split_recordings"]


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
    pinned_test: Sequence[str] = (),
) -> dict[str, list[str]]:
    """Split recordings (never segments) into training, validation and test recordings.

    The rule of the paper, scaled to small cohorts:

    1. draw ``m = min(n_select, len(ids))`` recordings at random (seeded) and shuffle them;
    2. the first ``n_train`` go to training and the rest to test; when fewer than ``n_select``
       recordings exist, training gets the same proportion, ``floor(m * n_train / n_select)``
       (half with the defaults), but at least one recording and, when ``m >= 2``, leaving at
       least one for test; a single recording is a test recording (methods that learn nothing
       can still be scored on it, none can be trained and tested on it);
    3. ``round(valid_fraction * n_train_recordings)`` of the training recordings (at least one
       when there are three or more) become validation recordings.

    Recordings in ``pinned_test`` take no part in the draw and are always test recordings
    (for example the only recording of a public data set that has a PPG channel).

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
    pinned_test : sequence of str
        Identifiers (among ``ids``) that always go to the test split.

    Returns
    -------
    dict of str to list of str
        Sorted, disjoint ``"train"``, ``"valid"`` and ``"test"`` identifiers.
    """
    ids = [str(i) for i in ids]
    pinned = sorted({str(i) for i in pinned_test})
    if set(pinned) - set(ids):
        raise ValueError(f"pinned test recordings not among the recordings: {sorted(set(pinned) - set(ids))}")
    if not ids:
        raise ValueError("no recordings to split")
    if len(set(ids)) != len(ids):
        raise ValueError("recording identifiers must be unique")
    if not 0 < n_train <= n_select:
        raise ValueError(f"need 0 < n_train <= n_select, got {n_train} and {n_select}")
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must lie in [0, 1), got {valid_fraction}")
    ids = [i for i in ids if i not in pinned]
    if not ids:
        return {"train": [], "valid": [], "test": pinned}
    rng = np.random.default_rng(seed)
    m = min(n_select, len(ids))
    chosen = [ids[i] for i in rng.choice(len(ids), size=m, replace=False)]
    rng.shuffle(chosen)
    n_tr = n_train if m == n_select else (m * n_train) // n_select
    n_tr = max(1, min(n_tr, m - 1)) if m >= 2 else 0
    n_valid = round(valid_fraction * n_tr)
    if n_tr >= 3:
        n_valid = min(max(n_valid, 1), n_tr - 1)
    train, test = chosen[:n_tr], chosen[n_tr:]
    return {
        "train": sorted(train[n_valid:]),
        "valid": sorted(train[:n_valid]),
        "test": sorted([*test, *pinned]),
    }
