"""Plan, run and aggregate benchmark cells.

A cell is one (suite, method, seed, profile) combination with its resolved
parameters. Each finished cell is written at once by the coordinating process
(atomic rename), so an interrupted run loses only the cells in flight, and a
rerun skips every cell whose fingerprint (parameters + data) is unchanged.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import logging
import os
import shutil
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import methods
from benchmark import leaderboard as lb
from benchmark.environment import describe_device, environment_info, package_versions
from benchmark.executors import check_backend, failed_record, open_executor
from benchmark.provenance import cell_provenance, stale_reasons, summarize
from benchmark.store import ResultStore, atomic_write_json, atomic_write_text
from benchmark.suites import BenchmarkError, DataHandle, SuiteOptions, get_suite
from methods._training import resolve_device
from methods.base import RunContext

log = logging.getLogger("bss_bench")
CELL_FORMAT_VERSION = 1


# --------------------------------------------------------------------- planning
def parse_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["meae.epochs=5", "meae.lambda_mix=0.1"]`` -> ``{"meae": {"epochs": 5, "lambda_mix": 0.1}}``.

    Values are read as Python literals (numbers, tuples, booleans) and fall
    back to strings. Unknown methods or parameters raise :class:`BenchmarkError`.
    """
    registry = methods.discover()
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method_name, dot, param = key.strip().partition(".")
        if not sep or not dot or not param:
            raise BenchmarkError(f"--set expects METHOD.PARAM=VALUE, got '{item}'")
        if method_name not in registry:
            raise BenchmarkError(f"--set names unknown method '{method_name}' (registered: {', '.join(registry)})")
        allowed = registry[method_name].param_names()
        if param not in allowed:
            raise BenchmarkError(
                f"--set: method '{method_name}' has no parameter '{param}' (parameters: {', '.join(allowed)})"
            )
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        overrides.setdefault(method_name, {})[param] = value
    return overrides


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _digest(data: Any, length: int = 12) -> str:
    text = json.dumps(_jsonable(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class CellSpec:
    """A planned cell with its resolved parameters."""

    suite: str
    profile: str
    method: str
    seed: int
    params: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    time_limit: float | None = None
    code_versions: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Leaderboard name: the method, plus its overrides if any."""
        if not self.overrides:
            return self.method
        tags = ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.method}[{tags}]"

    @property
    def cell_id(self) -> str:
        """File name of the cell (stable across reruns with the same overrides)."""
        suffix = f"__{_digest(self.overrides, 8)}" if self.overrides else ""
        return f"{self.method}__seed{self.seed}{suffix}"

    def fingerprint(self, data_key: str) -> str:
        """Changes whenever anything that determines the result changes (a time limit included)."""
        identity = {
            "suite": self.suite, "profile": self.profile, "method": self.method, "seed": self.seed,
            "params": self.params, "data": data_key, "format": CELL_FORMAT_VERSION,
        }
        if self.time_limit is not None:
            identity["time_limit"] = self.time_limit
        if any(v != 1 for v in self.code_versions.values()):  # version 1: the code before versions existed
            identity["code"] = self.code_versions
        return _digest(identity, 24)


def resolve_methods(suite: str, modality: str, names: list[str] | None, device: str) -> tuple[list[str], list[dict]]:
    """Method names to run on ``suite`` and the skipped ones with a reason.

    ``names=None`` (or ``["all"]``) means every registered method that applies.
    Unknown names raise :class:`BenchmarkError`.
    """
    registry = methods.discover()
    explicit = names is not None and names != ["all"]
    chosen = names if explicit else list(registry)
    unknown = [n for n in chosen if n not in registry]
    if unknown:
        missing = methods.unavailable()
        hints = [f"{n} (failed to import: {missing[n]})" for n in unknown if n in missing]
        raise BenchmarkError(
            f"unknown method '{unknown[0]}' (registered: {', '.join(registry)})"
            + (f"; unavailable: {'; '.join(hints)}" if hints else "")
        )
    run, skipped = [], []
    for name in chosen:
        reason = registry[name]().check_applicable(suite, modality, device)
        if reason is None:
            run.append(name)
        elif explicit or suite in registry[name].suites:
            skipped.append({"method": name, "reason": reason})
    return run, skipped


def plan_cells(
    suite: str, profile: str, method_names: list[str], seeds: list[int], overrides: dict[str, dict[str, Any]],
    time_limit: float | None = None,
) -> list[CellSpec]:
    """Every (method, seed) cell with parameters = defaults < profile < overrides < seed.

    A method without a ``seed`` parameter is deterministic: it gets one cell (the
    first seed), since every seed would give the same numbers. ``time_limit``
    (seconds of training per cell) becomes part of every cell's identity.
    """
    registry = methods.discover()
    scoring_version = getattr(get_suite(suite), "scoring_version", 1)
    cells = []
    for name in method_names:
        cls = registry[name]
        code = {"method": getattr(cls, "version", 1), "suite_scoring": scoring_version}
        own = overrides.get(name, {})
        base = {**cls.default_params(), **cls.profile_params(suite, profile), **own}
        for seed in seeds if "seed" in base else seeds[:1]:
            params = {**base, "seed": seed} if "seed" in base else base
            cells.append(CellSpec(suite, profile, name, seed, _jsonable(params), dict(own), time_limit, code))
    return cells


# -------------------------------------------------------------------- execution
def execute_cell(
    spec: CellSpec, handle: DataHandle, device: str, n_threads: int, cache_dir: str, progress: bool,
    force: bool = False, run_deadline: float | None = None, force_cells: frozenset[str] = frozenset(),
) -> tuple[dict, dict]:
    """Run one cell (in a worker); returns ``(record, arrays)``. Never raises.

    With ``force`` (or the cell's id in ``force_cells``) a checkpoint left by an earlier run is
    deleted, so the model is refitted.
    ``run_deadline`` (a ``time.time()`` value, from ``--total-time-limit``) caps the cell's
    training time at what is left of the run; a cell that starts after it is not run
    (``status == "skipped"``).
    """
    started = time.time()
    time_limit = spec.time_limit
    if run_deadline is not None:
        left = run_deadline - started
        if left <= 0:
            return {
                "cell_id": spec.cell_id, "method": spec.method, "seed": spec.seed, "status": "skipped",
                "reason": "the run's --total-time-limit was reached before this cell started",
            }, {}
        time_limit = left if time_limit is None else min(time_limit, left)
    try:
        suite = get_suite(spec.suite)
        cls = methods.get(spec.method)
        context = RunContext(device=device, n_threads=n_threads, progress=progress, time_limit=time_limit)
        model_dir = Path(cache_dir) / "models" / spec.suite / spec.profile / f"{spec.cell_id}-{spec.fingerprint(handle.key)[:12]}"
        if force or spec.cell_id in force_cells:
            shutil.rmtree(model_dir, ignore_errors=True)

        def factory():
            return cls(**spec.params).with_context(context)

        outcome = suite.run_cell(factory, handle, model_dir)
    except Exception as error:  # noqa: BLE001 - one failing cell must not stop the run
        return failed_record(spec, error, traceback.format_exc()), {}
    record = {
        "status": "finished", "suite": spec.suite, "profile": spec.profile, "method": spec.method,
        "label": spec.label, "seed": spec.seed, "cell_id": spec.cell_id,
        "fingerprint": spec.fingerprint(handle.key), "params": spec.params, "overrides": spec.overrides,
        "data_key": handle.key, "device": describe_device(device), "n_threads": n_threads,
        "scores": outcome.scores, "details": outcome.details,
        "time_limit": {"per_cell_s": spec.time_limit, "effective_s": time_limit},
        "provenance": cell_provenance(cls, suite, spec.params, device),
        "training_budget": training_budget(outcome.details),
        "timings": {**outcome.timings, "total": time.time() - started},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return record, outcome.arrays


@dataclass
class RunSummary:
    """What a run did."""

    suite: str
    profile: str
    results_dir: Path
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    stale: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    execution: dict[str, Any] = field(default_factory=dict)


def run_suite(
    suite_name: str, *, profile: str = "quick", method_names: list[str] | None = None,
    seeds: list[int] = (0,), device: str = "auto", jobs: int = 1, results_dir: str | Path = "results",
    cache_dir: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None,
    force: bool = False, rebuild_only: bool = False, progress: bool = True, data_dir: str | Path | None = None,
    max_recordings: int | None = None, signals: tuple[str, ...] = ("ECG", "PPG"), command: str = "",
    backend: str = "joblib", scheduler: str | None = None, time_limit: float | None = None,
    run_deadline: float | None = None, data_jobs: int | None = None, recompute_stale: bool = False,
) -> RunSummary:
    """Run every planned cell of one suite that is not already finished, then rebuild its outputs.

    With ``rebuild_only`` nothing is run: the outputs are rebuilt from the finished cells.
    ``backend="joblib"`` runs ``jobs`` cells at once in processes on this machine;
    ``backend="dask"`` runs them on a Dask cluster, a local one of ``jobs`` workers or the one
    whose scheduler address is ``scheduler`` (see :func:`benchmark.executors.open_executor`).
    Either way this process writes each result as it arrives.

    ``time_limit`` caps each cell's training time (seconds; part of the cell's identity);
    ``run_deadline`` (a ``time.time()`` value, from ``--total-time-limit``) caps the whole
    run: a cell started late trains for what is left, and cells not started by then are
    skipped with that reason.
    ``data_jobs`` sets the workers of data preparation (default ``jobs``).
    A reused cell whose recorded package versions differ from the installed ones (or that
    predates provenance) is *stale*: the run warns and the leaderboard marks it;
    ``recompute_stale`` recomputes exactly those cells.
    """
    start = time.time()
    if time_limit is not None and time_limit <= 0:
        raise BenchmarkError(f"--time-limit must be a positive number of seconds, got {time_limit}")
    suite = get_suite(suite_name)
    check_backend(backend, scheduler)
    remote = scheduler is not None
    # Remote GPU workers need not match this machine: "cuda" is only checked on the workers.
    device = "cuda" if remote and device.startswith("cuda") else resolve_device(device)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    store = ResultStore(Path(results_dir) / suite_name / profile)
    if method_names is not None and not method_names:
        raise BenchmarkError("--methods is empty (give method names or 'all')")
    names, skipped = resolve_methods(suite_name, suite.modality, method_names, device)
    if method_names and method_names != ["all"] and not names:
        raise BenchmarkError(f"no requested method applies to suite '{suite_name}': " + "; ".join(s["reason"] for s in skipped))
    cells = plan_cells(suite_name, profile, names, list(seeds), overrides or {}, time_limit)

    options = SuiteOptions(
        cache_dir=cache_dir, data_dir=Path(data_dir) if data_dir else None,
        max_recordings=max_recordings, signals=tuple(signals), n_jobs=max(1, data_jobs or jobs), progress=progress,
    )
    handle = suite.prepare(profile, options)
    unfinished = [c for c in cells if force or not store.is_finished(c.cell_id, c.fingerprint(handle.key))]
    summary = RunSummary(suite_name, profile, store.root, skipped=skipped)
    current = package_versions()
    for cell in cells:
        if cell in unfinished:
            continue
        reasons = stale_reasons(store.load_cell(cell.cell_id) or {}, current)
        if reasons:
            summary.stale[cell.cell_id] = reasons
    _warn_stale(suite_name, summary.stale, recompute_stale)
    if recompute_stale:
        unfinished += [c for c in cells if c.cell_id in summary.stale and c not in unfinished]
    todo = [] if rebuild_only else unfinished
    summary.reused = [c.cell_id for c in cells if c not in unfinished]
    for item in skipped:
        log.warning("skipping %s on %s: %s", item["method"], suite_name, item["reason"])

    summary.execution = {"backend": backend, "scheduler": scheduler, "workers": 0}
    if todo:
        task = functools.partial(
            execute_cell, handle=handle, cache_dir=str(cache_dir), force=force, run_deadline=run_deadline,
            force_cells=frozenset(summary.stale) if recompute_stale else frozenset(),
        )
        with open_executor(backend, device, jobs, scheduler) as executor:
            summary.execution = executor.describe()
            bar = tqdm(total=len(todo), desc=f"{suite_name}/{profile} cells", disable=not progress)
            for record, arrays in executor.run(task, todo, progress):
                bar.update(1)
                if record["status"] == "skipped":
                    log.warning("cell %s not run: %s", record["cell_id"], record["reason"])
                    summary.skipped.append({"method": record["method"], "seed": record["seed"], "reason": record["reason"]})
                    continue
                if record["status"] != "finished":
                    log.error("cell %s failed: %s", record["cell_id"], record["error"])
                    summary.failed.append(record)
                    continue
                store.save_cell(record["cell_id"], record, arrays)
                summary.ran.append(record["cell_id"])
        bar.close()
    summary.seconds = time.time() - start
    rebuild_outputs(suite_name, profile, store, handle, cells, summary, device, command)
    return summary


def _warn_stale(suite_name: str, stale: dict[str, list[str]], recompute: bool) -> None:
    """One warning per stale cell, or one per reason when there are many."""
    action = " (recomputing)" if recompute else " (reused and marked; --recompute-stale recomputes it)"
    if len(stale) <= 10:
        for cell_id, reasons in stale.items():
            log.warning("%s cell %s is stale: %s%s", suite_name, cell_id, "; ".join(reasons), action)
        return
    by_reason: dict[str, int] = {}
    for reasons in stale.values():
        key = "; ".join(reasons)
        by_reason[key] = by_reason.get(key, 0) + 1
    for reason, count in by_reason.items():
        log.warning("%s: %d cells are stale: %s%s", suite_name, count, reason, action)


def rebuild_outputs(suite_name: str, profile: str, store: ResultStore, handle: DataHandle, cells: list[CellSpec], summary: RunSummary, device: str, command: str) -> None:
    """Write runs.csv, leaderboard.csv/.md, manifest.json and figures from every finished cell."""
    suite = get_suite(suite_name)
    records = [r for r in store.records() if r.get("suite") == suite_name and r.get("data_key") == handle.key]
    current = package_versions()
    stale = {r["cell_id"]: reasons for r in records if (reasons := stale_reasons(r, current))}
    runs = lb.runs_frame(records, stale)
    board = lb.aggregate(runs, suite.reference_rows(), suite.data_rows(handle))
    atomic_write_text(store.root / "runs.csv", runs.to_csv(index=False))
    atomic_write_text(store.root / "leaderboard.csv", board.to_csv(index=False))

    manifest = build_manifest(suite_name, profile, records, handle, summary, device, command)
    manifest["provenance"] = summarize(records, stale)
    atomic_write_json(store.root / "manifest.json", manifest)
    atomic_write_text(store.root / "leaderboard.md", suite.render_markdown(board, manifest))
    if records:
        arrays = {r["cell_id"]: store.load_arrays(r["cell_id"]) for r in records}
        try:
            suite.make_figures(records, arrays, handle, store.figures_dir)
        except Exception as error:  # noqa: BLE001 - figures never cost the results
            log.error("figures for %s failed: %s", suite_name, error)


def build_manifest(suite_name: str, profile: str, records: list[dict], handle: DataHandle, summary: RunSummary, device: str, command: str) -> dict[str, Any]:
    """Everything needed to trust and reproduce the leaderboard."""
    n_test = {r["details"].get("n_test") for r in records if "n_test" in r.get("details", {})}
    remote = summary.execution.get("scheduler") not in (None, "local")  # the device is not on this machine
    return {
        "suite": suite_name,
        "profile": profile,
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment_info(),
        "device": f"{device} (Dask workers; see each cell)" if remote else describe_device(device),
        "execution": summary.execution,
        "seeds": sorted({r["seed"] for r in records}),
        "data": {"key": handle.key, **handle.info, "n_test": sorted(n_test)[0] if len(n_test) == 1 else sorted(n_test)},
        "methods": {r["label"]: {"method": r["method"], "params": r["params"]} for r in records},
        "cells": {
            r["cell_id"]: {
                "label": r["label"], "seed": r["seed"], "device": r["device"], "n_threads": r.get("n_threads"),
                "timings": r["timings"], "fingerprint": r["fingerprint"], "finished_at": r["finished_at"],
                "assignment": r["details"].get("assignment", {}).get("by_source"),
                "unused_outputs": r["details"].get("assignment", {}).get("unused"),
                "training_events": training_events(r["details"]),
                "time_limit": r.get("time_limit"),
                "training_budget": r.get("training_budget"),
                "provenance": r.get("provenance"),
            }
            for r in records
        },
        "last_run": {
            "ran": summary.ran, "reused": summary.reused, "seconds": round(summary.seconds, 1),
            "failed": [{k: f[k] for k in ("cell_id", "error")} for f in summary.failed],
            "skipped": summary.skipped,
        },
    }


def fit_detail(details: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``details[key]`` of a cell's fit, or its per-input values for multi-input suites, or ``None``."""
    if details.get(key) is not None:
        return details[key]
    per_input = {name: info[key] for name, info in details.get("inputs", {}).items() if info.get(key) is not None}
    return per_input or None


def training_budget(details: dict[str, Any]) -> dict[str, Any] | None:
    """How much training a cell's fits got (per input for multi-input suites), or ``None``."""
    return fit_detail(details, "training_budget")


def training_events(details: dict[str, Any]) -> dict[str, Any] | None:
    """Non-finite-loss and resume events of a cell's fits (per input for multi-input suites)."""
    return fit_detail(details, "training_events")


def default_cache_dir() -> Path:
    """``$BSS_BENCH_CACHE`` or ``.cache/bss-bench`` under the working directory."""
    return Path(os.environ.get("BSS_BENCH_CACHE", Path.cwd() / ".cache" / "bss-bench"))

