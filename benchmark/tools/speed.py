"""Training-speed benchmark: complete MEAE training steps per second.

Usage::

    python -m benchmark.tools.speed --model meae --suite triangles --profile paper \\
        --batch 256 --steps 20 --device cuda

Each timed step is the real training step (all loss terms, backward, gradient
clipping, the on-device non-finite check, optimizer update) of the configured
model on random inputs of the suite's shape, already on the device, after
warm-up steps. ``--suite triangles`` times the 2-D MEAE, ``--suite mesa`` the
1-D one (the paper's ECG/PPG configuration with ``--profile paper``). Prints
one JSON line; ``--append`` also adds it to a JSON-lines file (the source of
``results/speed.md``).

The record also gives the model FLOPs of one training step per sample
(forward and backward of every loss term, counted by
``torch.utils.flop_counter.FlopCounterMode``; a multiply-add is 2 FLOPs), the
achieved FLOP/s, and on GPUs with a known bf16 dense peak the share of it.
``--precision fp32`` turns bf16 autocast off on CUDA; with ``--compile`` the
seconds of the first (compiling) warm-up step are reported as ``compile_s``.
The FLOPs are the model's (grouped convolutions counted as grouped) in every
layout, so the FLOP rates of layouts compare the same work.

``--layouts all`` measures every execution layout of the MEAE network (how the
encoders' grouped convolutions and the decoder's transposed ones run, see
:data:`methods.nn.layouts.ENCODER_LAYOUTS`), one record each.
``--concurrent K`` runs the step in K processes at once (seeds 0..K-1, one
process per seed sharing the device, as ``gpu_oneshot`` trains seeds) and
reports their summed throughput. Each record also names the library versions
(cuDNN on CUDA) and the convolution kernels one profiled step ran
(:mod:`benchmark.tools.kernels`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

import methods
from benchmark.core.environment import describe_device, library_versions
from benchmark.tools.kernels import convolution_kernels
from methods.base import RunContext, Split
from methods.nn.device import precision_label, resolve_device
from methods.nn.layouts import DECODER_LAYOUTS, ENCODER_LAYOUTS, parse_layout
from methods.nn.network_method import MultiEncoderMethod
from methods.nn.steps import optimisation_step

SIGNAL_SHAPES = {"triangles": (64, 64), "mesa": (12288,)}
SOURCES = {"triangles": ("triangle", "circle"), "mesa": ("nasal_pressure",)}
FLOP_COUNTER = "torch FlopCounterMode + grouped conv-backward fix"
# Dense bf16 tensor-core peaks (FLOP/s, no sparsity) from the vendor's data sheets.
BF16_DENSE_PEAK = {"H100 80GB HBM3": 989.4e12, "H100 SXM": 989.4e12, "H200": 989.4e12, "H100 PCIe": 756.0e12, "A100": 312.0e12}


def bf16_peak(device: str) -> float | None:
    """The data-sheet dense bf16 peak of the CUDA device, or ``None`` when unknown or on CPU."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for key, peak in BF16_DENSE_PEAK.items():
        if key in name:
            return peak
    return None


def _conv_backward_flops(
    grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _output_padding,
    _groups, output_mask, out_shape=None, **kwargs,
) -> int:
    """FLOPs of a convolution's backward pass, grouped convolutions counted right.

    torch's own formula (2.11-2.13) counts the weight gradient of a grouped
    convolution as if it were ungrouped, ``groups`` times too many (for the
    paper's triangles MEAE: 3.57 instead of 2.81 GFLOP per sample and step).
    The input gradient costs what torch says; the weight gradient costs exactly
    the forward convolution.
    """
    flops = 0
    if output_mask[0]:
        flops += conv_flop_count(grad_out_shape, w_shape, x_shape, not transposed)
    if output_mask[1]:
        flops += conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return flops


def step_flops(method, batch_tensors: list[torch.Tensor]) -> float:
    """FLOPs of one training step's forward and backward passes (not the optimizer)."""
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})
    with counter:
        losses = method._step_losses(batch_tensors)
        losses["total"].backward()
    method.network_.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def method_on_random_batch(
    model: str, suite: str, profile: str, batch: int, device: str, threads: int, overrides: dict,
    layout: str | None = None,
) -> tuple[object, torch.optim.Optimizer, list[torch.Tensor]]:
    """The configured network method, set up in training mode, its optimizer and one random batch on ``device``."""
    cls = methods.get(model)
    params = {**cls.default_params(), **cls.profile_params(suite, profile), **overrides, "batch_size": batch}
    method = cls(**params).with_context(RunContext(device=device, n_threads=threads, layout=layout))
    shape = SIGNAL_SHAPES[suite]
    rng = np.random.default_rng(0)
    mixtures = rng.random((batch, *shape), dtype=np.float32)
    targets = rng.random((batch, len(SOURCES[suite]), *shape), dtype=np.float32) if cls.supervised else None
    split = Split(mixtures, SOURCES[suite], targets)
    optimizer, _ = method.setup(split)
    method.network_.train()
    return method, optimizer, [torch.from_numpy(a).to(device) for a in method._arrays(split)]


def parse_layouts(text: str) -> list[tuple[str, str]]:
    """``"all"`` or comma-separated ``encoder/decoder`` pairs -> the layouts to measure.

    Raises
    ------
    ValueError
        For a pair that names an unknown layout.
    """
    if text == "all":
        return list(itertools.product(ENCODER_LAYOUTS, DECODER_LAYOUTS))
    return [parse_layout(item) for item in text.split(",")]


def measure(
    model: str, suite: str, profile: str, batch: int, steps: int, warmup: int, device: str, threads: int,
    overrides: dict, *, layout: str | None = None, kernels: bool = False, barrier=None,
) -> dict:
    """Time ``steps`` training steps after ``warmup`` ones; return the JSON record.

    FLOPs are counted on a separate step of the uncompiled network in the
    grouped layout before the warm-up, so they never include compilation and
    are the same in every layout. With ``kernels`` one more step is profiled
    for its convolution kernels. A ``barrier`` (concurrent processes) is
    waited on between the warm-up and the timed steps, and the record then
    carries the timed interval's ``start_s`` and ``end_s`` on the system's
    monotonic clock. ``layout`` is the execution layout (``"encoder/decoder"``)
    of a multi-encoder network.
    """
    method, optimizer, batch_tensors = method_on_random_batch(
        model, suite, profile, batch, device, threads, overrides, layout,
    )
    network = method.network_
    ran = network.layout() if hasattr(network, "layout") else None

    compiled = method._forward
    method._forward = network
    if ran:
        network.set_layout()
    flops = step_flops(method, batch_tensors)
    if ran:
        network.set_layout(*ran)
    method._forward = compiled
    compile_seconds = None
    for index in range(warmup):
        first = time.perf_counter()
        optimisation_step(method.network_, optimizer, method._step_losses, batch_tensors, method.grad_clip)
        if index == 0 and getattr(method, "compile_model", False):
            _synchronize(device)
            compile_seconds = round(time.perf_counter() - first, 2)
    _synchronize(device)
    if barrier is not None:
        barrier.wait()
    start = time.perf_counter()
    interval = {"start_s": time.monotonic()} if barrier is not None else {}
    for _ in range(steps):
        optimisation_step(method.network_, optimizer, method._step_losses, batch_tensors, method.grad_clip)
    _synchronize(device)
    seconds = time.perf_counter() - start
    if barrier is not None:
        interval["end_s"] = time.monotonic()
    conv_kernels = None
    if kernels:
        conv_kernels = convolution_kernels(
            lambda: optimisation_step(method.network_, optimizer, method._step_losses, batch_tensors, method.grad_clip),
            device,
        )
    achieved = flops * steps / seconds
    peak = bf16_peak(device)
    used = precision_label(device, getattr(method, "amp", False), getattr(method, "cpu_bf16", False))
    amp = used != "fp32"
    return {
        "model": model, "suite": suite, "profile": profile, "batch": batch, "steps": steps,
        "warmup": warmup, "device": describe_device(device), "threads": torch.get_num_threads(),
        "amp": amp, "precision": used,
        "compile": bool(getattr(method, "compile_model", False)), "compile_s": compile_seconds,
        "fused_optimizer": bool(optimizer.defaults.get("fused")),
        "encoder_layout": ran[0] if ran else None, "decoder_layout": ran[1] if ran else None,
        "seed": method.seed, "concurrent": 1,
        "params": method.fit_info().n_parameters, "step_ms": round(1000 * seconds / steps, 2),
        "samples_per_s": round(batch * steps / seconds, 2),
        "gflop_per_sample": round(flops / batch / 1e9, 4), "flop_counter": FLOP_COUNTER,
        "achieved_tflop_s": round(achieved / 1e12, 3),
        "bf16_dense_peak_tflop_s": None if peak is None else round(peak / 1e12, 1),
        "share_of_bf16_peak": None if peak is None else round(achieved / peak, 4),
        "torch": torch.__version__, **library_versions(device), "conv_kernels": conv_kernels, **interval,
    }


def _measure_in_child(arguments: dict, barrier, queue) -> None:
    try:
        queue.put(measure(**arguments, barrier=barrier))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which fails the run
        queue.put({"error": f"{type(error).__name__}: {error}"})
        raise


def measure_concurrent(processes: int, arguments: dict, timeout_s: float = 3600.0) -> dict:
    """Run :func:`measure` in ``processes`` processes at once (seeds 0..K-1); summed throughput.

    The processes warm up, wait for each other, then time their steps; the
    record's ``samples_per_s`` is every process's samples over the span from the
    first start to the last end, ``per_process`` keeps each one's record.

    Raises
    ------
    RuntimeError
        When a process fails or does not report within ``timeout_s``.
    """
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(processes), context.Queue()
    children = []
    for seed in range(processes):
        child_arguments = {**arguments, "overrides": {**arguments["overrides"], "seed": seed}}
        child = context.Process(target=_measure_in_child, args=(child_arguments, barrier, queue), daemon=True)
        child.start()
        children.append(child)
    records = []
    try:
        for _ in children:
            records.append(queue.get(timeout=timeout_s))
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    failed = [r["error"] for r in records if "error" in r]
    if failed:
        raise RuntimeError(f"{len(failed)} of {processes} concurrent processes failed: {failed[0]}")
    records.sort(key=lambda r: r["seed"])
    span = max(r["end_s"] for r in records) - min(r["start_s"] for r in records)
    samples = sum(r["batch"] * r["steps"] for r in records)
    flops = records[0]["gflop_per_sample"] * 1e9 * samples
    peak = records[0]["bf16_dense_peak_tflop_s"]
    total = {key: value for key, value in records[0].items() if key not in ("start_s", "end_s", "seed")}
    total.update({
        "concurrent": processes, "threads": sum(r["threads"] for r in records),
        "step_ms": round(1000 * span / records[0]["steps"], 2), "samples_per_s": round(samples / span, 2),
        "achieved_tflop_s": round(flops / span / 1e12, 3),
        "share_of_bf16_peak": None if peak is None else round(flops / span / (peak * 1e12), 4),
        "per_process": [{k: r[k] for k in ("seed", "step_ms", "samples_per_s", "threads")} for r in records],
    })
    return total


def recount_flops(path: str) -> int:
    """Recount the FLOPs of records in a JSON-lines file that an older counter produced.

    The count depends only on the model, suite, profile and batch, so it is
    redone here on the CPU; ``achieved_tflop_s`` and ``share_of_bf16_peak``
    follow from the measured ``samples_per_s``. The old count is kept as
    ``gflop_per_sample_before_recount``. Returns the number of records changed.
    """
    lines = open(path, encoding="utf-8").read().splitlines()
    changed, out = 0, []
    for line in lines:
        record = json.loads(line) if line.strip() else None
        if record is None or "gflop_per_sample" not in record or record.get("flop_counter") == FLOP_COUNTER:
            out.append(line)
            continue
        method, _, batch_tensors = method_on_random_batch(
            record["model"], record["suite"], record["profile"], record["batch"], "cpu", os.cpu_count() or 1, {},
        )
        method._forward = method.network_
        gflop = step_flops(method, batch_tensors) / record["batch"] / 1e9
        achieved = gflop * 1e9 * record["samples_per_s"]
        record.update({
            "gflop_per_sample_before_recount": record["gflop_per_sample"], "gflop_per_sample": round(gflop, 4),
            "flop_counter": FLOP_COUNTER, "achieved_tflop_s": round(achieved / 1e12, 3),
        })
        if record.get("bf16_dense_peak_tflop_s"):
            record["share_of_bf16_peak"] = round(achieved / (record["bf16_dense_peak_tflop_s"] * 1e12), 4)
        out.append(json.dumps(record))
        changed += 1
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("\n".join(out) + "\n")
    os.replace(tmp, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.tools.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="meae", help="registered neural method (meae, supervised_ae)")
    parser.add_argument("--suite", default="triangles", choices=sorted(SIGNAL_SHAPES))
    parser.add_argument("--profile", default="paper", help="paper, quick or tiny")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the profile's)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU intra-op threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--layouts", default="grouped/native", help="MEAE execution layouts to measure, one record each: comma-separated encoder/decoder pairs (encoder: grouped, split, dense; decoder: native, conv) or 'all' (default grouped/native)")
    parser.add_argument("--concurrent", type=int, default=1, metavar="K", help="run the step in K processes at once (seeds 0..K-1; on a CPU each gets threads/K) and report their summed throughput (default 1)")
    parser.add_argument("--no-kernels", action="store_true", help="do not profile a step for its convolution kernels")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="bf16: autocast on CUDA and on CPUs with AMX-BF16 (default; other CPUs run fp32); fp32: no autocast anywhere")
    parser.add_argument("--append", default=None, metavar="PATH", help="also append the JSON record to this JSON-lines file")
    parser.add_argument("--recount-flops", default=None, metavar="PATH", help="recount the FLOPs of the records of an older counter in this JSON-lines file, then exit")
    args = parser.parse_args(argv)
    if args.recount_flops:
        print(f"recounted {recount_flops(args.recount_flops)} records in {args.recount_flops}")
        return 0
    try:
        device = resolve_device(args.device)
        cls = methods.get(args.model)
        if not hasattr(cls, "setup"):
            raise ValueError(f"method '{args.model}' is not a neural network method")
        profile = cls.profile_params(args.suite, args.profile)
        batch = args.batch or profile.get("batch_size") or cls.default_params().get("batch_size", 32)
        overrides = {"compile_model": True} if args.compile else {}
        if args.precision == "fp32":
            overrides.update(amp=False, cpu_bf16=False)
        elif "cpu_bf16" in cls.param_names():
            overrides["cpu_bf16"] = True
        layouts = parse_layouts(args.layouts)
        if layouts != [("grouped", "native")] and not issubclass(cls, MultiEncoderMethod):
            raise ValueError(f"method '{args.model}' has no execution layouts (multi-encoder networks have)")
        if args.concurrent < 1:
            raise ValueError(f"--concurrent must be at least 1, got {args.concurrent}")
        transposed = cls.profile_params(args.suite, args.profile).get("decoder_conv") == "transposed"
        if not transposed:  # no transposed convolution: every decoder layout runs the same kernels
            layouts = list(dict.fromkeys((encoder, "native") for encoder, _ in layouts))
        for encoder, decoder in layouts:
            arguments = dict(model=args.model, suite=args.suite, profile=args.profile, batch=batch, steps=args.steps,
                             warmup=args.warmup, device=device, overrides=overrides, layout=f"{encoder}/{decoder}",
                             kernels=not args.no_kernels)
            if args.concurrent == 1:
                record = measure(**arguments, threads=args.threads)
            else:
                record = measure_concurrent(args.concurrent, {**arguments, "threads": max(1, args.threads // args.concurrent)})
            line = json.dumps(record)
            print(line, flush=True)
            if args.append:
                with open(args.append, "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
    except (KeyError, ValueError, RuntimeError) as error:
        print(f"benchmark.tools.speed: error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
