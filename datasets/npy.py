"""Streamed reading and writing of ``.npy`` files without memory maps.

Writing an array through ``np.lib.format.open_memmap`` leaves every written page mapped into the
writing process, so its resident memory grows with the array.  :class:`NpyWriter` instead writes
the header for the final shape and then appends the data block by block with ordinary file
writes (the pages go to the operating system's page cache, not to the process), and
:func:`read_layout` finds where the data of an existing file starts, so that rows can be read with
plain positioned reads (see :class:`datasets.rows.RowView`).  The files are byte for byte what
``np.save`` writes for the same array.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

__all__ = ["NpyLayout", "NpyWriter", "read_layout"]

#: Bytes copied at a time by :meth:`NpyWriter.append_file`.
COPY_CHUNK = 8 * 2**20


@dataclass(frozen=True)
class NpyLayout:
    """Where and how the data of a ``.npy`` file is stored.

    Attributes
    ----------
    path : Path
        The file.
    offset : int
        Byte position of the first element (the header length).
    dtype : np.dtype
        Element type.
    shape : tuple of int
        Array shape.
    fortran_order : bool
        Whether the data is stored column-major.
    """

    path: Path
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        """Size of the data in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def read_layout(path: str | Path) -> NpyLayout:
    """Read the header of a ``.npy`` file.

    Parameters
    ----------
    path : str or Path
        A file written by ``np.save`` (format version 1.0, 2.0 or 3.0).

    Returns
    -------
    NpyLayout
        Data offset, dtype, shape and order.

    Raises
    ------
    ValueError
        If the file is not a ``.npy`` file or holds Python objects.
    """
    path = Path(path)
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        else:  # 2.0 and 3.0 share the header layout; 3.0 only allows utf-8 field names
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(f"{path} holds Python objects; only plain arrays can be streamed")
    return NpyLayout(path, offset, dtype, tuple(int(n) for n in shape), bool(fortran_order))


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> dict[str, object]:
    return {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": tuple(int(n) for n in shape),
    }


class NpyWriter:
    """Write a C-ordered ``.npy`` file of known shape block by block.

    The header for the final ``shape`` is written on opening (format 1.0, or 2.0 when the
    header is too long for it, as ``np.save`` does); blocks of rows are then appended in
    order.  Closing checks that exactly ``shape[0]`` rows were written.  Use as a context
    manager; on an exception the partial file is removed.

    Parameters
    ----------
    path : str or Path
        File to create (overwritten if it exists).
    dtype : np.dtype or str
        Element type; appended blocks are converted to it.
    shape : tuple of int
        Final shape; the first axis is the one blocks are appended along.

    Examples
    --------
    >>> with NpyWriter(path, np.float32, (n, length)) as out:   # doctest: +SKIP
    ...     for block in blocks:
    ...         out.write(block)
    """

    def __init__(self, path: str | Path, dtype: np.dtype | str, shape: tuple[int, ...]) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(n) for n in shape)
        if not self.shape:
            raise ValueError("NpyWriter needs an array of at least one dimension")
        if self.dtype.hasobject:
            raise ValueError("NpyWriter cannot write Python objects")
        self.rows_written = 0
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        try:
            np.lib.format.write_array_header_1_0(self._file, _header(self.dtype, self.shape))
        except ValueError:  # header longer than 65535 bytes
            self._file.seek(0)
            self._file.truncate()
            np.lib.format.write_array_header_2_0(self._file, _header(self.dtype, self.shape))

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row (the trailing axes)."""
        return self.shape[1:]

    def _reserve(self, n: int) -> None:
        if self.rows_written + n > self.shape[0]:
            raise ValueError(
                f"{self.path}: writing {n} more rows would exceed the {self.shape[0]} declared"
            )
        self.rows_written += n

    def write(self, block: np.ndarray) -> None:
        """Append rows.

        Parameters
        ----------
        block : np.ndarray
            Shape ``(k, *row_shape)``; converted to ``dtype``.
        """
        block = np.asarray(block)
        if block.shape[1:] != self.row_shape or block.ndim != len(self.shape):
            raise ValueError(
                f"{self.path}: block of shape {block.shape} does not fit rows of {self.row_shape}"
            )
        self._reserve(block.shape[0])
        self._file.write(np.ascontiguousarray(block, dtype=self.dtype).data)

    def fill(self, n: int, value: object) -> None:
        """Append ``n`` rows filled with ``value``, at most one row's worth at a time in memory.

        Parameters
        ----------
        n : int
            Number of rows.
        value : scalar
            Fill value (e.g. ``np.nan`` or ``False``).
        """
        row = np.full((1, *self.row_shape), value, dtype=self.dtype)
        rows_per_block = max(1, COPY_CHUNK // max(row.nbytes, 1))
        block = np.repeat(row, min(n, rows_per_block), axis=0)
        for start in range(0, n, rows_per_block):
            self.write(block[: min(rows_per_block, n - start)])

    def append_file(self, path: str | Path) -> int:
        """Append all rows of another ``.npy`` file.

        A file of the same dtype and row shape in C order is copied as bytes in chunks of
        :data:`COPY_CHUNK`, so memory does not depend on its size; any other file is loaded and
        converted.

        Parameters
        ----------
        path : str or Path
            Source file, shape ``(k, *row_shape)``.

        Returns
        -------
        int
            Rows appended.
        """
        layout = read_layout(path)
        if layout.shape[1:] != self.row_shape or len(layout.shape) != len(self.shape):
            raise ValueError(f"{path}: shape {layout.shape} does not fit rows of {self.row_shape}")
        n = layout.shape[0]
        if layout.dtype != self.dtype or (layout.fortran_order and len(layout.shape) > 1):
            self.write(np.load(path, allow_pickle=False))
            return n
        self._reserve(n)
        with open(path, "rb") as source:
            source.seek(layout.offset)
            before = self._file.tell()
            shutil.copyfileobj(source, self._file, COPY_CHUNK)
            if self._file.tell() - before != layout.nbytes:
                raise ValueError(f"{path}: data size differs from its header (truncated file?)")
        return n

    def close(self) -> None:
        """Close the file; raises ValueError if fewer rows than declared were written."""
        if self._file.closed:
            return
        self._file.close()
        if self.rows_written != self.shape[0]:
            raise ValueError(
                f"{self.path}: {self.rows_written} rows written, {self.shape[0]} declared"
            )

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        self._file.close()
        self.path.unlink(missing_ok=True)
