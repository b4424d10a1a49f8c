"""Timing plan of the paper-profile training steps, from their FLOPs and the last measured speeds.

Before the one-shot GPU run spends device time, it prints what each training
step should take: the samples it trains (seeds x inputs x epochs x training
samples), the model FLOPs per sample (counted on the CPU by
:func:`benchmark.tools.speed.step_flops`, forward and backward of every loss
term), and the FLOP rate the device reached on the last measured record of the
same model (``results/speed.jsonl``). A method with no record of its own on that
device is timed at the rate of another model's record, and says so, as does a
device timed from another device's record.

Usage::

    python -m benchmark.tools.gpu_plan --device-name "NVIDIA H200" --seeds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEED_RECORDS = ROOT / "results" / "speed.jsonl"
#: Devices whose records stand in for each other, in order of preference (same bf16 dense peak).
SIMILAR_DEVICES = {"H200": ("H200", "H100"), "H100": ("H100", "H200")}
#: Bytes of one fp32 value; Adam keeps two moments per parameter.
FP32_BYTES = 4
#: MiB of checkpoints a slot can send back: the machine returns 64 MiB, less room for the results archive.
RETURN_ROOM_MIB = 60.0


@dataclass(frozen=True)
class TrainingWork:
    """What one training step of the plan trains.

    Parameters
    ----------
    method, suite, profile : str
        The cell's method, suite and profile.
    seeds : int
        Seeds trained (each one cell).
    inputs : int
        Models per cell (MESA trains one per input signal: ECG and PPG).
    epochs : int
        Epochs of the profile.
    train_samples : int
        Training samples per epoch (for MESA, at most: segments may be dropped by the quality rules).
    gflop_per_sample : float
        Model FLOPs of one training step per sample, in GFLOP.
    parameters : int
        Trainable parameters of one model.
    """

    method: str
    suite: str
    profile: str
    seeds: int
    inputs: int
    epochs: int
    train_samples: int
    gflop_per_sample: float
    parameters: int

    @property
    def samples(self) -> int:
        """Samples trained by the whole step."""
        return self.seeds * self.inputs * self.epochs * self.train_samples

    @property
    def checkpoint_mib(self) -> float:
        """Size of one model's training checkpoint: fp32 weights plus Adam's two moments."""
        return 3 * FP32_BYTES * self.parameters / 2**20


@dataclass(frozen=True)
class SpeedBasis:
    """The measured speed a step is timed with, and where it comes from."""

    tflop_s: float
    samples_per_s: float
    source: str


def train_samples(suite: str, profile: str) -> int:
    """Training samples per epoch of ``suite`` at ``profile`` (an upper bound for MESA).

    Triangles: the exact size of the training split. MESA (synthetic cohort):
    the training recordings of the split rule times the whole segments of a
    recording; segments that fail the quality rules are dropped from that.
    """
    if suite == "triangles":
        from benchmark.suites.triangles import PROFILES
        from datasets.triangles import split_indices

        settings = PROFILES[profile]
        return len(split_indices(settings["n"], settings["data_seed"], valid_fraction=settings["valid_fraction"])["train"])
    if suite == "mesa":
        from benchmark.suites.mesa import PROFILES, SAMPLING_RATE
        from datasets.mesa.preprocessing import PreprocessConfig
        from datasets.mesa.split import split_recordings

        settings = PROFILES[profile]
        cohort = settings["cohort"]
        ids = [f"r{i:04d}" for i in range(cohort["subjects"])]
        split = split_recordings(ids, settings["data_seed"], settings["n_select"], settings["n_train"], settings["valid_fraction"])
        per_recording = int(cohort["minutes"] * 60 * SAMPLING_RATE) // PreprocessConfig().segment_length
        return len(split["train"]) * per_recording
    raise ValueError(f"no training-size rule for suite '{suite}' (triangles, mesa)")


@cache
def model_cost(method: str, suite: str, profile: str, batch_size: int) -> tuple[float, int]:
    """``(GFLOP per sample of one training step at batch_size, parameters)``, counted on the CPU.

    A step's FLOPs are ``a * batch + c`` (``c``: MEAE's one-sample zero-reconstruction
    pass), so they are counted at batches 2 and 4 and extrapolated, not run at the
    profile's batch on the CPU.
    """
    from benchmark.tools.speed import method_on_random_batch, step_flops

    counts = []
    for batch in (2, 4):
        model, _, tensors = method_on_random_batch(method, suite, profile, batch, "cpu", 1, {})
        model._forward = model.network_
        counts.append(step_flops(model, tensors))
    per_sample = (counts[1] - counts[0]) / 2
    constant = counts[0] - 2 * per_sample
    return (per_sample + constant / batch_size) / 1e9, model.fit_info().n_parameters


def training_work(method: str, suite: str, profile: str, seeds: int) -> TrainingWork:
    """The :class:`TrainingWork` of ``seeds`` cells of ``method`` on ``suite`` at ``profile``."""
    import methods

    params = {**methods.get(method).default_params(), **methods.get(method).profile_params(suite, profile)}
    gflop, parameters = model_cost(method, suite, profile, int(params["batch_size"]))
    return TrainingWork(
        method=method, suite=suite, profile=profile, seeds=seeds, inputs=2 if suite == "mesa" else 1,
        epochs=int(params["epochs"]), train_samples=train_samples(suite, profile), gflop_per_sample=gflop,
        parameters=parameters,
    )


def read_records(path: Path = SPEED_RECORDS) -> list[dict]:
    """Speed records of a JSON-lines file (none when it is missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def speed_basis(records: list[dict], method: str, suite: str, profile: str, device_name: str,
                precision: str = "bf16-autocast", processes: int = 1) -> SpeedBasis | None:
    """The FLOP rate to time ``method`` on ``suite`` with, from the last fitting record.

    Preference: the same model run as ``processes`` processes at once (the
    seeds side by side; their summed rate), then as one process; on the same
    device before a similar one (:data:`SIMILAR_DEVICES`); then another model of
    the suite. Among the records of that choice the fastest (its layout is the
    one the GPU script trains with). Only records with counted FLOPs in
    ``precision`` (``"any"``: every precision) count. ``None`` when no record fits.
    """
    devices = next((similar for key, similar in SIMILAR_DEVICES.items() if key in device_name), (device_name,))
    usable = [r for r in records if r.get("achieved_tflop_s") and precision in ("any", r.get("precision"))
              and r.get("profile") == profile and r.get("suite") == suite]
    counts = dict.fromkeys((processes, 1))
    for same_model, concurrent, device in itertools.product((True, False), counts, devices):
        fitting = [r for r in usable if device in r.get("device", "") and r.get("concurrent", 1) == concurrent
                   and (r["model"] == method or not same_model)]
        if fitting:
            record = max(fitting, key=lambda r: r["achieved_tflop_s"])  # the layout the run will choose
            notes = []
            if device not in device_name:
                notes.append(f"{device_name} timed as the {device}")
            if record["model"] != method:
                notes.append(f"at {record['model']}'s FLOP rate")
            if concurrent != processes:
                notes.append(f"one process's rate: no record of {processes} at once")
            source = f"{record['model']} {suite} {profile} {record['precision']}, batch {record['batch']}, on {record['device']}"
            if concurrent > 1:
                source += f", {concurrent} processes at once"
            if record.get("encoder_layout"):
                source += f", layout {record['encoder_layout']}/{record['decoder_layout']}"
            if notes:
                source += f" ({'; '.join(notes)})"
            return SpeedBasis(record["achieved_tflop_s"], record["samples_per_s"], source)
    return None


def expected_seconds(work: TrainingWork, basis: SpeedBasis) -> float:
    """Seconds of training (epoch loops only) at the FLOP rate of ``basis``."""
    return work.samples * work.gflop_per_sample * 1e9 / (basis.tflop_s * 1e12)


def plan_rows(works: list[TrainingWork], records: list[dict], device_name: str, precision: str = "bf16-autocast") -> list[dict]:
    """One row per training step: its work, the speed it is timed with and the expected seconds."""
    rows = []
    for work in works:
        basis = speed_basis(records, work.method, work.suite, work.profile, device_name, precision, work.seeds)
        row = {**asdict(work), "samples": work.samples, "pflop": round(work.samples * work.gflop_per_sample / 1e6, 2),
               "checkpoint_mib_per_model": round(work.checkpoint_mib, 1)}
        if basis is None:
            row.update(expected_s=None, basis="no speed record for this suite and profile")
        else:
            seconds = expected_seconds(work, basis)
            row.update(expected_s=round(seconds, 1), tflop_s=basis.tflop_s, basis=basis.source,
                       seconds_per_epoch_per_model=round(seconds / (work.seeds * work.inputs * work.epochs), 2))
        rows.append(row)
    return rows


def render_plan(rows: list[dict]) -> str:
    """The plan as a plain-text table, then where each speed comes from."""
    lines = ["training step                   seeds x inputs x epochs x samples   GFLOP/sample   PFLOP   TFLOP/s   s/epoch/model   expected"]
    for row in rows:
        expected = "unknown" if row["expected_s"] is None else f"{row['expected_s']:.0f} s"
        rate = "-" if row["expected_s"] is None else f"{row['tflop_s']:.1f}"
        size = f"{row['seeds']} x {row['inputs']} x {row['epochs']} x {row['train_samples']:,}"
        epoch = "-" if row["expected_s"] is None else f"{row['seconds_per_epoch_per_model']:.1f}"
        lines.append(f"{row['method'] + ' ' + row['suite'] + '/' + row['profile']:<32}{size:<36}"
                     f"{row['gflop_per_sample']:<15.3f}{row['pflop']:<8.1f}{rate:<10}{epoch:<16}{expected}")
    lines.append("speeds:")
    lines += [f"  {row['method']} {row['suite']}: {row['basis']}" for row in rows]
    lines.append("expected: epoch loops only (no data loading, validation, scoring or process start)")
    lines.append("checkpoint to resume a cut model (fp32 weights and Adam's two moments): "
                 + ", ".join(f"{row['method']} {row['suite']} {row['checkpoint_mib_per_model']} MiB" for row in rows))
    for row in rows:
        fit = int(RETURN_ROOM_MIB // max(row["checkpoint_mib_per_model"] * row["inputs"], 1e-9))
        if row["seeds"] > fit:
            lines.append(f"  {row['method']} {row['suite']}: a slot sends back {RETURN_ROOM_MIB:.0f} MiB of checkpoints at most, "
                         f"room for {fit} of these {row['seeds']} seeds: train at most {fit} at once when they must continue in a later slot")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the plan of the paper tables' training steps (a step without a fitting speed record is "unknown")."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.tools.gpu_plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device-name", default="NVIDIA H200", help="the GPU's name as torch reports it (default NVIDIA H200)")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--seeds", type=int, default=3, help="MEAE seeds on the triangles (default 3)")
    parser.add_argument("--records", type=Path, nargs="+", default=[SPEED_RECORDS], help="speed record files, later ones preferred (default results/speed.jsonl)")
    parser.add_argument("--precision", default="bf16-autocast", help="precision of the records to time with, as records name it, or any (default bf16-autocast)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = parser.parse_args(argv)
    works = [
        training_work("meae", "triangles", args.profile, args.seeds),
        training_work("supervised_ae", "triangles", args.profile, 1),
        training_work("meae", "mesa", args.profile, 1),
    ]
    rows = plan_rows(works, [r for path in args.records for r in read_records(path)], args.device_name, args.precision)
    print(json.dumps(rows, indent=1) if args.json else render_plan(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
