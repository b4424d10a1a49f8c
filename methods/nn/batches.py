"""Minibatches in and predictions out: what the neural methods read and write, batch by batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

RESIDENT_LIMIT_BYTES = 4 * 2**30
GPU_RESIDENT_SHARE = 0.5
UPLOAD_CHUNK_BYTES = 64 * 2**20


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


__all__ = [
    "GPU_RESIDENT_SHARE", "RESIDENT_LIMIT_BYTES", "UPLOAD_CHUNK_BYTES", "BatchSource",
    "add_channel_axis", "predict_in_batches", "reconstruct_full",
]
