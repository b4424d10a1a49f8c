"""Which convolution kernels a training step runs.

cuDNN picks a convolution algorithm per shape (with autotuning on, by timing
them), and neither the algorithm nor its kernel appear in any record unless
asked for. :func:`convolution_kernels` profiles one step with
``torch.profiler`` and lists the device kernels of its convolutions (on a CPU,
the aten convolution operators oneDNN ran), so a GPU record says what ran, and
a crash or a slow layout can be traced to a kernel family. The versions of the
libraries that chose them are :func:`benchmark.core.environment.library_versions`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

#: Substrings (lower case) that mark a convolution kernel in cuDNN / CUTLASS kernel names, or a
#: convolution operator on the CPU.
CONVOLUTION_MARKS = ("conv", "cudnn", "implicit", "wgrad", "dgrad", "fprop", "winograd", "fft", "xmma", "cutlass")


def _device_time_us(event) -> float:
    for name in ("self_device_time_total", "self_cuda_time_total", "device_time_total"):
        value = getattr(event, name, None)
        if value:
            return float(value)
    return 0.0


def convolution_kernels(run_step: Callable[[], object], device: str, limit: int = 25) -> list[dict]:
    """Profile one call of ``run_step`` and list the convolution kernels it ran.

    Parameters
    ----------
    run_step : callable
        One complete training step (already warmed up, so autotuning is done).
    device : str
        ``"cpu"`` or ``"cuda[:N]"``.
    limit : int
        Longest list kept (the costliest first).

    Returns
    -------
    list of dict
        ``{"name", "calls", "ms"}`` per kernel: on CUDA the device kernels whose
        names mark a convolution (:data:`CONVOLUTION_MARKS`) with their device
        time; on a CPU the aten convolution operators with their own CPU time.
    """
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=activities) as profiler:
        run_step()
        if cuda:
            torch.cuda.synchronize()
    rows = []
    for event in profiler.key_averages():
        name = event.key
        operator = name.startswith(("aten::", "autograd::", "cudnn::"))
        kernel = _device_time_us(event) > 0 and not operator
        wanted = kernel if cuda else name.startswith("aten::")
        if not wanted or not any(mark in name.lower() for mark in CONVOLUTION_MARKS):
            continue
        micros = _device_time_us(event) if cuda else float(event.self_cpu_time_total)
        rows.append({"name": name[:200], "calls": int(event.count), "ms": round(micros / 1000, 3)})
    rows.sort(key=lambda row: -row["ms"])
    return rows[:limit]


__all__ = ["CONVOLUTION_MARKS", "convolution_kernels"]
