"""Small stand-ins for the public packages' recordings, so no test needs the network.

:func:`fake_sources` writes two wheels into ``wheel_dir`` (the layout of ``systole``'s ``.npy``
pair and of ``pyphysio``'s bz2 table, with simulated ECG, PPG and respiration from NeuroKit2)
and returns :class:`~datasets.public_recordings.PublicSource` specs whose checksums match them.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import zipfile
from pathlib import Path

import neurokit2 as nk
import numpy as np

from datasets.public_recordings import PublicSource


def _wheel(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _signals(seconds: float, rate: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ecg = nk.ecg_simulate(duration=seconds, sampling_rate=rate, heart_rate=65, method="simple", random_state=seed)
    ppg = nk.ppg_simulate(duration=seconds, sampling_rate=rate, heart_rate=65, random_state=seed)
    rsp = nk.rsp_simulate(duration=seconds, sampling_rate=rate, respiratory_rate=14, method="sinusoidal", random_state=seed)
    return ecg, ppg, rsp


def fake_sources(wheel_dir: Path, npy_seconds: float = 250.0, table_seconds: float = 70.0) -> tuple[PublicSource, ...]:
    """Two fake wheels in ``wheel_dir`` and the specs (real checksums of the fake files)."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    ecg, _, rsp = _signals(npy_seconds, 250, seed=1)
    members = {"fakesys/ECG.npy": _npy(ecg), "fakesys/RESP.npy": _npy(rsp)}
    _wheel(wheel_dir / "fakesys-1.0-py3-none-any.whl", members)
    first = PublicSource(
        name="fakesys", package="fakesys", version="1.0",
        files=tuple((m, hashlib.sha256(d).hexdigest()) for m, d in members.items()),
        rate=250.0, layout="npy", channels=("ECG", "thoracic"),
    )
    ecg, ppg, rsp = _signals(table_seconds, 256, seed=2)
    table = np.column_stack([ecg, np.zeros_like(ecg), ppg, rsp])
    text = bz2.compress("\n".join("\t".join(f"{v:.4f}" for v in row) for row in table).encode())
    _wheel(wheel_dir / "fakephys-2.0-py3-none-any.whl", {"fakephys/medical.txt.bz2": text})
    second = PublicSource(
        name="fakephys", package="fakephys", version="2.0",
        files=(("fakephys/medical.txt.bz2", hashlib.sha256(text).hexdigest()),),
        rate=256.0, layout="table", channels=("ECG", "PPG", "thoracic"), columns=("ECG", "EDA", "BVP", "RESP"),
        pinned_test=True,
    )
    return first, second
