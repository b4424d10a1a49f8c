"""Adopt a sweep's cells into a leaderboard once the profile has become the sweep's settings.

A sweep run computes cells with ``--set`` overrides; its cells are named after the overrides
(``meae__seed0__<hash>``). When the evidence makes those settings the profile, the same
computation is what the profile asks for: its fingerprint (parameters, data, code versions) is
the profile cell's. This tool copies such a cell into ``results/<suite>/<profile>/cells/``
under the profile's cell id, **only** when the fingerprints are equal, and records where it
came from (``adopted_from``: the sweep cell id and its overrides) instead of retraining::

    python scripts/adopt_sweep_cells.py /tmp/ablation/runs/authors.s0 /tmp/ablation/runs/authors.s1 \\
        --suite triangles --profile quick --method meae

Then ``python run_benchmark.py --suite triangles --rebuild-only`` rebuilds the leaderboard.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.core.store import ResultStore, atomic_write_json  # noqa: E402
from benchmark.run.planning import plan_cells  # noqa: E402


def adopt(run_dirs: list[Path], suite: str, profile: str, method: str, results: Path) -> list[str]:
    """Copy every cell of ``method`` in ``run_dirs`` whose fingerprint is the profile cell's.

    Returns
    -------
    list of str
        The profile cell ids written. A cell whose fingerprint differs raises ``ValueError``
        (its settings are not the profile's) and nothing of it is copied.
    """
    store = ResultStore(results / suite / profile)
    store.cells_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for run_dir in run_dirs:
        for path in sorted((run_dir / suite / profile / "cells").glob(f"{method}__seed*.json")):
            record = json.loads(path.read_text())
            spec = plan_cells(suite, profile, [method], [int(record["seed"])], {}, None)[0]
            if spec.fingerprint(record["data_key"]) != record["fingerprint"]:
                raise ValueError(f"{path}: its settings are not the {profile} profile's (fingerprints differ)")
            arrays = path.with_suffix(".npz")
            if arrays.exists():
                shutil.copy2(arrays, store.arrays_path(spec.cell_id))
            adopted = {**record, "cell_id": spec.cell_id, "label": spec.label, "overrides": spec.overrides,
                       "adopted_from": {"cell_id": record["cell_id"], "overrides": record["overrides"],
                                        "folder": str(run_dir)}}
            atomic_write_json(store.cell_path(spec.cell_id), adopted)
            written.append(spec.cell_id)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="sweep run folders (OUT/runs/NAME)")
    parser.add_argument("--suite", required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    try:
        written = adopt(args.run_dirs, args.suite, args.profile, args.method, args.results_dir)
    except ValueError as error:
        parser.error(str(error))
    print("adopted:", ", ".join(written) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
