"""Torch devices for the neural methods: which device, seeding and threads, mixed precision."""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import torch


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is visible, else ``"cpu"``.

    Raises
    ------
    ValueError
        If a CUDA device is asked for and none is available.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' was requested but torch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device '{device}' (auto, cpu, cuda or cuda:N)")
    return device


def seed_and_threads(seed: int, device: str, n_threads: int) -> None:
    """What every network method does before building its network: seed torch, set CPU threads.

    On CUDA, cuDNN autotuning is switched on: batch shapes are fixed, so each
    convolution gets its fastest algorithm (GPU convolutions are not bitwise
    reproducible either way).
    """
    torch.manual_seed(seed)
    if device == "cpu":
        torch.set_num_threads(max(1, n_threads))
    else:
        torch.backends.cudnn.benchmark = True


@lru_cache(maxsize=1)
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bf16 in AMX tiles (Linux ``amx_bf16`` flag in ``/proc/cpuinfo``).

    Only there does CPU bf16 autocast pay: oneDNN runs the convolutions on the tiles.
    Elsewhere bf16 is emulated or converted and the CPU stays in fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " amx_bf16" in flags and torch.backends.mkldnn.is_available()


def uses_cpu_bf16(device: str, cpu_bf16: bool) -> bool:
    """Whether a method asking for CPU bf16 gets it on ``device`` (a CPU with AMX-BF16)."""
    return bool(cpu_bf16) and device == "cpu" and cpu_has_amx_bf16()


def _autocast_device(device: str, amp: bool, cpu_bf16: bool) -> str | None:
    """The autocast device type that bf16 runs on (``"cuda"`` or ``"cpu"``), or ``None`` for fp32."""
    if amp and device.startswith("cuda"):
        return "cuda"
    if uses_cpu_bf16(device, cpu_bf16):
        return "cpu"
    return None


def autocast(device: str, enabled: bool, cpu_bf16: bool = False) -> torch.autocast | nullcontext:
    """bf16 autocast on CUDA when ``enabled``, on an AMX-BF16 CPU when ``cpu_bf16``; else a no-op."""
    kind = _autocast_device(device, enabled, cpu_bf16)
    return nullcontext() if kind is None else torch.autocast(device_type=kind, dtype=torch.bfloat16)


def precision_label(device: str, amp: bool, cpu_bf16: bool = False) -> str:
    """What :func:`autocast` runs with these settings: ``"bf16-autocast"`` (CUDA),
    ``"bf16-autocast (CPU AMX)"`` or ``"fp32"``; recorded in cells and speed records."""
    kind = _autocast_device(device, amp, cpu_bf16)
    return {"cuda": "bf16-autocast", "cpu": "bf16-autocast (CPU AMX)", None: "fp32"}[kind]


__all__ = ["autocast", "cpu_has_amx_bf16", "precision_label", "resolve_device", "seed_and_threads", "uses_cpu_bf16"]
