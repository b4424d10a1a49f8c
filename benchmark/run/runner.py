"""Run benchmark cells: execute each planned cell, save it at once, then rebuild the outputs.

Each finished cell is written at once by the coordinating process (atomic rename), so an
interrupted run loses only the cells in flight, and a rerun skips every cell whose
fingerprint (parameters + data + code and library versions) is unchanged. Planning lives in
:mod:`benchmark.run.planning`, the written outputs in :mod:`benchmark.report.reporting`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import methods
from benchmark.core.environment import describe_device, package_versions
from benchmark.core.errors import BenchmarkError, CellSkipped
from benchmark.core.provenance import cell_provenance, stale_reasons
from benchmark.core.store import ResultStore, atomic_write_json
from benchmark.report.reporting import RunSummary, rebuild_outputs, training_budget
from benchmark.run.config import RunConfig, default_cache_dir
from benchmark.run.executors import check_backend, failed_record, open_executor
from benchmark.run.fitting import Fitter, ModelOf
from benchmark.run.planning import CellSpec, plan_cells, resolve_methods
from benchmark.run.resume import note_resumable, resume_from
from benchmark.suites import DataHandle, Suite, SuiteOptions, get_suite
from methods.base import RunContext
from methods.nn.device import resolve_device
from methods.nn.network_method import MultiEncoderMethod

log = logging.getLogger("bss_bench")


def execute_cell(
    spec: CellSpec, handle: DataHandle, device: str, n_threads: int, cache_dir: str, progress: bool,
    force: bool = False, run_deadline: float | None = None, force_cells: frozenset[str] = frozenset(),
    model_data: DataHandle | None = None, layout: str | None = None, resume_dir: str | None = None,
    compile_network: bool = False,
) -> tuple[dict, dict]:
    """Run one cell (in a worker); returns ``(record, arrays)``. Never raises.

    With ``force`` (or the cell's id in ``force_cells``) a checkpoint left by an earlier run is
    deleted, so the model is refitted.
    ``run_deadline`` (a ``time.time()`` value, from ``--total-time-limit``) caps the cell's
    training time at what is left of the run; a cell that starts after it is not run
    (``status == "skipped"``). ``model_data`` is the data of the cell's planning dependency
    (:attr:`CellSpec.model_of <benchmark.run.planning.CellSpec.model_of>`), whose model the fitter
    fits there or reloads from that cell's folder. ``layout`` is the execution layout of
    multi-encoder networks (``--layout``) and ``compile_network`` compiles them for training
    (``--compile``); the record names either when given. With
    ``resume_dir`` (``--resume-from``) a cell with an empty model folder starts from the
    checkpoint there of an earlier, time-limited run of the same training
    (:func:`benchmark.run.resume.resume_from`); after a cut cell its checkpoint is noted as
    resumable (:func:`benchmark.run.resume.note_resumable`).
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
        context = RunContext(device=device, n_threads=n_threads, progress=progress, time_limit=time_limit, layout=layout,
                             compile=compile_network)
        model_dir = _model_dir(spec, handle.key, cache_dir)
        if force or spec.cell_id in force_cells:
            shutil.rmtree(model_dir, ignore_errors=True)
        resumed = resume_from(Path(resume_dir), spec, handle.key, model_dir) if resume_dir else None

        def factory():
            return cls(**spec.params).with_context(context)

        model_of = None
        if spec.model_of is not None and model_data is not None:
            model_of = ModelOf(Fitter(factory, _model_dir(spec.model_of, model_data.key, cache_dir)), model_data)
        fitter = Fitter(factory, model_dir, model_of)
        outcome = suite.run_cell(fitter, handle)
        note_resumable(model_dir, spec, handle.key, training_budget(outcome.details))
    except CellSkipped as reason:
        return {"cell_id": spec.cell_id, "method": spec.method, "seed": spec.seed, "status": "skipped", "reason": str(reason)}, {}
    except Exception as error:  # noqa: BLE001 - one failing cell must not stop the run
        return failed_record(spec, error, traceback.format_exc()), {}
    record = {
        "status": "finished", "suite": spec.suite, "profile": spec.profile, "method": spec.method,
        "label": spec.label, "seed": spec.seed, "cell_id": spec.cell_id,
        **declared_fields(spec.method),
        "fingerprint": spec.fingerprint(handle.key), "params": spec.params, "overrides": spec.overrides,
        "data_key": handle.key, "device": describe_device(device), "n_threads": n_threads,
        **execution_choices(cls, layout, compile_network),
        **({"resumed_from": {k: resumed[k] for k in ("time_limit_s", "epochs_completed", "train_seconds")}}
           if resumed else {}),
        "scores": outcome.scores, "details": outcome.details,
        "time_limit": {"per_cell_s": spec.time_limit, "effective_s": time_limit},
        "provenance": cell_provenance(cls, suite, spec.params, device),
        "training_budget": training_budget(outcome.details),
        "timings": {**outcome.timings, "total": time.time() - started},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return record, outcome.arrays


def execution_choices(cls: type, layout: str | None, compile_network: bool) -> dict[str, Any]:
    """The record fields of ``--layout`` and ``--compile`` for a method they apply to (multi-encoder
    networks); empty when neither was given or the method has no such network."""
    if not issubclass(cls, MultiEncoderMethod):
        return {}
    return {**({"layout": layout} if layout is not None else {}), **({"compiled": True} if compile_network else {})}


def keep_report_data(store: ResultStore, suite: Suite, handle: DataHandle) -> None:
    """Keep in ``store`` what reports need besides the cells: the suite's report data for
    ``handle`` and its declared layout (:mod:`benchmark.core.report_data`)."""
    store.save_report_data(handle.key, dataclasses.replace(suite.report_data(handle), layout=suite.report_layout(handle)))


DECLARED_FIELDS = ("method_kind", "supervised", "show_outputs")
"""What a cell record carries of what its method declares, so that reports need no registry."""


def declared_fields(method_name: str) -> dict[str, Any]:
    """``method_kind``, ``supervised`` and ``show_outputs`` of a registered method (``None``,
    ``False`` and ``False`` for a name no longer registered)."""
    try:
        cls = methods.get(method_name)
    except KeyError:
        return {"method_kind": None, "supervised": False, "show_outputs": False}
    return {"method_kind": cls.kind, "supervised": cls.supervised, "show_outputs": cls.show_outputs}


def complete_declared_fields(store: ResultStore, suite_name: str, data_key: str) -> list[str]:
    """Give the finished cells of ``suite_name`` on ``data_key`` that were written before records
    carried :data:`DECLARED_FIELDS` those fields, from the method registry, after ``cell_id``
    (each record rewritten atomically, nothing else changed); returns the updated cell ids."""
    updated = []
    for record in store.records():
        if record.get("suite") != suite_name or record.get("data_key") != data_key:
            continue
        missing = {k: v for k, v in declared_fields(record["method"]).items() if k not in record}
        if not missing:
            continue
        completed = {}
        for key, value in record.items():
            completed[key] = value
            if key == "cell_id":
                completed.update(missing)
        atomic_write_json(store.cell_path(record["cell_id"]), {**completed, **missing})
        updated.append(record["cell_id"])
    return updated


def _model_dir(spec: CellSpec, data_key: str, cache_dir: str) -> Path:
    """Where the cell ``spec`` on the data ``data_key`` keeps its fitted model."""
    return Path(cache_dir) / "models" / spec.suite / spec.profile / f"{spec.cell_id}-{spec.fingerprint(data_key)[:12]}"


def prepare_data(suite: Suite, profile: str, options: SuiteOptions) -> tuple[DataHandle, DataHandle | None]:
    """The suite's data and, for a suite that evaluates the models of the suite it is a data variant
    of, that suite's default data (``None`` otherwise), which is prepared first and handed to the
    suite's ``prepare`` as ``options.model_data``."""
    model_data = None
    if suite.variant is not None and suite.variant.shares_models:
        model_data = get_suite(suite.variant.of).prepare(
            profile, dataclasses.replace(options, data_dir=None, max_recordings=None))
    return suite.prepare(profile, dataclasses.replace(options, model_data=model_data)), model_data


def run_suite(suite_name: str, config: RunConfig | None = None) -> RunSummary:
    """Run every planned cell of one suite that is not already finished, then rebuild its outputs.

    ``config`` (:class:`benchmark.run.config.RunConfig`, default: its defaults) says what to run
    and how. With ``config.rebuild_only`` nothing is run: the outputs are rebuilt from the
    finished cells. ``backend="joblib"`` runs ``jobs`` cells at once in processes on this
    machine; ``backend="dask"`` runs them on a Dask cluster, a local one of ``jobs`` workers or
    the one whose scheduler address is ``scheduler`` (see
    :func:`benchmark.run.executors.open_executor`). Either way this process writes each result
    as it arrives.

    ``time_limit`` caps each cell's training time (seconds; part of the cell's identity);
    ``run_deadline`` caps the whole run: a cell started late trains for what is left, and cells
    not started by then are skipped with that reason. A reused cell whose recorded package
    versions differ from the installed ones (or that predates provenance) is *stale*: the run
    warns and the leaderboard marks it; ``recompute_stale`` recomputes exactly those cells.
    """
    config = config if config is not None else RunConfig()
    start = time.time()
    profile, method_names = config.profile, config.method_names
    suite = get_suite(suite_name)
    check_backend(config.backend, config.scheduler)
    remote = config.scheduler is not None
    # Remote GPU workers need not match this machine: "cuda" is only checked on the workers.
    device = "cuda" if remote and config.device.startswith("cuda") else resolve_device(config.device)
    cache_dir = Path(config.cache_dir) if config.cache_dir is not None else default_cache_dir()
    store = ResultStore(Path(config.results_dir) / suite_name / profile)
    names, skipped = resolve_methods(suite_name, method_names, device)
    if method_names and method_names != ["all"] and not names:
        raise BenchmarkError(f"no requested method applies to suite '{suite_name}': " + "; ".join(s["reason"] for s in skipped))
    cells = plan_cells(suite_name, profile, names, list(config.seeds), config.overrides, config.time_limit)

    options = SuiteOptions(
        cache_dir=cache_dir, data_dir=Path(config.data_dir) if config.data_dir else None,
        max_recordings=config.max_recordings, signals=tuple(config.signals),
        n_jobs=max(1, config.data_jobs or config.jobs), progress=config.progress,
    )
    handle, model_data = prepare_data(suite, profile, options)
    keep_report_data(store, suite, handle)
    force = config.force
    unfinished = [c for c in cells if force or not store.is_finished(c.cell_id, c.fingerprint(handle.key))]
    summary = RunSummary(suite_name, profile, store.root, skipped=skipped)
    current = package_versions()
    for cell in cells:
        if cell in unfinished:
            continue
        reasons = stale_reasons(store.load_cell(cell.cell_id) or {}, current)
        if reasons:
            summary.stale[cell.cell_id] = reasons
    _warn_stale(suite_name, summary.stale, config.recompute_stale)
    if config.recompute_stale:
        unfinished += [c for c in cells if c.cell_id in summary.stale and c not in unfinished]
    todo = [] if config.rebuild_only else unfinished
    summary.reused = [c.cell_id for c in cells if c not in unfinished]
    explicit = bool(method_names) and method_names != ["all"]
    for item in skipped:  # asked-for methods that cannot run deserve a warning; with "all" the reasons go to the manifest
        log.log(logging.WARNING if explicit else logging.DEBUG, "skipping %s on %s: %s", item["method"], suite_name, item["reason"])

    summary.execution = {"backend": config.backend, "scheduler": config.scheduler, "workers": 0}
    if todo:
        task = functools.partial(
            execute_cell, handle=handle, cache_dir=str(cache_dir), force=force, run_deadline=config.run_deadline,
            force_cells=frozenset(summary.stale) if config.recompute_stale else frozenset(), model_data=model_data,
            layout=config.layout, resume_dir=None if config.resume_from is None else str(config.resume_from),
            compile_network=config.compile,
        )
        with open_executor(config.backend, device, config.jobs, config.scheduler) as executor:
            summary.execution = executor.describe()
            bar = tqdm(total=len(todo), desc=f"{suite_name}/{profile} cells", disable=not config.progress)
            for record, arrays in executor.run(task, todo, config.progress):
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
    completed = complete_declared_fields(store, suite_name, handle.key)
    if completed:
        log.info("%s: %d cell records completed with what their methods declare", suite_name, len(completed))
    rebuild_outputs(suite_name, profile, store, handle, summary, device, config.command)
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



