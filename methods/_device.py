"""Torch devices for the neural methods: which device, seeding and threads, mixed precision."""

from __future__ import annotations

from contextlib import nullcontext

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


def autocast(device: str, enabled: bool) -> torch.autocast | nullcontext:
    """bf16 autocast on CUDA when ``enabled``; a no-op elsewhere."""
    if enabled and device.startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


__all__ = ["autocast", "resolve_device", "seed_and_threads"]
