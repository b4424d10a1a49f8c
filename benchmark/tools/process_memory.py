"""Process-tree memory sampling for the peak-memory benchmark.

This module's one job is to read resident memory of the running process and its
descendants: the peak of this process (:func:`peak_rss_mb`, ``VmHWM`` or ``ru_maxrss``),
its current resident size (:func:`current_rss_mb`), the memory lines of
``/proc/<pid>/status`` (:func:`proc_status_kib`), the live descendants of a process
(:func:`descendants`), a background :class:`TreeSampler` recording the peak of every
descendant (joblib workers), and the size of a folder on disk (:func:`folder_mb`). It is
used by :mod:`benchmark.tools.memory`; the ``/proc`` readings are Linux only.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path

MB = 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    ``VmHWM`` of ``/proc/self/status`` where there is a ``/proc``; otherwise
    ``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux, bytes on macOS).  On Linux the latter
    keeps the peak of the process image *before* ``exec``, so a fresh interpreter started by a
    large parent would report the parent's peak; ``VmHWM`` belongs to the new image only.

    Returns
    -------
    float
        Peak resident set size in MiB.
    """
    status = proc_status_kib(os.getpid())
    if status and "VmHWM" in status:
        return status["VmHWM"] / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024


def proc_status_kib(pid: int) -> dict[str, int] | None:
    """The memory lines (``VmRSS``, ``VmHWM``, ...) of ``/proc/<pid>/status`` in KiB.

    Parameters
    ----------
    pid : int
        Process id.

    Returns
    -------
    dict of str to int or None
        Field -> KiB; None when the process is gone or there is no ``/proc``.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if name.startswith("Vm") and len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0])
    return fields


def descendants(pid: int) -> list[int]:
    """Ids of all live descendants of ``pid`` (children, grandchildren, ...), from ``/proc``.

    Parameters
    ----------
    pid : int
        Root process id.

    Returns
    -------
    list of int
        Possibly empty (also where there is no ``/proc``).
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()  # the name may hold spaces
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


class TreeSampler:
    """Background thread recording the peak resident memory of every descendant process.

    Each sample reads ``VmHWM`` (the kernel's own peak resident size of a process) of every
    live descendant, so a worker's peak is exact as long as it is sampled once before it exits.

    Parameters
    ----------
    interval : float
        Seconds between samples.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peaks_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        """Take one sample now."""
        for pid in descendants(os.getpid()):
            status = proc_status_kib(pid)
            if status and "VmHWM" in status:
                self.peaks_kib[pid] = max(self.peaks_kib.get(pid, 0), status["VmHWM"])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @property
    def peak_mb(self) -> float | None:
        """Largest peak of a single descendant in MiB; None when none was seen."""
        return max(self.peaks_kib.values()) / 1024 if self.peaks_kib else None

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # workers outlive the work (joblib reuses them): catch their final peak


def current_rss_mb() -> float | None:
    """Resident memory of this process now, in MiB (None without ``/proc``)."""
    status = proc_status_kib(os.getpid())
    return status["VmRSS"] / 1024 if status and "VmRSS" in status else None


def folder_mb(path: Path) -> float:
    """Total size of the files under ``path`` in MiB."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / MB
