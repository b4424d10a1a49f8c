"""Shared torch plumbing for the neural methods: devices, batches, the epoch loop."""

from __future__ import annotations

import copy
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

RESIDENT_LIMIT_BYTES = 4 * 2**30


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


def autocast(device: str, enabled: bool) -> torch.autocast | nullcontext:
    """bf16 autocast on CUDA when ``enabled``; a no-op elsewhere."""
    if enabled and device.startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def add_channel_axis(array: np.ndarray) -> np.ndarray:
    """``(n, *shape)`` -> ``(n, 1, *shape)``."""
    return array[:, None]


class BatchSource:
    """Minibatches of one or two aligned arrays, resident on the device when they fit.

    Parameters
    ----------
    arrays : list of np.ndarray
        Aligned arrays (same first axis), any float dtype, possibly memory maps.
    device : str
        Where batches are delivered.
    resident_limit : int
        Arrays whose float32 size is below this are copied to the device once;
        larger ones are read batch by batch (sorted indices, pinned memory).
    """

    def __init__(self, arrays: list[np.ndarray], device: str, resident_limit: int = RESIDENT_LIMIT_BYTES):
        self.arrays = arrays
        self.device = torch.device(device)
        self.n = int(arrays[0].shape[0])
        total = sum(int(np.prod(a.shape)) * 4 for a in arrays)
        self.resident = total <= resident_limit
        self._tensors = (
            [torch.as_tensor(np.asarray(a, dtype=np.float32)).to(self.device) for a in arrays]
            if self.resident
            else None
        )

    def _take(self, index: torch.Tensor) -> list[torch.Tensor]:
        if self._tensors is not None:
            index = index.to(self.device)
            return [t.index_select(0, index) for t in self._tensors]
        rows = np.sort(index.numpy())
        out = []
        for array in self.arrays:
            batch = torch.from_numpy(np.asarray(array[rows], dtype=np.float32))
            if self.device.type == "cuda":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            out.append(batch)
        return out

    def epoch(self, batch_size: int, generator: torch.Generator | None, drop_last: bool = False) -> Iterator[list[torch.Tensor]]:
        """Yield batches in a shuffled order (or in order when ``generator`` is None)."""
        order = torch.randperm(self.n, generator=generator) if generator is not None else torch.arange(self.n)
        stop = self.n - (self.n % batch_size if drop_last and self.n >= batch_size else 0)
        for start in range(0, stop, batch_size):
            yield self._take(order[start : start + batch_size])

    def __len__(self) -> int:
        return self.n


def optimisation_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    step_losses: Callable[[list[torch.Tensor]], dict[str, torch.Tensor]],
    batch: list[torch.Tensor], grad_clip: float | None,
) -> dict[str, torch.Tensor]:
    """One complete training step: losses, backward, gradient clipping, optimizer update."""
    losses = step_losses(batch)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return losses


@dataclass
class EpochResult:
    """Mean of each loss term over one epoch."""

    epoch: int
    losses: dict[str, float]
    seconds: float


def train_epochs(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    batches: BatchSource,
    step_losses: Callable[[list[torch.Tensor]], dict[str, torch.Tensor]],
    *,
    epochs: int,
    batch_size: int,
    grad_clip: float | None,
    seed: int,
    progress: bool,
    label: str,
    validate: Callable[[], float] | None = None,
    keep_best: bool = False,
) -> list[EpochResult]:
    """Run the epoch loop shared by the neural methods.

    ``step_losses`` maps a batch to named loss terms, one of them ``"total"``
    (what is minimised). Loss sums stay on the device during an epoch and are
    read back once per epoch, so no step waits on a host-device sync.
    With ``keep_best`` and a ``validate`` callable (lower is better), the model
    ends with the weights of its best validation epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    history: list[EpochResult] = []
    best_score, best_state = math.inf, None
    bar = tqdm(range(epochs), desc=label, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        start = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        for batch in batches.epoch(batch_size, generator, drop_last=True):
            losses = optimisation_step(model, optimizer, step_losses, batch, grad_clip)
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
            steps += 1
        if scheduler is not None:
            scheduler.step()
        means = {name: float(total) / max(steps, 1) for name, total in sums.items()}
        if validate is not None:
            means["valid"] = float(validate())
            if keep_best and means["valid"] < best_score:
                best_score = means["valid"]
                best_state = copy.deepcopy(model.state_dict())
        history.append(EpochResult(epoch, means, time.perf_counter() - start))
        bar.set_postfix({k: f"{v:.4g}" for k, v in means.items() if k in ("total", "valid")})
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    return history


@torch.no_grad()
def predict_in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], array: np.ndarray, device: str, batch_size: int
) -> np.ndarray:
    """Apply ``fn`` to ``array`` (numpy, first axis = samples) batch by batch; float32 numpy out."""
    outputs = []
    for start in range(0, array.shape[0], batch_size):
        chunk = torch.from_numpy(np.asarray(array[start : start + batch_size], dtype=np.float32))
        outputs.append(fn(chunk.to(device)).float().cpu().numpy())
    return np.concatenate(outputs, axis=0)


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


class NetworkCheckpoint:
    """``_save_state``/``_load_state`` for methods holding one torch network.

    The host class sets ``network_class`` (built from a JSON-able ``config``
    attribute of the network) and implements ``_install(network)``, which puts a
    network on the method's device. Weights are saved as a state dict and read
    back with ``weights_only=True``.
    """

    network_class: type[torch.nn.Module]

    def _save_state(self, directory: Path) -> None:
        save_torch_state(
            directory,
            {"network": self.network_.config, "history": getattr(self, "history_", None)},
            self.network_.state_dict(),
        )

    def _load_state(self, directory: Path) -> None:
        config, state = load_torch_state(directory)
        network = self.network_class(config["network"])
        network.load_state_dict(state)
        self._install(network)
        self.network_.eval()
        self.history_ = config.get("history")
