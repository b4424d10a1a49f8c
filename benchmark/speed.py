"""Training-speed benchmark: complete MEAE training steps per second.

Usage::

    python -m benchmark.speed --model meae --suite triangles --profile paper \\
        --batch 256 --steps 20 --device cuda

Each timed step is the real training step (all loss terms, backward, gradient
clipping, the on-device non-finite check, optimizer update) of the configured
model on random inputs of the suite's shape, already on the device, after
warm-up steps. ``--suite triangles`` times the 2-D MEAE, ``--suite mesa`` the
1-D one (the paper's ECG/PPG configuration with ``--profile paper``). Prints
one JSON line; ``--append`` also adds it to a JSON-lines file (the source of
``results/speed.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

import methods
from benchmark.environment import describe_device
from methods._training import optimisation_step, resolve_device
from methods.base import RunContext, Split

SIGNAL_SHAPES = {"triangles": (64, 64), "mesa": (12288,)}
SOURCES = {"triangles": ("triangle", "circle"), "mesa": ("nasal_pressure",)}


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(model: str, suite: str, profile: str, batch: int, steps: int, warmup: int, device: str, threads: int, overrides: dict) -> dict:
    """Time ``steps`` training steps after ``warmup`` ones; return the JSON record."""
    cls = methods.get(model)
    params = {**cls.default_params(), **cls.profile_params(suite, profile), **overrides, "batch_size": batch}
    method = cls(**params).with_context(RunContext(device=device, n_threads=threads))
    shape = SIGNAL_SHAPES[suite]
    rng = np.random.default_rng(0)
    mixtures = rng.random((batch, *shape), dtype=np.float32)
    targets = rng.random((batch, len(SOURCES[suite]), *shape), dtype=np.float32) if cls.supervised else None
    split = Split(mixtures, SOURCES[suite], targets)
    optimizer, _ = method.setup(split)
    method.network_.train()
    batch_tensors = [torch.from_numpy(a).to(device) for a in method._arrays(split)]

    for _ in range(warmup):
        optimisation_step(method.network_, optimizer, method._step_losses, batch_tensors, method.grad_clip)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimisation_step(method.network_, optimizer, method._step_losses, batch_tensors, method.grad_clip)
    _synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "model": model, "suite": suite, "profile": profile, "batch": batch, "steps": steps,
        "warmup": warmup, "device": describe_device(device), "threads": torch.get_num_threads(),
        "amp": bool(getattr(method, "amp", False) and device.startswith("cuda")),
        "compile": bool(getattr(method, "compile_model", False)),
        "fused_optimizer": bool(optimizer.defaults.get("fused")),
        "params": method.n_parameters_, "step_ms": round(1000 * seconds / steps, 2),
        "samples_per_s": round(batch * steps / seconds, 2), "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="meae", help="registered neural method (meae, supervised_ae)")
    parser.add_argument("--suite", default="triangles", choices=sorted(SIGNAL_SHAPES))
    parser.add_argument("--profile", default="paper", help="paper, quick or tiny")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the profile's)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU intra-op threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--append", default=None, metavar="PATH", help="also append the JSON record to this JSON-lines file")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
        cls = methods.get(args.model)
        if not hasattr(cls, "setup"):
            raise ValueError(f"method '{args.model}' is not a neural network method")
        profile = cls.profile_params(args.suite, args.profile)
        batch = args.batch or profile.get("batch_size") or cls.default_params().get("batch_size", 32)
        overrides = {"compile_model": True} if args.compile else {}
        record = measure(args.model, args.suite, args.profile, batch, args.steps, args.warmup, device, args.threads, overrides)
    except (KeyError, ValueError) as error:
        print(f"benchmark.speed: error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    line = json.dumps(record)
    print(line)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
