"""One-shot GPU run: speed records, the timing plan, and paper Tables 1 and 2 in fixed time slots.

Usage (``scripts/gpu_run.sh`` wraps this)::

    python -m benchmark.tools.gpu_oneshot --out "$OUT"                      # on a GPU machine
    python -m benchmark.tools.gpu_oneshot --out "$OUT" --resume .resume     # a later slot continues
    python -m benchmark.tools.gpu_oneshot --out /tmp/x --device cpu --profile tiny \\
        --budget 300 --meae-time 2 --sae-time 2 --mesa-time 2               # the CPU path (CI)

Every step runs as its own process (the seeds as processes side by side) with
its own time bound, and the plan shrinks the training time limits to what is
left of ``--budget``. The steps:

1. environment (``nvidia-smi``, Python, torch, cuDNN) and ``plan_before``: the
   timing plan from the FLOPs and the committed speed records
   (:mod:`benchmark.tools.gpu_plan`), printed before anything runs;
   ``smoke``: the tiny profile of ``meae`` and ``supervised_ae`` on the device; ``diag``, on an
   H100 only: the quick-width MEAE that crashed there with an illegal memory access, under
   ``compute-sanitizer`` (when installed) and with ``CUDA_LAUNCH_BLOCKING=1``
   (``scripts/cuda_diag.py``);
2. ``speed``: the 2-D and 1-D paper MEAE in every execution layout, the
   supervised AE, and the 2-D MEAE as ``--seeds`` processes at once
   (:mod:`benchmark.tools.speed`; each record names cuDNN and its convolution
   kernels); ``compile``: the compiled 2-D step in the fastest layout, with its compile time;
   then ``plan``: the timing plan again with these records;
3. ``data``: the triangles data of the profile and the trivial baselines
   (mixture, zeros, half mixture);
4. ``meae``: the ``--seeds`` of MEAE at the profile, one process each, at
   once, with ``--time-limit`` and the fastest layout measured in step 2;
   compiled (``--compile``) when the compiled speed, less the compile time, trains more samples
   in the slot than the plain one (:func:`compile_pays_back`);
   ``gather``: the leaderboard rebuilt from every seed's cell;
5. ``sae``: the supervised AE, one seed;
6. ``mesa``: the synthetic MESA cohort at the profile and its baselines, then
   the 1-D MEAE (one seed; needs neurokit2 and pyedflib, which
   ``scripts/gpu_run.sh`` installs from carried wheels).

``--steps`` picks a subset (default all). Whatever happens, ``gpu_run.tar.gz``
in ``--out`` holds the results, the speed records, a JSON summary of the steps
and every log. Cells that the time limit cut leave their training checkpoints
in ``resume.tar.partNN`` beside it (:mod:`benchmark.tools.gpu_pack`, whole cells
while the machine's return limits allow): carry those files to the next slot and
pass their folder as ``--resume``; its time limits then count the earlier
training, and the cells continue where they stopped (:mod:`benchmark.run.resume`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmark.tools.gpu_pack import (
    MAX_FILES,
    MAX_TOTAL_BYTES,
    pack_archive,
    pack_checkpoints,
    unpack_checkpoints,
)
from benchmark.tools.gpu_plan import read_records

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = "gpu_run.tar.gz"
ARCHIVED = ("summary.json", "speed.jsonl", "nvidia-smi.txt", "logs", "results", "smoke")
STEP_GROUPS = ("smoke", "diag", "speed", "compile", "plan", "data", "meae", "sae", "mesa")
DIAG_VARIANT = "amp=1,bench=1,chans=quick"
"""The quick-width MEAE configuration that crashed on an H100 (``scripts/cuda_diag.py``)."""
TRIVIAL_BASELINES = {"triangles": "mixture,zeros,half_mixture", "mesa": "mixture,median_rate"}
PACK_RESERVE_S = 30.0
#: A training step whose time limit would shrink below this share of what was asked is skipped:
#: a model trained for a few seconds gives a cell that only looks like a result.
MIN_TRAIN_SHARE = 0.25
LAYOUT_TOKEN = "@layout:"
"""A command argument ``@layout:<suite>`` becomes the fastest layout measured for that suite in this run."""


@dataclass
class Step:
    """One bounded step of the plan: one process, or several at once (seeds side by side)."""

    name: str
    commands: list[list[str]]
    bound_s: float
    required_s: float = 0.0
    status: str = "pending"
    seconds: float | None = None
    returncodes: list[int | None] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    shown_lines: int = 6


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

    def _say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:6.0f}s] {text}", flush=True)

    def skip(self, step: Step, reason: str) -> Step:
        """Record ``step`` as not run, with ``reason``."""
        self.steps.append(step)
        step.status = reason
        self._say(f"step {len(self.steps)} {step.name}: {reason}")
        return step

    def run(self, step: Step) -> Step:
        """Run ``step``'s processes at once if its minimum fits what is left, bounded by ``bound_s`` and the budget."""
        self.steps.append(step)
        bound = min(step.bound_s, self.left())
        index = len(self.steps)
        if bound < max(step.required_s, 1.0):
            step.status = "skipped: not enough time left"
            self._say(f"step {index} {step.name}: skipped ({self.left():.0f} s left)")
            return step
        started = time.monotonic()
        processes = []
        for number, command in enumerate(step.commands):
            suffix = f"_{number}" if len(step.commands) > 1 else ""
            log_path = self.work / "logs" / f"{index:02d}_{step.name}{suffix}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            step.logs.append(str(log_path.relative_to(self.work)))
            self._say(f"step {index} {step.name}{suffix} (bound {bound:.0f} s): {' '.join(command)}")
            log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed below, after the process
            processes.append((subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_child_env()), log))
        killed = False
        for process, log in processes:
            try:
                step.returncodes.append(process.wait(timeout=max(bound - (time.monotonic() - started), 0.1)))
            except subprocess.TimeoutExpired:
                process.kill()
                step.returncodes.append(process.wait())
                killed = True
            log.close()
        step.seconds = round(time.monotonic() - started, 1)
        failed = [code for code in step.returncodes if code != 0]
        step.status = (f"killed at its bound of {bound:.0f} s" if killed
                       else f"failed (exit {failed[0]})" if failed else "ok")
        self._say(f"step {index} {step.name}: {step.status} in {step.seconds} s")
        for log_name in step.logs:
            tail = _tail(self.work / log_name, step.shown_lines)
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


def fastest_layout(records: list[dict], suite: str) -> str | None:
    """``"encoder/decoder"`` of the fastest single-process MEAE record of ``suite``, or ``None``."""
    own = [r for r in records if r.get("model") == "meae" and r.get("suite") == suite
           and r.get("concurrent", 1) == 1 and r.get("encoder_layout") and not r.get("compile")]
    if not own:
        return None
    best = max(own, key=lambda r: r["samples_per_s"])
    return f"{best['encoder_layout']}/{best['decoder_layout']}"


def compile_pays_back(records: list[dict], suite: str, seconds: float) -> dict | None:
    """Whether ``torch.compile`` trains more MEAE samples of ``suite`` in ``seconds`` than the plain network.

    Compares the fastest plain single-process record with the last compiled one:
    compiled, ``(seconds - compile_s) * compiled rate`` samples; plain,
    ``seconds * plain rate``. ``None`` when either record is missing.
    """
    own = [r for r in records if r.get("model") == "meae" and r.get("suite") == suite and r.get("concurrent", 1) == 1]
    plain = [r for r in own if not r.get("compile")]
    compiled = [r for r in own if r.get("compile") and r.get("compile_s") is not None]
    if not plain or not compiled:
        return None
    fast, last = max(plain, key=lambda r: r["samples_per_s"]), compiled[-1]
    extra = (seconds - last["compile_s"]) * last["samples_per_s"] - seconds * fast["samples_per_s"]
    return {"plain_samples_per_s": fast["samples_per_s"], "compiled_samples_per_s": last["samples_per_s"],
            "compile_s": last["compile_s"], "seconds": round(seconds), "extra_samples": round(extra), "pays_back": extra > 0}


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
            info["cudnn"] = torch.backends.cudnn.version()
            info["cuda_runtime"] = torch.version.cuda
    except ImportError as error:
        info["torch"] = f"not importable: {error}"
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        (work / "nvidia-smi.txt").write_text(smi.stdout + smi.stderr)
        print(smi.stdout, flush=True)
    print(json.dumps(info), flush=True)
    return info


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds needs distinct seeds, got {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    """Options of the one-shot run."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.tools.gpu_oneshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder that receives gpu_run.tar.gz and the resume.tar parts")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a folder next to --out)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for the CPU path")
    parser.add_argument("--profile", default="paper", help="profile: paper (default), quick or tiny")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for everything, packing included (default 540)")
    parser.add_argument("--seeds", type=_seed_list, default=[0, 1, 2], help="comma-separated MEAE seeds on the triangles, trained side by side (default 0,1,2; across slots at most as many as the plan says a slot can send back)")
    parser.add_argument("--meae-time", type=float, default=240.0, help="training seconds of each MEAE seed in this slot (default 240)")
    parser.add_argument("--sae-time", type=float, default=60.0, help="training seconds for supervised_ae (default 60)")
    parser.add_argument("--mesa-time", type=float, default=40.0, help="training seconds of each 1-D MEAE model (ECG, PPG) (default 40)")
    parser.add_argument("--cell-overhead", type=float, default=150.0, help="bound on a cell's time beyond training: loading, scoring, figures (default 150)")
    parser.add_argument("--layout", default="auto", help="execution layout of the MEAE training runs: encoder/decoder, or auto (default): the fastest one measured by the speed step, else grouped/native")
    parser.add_argument("--resume", type=Path, default=None, help="folder holding the resume.tar parts an earlier slot sent back: its cut cells continue")
    parser.add_argument("--speed-steps", type=int, default=20, help="timed steps per speed record (default 20)")
    parser.add_argument("--speed-batch", type=int, default=None, help="batch of the speed records (default: the profile's)")
    parser.add_argument("--data-jobs", type=int, default=os.cpu_count() or 1, help="workers generating the data (default: every core)")
    parser.add_argument("--steps", default=",".join(STEP_GROUPS), help=f"comma-separated subset of {','.join(STEP_GROUPS)} (default: all)")
    return parser


def plan_steps(args: argparse.Namespace, work: Path, environment: dict | None = None) -> list[tuple[Step, float | None]]:
    """The steps in order, each with the training time it asks for (None: not a training step).

    ``environment`` (what :func:`_environment` found) adds the H100 crash diagnosis on an H100.
    """
    py = sys.executable
    results, cache = str(work / "results"), str(work / "cache")
    speed_file = str(work / "speed.jsonl")
    common = ["--profile", args.profile, "--results-dir", results, "--cache-dir", cache, "--no-progress", "--device", args.device]
    speed = [py, "-m", "benchmark.tools.speed", "--profile", args.profile, "--device", args.device, "--precision", "bf16",
             "--steps", str(args.speed_steps), "--warmup", "3", "--append", speed_file,
             *(["--batch", str(args.speed_batch)] if args.speed_batch else [])]
    chosen = {s.strip() for s in args.steps.split(",") if s.strip()}
    unknown = chosen - set(STEP_GROUPS)
    if unknown:
        raise SystemExit(f"gpu_oneshot: unknown steps {sorted(unknown)} (known: {', '.join(STEP_GROUPS)})")
    resume = ["--resume-from", str(work / "resume_in")] if args.resume else []
    plan = [py, "-m", "benchmark.tools.gpu_plan", "--profile", args.profile, "--seeds", str(len(args.seeds)),
            "--device-name", "@device-name", *(["--precision", "any"] if args.device == "cpu" else [])]
    steps: list[tuple[Step, float | None]] = [
        (Step("plan_before", [[*plan, "--records", str(ROOT / "results" / "speed.jsonl")]], bound_s=90, required_s=10,
              shown_lines=20), None),
    ]
    if "smoke" in chosen:
        command = [py, "run_benchmark.py", "--suite", "triangles", "--device", args.device, "--profile", "tiny",
                   "--seeds", "0", "--results-dir", str(work / "smoke"), "--cache-dir", cache, "--no-progress",
                   "--methods", "mixture,meae,supervised_ae"]
        steps.append((Step("smoke_tiny", [command], bound_s=120, required_s=20), None))
    if "diag" in chosen and "H100" in (environment or {}).get("gpu", ""):
        diag = [py, str(ROOT / "scripts" / "cuda_diag.py"), DIAG_VARIANT]
        if shutil.which("compute-sanitizer"):
            steps.append((Step("h100_crash_sanitizer", [["compute-sanitizer", "--tool", "memcheck", *diag]],
                               bound_s=240, required_s=60, shown_lines=30), None))
        steps.append((Step("h100_crash_launch_blocking", [["env", "CUDA_LAUNCH_BLOCKING=1", *diag]],
                           bound_s=120, required_s=30, shown_lines=30), None))
    if "speed" in chosen:
        steps += [
            (Step("speed_triangles_layouts", [[*speed, "--model", "meae", "--suite", "triangles", "--layouts", "all"]],
                  bound_s=180, required_s=30), None),
            (Step("speed_mesa_layouts", [[*speed, "--model", "meae", "--suite", "mesa", "--layouts", "all"]],
                  bound_s=150, required_s=30), None),
            (Step("speed_triangles_sae", [[*speed, "--model", "supervised_ae", "--suite", "triangles"]],
                  bound_s=60, required_s=15), None),
            (Step("speed_triangles_seeds_at_once", [[*speed, "--model", "meae", "--suite", "triangles", "--no-kernels",
                                                     "--concurrent", str(len(args.seeds)), "--layouts", f"{LAYOUT_TOKEN}triangles"]],
                  bound_s=120, required_s=30), None),
        ]
    if "compile" in chosen:
        steps.append((Step("speed_triangles_compiled", [[*speed, "--model", "meae", "--suite", "triangles", "--compile", "--no-kernels",
                                                        "--layouts", f"{LAYOUT_TOKEN}triangles"]], bound_s=300, required_s=60), None))
    if "plan" in chosen:
        records = [str(ROOT / "results" / "speed.jsonl"), speed_file]
        steps.append((Step("plan", [[*plan, "--records", *records]], bound_s=90, required_s=10, shown_lines=20), None))
    run = [py, "run_benchmark.py", *common]
    if "data" in chosen:
        steps.append((Step("data_and_baselines", [[*run, "--suite", "triangles", "--seeds", "0", "--methods", TRIVIAL_BASELINES["triangles"],
                                                   "--data-jobs", str(args.data_jobs)]], bound_s=300, required_s=30), None))
    if "meae" in chosen:
        seeds = [[*run, "--suite", "triangles", "--methods", "meae", "--seeds", str(seed), "--layout", f"{LAYOUT_TOKEN}triangles", *resume]
                 for seed in args.seeds]
        steps.append((Step("meae", seeds, bound_s=args.meae_time + args.cell_overhead, required_s=60), args.meae_time))
        steps.append((Step("gather", [[*run, "--suite", "triangles", "--seeds", ",".join(map(str, args.seeds)),
                                       "--rebuild-only"]], bound_s=120, required_s=20), None))
    if "sae" in chosen:
        steps.append((Step("supervised_ae", [[*run, "--suite", "triangles", "--methods", "supervised_ae", "--seeds", "0", *resume]],
                           bound_s=args.sae_time + args.cell_overhead, required_s=45), args.sae_time))
    if "mesa" in chosen:
        mesa = [*run, "--suite", "mesa", "--seeds", "0"]
        steps.append((Step("mesa_data_and_baselines", [[*mesa, "--methods", TRIVIAL_BASELINES["mesa"], "--data-jobs", str(args.data_jobs)]],
                           bound_s=300, required_s=60), None))
        steps.append((Step("mesa_meae", [[*mesa, "--methods", "meae", "--layout", f"{LAYOUT_TOKEN}mesa", *resume]],
                           bound_s=2 * args.mesa_time + args.cell_overhead, required_s=45), args.mesa_time))
    return steps


def resolve(command: list[str], work: Path, args: argparse.Namespace, environment: dict) -> list[str]:
    """Fill a command's run-time choices: the chosen layout of a suite, the GPU's name."""
    records = _records(work, args, environment)
    out = []
    for argument in command:
        if argument.startswith(LAYOUT_TOKEN):
            suite = argument.removeprefix(LAYOUT_TOKEN)
            argument = args.layout if args.layout != "auto" else (fastest_layout(records, suite) or "grouped/native")
        elif argument == "@device-name":
            argument = environment.get("gpu") or ("cpu" if args.device == "cpu" else "unknown GPU")
        out.append(argument)
    return out


def _records(work: Path, args: argparse.Namespace, environment: dict) -> list[dict]:
    """Speed records of this device and profile: the committed ones (an earlier slot's), then this run's.

    So a later slot that skips the speed steps still trains in the layout, and compiled or
    not, that an earlier slot measured on the same GPU.
    """
    device = environment.get("gpu") or ("cpu" if args.device == "cpu" else None)
    records = [*read_records(ROOT / "results" / "speed.jsonl"), *read_records(work / "speed.jsonl")]
    return [r for r in records if device and device in r.get("device", "") and r.get("profile") == args.profile]


def _earlier_training(notes: list[dict], suite: str, profile: str, command: list[str]) -> float:
    """Seconds of training that a resumed cell of ``command`` already had (0 when none resumes)."""
    method = command[command.index("--methods") + 1]
    seed = command[command.index("--seeds") + 1]
    return max((n["train_seconds"] for n in notes if (n["suite"], n["profile"], n["cell_id"]) == (suite, profile, f"{method}__seed{seed}")),
               default=0.0)


def main(argv: list[str] | None = None) -> int:
    """Run the plan, then pack the results and the resumable checkpoints into ``--out``; exit 0 when every run step succeeded."""
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out.parent / f"{args.out.name}-work"
    work.mkdir(parents=True, exist_ok=True)
    plan = Plan(args.budget, work)
    summary: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        environment = summary["environment"] = _environment(work)
        if args.resume:
            (work / "resume_in").mkdir(parents=True, exist_ok=True)  # --resume-from needs the folder, parts or not
        notes = unpack_checkpoints(args.resume, work / "resume_in") if args.resume else []
        summary["resumed"] = [{k: n[k] for k in ("cell_id", "epochs_completed", "train_seconds")} for n in notes]
        planned = plan_steps(args, work, environment)
        for index, (step, train_s) in enumerate(planned):
            step.commands = [resolve(c, work, args, environment) for c in step.commands]
            if train_s is not None:
                # Leave every later training step its minimum, then shrink this one to fit.
                later = sum(s.required_s for s, t in planned[index + 1 :] if t is not None)
                fits = plan.left() - later - args.cell_overhead
                limit = training_limit(train_s, fits)
                if limit is None:
                    plan.skip(step, f"skipped: {max(fits, 0):.0f} s of training left, under {MIN_TRAIN_SHARE:.0%} of the {train_s:.0f} s asked")
                    continue
                suite = step.commands[0][step.commands[0].index("--suite") + 1]
                for command in step.commands:
                    command += ["--time-limit", f"{limit + _earlier_training(notes, suite, args.profile, command):.0f}"]
                step.bound_s = limit * (2 if suite == "mesa" else 1) + args.cell_overhead
                step.notes["time_limit_s"] = round(limit)
                if step.name == "meae" and "compile" in {name.strip() for name in args.steps.split(",")}:
                    decision = compile_pays_back(_records(work, args, environment), suite, limit)
                    step.notes["compile"] = decision
                    if decision and decision["pays_back"]:
                        for command in step.commands:
                            command.append("--compile")
            plan.run(step)
    finally:
        summary["steps"] = [asdict(s) for s in plan.steps]
        summary["total_seconds"] = round(time.monotonic() - plan.start, 1)
        (work / "summary.json").write_text(json.dumps(summary, indent=2))
        size = pack_archive(work, args.out / ARCHIVE, ARCHIVED)
        summary["resume_out"] = pack_checkpoints(work / "cache", work / "resume_out", args.out,
                                                 free_bytes=MAX_TOTAL_BYTES - size - 2**20, free_files=MAX_FILES - 1)
        (work / "summary.json").write_text(json.dumps(summary, indent=2))
        pack_archive(work, args.out / ARCHIVE, ARCHIVED)
        packed = summary["resume_out"]
        print(f"packed {args.out / ARCHIVE} after {summary['total_seconds']} s; resumable cells: "
              f"{[c['cell_id'] for c in packed['cells']]} in {packed['parts']}, left out: "
              f"{[c['cell_id'] for c in packed['left_out']]}", flush=True)
    ran = [s for s in plan.steps if not s.status.startswith("skipped")]
    return 0 if ran and all(s.status == "ok" for s in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
