"""Tests for streamed .npy writing (datasets/npy.py), lazy row views (datasets/rows.py) and
their use in the segment cache and the MESA suite."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from benchmark.suites.mesa import MesaSuite
from datasets import mesa
from datasets.npy import NpyWriter, read_layout
from datasets.rows import RowView
from methods.base import Split

N, L = 40, 12


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(3).random((N, L)).astype(np.float32)
    data[5] = np.nan
    path = tmp_path / "x.npy"
    np.save(path, data)
    return path, data


# --------------------------------------------------------------------------- NpyWriter


@pytest.mark.parametrize(
    "array",
    [
        np.random.default_rng(0).random((7, 5)).astype(np.float32),
        np.arange(9, dtype=np.int64),
        np.array([True, False, True]),
        np.array(["a", "bcd"], dtype="<U3"),
        np.zeros((0, 4), dtype=np.float32),
    ],
)
def test_writer_is_byte_identical_to_np_save(tmp_path: Path, array: np.ndarray) -> None:
    np.save(tmp_path / "reference.npy", array)
    with NpyWriter(tmp_path / "streamed.npy", array.dtype, array.shape) as out:
        for start in range(0, len(array), 2):
            out.write(array[start : start + 2])
    assert (tmp_path / "streamed.npy").read_bytes() == (tmp_path / "reference.npy").read_bytes()


def test_writer_appends_files_fills_and_converts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    parts = [rng.random((n, L)).astype(np.float32) for n in (3, 1, 4)]
    for i, part in enumerate(parts):
        np.save(tmp_path / f"part{i}.npy", part)
    np.save(tmp_path / "float64.npy", parts[0].astype(np.float64))
    with NpyWriter(tmp_path / "all.npy", np.float32, (13, L)) as out:
        assert [out.append_file(tmp_path / f"part{i}.npy") for i in range(3)] == [3, 1, 4]
        out.fill(2, np.nan)
        out.append_file(tmp_path / "float64.npy")
    expected = np.concatenate([*parts, np.full((2, L), np.nan, np.float32), parts[0]])
    loaded = np.load(tmp_path / "all.npy", mmap_mode="r")
    np.testing.assert_array_equal(loaded, expected)
    assert loaded.dtype == np.float32 and read_layout(tmp_path / "all.npy").shape == (13, L)


def test_writer_rejects_wrong_row_counts_and_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1 rows written, 2 declared"):
        with NpyWriter(tmp_path / "short.npy", np.float32, (2, L)) as out:
            out.write(np.zeros((1, L)))
    with pytest.raises(ValueError, match="exceed"):
        with NpyWriter(tmp_path / "long.npy", np.float32, (1, L)) as out:
            out.write(np.zeros((2, L)))
    assert not (tmp_path / "long.npy").exists()  # removed on error
    with pytest.raises(ValueError, match="does not fit"):
        with NpyWriter(tmp_path / "wide.npy", np.float32, (1, L)) as out:
            out.write(np.zeros((1, L + 1)))


def test_write_split_streams_parts_into_the_cache_layout(tmp_path: Path) -> None:
    """``_write_split`` output equals the concatenation of the parts, missing truth as NaN."""
    rng = np.random.default_rng(2)
    parts, expected = [], {"ECG": [], "available_ECG": [], "true_respiration": [], "heart_rate": []}
    for i, n in enumerate((3, 2, 4)):
        folder = tmp_path / "parts" / f"rec{i}"
        folder.mkdir(parents=True)
        arrays = {
            "ECG": rng.random((n, L)).astype(np.float32),
            "available_ECG": rng.random(n) < 0.7,
            "segment_index": np.arange(n, dtype=np.int64),
            "start_time": np.arange(n) * 61.44,
            "heart_rate": rng.uniform(50, 90, n),
        }
        if i != 1:  # the second recording has no true respiration
            arrays["true_respiration"] = rng.random((n, L)).astype(np.float32)
            arrays["available_true_respiration"] = np.ones(n, dtype=bool)
        for name, value in arrays.items():
            np.save(folder / f"{name}.npy", value)
            if name in expected:
                expected[name].append(value)
        if i == 1:
            expected["true_respiration"].append(np.full((n, L), np.nan, np.float32))
        parts.append({"id": f"mesa-sleep-{i:04d}", "segments": n, "part": str(folder)})
    missing = mesa._write_split(parts, ["ECG", "true_respiration"], tmp_path / "train", L)
    loaded = {p.stem: np.load(p, mmap_mode="r") for p in (tmp_path / "train").glob("*.npy")}
    for name, pieces in expected.items():
        np.testing.assert_array_equal(loaded[name], np.concatenate(pieces))
    assert loaded["recording"].tolist() == ["mesa-sleep-0000"] * 3 + ["mesa-sleep-0001"] * 2 + [
        "mesa-sleep-0002"
    ] * 4
    assert loaded["ECG"].dtype == np.float32 and loaded["heart_rate"].dtype == np.float64
    assert missing == {
        "ECG": int((~np.concatenate(expected["available_ECG"])).sum()),
        "true_respiration": 2,
    }


# --------------------------------------------------------------------------- RowView


@pytest.mark.parametrize("kind", ["path", "memmap", "array"])
def test_row_view_reads_the_selected_rows(stored: tuple[Path, np.ndarray], kind: str) -> None:
    path, data = stored
    source = {"path": path, "memmap": np.load(path, mmap_mode="r"), "array": data}[kind]
    rows = np.array([7, 8, 9, 2, 2, 39, 0, 5, 6])
    view = RowView(source, rows)
    assert (kind == "array") == (view._layout is None)  # a whole-file map is read from its file
    assert view.shape == (9, L) and len(view) == 9 and view.ndim == 2 and view.dtype == np.float32
    expected = data[rows]
    np.testing.assert_array_equal(np.asarray(view), expected)
    np.testing.assert_array_equal(view[:], expected)
    rng = np.random.default_rng(4)
    for _ in range(5):
        index = rng.integers(0, len(view), size=6)
        np.testing.assert_array_equal(view[index], expected[index])  # unsorted, repeats
        np.testing.assert_array_equal(view[np.sort(index)], expected[np.sort(index)])
    np.testing.assert_array_equal(view[2:7:2], expected[2:7:2])
    np.testing.assert_array_equal(view[-1], expected[-1])
    np.testing.assert_array_equal(view[expected[:, 0] > 0.5], expected[expected[:, 0] > 0.5])
    np.testing.assert_array_equal(view[:, None], expected[:, None])
    np.testing.assert_array_equal(view[[1, 3], 4:6], expected[[1, 3], 4:6])
    assert view[[]].shape == (0, L)
    assert isinstance(view[[0]], np.ndarray) and view[[0]].dtype == np.float32
    with pytest.raises(IndexError):
        view[9]
    with pytest.raises(IndexError):
        view[np.array([0, 9])]


def test_row_view_all_rows_row_shape_and_pickling(stored: tuple[Path, np.ndarray]) -> None:
    path, data = stored
    view = RowView(path)
    assert view.shape == (N, L)
    np.testing.assert_array_equal(np.asarray(view, dtype=np.float64), data.astype(np.float64))
    targets = RowView(path, [3, 1], row_shape=(1, L))
    assert targets.shape == (2, 1, L)
    np.testing.assert_array_equal(targets[:], data[[3, 1]][:, None])
    again = pickle.loads(pickle.dumps(targets))
    np.testing.assert_array_equal(again[[1]], data[[1]][:, None])
    with pytest.raises(ValueError, match="row_shape"):
        RowView(path, row_shape=(2, L))
    with pytest.raises(IndexError):
        RowView(path, [N])
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(view, copy=False)


def test_row_view_of_a_memmap_slice_reads_the_slice(stored: tuple[Path, np.ndarray]) -> None:
    path, data = stored
    sliced = np.load(path, mmap_mode="r")[10:20]
    view = RowView(sliced, [0, 9])
    assert view._layout is None
    np.testing.assert_array_equal(view[:], data[[10, 19]])


def test_split_accepts_row_views_and_blind_keeps_them(stored: tuple[Path, np.ndarray]) -> None:
    path, data = stored
    rows = np.array([1, 4, 6])
    split = Split(RowView(path, rows), ("nasal_pressure",), RowView(path, rows, row_shape=(1, L)))
    assert len(split) == 3 and split.modality == "1d" and split.signal_shape == (L,)
    blind = split.blind()
    assert blind.targets is None and blind.mixtures is split.mixtures
    with pytest.raises(ValueError, match="does not match"):
        Split(RowView(path, rows), ("nasal_pressure",), RowView(path, rows[:2], row_shape=(1, L)))


def test_mesa_suite_split_is_lazy(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    data = {name: rng.random((N, L)).astype(np.float32) for name in ("ECG", "nasal_pressure")}
    for name, value in data.items():
        np.save(tmp_path / f"{name}.npy", value)
    maps = {name: np.load(tmp_path / f"{name}.npy", mmap_mode="r") for name in data}
    rows = np.array([0, 3, 4, 10])
    split = MesaSuite._split(maps, rows, "ECG", with_target=True)
    assert isinstance(split.mixtures, RowView) and isinstance(split.targets, RowView)
    assert split.targets.shape == (4, 1, L) and split.sampling_rate == 200.0
    np.testing.assert_array_equal(np.asarray(split.mixtures), data["ECG"][rows])
    np.testing.assert_array_equal(split.targets[[1, 2]], data["nasal_pressure"][rows[[1, 2]]][:, None])
    assert MesaSuite._split(maps, rows, "ECG", with_target=False).targets is None


def test_training_code_reads_row_views(stored: tuple[Path, np.ndarray]) -> None:
    """The batch source of the neural methods and a classical method take a RowView."""
    import torch

    from methods.nn.batches import BatchSource
    from methods.pca import PCAMethod

    path, data = stored
    rows = np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 20, 30])  # row 5 is NaN
    view = RowView(path, rows)
    for limit in (2**30, 0):  # resident copy, then batch-by-batch reads
        source = BatchSource([view], "cpu", resident_limit=limit)
        assert source.resident == bool(limit)
        seen = torch.cat([batch[0] for batch in source.epoch(5, torch.Generator().manual_seed(0))])
        assert seen.shape == (len(rows), L)
        np.testing.assert_array_equal(np.sort(seen.numpy(), axis=0), np.sort(data[rows], axis=0))
    method = PCAMethod(n_components=2, max_rows=8).fit(Split(view, ("nasal_pressure",)))
    assert method.separate(view[:3]).shape == (3, 2, L)
