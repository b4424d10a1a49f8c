"""Configuration sweeps: many benchmark runs with ``--set`` overrides, in parallel, one table.

A sweep file is JSON: shared ``defaults`` (suite, profile, methods, seeds) and a list of
``runs``, each with a ``name`` and the ``set`` overrides of ``run_benchmark.py``::

    {"defaults": {"suite": "triangles", "profile": "quick", "methods": "meae", "seeds": "0"},
     "runs": [{"name": "base", "set": []},
              {"name": "lr3e-3", "set": ["meae.lr=3e-3"]}]}

With ``"per_seed": true`` (in ``defaults`` or in a run), a run becomes one process per seed,
named ``NAME.sSEED``, so that the runs can be ordered seed by seed and a deadline stops
only the seeds not reached; its rows keep ``NAME`` as their ``variant``.

Every run is one ``run_benchmark.py`` process with its own results folder under ``--out``;
``--workers`` of them run at once (several small models share one GPU well), all share one
data cache (prepared once, before the runs), and runs not finished by ``--deadline`` seconds
are stopped and reported as such.  ``sweep.csv`` gets one row per finished cell and score
(run name, overrides, seed, target, metric, value, samples seen, training seconds)::

    python -m benchmark.tools.sweep scripts/sweeps/triangles_quick.json --out /tmp/sweep \\
        --device cuda --workers 8 --deadline 300

This module is a tool for choosing profiles, not part of the leaderboards: its numbers are
committed only as the evidence behind a profile choice.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {"suite": "triangles", "profile": "quick", "methods": "meae", "seeds": "0"}


@dataclass
class SweepRun:
    """One benchmark process of a sweep."""

    name: str
    options: dict[str, str]
    overrides: list[str]
    status: str = "pending"
    seconds: float | None = None
    variant: str = ""

    def __post_init__(self) -> None:
        self.variant = self.variant or self.name

    def command(self, out: Path, cache_dir: Path, device: str, workers: int = 1) -> list[str]:
        """The ``run_benchmark.py`` command line of this run.

        With ``workers`` runs at once on a CPU, each run gets ``--jobs workers``: the runner then
        gives its cell ``cores // workers`` threads, so the runs share the cores instead of
        oversubscribing them (a run's thread count is in its cells; it is not part of their key).
        """
        command = [sys.executable, str(ROOT / "run_benchmark.py"), "--suite", self.options["suite"],
                   "--profile", self.options["profile"], "--methods", self.options["methods"],
                   "--seeds", str(self.options["seeds"]), "--device", device, "--no-progress",
                   "--results-dir", str(out / "runs" / self.name), "--cache-dir", str(cache_dir)]
        if workers > 1 and _on_cpu(device):
            command += ["--jobs", str(workers)]
        for item in self.overrides:
            command += ["--set", item]
        return command


def _on_cpu(device: str) -> bool:
    """Whether ``device`` (``auto``, ``cpu``, ``cuda[:N]``) runs the cells on the CPU."""
    if device == "auto":
        import torch

        return not torch.cuda.is_available()
    return device == "cpu"


def load_sweep(path: Path) -> list[SweepRun]:
    """Read a sweep file into runs (defaults filled in, names checked to be unique).

    Parameters
    ----------
    path : Path
        The JSON sweep file.

    Returns
    -------
    list of SweepRun
        In file order, which is also the order in which they are started.
    """
    spec = json.loads(Path(path).read_text())
    defaults = {**DEFAULTS, **spec.get("defaults", {})}
    runs, seen = [], set()
    for entry in spec["runs"]:
        name = entry["name"]
        if name in seen or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{path}: run name {name!r} is repeated or not a plain file name")
        seen.add(name)
        options = {key: str(entry.get(key, defaults[key])) for key in DEFAULTS}
        overrides = list(entry.get("set", []))
        if not entry.get("per_seed", spec.get("defaults", {}).get("per_seed", False)):
            runs.append(SweepRun(name, options, overrides))
            continue
        for seed in [s.strip() for s in options["seeds"].split(",") if s.strip()]:
            runs.append(SweepRun(f"{name}.s{seed}", options | {"seeds": seed}, overrides, variant=name))
    return runs


def interleave(runs: list[SweepRun]) -> list[SweepRun]:
    """The runs reordered seed-major (every variant's first seed, then every second seed, ...),
    so that a sweep stopped by its deadline has the same seeds for every variant."""
    by_variant: dict[str, list[SweepRun]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    ordered = []
    for position in range(max((len(group) for group in by_variant.values()), default=0)):
        ordered += [group[position] for group in by_variant.values() if position < len(group)]
    return ordered


def collect(out: Path, runs: list[SweepRun]) -> pd.DataFrame:
    """One row per finished cell and score of every run, with the run's overrides.

    Parameters
    ----------
    out : Path
        The sweep's output folder.
    runs : list of SweepRun
        The runs whose cells to read.

    Returns
    -------
    pandas.DataFrame
        Columns run, variant, status, overrides, method, seed, input, target, metric, value,
        samples_seen, train_seconds, device. Only the benchmark's scores (one mapping chosen
        on validation); variant rows such as the PIT oracle are left out.
    """
    rows: list[dict[str, Any]] = []
    for run in runs:
        for cell_path in sorted((out / "runs" / run.name).glob("*/*/cells/*.json")):
            cell = json.loads(cell_path.read_text())
            budget = cell.get("training_budget") or {}
            for score in cell.get("scores", []):
                if score.get("variant"):  # e.g. the PIT oracle: not the benchmark's number
                    continue
                rows.append({"run": run.name, "variant": run.variant, "status": run.status, "overrides": " ".join(run.overrides),
                             "method": cell["method"], "seed": cell["seed"], "input": score["input"],
                             "target": score["target"], "metric": score["metric"], "value": score["value"],
                             "samples_seen": budget.get("samples_seen"),
                             "train_seconds": budget.get("train_seconds"), "device": cell.get("device")})
    return pd.DataFrame(rows)


def run_sweep(runs: list[SweepRun], out: Path, cache_dir: Path, device: str, workers: int,
              deadline_s: float) -> pd.DataFrame:
    """Run every run (``workers`` at a time) until done or ``deadline_s``; write ``sweep.csv``.

    Returns
    -------
    pandas.DataFrame
        What :func:`collect` read.
    """
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    first = runs[0]
    prepare = SweepRun("_data", first.options | {"methods": "mixture", "seeds": "0"}, [])
    subprocess.run(prepare.command(out, cache_dir, device), check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    print(f"[sweep] data ready after {time.monotonic() - start:.0f} s", flush=True)

    def execute(run: SweepRun) -> None:
        left = deadline_s - (time.monotonic() - start)
        if left < 5:
            run.status = "not started (deadline)"
            return
        log = (out / "runs" / f"{run.name}.log").open("w")
        began = time.monotonic()
        try:
            subprocess.run(run.command(out, cache_dir, device, workers), cwd=ROOT, stdout=log,
                           stderr=subprocess.STDOUT, timeout=left, check=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
            run.status = "done"
        except subprocess.TimeoutExpired:
            run.status = "stopped (deadline)"
        except subprocess.CalledProcessError as err:
            run.status = f"failed (exit {err.returncode})"
        finally:
            log.close()
            run.seconds = round(time.monotonic() - began, 1)
        print(f"[sweep] {run.name}: {run.status} in {run.seconds} s", flush=True)

    (out / "runs").mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(execute, runs))
    table = collect(out, runs)
    table.to_csv(out / "sweep.csv", index=False)
    status = pd.DataFrame([{"run": r.name, "variant": r.variant, "status": r.status, "seconds": r.seconds,
                            "overrides": " ".join(r.overrides)} for r in runs])
    status.to_csv(out / "sweep_runs.csv", index=False)
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per-seed values of each variant's scores, one row per variant and seed (wide)."""
    if table.empty:
        return table
    wide = table.pivot_table(index=["variant", "seed"], columns=["target", "metric"], values="value")
    wide.columns = [f"{target}_{metric}" for target, metric in wide.columns]
    budget = table.groupby(["variant", "seed"])[["samples_seen", "train_seconds"]].first()
    return wide.join(budget).reset_index()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.tools.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="JSON sweep file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--cache-dir", type=Path, default=None, help="shared data cache (default OUT/cache)")
    parser.add_argument("--device", default="auto", help="device of every run (default auto)")
    parser.add_argument("--workers", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--deadline", type=float, default=3600.0, help="seconds for the whole sweep")
    parser.add_argument("--seed-major", action="store_true",
                        help="run every variant's first seed, then every second seed, ... (per-seed runs)")
    args = parser.parse_args(argv)
    try:
        runs = load_sweep(args.sweep)
        runs = interleave(runs) if args.seed_major else runs
    except (OSError, ValueError, KeyError) as err:
        parser.error(f"cannot read sweep file {args.sweep}: {err}")
    table = run_sweep(runs, args.out, args.cache_dir or args.out / "cache", args.device,
                      args.workers, args.deadline)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(table).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
