"""Peak resident memory of MESA preprocessing and of streamed training reads.

Checks the memory requirement of issue 5: preprocessing (:func:`datasets.mesa.build_segment_cache`)
and training reads stream from the on-disk segment cache, so the peak resident memory of every
process does not grow with the cohort.  Not a timed test: it measures memory, the seconds are
only for orientation.

Usage::

    python -m benchmark.tools.memory                          # 12 vs 48 subjects of 60 min, 2 jobs
    python -m benchmark.tools.memory --subjects 4 --minutes 30 --factor 4 --jobs 1 --output mem.md

One synthetic cohort (:mod:`datasets.synthetic_psg`) of ``subjects * factor`` recordings is
written; the small cohort is its first ``subjects`` recordings (``max_recordings``).  For each
cohort, every phase runs in a fresh Python process, so peaks never mix:

``preprocess``
    ``build_segment_cache`` into an empty cache folder.  *coordinator* is the process's own peak
    (:func:`~benchmark.tools.process_memory.peak_rss_mb`: ``VmHWM``, or ``ru_maxrss`` without
    ``/proc``); *worker* is the largest peak (``VmHWM``) of any joblib worker, read from
    ``/proc`` by a background thread (Linux only; with ``--jobs 1`` everything runs in the
    coordinator).
``stream b=N``
    One epoch of random batches of N training segments (ECG) read exactly as the neural
    methods' training loop reads them: :class:`methods.nn.batches.BatchSource` over a
    :class:`datasets.rows.RowView` (sorted rows, positioned file reads, one batch prefetched
    by a background thread).
``memmap b=N``
    The same epoch read by indexing the memory map of ``np.load(mmap_mode="r")``: read pages
    stay mapped, so the peak grows with the split (for comparison).
``materialise``
    ``np.asarray`` of the whole training split: what a method that keeps the split resident
    pays (for comparison).

*start* is the resident memory after imports, before the measured work.  A streaming phase holds
a few batches at a time (the batch in use, the one being prefetched, their tensors; 64 segments
of 12,288 float32 samples are 3 MiB), so the small cohort's training split must hold several
batches of the largest size for the comparison to mean anything (the defaults give 290 and 1276
training segments).

This module runs the measured phases, the parent/child driver and the command line; the
memory readings themselves are in :mod:`benchmark.tools.process_memory`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmark.tools.process_memory import TreeSampler, current_rss_mb, folder_mb, peak_rss_mb
from datasets.rows import RowView

PHASES = ("preprocess", "stream", "memmap", "materialise")
STREAM_BATCHES = (16, 64)
COLUMNS = (
    ("cohort", "cohort"), ("phase", "phase"), ("recordings", "recordings"),
    ("segments", "segments"), ("cache_mb", "cache MB"), ("start_mb", "start MB"),
    ("coordinator_peak_mb", "peak RSS coordinator MB"), ("worker_peak_mb", "peak RSS worker MB"),
    ("seconds", "seconds"),
)


# --------------------------------------------------------------------------- phases (child side)
def measure_preprocess(data_dir: Path, cache_dir: Path, recordings: int, jobs: int) -> dict:
    """Build a segment cache of the first ``recordings`` recordings and report memory peaks.

    Parameters
    ----------
    data_dir : Path
        Cohort folder.
    cache_dir : Path
        Empty folder for the cache.
    recordings : int
        ``max_recordings`` of :func:`datasets.mesa.build_segment_cache`.
    jobs : int
        Worker processes.

    Returns
    -------
    dict
        One table row (plus ``cache_root``).
    """
    from datasets.mesa import build_segment_cache

    start_mb = current_rss_mb()
    with TreeSampler() as sampler:
        start = time.perf_counter()
        cache = build_segment_cache(
            data_dir, None, cache_dir, max_recordings=recordings, n_jobs=jobs, progress=False
        )
        seconds = time.perf_counter() - start
    splits = cache.summary["splits"]
    return {
        "phase": "preprocess",
        "recordings": sum(len(s["recordings"]) for s in splits.values()),
        "segments": sum(s["segments"] for s in splits.values()),
        "cache_mb": folder_mb(cache.root),
        "start_mb": start_mb,
        "coordinator_peak_mb": peak_rss_mb(),
        "worker_peak_mb": sampler.peak_mb if jobs != 1 else None,
        "seconds": seconds,
        "cache_root": str(cache.root),
    }


def _training_rows(cache_root: Path, channel: str) -> tuple[Path, np.ndarray]:
    folder = Path(cache_root) / "train"
    available = np.load(folder / f"available_{channel}.npy", allow_pickle=False)
    return folder / f"{channel}.npy", np.flatnonzero(available)


def measure_reads(cache_root: Path, phase: str, batch_size: int, channel: str = "ECG", seed: int = 0) -> dict:
    """Read the training split of a cache once and report the peak memory.

    Parameters
    ----------
    cache_root : Path
        A built cache (``.../mesa-<key>``).
    phase : {"stream", "memmap", "materialise"}
        Batches as training reads them (:class:`methods.nn.batches.BatchSource` over a
        :class:`~datasets.rows.RowView`), batches by indexing the memory map, or the whole
        split at once.
    batch_size : int
        Rows per batch (ignored by ``materialise``).
    channel : str
        Array of the split to read.
    seed : int
        Seed of the batch order.

    Returns
    -------
    dict
        One table row.
    """
    path, rows = _training_rows(cache_root, channel)
    order = np.random.default_rng(seed).permutation(len(rows))
    if phase == "stream":
        import torch

        from methods.nn.batches import BatchSource

        source = BatchSource([RowView(path, rows)], "cpu")
        if source.resident:
            raise RuntimeError("the training batch source copied the split into memory")
    start_mb = current_rss_mb()
    start = time.perf_counter()
    total = 0.0
    if phase == "materialise":
        total = float(np.asarray(RowView(path, rows)).sum(dtype=np.float64))
    elif phase == "stream":  # exactly the neural methods' training reads (prefetching thread included)
        for (block,) in source.epoch(batch_size, torch.Generator().manual_seed(seed)):
            total += float(block.sum(dtype=torch.float64))
            del block
    else:
        view = np.load(path, mmap_mode="r")
        for first in range(0, len(order), batch_size):
            batch = np.sort(order[first : first + batch_size])
            block = np.asarray(view[rows[batch]], np.float32)
            total += float(block.sum(dtype=np.float64))  # buffered: no copy of the batch
            del block  # one batch at a time (else the next is read while the last is alive)
    seconds = time.perf_counter() - start
    if not np.isfinite(total):
        raise RuntimeError("reading the training split gave a non-finite sum")
    label = phase if phase == "materialise" else f"{phase} b={batch_size}"
    return {
        "phase": label, "segments": len(rows), "cache_mb": folder_mb(Path(cache_root)),
        "start_mb": start_mb, "coordinator_peak_mb": peak_rss_mb(), "worker_peak_mb": None,
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- driver (parent side)
def _run_child(arguments: list[str], workdir: Path) -> dict:
    """Run one phase in a fresh interpreter; return its row."""
    result = Path(tempfile.mkstemp(suffix=".json", dir=workdir)[1])
    try:
        command = [sys.executable, "-m", "benchmark.tools.memory", *arguments, "--result", str(result)]
        subprocess.run(command, check=True)
        return json.loads(result.read_text())
    finally:
        result.unlink(missing_ok=True)


def run(subjects: int, minutes: float, factor: int, jobs: int, out_dir: Path) -> list[dict]:
    """Write the cohort, then measure every phase for the small and the large cohort.

    Parameters
    ----------
    subjects : int
        Recordings of the small cohort.
    minutes : float
        Length of every recording.
    factor : int
        The large cohort has ``factor * subjects`` recordings.
    jobs : int
        Worker processes for writing the cohort and preprocessing.
    out_dir : Path
        Folder for the cohort (kept and reused) and the caches (removed after use).

    Returns
    -------
    list of dict
        Table rows.
    """
    from datasets.synthetic_psg.config import CohortConfig
    from datasets.synthetic_psg.edf import write_cohort

    out_dir.mkdir(parents=True, exist_ok=True)
    config = CohortConfig(subjects=subjects * factor, minutes=minutes, seed=0)
    cohort = out_dir / f"cohort-{config.key()}"
    print(f"writing {config.subjects} synthetic recordings of {minutes:g} min to {cohort}", flush=True)
    write_cohort(config, cohort, n_jobs=jobs, progress=False)
    rows = []
    for size, label in ((subjects, "small"), (subjects * factor, f"{factor}x")):
        cache_dir = out_dir / f"cache-{size}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        cache_dir.mkdir()
        try:
            first = _run_child(
                ["--child", "preprocess", "--data-dir", str(cohort), "--cache-dir", str(cache_dir),
                 "--recordings", str(size), "--jobs", str(jobs)],
                out_dir,
            )
            phases = [("stream", b) for b in STREAM_BATCHES] + [("memmap", STREAM_BATCHES[-1]), ("materialise", 0)]
            found = [first] + [
                _run_child(["--child", phase, "--cache-root", first["cache_root"], "--batch-size", str(batch)], out_dir)
                for phase, batch in phases
            ]
            if found[1]["segments"] < max(STREAM_BATCHES):
                print(f"note: only {found[1]['segments']} training segments, fewer than a batch "
                      f"of {max(STREAM_BATCHES)}: use more --subjects or --minutes", flush=True)
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
        for row in found:
            row.pop("cache_root", None)
            rows.append({"cohort": f"{label} ({size} x {minutes:g} min)", "recordings": first["recordings"], **row})
            print(format_table([rows[-1]], header=len(rows) == 1), flush=True)
    return rows


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def format_table(rows: list[dict], header: bool = True) -> str:
    """Rows as a markdown table.

    Parameters
    ----------
    rows : list of dict
        Rows with the keys of :data:`COLUMNS`.
    header : bool
        Include the header lines.

    Returns
    -------
    str
        The table.
    """
    lines = []
    if header:
        lines.append("| " + " | ".join(title for _, title in COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def growth_summary(rows: list[dict]) -> list[str]:
    """One line per phase: how much the peaks grow from the small to the large cohort."""
    lines = []
    for phase in dict.fromkeys(row["phase"] for row in rows):
        same = [row for row in rows if row["phase"] == phase]
        if len(same) < 2:
            continue
        small, large = same[0], same[-1]
        for key, who in (("coordinator_peak_mb", "coordinator"), ("worker_peak_mb", "worker")):
            if small.get(key) is not None and large.get(key) is not None:
                lines.append(
                    f"{phase}: {who} peak {small[key]:.1f} -> {large[key]:.1f} MB "
                    f"({large[key] - small[key]:+.1f} MB for {large['segments'] / max(small['segments'], 1):.1f}x the segments)"
                )
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.tools.memory",
        description="Peak resident memory of MESA preprocessing and streamed training reads, "
        "for a small synthetic cohort and one FACTOR times larger.",
    )
    parser.add_argument("--subjects", type=int, default=12, help="recordings of the small cohort (default 12)")
    parser.add_argument("--minutes", type=float, default=60.0, help="minutes per recording (default 60)")
    parser.add_argument("--factor", type=int, default=4, help="size of the large cohort relative to the small (default 4)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2; 1 runs everything in one process)")
    parser.add_argument("--out-dir", type=Path, default=None, help="folder for the cohort (kept, reused) and caches (default: a temporary folder)")
    parser.add_argument("--output", type=Path, default=None, help="also write the table: .json for JSON, anything else markdown")
    hidden = argparse.SUPPRESS
    parser.add_argument("--child", choices=PHASES, default=None, help=hidden)
    parser.add_argument("--data-dir", type=Path, help=hidden)
    parser.add_argument("--cache-dir", type=Path, help=hidden)
    parser.add_argument("--cache-root", type=Path, help=hidden)
    parser.add_argument("--recordings", type=int, help=hidden)
    parser.add_argument("--batch-size", type=int, default=256, help=hidden)
    parser.add_argument("--result", type=Path, help=hidden)
    return parser


def _child(args: argparse.Namespace) -> None:
    if args.child == "preprocess":
        row = measure_preprocess(args.data_dir, args.cache_dir, args.recordings, args.jobs)
    else:
        row = measure_reads(args.cache_root, args.child, args.batch_size)
    args.result.write_text(json.dumps(row))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see ``python -m benchmark.tools.memory --help``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args)
        return 0
    if args.subjects < 1 or args.factor < 1 or args.jobs == 0 or args.minutes <= 0:
        parser.error("--subjects and --factor must be at least 1, --minutes positive, --jobs not 0")
    with tempfile.TemporaryDirectory(prefix="bss-memory-") as scratch:
        out_dir = args.out_dir or Path(scratch)
        rows = run(args.subjects, args.minutes, args.factor, args.jobs, out_dir)
    table = format_table(rows)
    summary = growth_summary(rows)
    print("\n" + table + "\n\n" + "\n".join(summary))
    if args.output is not None:
        settings = {k: getattr(args, k) for k in ("subjects", "minutes", "factor", "jobs")}
        machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
        if args.output.suffix == ".json":
            record = {"settings": settings, "machine": machine, "rows": rows, "growth": summary}
            args.output.write_text(json.dumps(record, indent=2))
        else:
            options = " ".join(f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {v}" for k, v in settings.items())
            lines = [
                f"Peak resident memory (MiB), `python -m benchmark.tools.memory {options}`; "
                f"{machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}.",
                "", table, "", *(f"- {line}" for line in summary),
            ]
            args.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
