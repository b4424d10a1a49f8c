"""Lazy float32 views of selected rows of an on-disk array.

A :class:`RowView` stands for ``array[rows]`` without reading it: indexing reads only the rows
asked for, with positioned reads from the ``.npy`` file, one read per run of consecutive rows.
Unlike indexing a memory map, this leaves no mapped pages behind in the reading process, so a
training loop that draws batches over a whole split keeps a resident memory independent of the
split's size.  ``np.asarray(view)`` still materialises everything for code that needs a plain
array.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datasets.npy import NpyLayout, read_layout

__all__ = ["RowView"]

_FLOAT32 = np.dtype(np.float32)


def _file_layout(array: np.ndarray) -> NpyLayout | None:
    """Layout of the ``.npy`` file behind a whole-file memory map (``np.load(mmap_mode=...)``).

    None for anything else (an in-memory array, or a slice or other view of a memory map),
    which is then indexed directly.
    """
    if not isinstance(array, np.memmap) or not isinstance(array.base, mmap.mmap):
        return None
    filename = getattr(array, "filename", None)
    if not filename or not array.flags.c_contiguous:
        return None
    try:
        layout = read_layout(filename)
    except (OSError, ValueError):
        return None
    same = (
        layout.offset == array.offset
        and layout.dtype == array.dtype
        and layout.shape == array.shape
        and (not layout.fortran_order or array.ndim < 2)
    )
    return layout if same else None


class RowView:
    """Selected rows of a 2-D or higher array, read on demand as float32.

    Parameters
    ----------
    source : str, Path or np.ndarray
        A ``.npy`` file, a memory map of a whole ``.npy`` file (as ``np.load(path,
        mmap_mode="r")`` returns; its file is then read directly, not through the map) or any
        other array (indexed in memory).
    rows : array of int, optional
        Rows of ``source`` the view exposes, in order (repeats allowed); default all rows.
    row_shape : tuple of int, optional
        Shape each row is presented with; must hold the same number of elements as a stored
        row.  ``(1, L)`` turns ``(n, L)`` signals into ``(n, 1, L)`` single-source targets.

    Attributes
    ----------
    rows : np.ndarray
        Int64 positions in ``source`` of the view's rows.
    shape : tuple of int
        ``(len(rows), *row_shape)``.
    dtype : np.dtype
        Always float32: every read is converted.

    Notes
    -----
    Indexing with an int returns one row; with a slice, a list or an int array (any order,
    repeats allowed) or a boolean mask, a ``(k, *row_shape)`` array; a tuple applies its
    remaining entries to that result (``view[:, None]``).  Every result is a fresh float32
    array.  A view holds no open file and pickles cheaply.
    """

    def __init__(
        self,
        source: str | Path | np.ndarray,
        rows: Sequence[int] | np.ndarray | None = None,
        row_shape: tuple[int, ...] | None = None,
    ) -> None:
        if isinstance(source, str | Path):
            self._layout: NpyLayout | None = read_layout(source)
            self._array: np.ndarray | None = None
            if self._layout.fortran_order and len(self._layout.shape) > 1:
                raise ValueError(f"{source}: Fortran-ordered arrays cannot be read by rows")
            stored = self._layout.shape
        else:
            self._layout = _file_layout(source) if isinstance(source, np.ndarray) else None
            self._array = None if self._layout is not None else source
            stored = tuple(source.shape)
        if len(stored) < 1:
            raise ValueError("RowView needs an array with a row axis")
        n_stored = stored[0]
        if rows is None:
            self.rows = np.arange(n_stored, dtype=np.int64)
        else:
            self.rows = np.asarray(rows)
            if self.rows.ndim != 1 or not (
                self.rows.size == 0 or np.issubdtype(self.rows.dtype, np.integer)
            ):
                raise ValueError("rows must be a one-dimensional array of integers")
            self.rows = self.rows.astype(np.int64)
            if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= n_stored):
                raise IndexError(f"rows out of range for {n_stored} stored rows")
        self._stored_row = tuple(int(n) for n in stored[1:])
        self.row_shape = self._stored_row if row_shape is None else tuple(int(n) for n in row_shape)
        if int(np.prod(self.row_shape)) != int(np.prod(self._stored_row)):
            raise ValueError(
                f"row_shape {self.row_shape} does not match rows of {self._stored_row}"
            )

    # ------------------------------------------------------------------ array protocol
    @property
    def shape(self) -> tuple[int, ...]:
        """``(len(rows), *row_shape)``."""
        return (len(self.rows), *self.row_shape)

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        """float32."""
        return _FLOAT32

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Bytes of the materialised float32 array."""
        return self.size * _FLOAT32.itemsize

    def __len__(self) -> int:
        return len(self.rows)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("a RowView is read from its source: it cannot be used without a copy")
        out = self._read(self.rows)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key: object) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        if key is Ellipsis:
            key, rest = slice(None), (Ellipsis, *rest)
        if isinstance(key, int | np.integer):
            index = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} rows")
            out = self._read(self.rows[index : index + 1])[0]
            return out[rest] if rest else out
        elif isinstance(key, slice):
            out = self._read(self.rows[key])
        else:
            index = np.asarray(key)
            if index.dtype == bool:
                if index.shape != (len(self),):
                    raise IndexError(f"boolean index of shape {index.shape} for {len(self)} rows")
                index = np.flatnonzero(index)
            elif index.size == 0:
                index = index.astype(np.int64)
            elif not np.issubdtype(index.dtype, np.integer) or index.ndim != 1:
                raise IndexError("rows must be an int, a slice, a 1-D int array or a boolean mask")
            out = self._read(self.rows[index])  # numpy checks the range and negative indices
        return out[(slice(None), *rest)] if rest else out

    def __repr__(self) -> str:
        where = self._layout.path if self._layout is not None else "memory"
        return f"RowView({str(where)!r}, shape={self.shape})"

    # ------------------------------------------------------------------ reading
    def _read(self, positions: np.ndarray) -> np.ndarray:
        """Rows ``positions`` of the source as a fresh float32 ``(k, *row_shape)`` array."""
        if self._array is not None:  # indexing with an int array always copies
            block = np.asarray(self._array[positions], dtype=np.float32)
            return block.reshape(len(positions), *self.row_shape)
        wanted, inverse = np.unique(positions, return_inverse=True)
        block = _read_sorted_rows(self._layout, wanted)
        if len(wanted) != len(positions) or np.any(wanted != positions):
            block = block[inverse.reshape(-1)]
        return block.astype(np.float32, copy=False).reshape(len(positions), *self.row_shape)


def _read_sorted_rows(layout: NpyLayout, rows: np.ndarray) -> np.ndarray:
    """Read unique sorted ``rows`` of a C-ordered ``.npy`` file, one read per consecutive run."""
    row_shape = layout.shape[1:]
    out = np.empty((len(rows), *row_shape), dtype=layout.dtype)
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * layout.dtype.itemsize
    if not len(rows) or not row_bytes:
        return out
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [len(rows)]))
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    with open(layout.path, "rb", buffering=0) as f:
        for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
            f.seek(layout.offset + int(rows[start]) * row_bytes)
            target = buffer[start * row_bytes : stop * row_bytes]
            while len(target):
                got = f.readinto(target)
                if not got:
                    raise OSError(f"{layout.path}: file ends before row {rows[stop - 1]}")
                target = target[got:]
    return out
