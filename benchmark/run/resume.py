"""Carry the training of time-limited cells across runs and machines.

A cell cut by ``--time-limit`` keeps the per-epoch training checkpoint of its
last complete epoch in its model folder. Its key includes the time limit, so a
later run with a longer limit is another cell, in another folder, and would
start over. This module lets it continue instead:

1. after a cut cell, :func:`note_resumable` writes ``resume.json`` beside the
   checkpoint: the cell, its *training key* (the fingerprint without the time
   limit: method, parameters, seed, data and code) and how far it got;
2. :func:`export_resumable` copies every such checkpoint out of a cache, into
   ``<dest>/<suite>/<profile>/<cell_id>/`` (what a GPU slot sends back);
3. a run with ``--resume-from DIR`` starts each cell whose model folder is
   empty from the checkpoint in ``DIR`` of the same cell, when the training
   keys agree (:func:`resume_from`). The epoch loop then continues after the
   last complete epoch and counts the time of the earlier epochs against the
   new limit, as a resumed run on one machine does.

Usage (step 2 by hand)::

    python -m benchmark.run.resume --cache-dir .cache/bss-bench --to resume/
    python run_benchmark.py --suite triangles --profile paper --time-limit 900 --resume-from resume/
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmark.core.store import atomic_write_json
from benchmark.run.planning import CellSpec
from methods.nn.checkpoint import CHECKPOINT_FILE

RESUME_FILE = "resume.json"
log = logging.getLogger("bss_bench")


def _budgets(budget: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The training budgets of a cell's fits: one, or one per input of a multi-input suite."""
    if not budget:
        return []
    return [budget] if "cut" in budget else [b for b in budget.values() if isinstance(b, dict)]


def note_resumable(model_dir: Path, spec: CellSpec, data_key: str, budget: dict[str, Any] | None) -> dict | None:
    """Write ``resume.json`` in ``model_dir`` when the cell's training was cut and left checkpoints.

    Returns the note, or ``None`` (and removes an old note) when there is nothing to resume.
    """
    note_path = model_dir / RESUME_FILE
    budgets = _budgets(budget)
    cut = any(b.get("cut") for b in budgets)
    checkpoints = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob(CHECKPOINT_FILE)) \
        if cut and model_dir.is_dir() else []
    if not checkpoints:
        note_path.unlink(missing_ok=True)
        return None
    note = {
        "suite": spec.suite, "profile": spec.profile, "cell_id": spec.cell_id, "method": spec.method, "seed": spec.seed,
        "training_key": spec.fingerprint(data_key, with_time_limit=False), "data_key": data_key,
        "time_limit_s": spec.time_limit, "checkpoints": checkpoints,
        "epochs_completed": min(b.get("epochs_completed", 0) for b in budgets),
        "epochs_planned": max(b.get("epochs_planned", 0) for b in budgets),
        "train_seconds": max(b.get("train_seconds", 0.0) for b in budgets),
    }
    atomic_write_json(note_path, note)
    return note


def export_resumable(cache_dir: Path, dest: Path) -> list[dict]:
    """Copy every resumable checkpoint of ``cache_dir``'s models to ``dest/<suite>/<profile>/<cell_id>/``.

    Returns the notes of the exported cells. A later cell of the same suite,
    profile and id (a longer limit) replaces an earlier one in ``dest``.
    """
    exported = []
    for note_path in sorted((Path(cache_dir) / "models").rglob(RESUME_FILE)):
        note = json.loads(note_path.read_text())
        source = note_path.parent
        if not all((source / name).is_file() for name in note["checkpoints"]):
            continue
        target = Path(dest) / note["suite"] / note["profile"] / note["cell_id"]
        previous = target / RESUME_FILE
        if previous.is_file() and json.loads(previous.read_text())["train_seconds"] > note["train_seconds"]:
            continue
        shutil.rmtree(target, ignore_errors=True)
        for name in note["checkpoints"]:
            _copy_atomically(source / name, target / name)
        atomic_write_json(target / RESUME_FILE, note)
        exported.append(note)
    return exported


def resume_from(resume_dir: Path, spec: CellSpec, data_key: str, model_dir: Path) -> dict | None:
    """Start the cell from the checkpoint of an earlier, time-limited run of it, if ``resume_dir`` has one.

    Nothing is copied when ``model_dir`` already holds anything (the cell's own
    progress wins) or when the checkpoint's training key differs from the cell's
    (another method, parameters, seed, data or code: it would continue another
    training). Returns the note of the checkpoint used, or ``None``.
    """
    source = Path(resume_dir) / spec.suite / spec.profile / spec.cell_id
    note_path = source / RESUME_FILE
    if not note_path.is_file():
        return None
    note = json.loads(note_path.read_text())
    key = spec.fingerprint(data_key, with_time_limit=False)
    if note.get("training_key") != key:
        log.warning("%s: not resuming from %s: it continues another training (its key %s, this cell's %s)",
                    spec.cell_id, source, note.get("training_key"), key)
        return None
    if model_dir.is_dir() and any(model_dir.iterdir()):
        return None
    for name in note["checkpoints"]:
        _copy_atomically(source / name, model_dir / name)
    log.info("%s: resuming from %s after %d epochs (%.0f s of training)", spec.cell_id, source,
             note["epochs_completed"], note["train_seconds"])
    return note


def _copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    """Export the resumable checkpoints of a cache (``--to``); print one line per cell."""
    from benchmark.run.config import default_cache_dir

    parser = argparse.ArgumentParser(prog="python -m benchmark.run.resume", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="the cache holding the models (default: the default cache)")
    parser.add_argument("--to", type=Path, required=True, help="folder that receives <suite>/<profile>/<cell_id>/")
    args = parser.parse_args(argv)
    notes = export_resumable(args.cache_dir or default_cache_dir(), args.to)
    for note in notes:
        print(f"{note['suite']}/{note['profile']}/{note['cell_id']}: {note['epochs_completed']} of "
              f"{note['epochs_planned']} epochs, {note['train_seconds']:.0f} s of training")
    print(f"{len(notes)} resumable cells exported to {args.to}")
    return 0


__all__ = ["RESUME_FILE", "export_resumable", "main", "note_resumable", "resume_from"]


if __name__ == "__main__":
    sys.exit(main())
