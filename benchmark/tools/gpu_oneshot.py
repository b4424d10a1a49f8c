"""One-shot GPU run: speed records and paper-profile triangles results in a fixed time slot.

Usage (``scripts/gpu_run.sh`` wraps this)::

    python -m benchmark.tools.gpu_oneshot --out "$OUT"                      # on a GPU machine
    python -m benchmark.tools.gpu_oneshot --out /tmp/x --device cpu --profile tiny \\
        --budget 240 --meae-time 2 --sae-time 2                       # the CPU path (CI)

Every step runs as its own process with its own time bound, and the plan
shrinks the training time limits to what is left of ``--budget``. The steps:

1. environment: ``nvidia-smi``, Python and torch versions;
   ``smoke``: one run of the tiny profile with ``meae`` and ``supervised_ae``
   on the device (seconds; catches a device-only failure before the long steps);
2. speed: ``benchmark.tools.speed`` for the 2-D and the 1-D paper MEAE, bf16 and fp32
   (FLOPs per sample, achieved FLOP/s, share of the bf16 peak);
3. data: the triangles data of the profile, generated with every core, plus
   the mixture-as-estimate floor cell;
4. ``meae`` at the profile with ``--time-limit``;
5. ``supervised_ae`` likewise;
6. if time is left, the compiled 2-D speed step (its compile time included).

``--steps`` picks a subset (``smoke,speed,data,meae,sae,compile``; default all),
so a session can run the quick ones first and the long ones in a second call.

Whatever happens, ``gpu_run.tar.gz`` in ``--out`` holds the results folder,
the speed records, a JSON summary of the steps and every log: the machine
returns at most 8 files. Nothing here needs neurokit2, pyedflib or Dask.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = "gpu_run.tar.gz"
STEP_GROUPS = ("smoke", "speed", "data", "meae", "sae", "compile")
PACK_RESERVE_S = 20.0
#: A training step whose time limit would shrink below this share of what was asked is skipped:
#: a model trained for a few seconds gives a cell that only looks like a result.
MIN_TRAIN_SHARE = 0.25


@dataclass
class Step:
    """One bounded step of the plan and what became of it."""

    name: str
    command: list[str]
    bound_s: float
    required_s: float = 0.0
    status: str = "pending"
    seconds: float | None = None
    returncode: int | None = None
    log: str = ""
    notes: dict = field(default_factory=dict)


class Plan:
    """Runs steps in order inside one time budget and records each outcome."""

    def __init__(self, budget_s: float, work: Path) -> None:
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.work = work
        self.steps: list[Step] = []

    def left(self) -> float:
        """Seconds of the budget left for steps (the packing reserve excluded)."""
        return self.budget_s - PACK_RESERVE_S - (time.monotonic() - self.start)

    def skip(self, step: Step, reason: str) -> Step:
        """Record ``step`` as not run, with ``reason``."""
        self.steps.append(step)
        step.status = reason
        print(f"[{time.monotonic() - self.start:6.0f}s] step {len(self.steps)} {step.name}: {reason}", flush=True)
        return step

    def run(self, step: Step) -> Step:
        """Run ``step`` if its minimum fits what is left, bounded by ``bound_s`` and the budget."""
        self.steps.append(step)
        bound = min(step.bound_s, self.left())
        index = len(self.steps)
        elapsed = time.monotonic() - self.start
        if bound < max(step.required_s, 1.0):
            step.status = "skipped: not enough time left"
            print(f"[{elapsed:6.0f}s] step {index} {step.name}: skipped ({self.left():.0f} s left)", flush=True)
            return step
        print(f"[{elapsed:6.0f}s] step {index} {step.name} (bound {bound:.0f} s): {' '.join(step.command)}", flush=True)
        log_path = self.work / "logs" / f"{index:02d}_{step.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        step.log = str(log_path.relative_to(self.work))
        started = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(step.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_child_env())
            try:
                step.returncode = process.wait(timeout=bound)
                step.status = "ok" if step.returncode == 0 else f"failed (exit {step.returncode})"
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                step.status = f"killed at its bound of {bound:.0f} s"
        step.seconds = round(time.monotonic() - started, 1)
        tail = _tail(log_path, 6)
        print(f"[{time.monotonic() - self.start:6.0f}s] step {index} {step.name}: {step.status} in {step.seconds} s", flush=True)
        if tail:
            print("    " + "\n    ".join(tail), flush=True)
        return step


def training_limit(asked_s: float, fits_s: float) -> float | None:
    """The time limit a training step gets: what was asked, shrunk to what fits.

    Returns ``None`` (skip the step) when what fits is under ``MIN_TRAIN_SHARE`` of what was asked.
    """
    if fits_s < MIN_TRAIN_SHARE * asked_s:
        return None
    return max(min(asked_s, fits_s), 1.0)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _tail(path: Path, n: int) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line[-200:] for line in lines if line.strip()][-n:]


def _environment(work: Path) -> dict:
    info = {"python": platform.python_version(), "executable": sys.executable, "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError as error:
        info["torch"] = f"not importable: {error}"
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        (work / "nvidia-smi.txt").write_text(smi.stdout + smi.stderr)
        print(smi.stdout, flush=True)
    print(json.dumps(info), flush=True)
    return info


def build_parser() -> argparse.ArgumentParser:
    """Options of the one-shot run."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.tools.gpu_oneshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder that receives gpu_run.tar.gz")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a folder next to --out)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for the CPU path")
    parser.add_argument("--profile", default="paper", help="triangles profile: paper (default), quick or tiny")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for everything, packing included (default 540)")
    parser.add_argument("--meae-time", type=float, default=210.0, help="training seconds for meae (default 210)")
    parser.add_argument("--sae-time", type=float, default=90.0, help="training seconds for supervised_ae (default 90)")
    parser.add_argument("--cell-overhead", type=float, default=150.0, help="bound on a cell's time beyond training: loading, scoring, figures (default 150)")
    parser.add_argument("--speed-steps", type=int, default=20, help="timed steps per speed record (default 20)")
    parser.add_argument("--speed-batch", type=int, default=None, help="batch of the speed records (default: the profile's)")
    parser.add_argument("--data-jobs", type=int, default=os.cpu_count() or 1, help="workers generating the data (default: every core)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile speed record")
    parser.add_argument("--steps", default=",".join(STEP_GROUPS), help=f"comma-separated subset of {','.join(STEP_GROUPS)} (default: all)")
    return parser


def plan_steps(args: argparse.Namespace, work: Path) -> list[tuple[Step, float | None]]:
    """The steps in order, each with the training time it asks for (None: not a training step)."""
    py = sys.executable
    results, cache = str(work / "results"), str(work / "cache")
    speed_file = str(work / "speed.jsonl")
    common = ["--profile", args.profile, "--seeds", "0", "--results-dir", results, "--cache-dir", cache, "--no-progress"]
    speed_extra = ["--steps", str(args.speed_steps), "--warmup", "3", "--append", speed_file]
    if args.speed_batch:
        speed_extra += ["--batch", str(args.speed_batch)]
    chosen = {s.strip() for s in args.steps.split(",") if s.strip()}
    unknown = chosen - set(STEP_GROUPS)
    if unknown:
        raise SystemExit(f"gpu_oneshot: unknown steps {sorted(unknown)} (known: {', '.join(STEP_GROUPS)})")
    steps: list[tuple[Step, float | None]] = []
    if "smoke" in chosen:
        command = [py, "run_benchmark.py", "--suite", "triangles", "--device", args.device, "--profile", "tiny",
                   "--seeds", "0", "--results-dir", str(work / "smoke"), "--cache-dir", cache, "--no-progress",
                   "--methods", "mixture,meae,supervised_ae"]
        steps.append((Step("smoke_tiny", command, bound_s=120, required_s=20), None))
    for suite in ("triangles", "mesa") if "speed" in chosen else ():
        for precision in ("bf16", "fp32"):
            command = [py, "-m", "benchmark.tools.speed", "--model", "meae", "--suite", suite, "--profile", args.profile,
                       "--device", args.device, "--precision", precision, *speed_extra]
            steps.append((Step(f"speed_{suite}_{precision}", command, bound_s=60, required_s=15), None))
    run = [py, "run_benchmark.py", "--suite", "triangles", "--device", args.device, *common]
    if "data" in chosen:
        steps.append((Step("data_and_mixture_floor", [*run, "--methods", "mixture", "--data-jobs", str(args.data_jobs)],
                           bound_s=240, required_s=30), None))
    if "meae" in chosen:
        steps.append((Step("meae", [*run, "--methods", "meae"], bound_s=args.meae_time + args.cell_overhead,
                           required_s=60), args.meae_time))
    if "sae" in chosen:
        steps.append((Step("supervised_ae", [*run, "--methods", "supervised_ae"], bound_s=args.sae_time + args.cell_overhead,
                           required_s=45), args.sae_time))
    if "compile" in chosen and not args.no_compile:
        command = [py, "-m", "benchmark.tools.speed", "--model", "meae", "--suite", "triangles", "--profile", args.profile,
                   "--device", args.device, "--precision", "bf16", "--compile", *speed_extra]
        steps.append((Step("speed_triangles_bf16_compiled", command, bound_s=150, required_s=40), None))
    return steps


def main(argv: list[str] | None = None) -> int:
    """Run the plan, then pack everything into ``--out/gpu_run.tar.gz``; exit 0 when every run step succeeded."""
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out.parent / f"{args.out.name}-work"
    work.mkdir(parents=True, exist_ok=True)
    plan = Plan(args.budget, work)
    summary: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        summary["environment"] = _environment(work)
        planned = plan_steps(args, work)
        for index, (step, train_s) in enumerate(planned):
            if train_s is not None:
                # Leave every later training step its minimum, then shrink this one to fit.
                later = sum(s.required_s for s, t in planned[index + 1 :] if t is not None)
                fits = plan.left() - later - args.cell_overhead
                limit = training_limit(train_s, fits)
                if limit is None:
                    plan.skip(step, f"skipped: {max(fits, 0):.0f} s of training left, under {MIN_TRAIN_SHARE:.0%} of the {train_s:.0f} s asked")
                    continue
                step.command += ["--time-limit", f"{limit:.0f}"]
                step.bound_s = limit + args.cell_overhead
                step.notes["time_limit_s"] = round(limit)
            plan.run(step)
    finally:
        summary["steps"] = [asdict(s) for s in plan.steps]
        summary["total_seconds"] = round(time.monotonic() - plan.start, 1)
        (work / "summary.json").write_text(json.dumps(summary, indent=2))
        with tarfile.open(args.out / ARCHIVE, "w:gz") as archive:
            for name in ("summary.json", "speed.jsonl", "nvidia-smi.txt", "logs", "results", "smoke"):
                if (work / name).exists():
                    archive.add(work / name, arcname=name)
        print(f"packed {args.out / ARCHIVE} after {summary['total_seconds']} s", flush=True)
    ran = [s for s in plan.steps if not s.status.startswith("skipped")]
    return 0 if ran and all(s.status == "ok" for s in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
