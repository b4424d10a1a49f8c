"""What the neural methods write to disk: per-epoch training checkpoints and fitted weights."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

CHECKPOINT_FILE = "training.pt"
log = logging.getLogger("bss_bench.training")


def global_rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """torch's global random states (CPU, and every CUDA device), for a training checkpoint.

    Dropout-like noise, VAE sampling and random permutations draw from them, so
    a resumed fit must continue them to reproduce an uninterrupted one.
    """
    state: dict[str, torch.Tensor | list[torch.Tensor]] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict) -> None:
    """Restore what :func:`global_rng_state` returned."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def optimizer_states(optimizers: Sequence[torch.optim.Optimizer]) -> dict | list[dict]:
    """State dicts of a training step's optimizers, as a checkpoint stores them.

    One optimizer's state is stored as its own state dict (the format of
    checkpoints written before steps could have several); several as a list.
    """
    states = [optimizer.state_dict() for optimizer in optimizers]
    return states[0] if len(states) == 1 else states


def load_optimizer_states(optimizers: Sequence[torch.optim.Optimizer], saved: dict | list[dict]) -> None:
    """Inverse of :func:`optimizer_states`.

    Raises
    ------
    ValueError
        If ``saved`` holds the state of another number of optimizers.
    """
    states = [saved] if isinstance(saved, dict) else list(saved)
    if len(states) != len(optimizers):
        raise ValueError(f"the checkpoint holds {len(states)} optimizer states, the step has {len(optimizers)} optimizers")
    for optimizer, state in zip(optimizers, states, strict=True):
        optimizer.load_state_dict(state)


def write_training_checkpoint(directory: Path, payload: dict) -> None:
    """Atomically write the per-epoch training checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{CHECKPOINT_FILE}.{os.getpid()}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, directory / CHECKPOINT_FILE)


def read_training_checkpoint(directory: Path | None) -> dict | None:
    """The last epoch checkpoint in ``directory``, or ``None`` if absent or unreadable."""
    if directory is None or not (directory / CHECKPOINT_FILE).is_file():
        return None
    try:
        return torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a damaged checkpoint means starting over
        log.warning("ignoring unreadable training checkpoint %s: %s", directory / CHECKPOINT_FILE, error)
        return None


def save_torch_state(directory: Path, config: dict, state_dict: dict) -> None:
    """Write ``network.json`` and ``weights.pt`` (tensors only, no pickled objects)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "network.json").write_text(json.dumps(config, indent=2))
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
    (directory / "weights.pt").write_bytes(buffer.getvalue())


def load_torch_state(directory: Path) -> tuple[dict, dict]:
    """Read what :func:`save_torch_state` wrote, with ``weights_only=True``."""
    config = json.loads((directory / "network.json").read_text())
    state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
    return config, state


__all__ = [
    "CHECKPOINT_FILE", "global_rng_state", "load_optimizer_states", "load_torch_state",
    "optimizer_states", "read_training_checkpoint", "save_torch_state", "set_global_rng_state",
    "write_training_checkpoint",
]
