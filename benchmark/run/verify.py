"""Verification in one command: recompute randomly chosen finished cells and compare.

``run_benchmark.py --suite S --verify N`` draws ``N`` finished cells of the suite and profile
(seeded), rebuilds each from its stored record (method, parameters, seed, time limit), refits
it with fresh model checkpoints in a scratch folder (the committed cells and the user's
checkpoints are not touched) and compares every score with the stored one.

Tolerance: a value agrees when ``|recomputed - stored| <= atol + rtol * |stored|`` (both NaN
also agree). On the same machine, library versions and thread count the cells recompute
bit for bit; across thread counts or CPUs, floating-point sums are taken in another order and
the differences grow with training length, hence the default ``rtol = 1e-3``.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from benchmark.core.errors import BenchmarkError
from benchmark.core.store import ResultStore, atomic_write_text
from benchmark.evaluation.metrics import get_metric
from benchmark.run.planning import CellSpec, with_model_of
from benchmark.run.runner import execute_cell, prepare_data
from benchmark.suites import SuiteOptions, get_suite
from methods.nn.device import resolve_device

log = logging.getLogger("bss_bench")

RTOL = 1e-3
ATOL = 1e-9
VERIFY_COLUMNS = ["cell_id", "input", "target", "metric", "variant", "stored", "recomputed", "abs_diff", "agrees"]


@dataclass(frozen=True)
class Tolerance:
    """``|recomputed - stored| <= atol + rtol * |stored|``."""

    rtol: float = RTOL
    atol: float = ATOL

    def agrees(self, stored: float, recomputed: float) -> bool:
        """Whether two values agree (two NaNs do; NaN and a number do not)."""
        if math.isnan(stored) or math.isnan(recomputed):
            return math.isnan(stored) and math.isnan(recomputed)
        return abs(recomputed - stored) <= self.atol + self.rtol * abs(stored)


def choose_cells(records: list[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` finished records drawn without replacement (all of them when there are fewer)."""
    ordered = sorted(records, key=lambda r: r["cell_id"])
    if n >= len(ordered):
        return ordered
    picks = np.random.default_rng(seed).choice(len(ordered), size=n, replace=False)
    return [ordered[i] for i in sorted(picks)]


def spec_from_record(record: dict[str, Any]) -> CellSpec:
    """The cell specification a finished record was computed from."""
    return with_model_of(CellSpec(
        record["suite"], record["profile"], record["method"], record["seed"], record["params"],
        record.get("overrides") or {}, (record.get("time_limit") or {}).get("per_cell_s"),
        (record.get("provenance") or {}).get("code", {}),
    ))


def compare_scores(cell_id: str, stored: list[dict], recomputed: list[dict], tolerance: Tolerance) -> list[dict[str, Any]]:
    """One row per stored score: stored and recomputed value, difference, agreement.

    Scores that reports derive from other stored values (``Metric.per_group_of``: the MAE per
    recording) are left out: the value a cell stored for them is not what the leaderboard shows.
    """
    def key(score: dict) -> tuple:
        return score["input"], score["target"], score["metric"], score.get("variant", "")

    fresh = {key(s): float(s["value"]) for s in recomputed}
    rows = []
    for score in stored:
        if get_metric(score["metric"]).per_group_of:
            continue
        value = float(score["value"])
        new = fresh.get(key(score), float("nan"))
        rows.append({
            "cell_id": cell_id, "input": score["input"], "target": score["target"], "metric": score["metric"],
            "variant": score.get("variant", ""), "stored": value, "recomputed": new,
            "abs_diff": abs(new - value) if not (math.isnan(new) or math.isnan(value)) else float("nan"),
            "agrees": tolerance.agrees(value, new) and key(score) in fresh,
        })
    return rows


def verify_suite(
    suite_name: str, profile: str, n_cells: int, *, results_dir: str | Path, cache_dir: str | Path,
    scratch_dir: str | Path | None = None, device: str = "auto", options: dict[str, Any] | None = None,
    tolerance: Tolerance = Tolerance(), seed: int = 0, progress: bool = True,
) -> pd.DataFrame:
    """Recompute ``n_cells`` finished cells in ``scratch_dir`` and compare with the stored scores.

    Returns the comparison table (see :data:`VERIFY_COLUMNS`) and writes it, with a markdown
    summary, to ``scratch_dir``. Raises :class:`BenchmarkError` when there is nothing to
    verify or the data prepared now is not the data the cells were computed on.
    """
    suite = get_suite(suite_name)
    store = ResultStore(Path(results_dir) / suite_name / profile)
    records = [r for r in store.records() if r.get("status", "finished") == "finished"]
    if not records:
        raise BenchmarkError(f"--verify: no finished cells in {store.root}")
    scratch = Path(scratch_dir) if scratch_dir is not None else Path(cache_dir) / "verify" / suite_name / profile
    shutil.rmtree(scratch / "models", ignore_errors=True)
    handle, model_data = prepare_data(suite, profile, SuiteOptions(cache_dir=Path(cache_dir), progress=progress, **(options or {})))
    chosen = choose_cells(records, n_cells, seed)
    resolved = resolve_device(device)
    rows = []
    for record in tqdm(chosen, desc=f"verify {suite_name}/{profile}", disable=not progress):
        if record.get("data_key") != handle.key:
            raise BenchmarkError(
                f"--verify: cell {record['cell_id']} was computed on data '{record.get('data_key')}', the data "
                f"prepared now is '{handle.key}' (pass the run's --data-dir/--signals/--max-recordings)")
        threads = int(record.get("n_threads") or 1)
        with threadpool_limits(limits=threads):
            fresh, _ = execute_cell(spec_from_record(record), handle, resolved, threads, str(scratch), False, force=True,
                                    model_data=model_data)
        if fresh.get("status") != "finished":
            raise BenchmarkError(f"--verify: recomputing {record['cell_id']} failed: {fresh.get('error')}")
        rows += compare_scores(record["cell_id"], record["scores"], fresh["scores"], tolerance)
    table = pd.DataFrame(rows, columns=VERIFY_COLUMNS)
    scratch.mkdir(parents=True, exist_ok=True)
    atomic_write_text(scratch / "verify.csv", table.to_csv(index=False))
    atomic_write_text(scratch / "verify.md", verify_markdown(table, suite_name, profile, tolerance))
    return table


def verify_markdown(table: pd.DataFrame, suite_name: str, profile: str, tolerance: Tolerance) -> str:
    """A summary line per cell and the largest differences."""
    lines = [
        f"# Verification of {suite_name}/{profile}: {table['cell_id'].nunique()} cells recomputed",
        "",
        f"Tolerance: |recomputed − stored| ≤ {tolerance.atol:g} + {tolerance.rtol:g} × |stored|. "
        f"{int(table['agrees'].sum())} of {len(table)} values agree; largest difference "
        f"{np.nanmax(table['abs_diff']) if table['abs_diff'].notna().any() else 0:.3g}.",
        "",
        "| cell | values | agree | largest abs. difference |",
        "|---|---|---|---|",
    ]
    for cell_id, group in table.groupby("cell_id", sort=True):
        largest = group["abs_diff"].max()
        lines.append(f"| {cell_id} | {len(group)} | {int(group['agrees'].sum())} | {0 if pd.isna(largest) else largest:.3g} |")
    return "\n".join(lines) + "\n"
