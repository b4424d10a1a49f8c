"""Writing a synthetic cohort in the MESA layout (EDF+ files plus true respiration).

One job: :func:`write_cohort` simulates every subject with
:func:`datasets.synthetic_psg.subject.simulate_subject` (in parallel worker processes) and writes its files
atomically.  For every subject ``NNNN`` (zero-padded, starting at 0001) it writes::

    OUT/polysomnography/edfs/mesa-sleep-NNNN.edf         EDF+ with EKG, Pleth, Flow and Thor
    OUT/polysomnography/truth/mesa-sleep-NNNN-resp.npz   true respiration (see below)
    OUT/cohort.json                                      the CohortConfig that made the files

EDF channels, labelled as in MESA: ``EKG`` 256 Hz (mV), ``Pleth`` 256 Hz (PPG, arbitrary units),
``Flow`` 32 Hz (nasal pressure cannula, cmH2O; NSRR names the cannula ``Flow``) and ``Thor``
32 Hz (thoracic inductance belt, arbitrary units).  Samples are 16-bit with digital range
-32768..32767 and physical limits taken from the data with a 5 % margin.

The truth file holds the ``"truth"`` arrays of :func:`datasets.synthetic_psg.subject.simulate_subject`
(plain arrays, no pickles; see :mod:`datasets.synthetic_psg.physiology`).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pyedflib
from joblib import Parallel, delayed
from tqdm import tqdm

from datasets.synthetic_psg.config import CHANNEL_RATES, MODEL_VERSION, TRUTH_RATE, CohortConfig
from datasets.synthetic_psg.subject import simulate_subject

__all__ = ["edf_path", "truth_path", "write_cohort"]

_EDF_INFO = {
    "EKG": ("mV", "ECG electrodes"),
    "Pleth": ("", "Pulse oximeter"),
    "Flow": ("cmH2O", "Nasal pressure cannula"),
    "Thor": ("", "Inductance belt"),
}
_START = datetime.datetime(2000, 1, 1, 22, 0, 0)


def edf_path(out_dir: str | Path, index: int) -> Path:
    """Path of the EDF file of subject ``index`` (0-based; file numbers start at 0001).

    Parameters
    ----------
    out_dir : str or Path
        Cohort folder.
    index : int
        Subject index.

    Returns
    -------
    Path
        ``out_dir/polysomnography/edfs/mesa-sleep-NNNN.edf``.
    """
    return Path(out_dir) / "polysomnography" / "edfs" / f"mesa-sleep-{index + 1:04d}.edf"


def truth_path(out_dir: str | Path, index: int) -> Path:
    """Path of the true-respiration file of subject ``index`` (0-based).

    Parameters
    ----------
    out_dir : str or Path
        Cohort folder.
    index : int
        Subject index.

    Returns
    -------
    Path
        ``out_dir/polysomnography/truth/mesa-sleep-NNNN-resp.npz``.
    """
    return Path(out_dir) / "polysomnography" / "truth" / f"mesa-sleep-{index + 1:04d}-resp.npz"


# --------------------------------------------------------------------------- writing


def _edf_limits(x: np.ndarray, margin: float = 0.05) -> tuple[float, float]:
    """Physical minimum and maximum around ``x`` that fit the 8 characters of an EDF header."""
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = margin * (hi - lo) if hi > lo else max(1e-3, 1e-3 * abs(lo))
    lo, hi = lo - pad, hi + pad
    for decimals in range(6, -1, -1):
        scale = 10.0**decimals
        lo_text = f"{math.floor(lo * scale) / scale:.{decimals}f}"
        hi_text = f"{math.ceil(hi * scale) / scale:.{decimals}f}"
        if len(lo_text) <= 8 and len(hi_text) <= 8 and float(lo_text) < float(hi_text):
            return float(lo_text), float(hi_text)
    raise ValueError(f"signal range {lo}..{hi} does not fit an EDF header")


def _channel_header(label: str, data: np.ndarray) -> dict[str, object]:
    dimension, transducer = _EDF_INFO[label]
    low, high = _edf_limits(data)
    return {
        "label": label,
        "dimension": dimension,
        "sample_frequency": CHANNEL_RATES[label],
        "physical_min": low,
        "physical_max": high,
        "digital_min": -32768,
        "digital_max": 32767,
        "transducer": transducer,
        "prefilter": "",
    }


def _publish(tmp_name: str, path: Path) -> None:
    """Give a finished temporary file the usual permissions and rename it to ``path``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    os.replace(tmp_name, path)


def _write_edf(signals: dict[str, np.ndarray], path: Path, patient: str) -> None:
    """Write the channels to an EDF+ file atomically (temporary sibling, then rename)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = pyedflib.EdfWriter(tmp_name, len(signals), file_type=pyedflib.FILETYPE_EDFPLUS)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                writer.setSignalHeaders([_channel_header(k, v) for k, v in signals.items()])
            writer.setPatientCode(patient)
            writer.setEquipment("bss-bench_synthetic_psg")
            writer.setStartdatetime(_START)
            writer.writeSamples(
                [np.ascontiguousarray(v, dtype=np.float64) for v in signals.values()]
            )
        finally:
            writer.close()
        _publish(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Write ``arrays`` to a compressed .npz atomically."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        _publish(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_text(text: str, path: Path) -> None:
    """Write a text file atomically."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        _publish(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_subject(index: int, config: CohortConfig, out_dir: Path) -> Path:
    """Simulate subject ``index`` and write its truth file and then its EDF file."""
    subject = simulate_subject(index, config)
    _write_npz(subject["truth"], truth_path(out_dir, index))
    path = edf_path(out_dir, index)
    _write_edf(subject["signals"], path, patient=path.stem)
    return path


def _check_cohort_file(config: CohortConfig, out_dir: Path) -> None:
    """Refuse to mix cohorts: an existing cohort.json must describe the same subjects."""
    marker = out_dir / "cohort.json"
    if not marker.exists():
        return
    try:
        stored = CohortConfig.from_dict(json.loads(marker.read_text())["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{marker}: unreadable cohort description ({err})") from err
    if stored.subject_key() != config.subject_key():
        raise ValueError(
            f"{out_dir} already holds a cohort with another configuration "
            f"({marker}); use an empty folder"
        )


def write_cohort(
    config: CohortConfig, out_dir: str | Path, n_jobs: int = 1, progress: bool = True
) -> list[Path]:
    """Write a synthetic cohort in the MESA layout.

    Subjects whose EDF and truth files both exist are skipped, provided ``out_dir/cohort.json``
    records a configuration that yields the same subjects (only ``subjects`` may differ, and
    files of further subjects are left in place); every file is written atomically, so an
    interrupted run can simply be repeated.

    Parameters
    ----------
    config : CohortConfig
        Cohort parameters.
    out_dir : str or Path
        Cohort folder; created if missing.
    n_jobs : int
        Number of joblib worker processes.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of Path
        EDF paths of all ``config.subjects`` subjects, in order.

    Raises
    ------
    ValueError
        If ``out_dir`` already holds a cohort made with another configuration.
    """
    out_dir = Path(out_dir)
    edf_path(out_dir, 0).parent.mkdir(parents=True, exist_ok=True)
    truth_path(out_dir, 0).parent.mkdir(parents=True, exist_ok=True)
    _check_cohort_file(config, out_dir)
    description = {
        "config": config.to_dict(),
        "key": config.key(),
        "model_version": MODEL_VERSION,
        "channels": CHANNEL_RATES,
        "truth_rate": TRUTH_RATE,
    }
    _write_text(json.dumps(description, indent=2, sort_keys=True), out_dir / "cohort.json")
    todo = [
        i
        for i in range(config.subjects)
        if not (edf_path(out_dir, i).exists() and truth_path(out_dir, i).exists())
    ]
    tasks = (delayed(_write_subject)(i, config, out_dir) for i in todo)
    results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    for _ in tqdm(results, total=len(todo), desc="subjects", disable=not progress):
        pass
    return [edf_path(out_dir, i) for i in range(config.subjects)]
