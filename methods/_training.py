"""Shared torch plumbing for the neural methods: devices, batches, the epoch loop."""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from methods._networks import count_parameters
from methods._time_budget import TimeBudget, TrainingBudget

RESIDENT_LIMIT_BYTES = 4 * 2**30
GPU_RESIDENT_SHARE = 0.5
UPLOAD_CHUNK_BYTES = 64 * 2**20
log = logging.getLogger("bss_bench.training")


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


def add_channel_axis(array: np.ndarray) -> np.ndarray:
    """``(n, *shape)`` -> ``(n, 1, *shape)``."""
    return array[:, None]


def _in_memory(array) -> bool:
    """A plain in-memory numpy array (not a memory map or a lazy view of a file)."""
    return isinstance(array, np.ndarray) and not isinstance(array, np.memmap)


class BatchSource:
    """Minibatches of one or two aligned arrays, resident on the device when they fit.

    Parameters
    ----------
    arrays : list of array-like
        Aligned arrays (same first axis), any float dtype: numpy arrays, memory
        maps or row views of an on-disk cache (anything with ``shape`` that
        accepts ``array[sorted_int_rows]``).
    device : str
        Where batches are delivered.
    resident_limit : int or None
        Arrays whose float32 size is at most this are copied to the device
        once, in chunks (on a GPU: no host-device traffic during training).
        Larger ones are streamed: each batch's rows are read in sorted order
        by a background thread while the previous batch trains, in pinned
        memory for a GPU, so host memory stays at a few batches whatever the
        data size. Default on a GPU: half of its free memory (at least 4 GiB),
        so a whole training set (the paper profile's 115,200 image pairs with
        their sources: 5.7 GB) stays on the device; on the CPU, arrays already
        in memory are used in place and on-disk ones (memory maps, row views
        of the MESA cache) are always streamed.
    """

    def __init__(self, arrays: list[np.ndarray], device: str, resident_limit: int | None = None):
        self.arrays = arrays
        self.device = torch.device(device)
        self.n = int(arrays[0].shape[0])
        if resident_limit is None:
            if self.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(self.device)
                resident_limit = max(RESIDENT_LIMIT_BYTES, int(GPU_RESIDENT_SHARE * free))
            else:
                resident_limit = RESIDENT_LIMIT_BYTES if all(_in_memory(a) for a in arrays) else 0
        total = sum(int(np.prod(a.shape)) * 4 for a in arrays)
        self.resident = total <= resident_limit
        self._tensors = [self._upload(a) for a in arrays] if self.resident else None

    def _upload(self, array) -> torch.Tensor:
        """The whole array as float32 on the device, copied in chunks (bounded host memory)."""
        if _in_memory(array) and array.dtype == np.float32:
            return torch.as_tensor(array).to(self.device)
        tensor = torch.empty(tuple(array.shape), dtype=torch.float32, device=self.device)
        row_bytes = max(1, int(np.prod(array.shape[1:])) * 4)
        step = max(1, UPLOAD_CHUNK_BYTES // row_bytes)
        for start in range(0, self.n, step):
            chunk = np.ascontiguousarray(array[start : start + step], dtype=np.float32)
            tensor[start : start + len(chunk)] = torch.from_numpy(chunk)
        return tensor

    def _read(self, index: torch.Tensor) -> list[torch.Tensor]:
        """Host copy of the rows ``index`` (pinned when bound for a GPU)."""
        rows = np.sort(index.numpy())
        out = []
        for array in self.arrays:
            batch = torch.from_numpy(np.ascontiguousarray(array[rows], dtype=np.float32))
            out.append(batch.pin_memory() if self.device.type == "cuda" else batch)
        return out

    def epoch(self, batch_size: int, generator: torch.Generator | None, drop_last: bool = False) -> Iterator[list[torch.Tensor]]:
        """Yield batches in a shuffled order (or in order when ``generator`` is None)."""
        order = torch.randperm(self.n, generator=generator) if generator is not None else torch.arange(self.n)
        stop = self.n - (self.n % batch_size if drop_last and self.n >= batch_size else 0)
        chunks = [order[start : start + batch_size] for start in range(0, stop, batch_size)]
        if self._tensors is not None:
            for index in chunks:
                index = index.to(self.device)
                yield [t.index_select(0, index) for t in self._tensors]
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-prefetch") as pool:
            pending = pool.submit(self._read, chunks[0]) if chunks else None
            for position in range(len(chunks)):
                host = pending.result()
                if position + 1 < len(chunks):
                    pending = pool.submit(self._read, chunks[position + 1])
                yield [t.to(self.device, non_blocking=True) for t in host]

    def __len__(self) -> int:
        return self.n


def _skip_update_if(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()`` that leaves parameters and state untouched when ``skip`` is true.

    Fused optimizers (Adam, AdamW, SGD on CPU and CUDA) take the flag on the
    device through their ``found_inf`` input, as ``torch.amp.GradScaler`` does:
    no host-device synchronisation. Other optimizers get their non-finite
    gradients replaced by zeros, which skips the gradient but not their
    momentum or weight decay.
    """
    if optimizer.defaults.get("fused") and getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.grad_scale = None
        optimizer.found_inf = skip.float()
        try:
            optimizer.step()
        finally:
            del optimizer.grad_scale, optimizer.found_inf
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    torch._foreach_mul_(grads, (~skip).float())
    for grad in grads:
        grad.nan_to_num_(0.0, 0.0, 0.0)
    optimizer.step()


def optimisation_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    step_losses: Callable[[list[torch.Tensor]], dict[str, torch.Tensor]],
    batch: list[torch.Tensor], grad_clip: float | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One complete training step: losses, backward, gradient clipping, optimizer update.

    A step whose loss or gradient norm is not finite changes nothing. The
    check stays on the device (no ``.item()``).

    Returns
    -------
    losses : dict of str to torch.Tensor
        The named loss terms of the step.
    skipped : torch.Tensor
        0-dim bool on the device: true when the update was skipped.
    """
    losses = step_losses(batch)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    params = [p for p in model.parameters() if p.grad is not None]
    if grad_clip:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    skipped = ~(torch.isfinite(losses["total"].detach()) & torch.isfinite(norm))
    _skip_update_if(optimizer, skipped)
    return losses, skipped


@dataclass
class EpochResult:
    """Mean of each loss term over the epoch's applied (finite) steps.

    ``complete`` is false for an epoch that the time limit stopped part-way;
    ``samples`` counts the training samples its steps saw.
    """

    epoch: int
    losses: dict[str, float]
    seconds: float
    samples: int = 0
    complete: bool = True


@dataclass
class GuardSettings:
    """How training reacts to non-finite losses.

    Parameters
    ----------
    check_every : int
        Steps between reads of the on-device failure counter (and progress
        updates); the only host-device synchronisation inside an epoch.
    rollback_after : int
        Skipped steps since the last good state that send the model back to it.
    lr_backoff : float
        Factor applied to the learning rate at each rollback.
    max_rollbacks : int
        Rollbacks after which training stops with :class:`TrainingDiverged`.
    """

    check_every: int = 50
    rollback_after: int = 3
    lr_backoff: float = 0.5
    max_rollbacks: int = 5


@dataclass
class TrainingEvents:
    """What happened to a training run, for the results manifest."""

    skipped_steps: int = 0
    rollbacks: int = 0
    lr_scale: float = 1.0
    resumed_from_epoch: int | None = None
    checkpoints_written: int = 0

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly copy."""
        return asdict(self)


@dataclass
class TrainingLog:
    """Per-epoch history, events and training budget of :func:`train_epochs`."""

    history: list[EpochResult]
    events: TrainingEvents
    budget: TrainingBudget | None = None


class TrainingDiverged(RuntimeError):
    """Training kept producing non-finite losses after repeated rollbacks."""


CHECKPOINT_FILE = "training.pt"


def _clone_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, lr_scale: float) -> dict:
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "lr_scale": lr_scale,
    }


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


class _Guard:
    """Counts skipped steps on the device; rolls back and lowers the LR when they repeat."""

    def __init__(self, model, optimizer, settings: GuardSettings, events: TrainingEvents) -> None:
        self.model, self.optimizer, self.settings, self.events = model, optimizer, settings, events
        self.pending = torch.zeros((), dtype=torch.int64, device=next(model.parameters()).device)
        self.since_good = 0
        self.good = _clone_state(model, optimizer, events.lr_scale)

    def record(self, skipped: torch.Tensor) -> None:
        self.pending += skipped

    def check(self) -> int:
        """Read the counter (one sync); roll back if needed. Returns the skipped steps read."""
        count = int(self.pending)
        if not count:
            return 0
        self.pending.zero_()
        self.events.skipped_steps += count
        self.since_good += count
        if self.since_good >= self.settings.rollback_after:
            self._rollback()
        return count

    def _rollback(self) -> None:
        self.events.rollbacks += 1
        if self.events.rollbacks > self.settings.max_rollbacks:
            raise TrainingDiverged(
                f"loss not finite in {self.events.skipped_steps} steps despite "
                f"{self.settings.max_rollbacks} rollbacks with a lowered learning rate"
            )
        self.model.load_state_dict(self.good["model"])
        self.optimizer.load_state_dict(copy.deepcopy(self.good["optimizer"]))
        self.events.lr_scale *= self.settings.lr_backoff
        factor = self.events.lr_scale / self.good["lr_scale"]
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
        self.since_good = 0
        log.warning("non-finite losses: model rolled back to its last good state, learning rate x%g", self.events.lr_scale)

    def mark_good(self) -> None:
        self.since_good = 0
        self.good = _clone_state(self.model, self.optimizer, self.events.lr_scale)


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
    checkpoint_dir: Path | None = None,
    guard: GuardSettings | None = None,
    on_resume: Callable[[int], None] | None = None,
    time_limit: float | None = None,
) -> TrainingLog:
    """Run the epoch loop shared by the neural methods.

    ``step_losses`` maps a batch to named loss terms, one of them ``"total"``
    (what is minimised). Loss sums and the count of skipped (non-finite) steps
    stay on the device and are read every ``guard.check_every`` steps, so no
    step waits on a host-device sync. Repeated non-finite steps roll the model
    back to its last good state (the end of the last epoch) with a lowered
    learning rate (see :class:`GuardSettings`).

    With ``checkpoint_dir``, the complete training state (network, optimizer,
    scheduler, batch-order generator, history, best weights) is written there
    atomically after every epoch, and a later call with the same directory
    resumes after the last finished epoch; ``on_resume(epoch)`` then tells the
    caller the first epoch that will run. With ``keep_best`` and a ``validate``
    callable (lower is better), the model ends with the weights of its best
    validation epoch.

    With ``time_limit`` (seconds of training, resumed runs counting the time
    their earlier epochs took), training stops after the step during which
    the limit is reached: the cut epoch is recorded as incomplete, the
    learning-rate schedule is not advanced for it and no checkpoint is
    written for it. The returned log's ``budget`` says how far training got.
    """
    settings = guard or GuardSettings()
    generator = torch.Generator().manual_seed(seed)
    history: list[EpochResult] = []
    events = TrainingEvents()
    best_score, best_state = math.inf, None
    start_epoch = 0
    saved = read_training_checkpoint(checkpoint_dir)
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None and saved["scheduler"] is not None:
                scheduler.load_state_dict(saved["scheduler"])
            generator.set_state(saved["generator"])
            set_global_rng_state(saved["rng"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise RuntimeError(f"training checkpoint {checkpoint_dir / CHECKPOINT_FILE} does not fit this model: {error}") from error
        history = [
            EpochResult(h["epoch"], dict(h["losses"]), h["seconds"], h.get("samples", 0), h.get("complete", True))
            for h in saved["history"]
        ]
        best_score, best_state = saved["best_score"], saved["best_state"]
        events = TrainingEvents(**saved["events"])
        start_epoch = saved["epoch"] + 1
        events.resumed_from_epoch = start_epoch
        if on_resume is not None:
            on_resume(start_epoch)
        log.info("%s: resuming after epoch %d from %s", label, saved["epoch"], checkpoint_dir)
    safe = _Guard(model, optimizer, settings, events)
    budget = TimeBudget(time_limit, spent=sum(h.seconds for h in history))
    steps_per_epoch = max(1, len(batches) // batch_size) if len(batches) >= batch_size else 1
    bar = tqdm(total=epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, desc=label, disable=not progress, leave=False)
    for epoch in range(start_epoch, epochs):
        if budget.cut:
            break
        model.train()
        start = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        steps = skipped_in_epoch = samples = 0
        for batch in batches.epoch(batch_size, generator, drop_last=True):
            losses, skipped = optimisation_step(model, optimizer, step_losses, batch, grad_clip)
            applied = ~skipped
            for name, value in losses.items():
                term = torch.where(applied, value.detach().float(), 0.0)
                sums[name] = sums[name] + term if name in sums else term
            safe.record(skipped)
            steps += 1
            samples += int(batch[0].shape[0])
            if steps % settings.check_every == 0:
                skipped_in_epoch += safe.check()
                bar.update(settings.check_every)
                bar.set_postfix(loss=f"{float(sums['total']) / max(steps - skipped_in_epoch, 1):.4g}", epoch=epoch)
            if budget.expired():
                break
        skipped_in_epoch += safe.check()
        bar.update(steps % settings.check_every)
        complete = not budget.cut or steps >= steps_per_epoch
        if scheduler is not None and complete:
            scheduler.step()
        applied_steps = max(steps - skipped_in_epoch, 1)
        means = {name: float(total) / applied_steps for name, total in sums.items()}
        if validate is not None:
            means["valid"] = float(validate())
            if keep_best and means["valid"] < best_score:
                best_score = means["valid"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        safe.mark_good()
        history.append(EpochResult(epoch, means, time.perf_counter() - start, samples, complete))
        bar.set_postfix({k: f"{v:.4g}" for k, v in means.items() if k in ("total", "valid")})
        if checkpoint_dir is not None and complete:
            events.checkpoints_written += 1
            write_training_checkpoint(checkpoint_dir, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "generator": generator.get_state(), "rng": global_rng_state(),
                "history": [asdict(h) for h in history],
                "best_score": best_score, "best_state": best_state, "events": events.to_dict(),
            })
    bar.close()
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    spent = budget.summary(((h.seconds, h.samples, h.complete) for h in history), epochs)
    if spent.cut:
        log.info("%s: time limit of %.3g s reached after %d of %d epochs (%d samples)", label,
                 time_limit, spent.epochs_completed, epochs, spent.samples_seen)
    return TrainingLog(history, events, spent)


@torch.no_grad()
def reconstruct_full(
    network: torch.nn.Module, prepare: Callable[[torch.Tensor], torch.Tensor], mixtures: np.ndarray, device: str
) -> np.ndarray:
    """``sigmoid`` of a ``(logits, code)`` network's full reconstruction, shaped like ``mixtures``."""
    network.eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        logits, _ = network(prepare(x))
        return torch.sigmoid(logits.float())[:, 0]

    return predict_in_batches(run, mixtures, device, batch_size=128)


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
    """Shared plumbing for methods holding one torch network ``network_``.

    The host class sets ``network_class`` (built from a JSON-able ``config``
    attribute of the network). Networks take ``(B, 1, *shape)`` inputs and
    live channels-last on the method's device. Weights are saved as a state
    dict and read back with ``weights_only=True``.
    """

    network_class: type[torch.nn.Module]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *shape)`` batch -> network input ``(B, 1, *shape)``."""
        return x.unsqueeze(1)

    def _install(self, network: torch.nn.Module) -> None:
        # channels-last convolutions are faster on both oneDNN (CPU) and cuDNN
        self.network_ = network.to(self.context.device, memory_format=torch.channels_last)
        self.n_parameters_ = count_parameters(network)

    def _save_state(self, directory: Path) -> None:
        save_torch_state(
            directory,
            {"network": self.network_.config, "history": getattr(self, "history_", None),
             "training_events": getattr(self, "training_events_", None),
             "training_budget": getattr(self, "training_budget_", None)},
            self.network_.state_dict(),
        )

    def _load_state(self, directory: Path) -> None:
        config, state = load_torch_state(directory)
        network = self.network_class(config["network"])
        network.load_state_dict(state)
        self._install(network)
        self.network_.eval()
        self.history_ = config.get("history")
        self.training_events_ = config.get("training_events")
        self.training_budget_ = config.get("training_budget")
