"""The MESA segment cache: building it from a data folder and reading it back.

:func:`build_segment_cache` splits the recordings of a data folder by recording, reads and
segments each one in a joblib worker (:func:`_process_recording`), and streams the kept
segments split by split into memory-mappable ``.npy`` files under a key that hashes the
configuration, the files and the split parameters; :class:`SegmentCache` opens such a cache
and maps its splits.  This is the top of the package's import graph: it uses every other
sibling module and none of them imports it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from datasets.mesa.config import (
    INPUT_CHANNELS,
    SPLITS,
    TRUE_RESPIRATION,
    NoUsableRecordingsError,
    PreprocessConfig,
    RecordingError,
    _hash,
)
from datasets.mesa.preprocessing import SegmentBatch, segment_recording
from datasets.mesa.reader import read_recording, read_true_respiration, truth_file
from datasets.mesa.split import find_recordings, split_recordings
from datasets.npy import NpyWriter

__all__ = ["SegmentCache", "build_segment_cache"]

logger = logging.getLogger("bss_bench.mesa")


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
    pinned_test: Sequence[str] = (),
) -> SegmentCache:
    """Preprocess a MESA-style data folder into a cached, split set of segments.

    Recordings are read first, in a seeded random order until ``n_select`` of them are usable
    (or none are left), in parallel, one recording per task, each writing its segments to
    small files in a temporary folder; the usable ones (read without error, with at least one
    segment) are then split with :func:`split_recordings`, so an unreadable file never takes
    a place in a split.  Their segments are
    finally concatenated split by split into float32 ``.npy`` files, streamed part
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
    seed, n_select, n_train, valid_fraction, pinned_test
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
    split_params = {"seed": seed, "n_select": n_select, "n_train": n_train, "valid_fraction": valid_fraction}
    if pinned_test:
        split_params["pinned_test"] = sorted(pinned_test)
    key = _hash(
        {
            "config": config.key(),
            "files": [[_file_stamp(p), _file_stamp(truth_file(p))] for p in paths],
            **split_params,
            "signals": signals,
            "split_rule": "over readable recordings",
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
        summary = _build(paths, split_params, config, signals, tmp, n_jobs, progress, data_dir)
        summary.update(
            key=key,
            seed=seed,
            n_select=n_select,
            n_train=n_train,
            valid_fraction=valid_fraction,
            max_recordings=max_recordings,
            pinned_test=sorted(pinned_test),
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


def _usable(meta: dict) -> bool:
    return "error" not in meta and meta["segments"] > 0


def _read_in_order(
    paths: list[Path], split_params: dict, config: PreprocessConfig, signals: tuple[str, ...],
    parts: Path, n_jobs: int, progress: bool,
) -> tuple[list[dict], int]:
    """Process recordings in a seeded random order until ``n_select`` are usable.

    Returns the metadata of every processed recording and how many were left unread.
    """
    order = [paths[i] for i in np.random.default_rng(split_params["seed"]).permutation(len(paths))]
    pinned = set(split_params.get("pinned_test", ()))
    order = [p for p in order if p.stem in pinned] + [p for p in order if p.stem not in pinned]
    metas: list[dict] = []
    wanted = split_params["n_select"] + len(pinned)
    start = 0
    while start < len(order) and sum(_usable(m) for m in metas) < wanted:
        batch = order[start : start + wanted - sum(_usable(m) for m in metas)]
        start += len(batch)
        metas += _run_workers(batch, config, signals, parts, n_jobs, progress)
    return metas, len(order) - start


def _build(
    paths: list[Path],
    split_params: dict,
    config: PreprocessConfig,
    signals: tuple[str, ...],
    tmp: Path,
    n_jobs: int,
    progress: bool,
    data_dir: str | Path,
) -> dict[str, object]:
    """Read recordings, split the usable ones, write all splits into ``tmp``; return the summary."""
    processed, not_read = _read_in_order(paths, split_params, config, signals, tmp / "parts", n_jobs, progress)
    metas = {m["id"]: m for m in processed}
    skipped = []
    for meta in sorted(processed, key=lambda m: m["id"]):
        if not _usable(meta):
            reason = meta.get("error") or "no segment passed the heart-rate and availability checks"
            logger.warning("skipping %s: %s", meta["file"], reason)
            skipped.append({"file": meta["file"], "reason": reason})
    usable = sorted(m["id"] for m in processed if _usable(m))
    if not usable:
        raise NoUsableRecordingsError(
            f"no usable recording in {data_dir}: {len(skipped)} of {len(metas)} unreadable or "
            f"unusable, the rest without a segment passing the heart-rate filter"
        )
    pinned = [i for i in split_params.get("pinned_test", ()) if i in usable]
    split = split_recordings(
        usable, split_params["seed"], split_params["n_select"], split_params["n_train"],
        split_params["valid_fraction"], pinned_test=pinned,
    )
    channels = _stored_channels(config, signals)
    if any(metas[i].get("has_truth") for i in usable):
        channels.append(TRUE_RESPIRATION)
    splits = {}
    for name in SPLITS:
        assigned = [metas[i] for i in split[name]]
        missing = _write_split(assigned, channels, tmp / name, config.segment_length)
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
        "not_read": not_read,
        "split_rule": "drawn over the recordings that were read successfully",
        "splits": splits,
        "skipped": skipped,
        "missing_channels": {
            m["id"]: m["missing_channels"]
            for m in metas.values()
            if "error" not in m and m["missing_channels"]
        },
    }
