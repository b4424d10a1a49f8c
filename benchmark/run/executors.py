"""Where cells run: joblib processes on this machine, or the workers of a Dask cluster.

An executor runs a cell task for every planned cell and yields each ``(record, arrays)``
as soon as it finishes, in completion order; the runner writes every result at once from
the coordinating process. A failing cell never stops the others: it comes back as a record
with ``status == "failed"`` and the error text, like :func:`failed_record` builds.

The cell task is ``task(spec, device=..., n_threads=..., progress=...)`` (in practice
:func:`benchmark.run.runner.execute_cell` with the data handle, cache folder and ``force``
bound); it must be picklable, and every worker must see the paths it names.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from joblib import Parallel, delayed

from benchmark.core.errors import BenchmarkError

log = logging.getLogger("bss_bench")
BACKENDS = ("joblib", "dask")
CellTask = Callable[..., tuple[dict, dict]]
DASK_MISSING = 'the dask backend needs dask.distributed: pip install -e ".[dask]"'


def failed_record(spec: Any, error: BaseException, trace: str = "") -> dict[str, Any]:
    """The record of a cell that did not finish.

    Parameters
    ----------
    spec : CellSpec
        The planned cell (``cell_id``, ``method`` and ``seed`` are read).
    error : BaseException
        What went wrong; recorded as ``"Type: message"``.
    trace : str, optional
        The traceback text, if there is one.

    Returns
    -------
    dict
        ``status == "failed"`` with the error text; nothing of it is written as a cell.
    """
    return {
        "cell_id": spec.cell_id, "method": spec.method, "seed": spec.seed, "status": "failed",
        "error": f"{type(error).__name__}: {error}", "traceback": trace,
    }


def cpu_threads(n_workers: int) -> int:
    """CPU threads for each of ``n_workers`` concurrent cells on this machine."""
    return max(1, (os.cpu_count() or 1) // max(1, n_workers))


def device_slots(device: str, jobs: int) -> list[str]:
    """One device string per concurrent worker on this machine; a GPU is never shared by two cells."""
    if device.startswith("cuda"):
        import torch

        if ":" in device:
            return [device]
        n_gpus = max(1, torch.cuda.device_count())
        return [f"cuda:{i}" for i in range(min(jobs, n_gpus))]
    return ["cpu"] * max(1, jobs)


class CellExecutor(Protocol):
    """Runs cells and yields their results as they finish."""

    def describe(self) -> dict[str, Any]:
        """How cells were run, for the manifest (small and JSON-able)."""

    def run(self, task: CellTask, specs: Sequence[Any], progress: bool) -> Iterator[tuple[dict, dict]]:
        """Run ``task`` on every spec; yield ``(record, arrays)`` in completion order."""


class JoblibExecutor:
    """Worker processes on this machine (joblib/loky), one cell per process at a time.

    Parameters
    ----------
    device : str
        Resolved device: ``"cpu"``, ``"cuda"`` (every visible GPU, up to ``jobs``) or ``"cuda:N"``.
    jobs : int
        Cells run at once. GPU cells run in rounds of one cell per GPU, so no GPU is shared.
    """

    def __init__(self, device: str, jobs: int) -> None:
        self.device = device
        self.slots = device_slots(device, jobs)
        self.n_threads = cpu_threads(len(self.slots))

    def describe(self) -> dict[str, Any]:
        """``{"backend": "joblib", "scheduler": None, "workers": N}``."""
        return {"backend": "joblib", "scheduler": None, "workers": len(self.slots)}

    def run(self, task: CellTask, specs: Sequence[Any], progress: bool) -> Iterator[tuple[dict, dict]]:
        """Yield ``(record, arrays)`` per cell as each finishes.

        A cell shows its own progress bars only when cells run one at a time.
        """
        slots = self.slots
        round_size = len(slots) if self.device.startswith("cuda") else max(len(specs), 1)
        inner_progress = progress and len(slots) == 1
        for first in range(0, len(specs), round_size):
            calls = (
                delayed(task)(spec, device=slots[i % len(slots)], n_threads=self.n_threads, progress=inner_progress)
                for i, spec in enumerate(specs[first : first + round_size])
            )
            yield from Parallel(n_jobs=len(slots), return_as="generator_unordered")(calls)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise BenchmarkError(DASK_MISSING) from None
    return distributed


def _run_on_worker(task: CellTask, spec: Any, device: str, n_threads: int | None) -> tuple[dict, dict]:
    """Run one cell on a Dask worker.

    ``n_threads=None`` takes the worker's usable cores (its CPU affinity, e.g. the cores of
    its SLURM job): all of them for a GPU cell, which runs alone on its worker (``GPU=1``),
    else an equal share per Dask thread of the worker. BLAS and OpenMP pools are set to
    ``n_threads`` for the cell (Dask starts workers with one thread each), so a cell computes
    with the threads it records, as in a joblib worker.
    """
    from threadpoolctl import threadpool_limits

    if n_threads is None:
        from distributed import get_worker

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        n_threads = cores if device == "cuda" else max(1, cores // get_worker().state.nthreads)
    with threadpool_limits(limits=n_threads):
        return task(spec, device=device, n_threads=n_threads, progress=False)


class DaskExecutor:
    """The workers of a Dask cluster; results are gathered by this (coordinating) process.

    Parameters
    ----------
    client : distributed.Client
        Connected client.
    device : str
        ``"cpu"`` or ``"cuda"``. A GPU cell asks for the worker resource ``GPU=1`` and runs
        on the worker's visible GPU, so GPU workers must be started with ``--resources GPU=1``
        and one GPU each (``CUDA_VISIBLE_DEVICES``).
    n_threads : int or None
        CPU threads per cell; ``None`` lets the worker decide (see :func:`_run_on_worker`),
        right for one worker process per node or per GPU.
    scheduler : str
        Scheduler address, or ``"local"`` for a cluster started by this process.
    """

    def __init__(self, client: Any, device: str, n_threads: int | None, scheduler: str) -> None:
        self.client = client
        self.device = "cuda" if device.startswith("cuda") else "cpu"
        self.n_threads = n_threads
        self.scheduler = scheduler

    def describe(self) -> dict[str, Any]:
        """Backend, scheduler address and number of workers when the run started."""
        return {"backend": "dask", "scheduler": self.scheduler, "workers": len(self.client.nthreads())}

    def run(self, task: CellTask, specs: Sequence[Any], progress: bool) -> Iterator[tuple[dict, dict]]:
        """Submit every cell at once; yield each result as its future completes.

        A cell whose future fails (its worker died more often than the scheduler's
        ``allowed-failures``, a lost connection, ...) comes back as a failed record, so the
        run goes on and a rerun completes the cell.
        """
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:8]
        resources = {"GPU": 1} if self.device == "cuda" else None
        if resources and not any(w.get("resources", {}).get("GPU") for w in self.client.scheduler_info()["workers"].values()):
            log.warning("no Dask worker offers the resource GPU yet: GPU cells wait for workers started with --resources GPU=1")
        futures = {}
        for spec in specs:
            future = self.client.submit(
                _run_on_worker, task, spec, self.device, self.n_threads,
                key=f"bss-cell-{spec.suite}-{spec.profile}-{spec.cell_id}-{run_id}", pure=False, resources=resources,
            )
            futures[future.key] = (future, spec)
        for future in as_completed([f for f, _ in futures.values()]):
            spec = futures.pop(future.key)[1]
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - a lost worker costs only its cell
                result = failed_record(spec, error, traceback.format_exc()), {}
            future.release()
            yield result


def _gpu_local_cluster(distributed: Any, slots: list[str]) -> Any:
    """One single-threaded worker per GPU slot, each seeing only its GPU as ``cuda``."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(torch.cuda.device_count())]
    workers = {
        f"gpu{slot.split(':')[1]}": {
            "cls": distributed.Nanny,
            "options": {
                "nthreads": 1, "resources": {"GPU": 1}, "memory_limit": 0, "host": "127.0.0.1",
                "silence_logs": logging.CRITICAL,
                "env": {"CUDA_VISIBLE_DEVICES": ids[int(slot.split(":")[1])]},
            },
        }
        for slot in slots
    }
    scheduler = {"cls": distributed.Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
    return distributed.SpecCluster(workers=workers, scheduler=scheduler, name="bss-bench-gpus")


@contextmanager
def nanny_environ_restored() -> Iterator[None]:
    """Undo what Dask nannies change in this process's environment.

    A nanny sets ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1`` and the
    like) in its own process before it starts a worker; for a local cluster that is this
    process, whose later thread pools and subprocesses would be limited to one thread.
    """
    import dask

    keys = list(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def open_executor(backend: str, device: str, jobs: int, scheduler: str | None = None) -> Iterator[CellExecutor]:
    """The executor for ``backend``, open for the duration of the ``with`` block.

    Parameters
    ----------
    backend : {"joblib", "dask"}
        ``joblib``: processes on this machine. ``dask`` without ``scheduler``: a
        ``LocalCluster`` started here for the block (``jobs`` single-threaded worker
        processes; on CUDA one worker per GPU, up to ``jobs``) and closed after it.
    device : str
        Resolved device.
    jobs : int
        Cells at once on this machine (unused with ``scheduler``: the cluster's workers decide).
    scheduler : str or None
        Address of a running Dask scheduler (``tcp://HOST:PORT``); only with ``backend="dask"``.

    Raises
    ------
    BenchmarkError
        Unknown backend, ``scheduler`` without Dask, Dask not installed, scheduler unreachable.
    """
    check_backend(backend, scheduler)
    if backend == "joblib":
        yield JoblibExecutor(device, jobs)
        return
    distributed = _import_distributed()
    with nanny_environ_restored(), _dask_executor(distributed, device, jobs, scheduler) as executor:
        yield executor


@contextmanager
def _dask_executor(distributed: Any, device: str, jobs: int, scheduler: str | None) -> Iterator[DaskExecutor]:
    """Start a local cluster or connect to ``scheduler``; close what was opened afterwards."""
    cluster = None
    if scheduler is None:
        slots = device_slots(device, jobs)
        if device.startswith("cuda"):
            cluster = _gpu_local_cluster(distributed, slots)
        else:
            cluster = distributed.LocalCluster(
                n_workers=len(slots), threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=None,
                silence_logs=logging.CRITICAL,  # cell errors come back as failed records; shutdown races are noise
            )
        address, n_threads = cluster.scheduler_address, cpu_threads(len(slots))
        log.info("started a local Dask cluster at %s with %d workers", address, len(slots))
    else:
        address, n_threads = scheduler, None
    try:
        try:
            client = distributed.Client(cluster if cluster is not None else address)
        except OSError as error:
            raise BenchmarkError(f"cannot reach the Dask scheduler at {address}: {error}") from None
        with client:
            yield DaskExecutor(client, device, n_threads, "local" if cluster is not None else address)
    finally:
        if cluster is not None:
            cluster.close()


def check_backend(backend: str, scheduler: str | None) -> None:
    """Raise :class:`BenchmarkError` for an unknown backend or a scheduler without Dask."""
    if backend not in BACKENDS:
        raise BenchmarkError(f"unknown backend '{backend}' (available: {', '.join(BACKENDS)})")
    if scheduler is not None and backend != "dask":
        raise BenchmarkError("--scheduler needs --backend dask")
    if backend == "dask":
        _import_distributed()
