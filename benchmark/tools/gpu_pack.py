"""What a GPU slot sends back, within what the device machine returns, and how it travels back.

The device machine returns at most :data:`MAX_FILES` files of at most
:data:`MAX_FILE_BYTES` each, :data:`MAX_TOTAL_BYTES` in all. One archive holds the
results and logs; the training checkpoints of cells the time limit cut
(:mod:`benchmark.run.resume`) go in ``resume.tar`` split into parts that each fit,
whole cells only, most trained first, as many as the space left allows. The
next slot gets the parts back (a carried folder) and :func:`unpack_checkpoints`
restores them for ``--resume-from``.

What travels *to* the machine has a limit too (:data:`MAX_TOTAL_BYTES`: the
working tree, tracked and untracked-not-ignored files, with the carried paths)::

    python -m benchmark.tools.gpu_pack --travel-size --carry .whl .resume
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from benchmark.run.resume import RESUME_FILE, export_resumable

MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 64 * 2**20
PART_BYTES = 15 * 2**20
"""Size of one part of ``resume.tar``, under :data:`MAX_FILE_BYTES` with room to spare."""
PART_PREFIX = "resume.tar.part"


def pack_archive(work: Path, archive: Path, names: tuple[str, ...]) -> int:
    """``tar.gz`` of the entries ``names`` of ``work`` that exist; returns its size in bytes."""
    with tarfile.open(archive, "w:gz") as handle:
        for name in names:
            if (work / name).exists():
                handle.add(work / name, arcname=name)
    return archive.stat().st_size


def cell_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def pack_checkpoints(cache_dir: Path, staging: Path, out: Path, free_bytes: int, free_files: int) -> dict:
    """Export the resumable checkpoints of ``cache_dir`` and write them to ``out`` as ``resume.tar`` parts.

    Whole cells are kept, the most trained first, while the parts fit in
    ``free_bytes`` and ``free_files``. Returns what was packed and what was
    left out (with the reason), for the run's summary.
    """
    notes = export_resumable(cache_dir, staging)
    notes.sort(key=lambda n: (-n["train_seconds"], n["cell_id"]))
    budget = min(free_bytes, free_files * PART_BYTES)
    kept, left_out, used = [], [], 0
    for note in notes:
        folder = staging / note["suite"] / note["profile"] / note["cell_id"]
        size = cell_bytes(folder) + 10_240  # tar headers
        if used + size > budget:
            left_out.append({**_summary(note), "bytes": size, "reason": "no room left in what the machine returns"})
            continue
        kept.append({**_summary(note), "bytes": size})
        used += size
    if not kept:
        return {"parts": [], "cells": [], "left_out": left_out}
    tar_path = staging.parent / "resume.tar"
    with tarfile.open(tar_path, "w") as handle:
        for item in kept:
            handle.add(staging / item["suite"] / item["profile"] / item["cell_id"],
                       arcname=f"{item['suite']}/{item['profile']}/{item['cell_id']}")
    parts = split_file(tar_path, out, PART_PREFIX)
    tar_path.unlink()
    return {"parts": [p.name for p in parts], "cells": kept, "left_out": left_out}


def _summary(note: dict) -> dict:
    return {k: note[k] for k in ("suite", "profile", "cell_id", "epochs_completed", "epochs_planned", "train_seconds")}


def split_file(path: Path, out: Path, prefix: str, part_bytes: int = PART_BYTES) -> list[Path]:
    """Write ``path`` to ``out/<prefix>00``, ``01``, ... of at most ``part_bytes`` each."""
    parts = []
    with open(path, "rb") as source:
        while chunk := source.read(part_bytes):
            part = out / f"{prefix}{len(parts):02d}"
            part.write_bytes(chunk)
            parts.append(part)
    return parts


def unpack_checkpoints(folder: Path, dest: Path) -> list[dict]:
    """Join the ``resume.tar`` parts found in ``folder`` and extract them to ``dest``; returns the notes.

    Raises
    ------
    ValueError
        When the parts are not numbered ``00`` to ``N`` without a gap.
    """
    parts = sorted(folder.glob(f"{PART_PREFIX}*"))
    if not parts:
        return []
    numbers = [int(p.name.removeprefix(PART_PREFIX)) for p in parts]
    if numbers != list(range(len(parts))):
        raise ValueError(f"{folder}: resume.tar parts {numbers} are not 00..{len(parts) - 1:02d}")
    dest.mkdir(parents=True, exist_ok=True)
    joined = dest / "resume.tar"
    with open(joined, "wb") as target:
        for part in parts:
            target.write(part.read_bytes())
    with tarfile.open(joined) as handle:
        handle.extractall(dest, filter="data")
    joined.unlink()
    return [json.loads(p.read_text()) for p in sorted(dest.rglob(RESUME_FILE))]


def travel_bytes(root: Path, carry: tuple[str, ...] = ()) -> dict[str, int]:
    """Bytes that a device call sends: git's tracked and untracked-not-ignored files of ``root``, and ``carry``.

    Returns the bytes per top-level entry (``carry`` paths under their own names).
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    sizes: dict[str, int] = {}
    for name in filter(None, listed):
        path = root / name
        if path.is_file() and not path.is_symlink():
            top = name.split("/", 1)[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    for name in carry:
        path = root / name
        sizes[name] = path.stat().st_size if path.is_file() else cell_bytes(path) if path.is_dir() else 0
    return sizes


def main(argv: list[str] | None = None) -> int:
    """``--travel-size``: what a device call would send, against its limit; exit 1 when over it."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.tools.gpu_pack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--travel-size", action="store_true", required=True, help="print the bytes a device call sends")
    parser.add_argument("--carry", nargs="*", default=[], help="ignored paths the call carries (.whl, a resume folder)")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    sizes = travel_bytes(root, tuple(args.carry))
    total = sum(sizes.values())
    for name, size in sorted(sizes.items(), key=lambda item: -item[1])[:10]:
        print(f"{size / 2**20:8.2f} MiB  {name}")
    verdict = "fits" if total <= MAX_TOTAL_BYTES else "is OVER"
    print(f"{total / 2**20:8.2f} MiB  in all: {verdict} the {MAX_TOTAL_BYTES / 2**20:.0f} MiB a device call takes")
    return 0 if total <= MAX_TOTAL_BYTES else 1


__all__ = [
    "MAX_FILES", "MAX_FILE_BYTES", "MAX_TOTAL_BYTES", "PART_BYTES", "PART_PREFIX", "cell_bytes", "pack_archive",
    "pack_checkpoints", "split_file", "travel_bytes", "unpack_checkpoints",
]


if __name__ == "__main__":
    sys.exit(main())
