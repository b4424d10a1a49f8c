"""Tests for the triangles & circles toy dataset (datasets/triangles.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import convolve2d

from datasets import triangles
from datasets.triangles import (
    DISTORTION_KERNEL,
    TrianglesConfig,
    generate,
    load_or_generate,
    pnl_mixture,
    split_indices,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZE = 64


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _minmax(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min())


def _extent(mask: np.ndarray, axis: int) -> np.ndarray:
    """Number of rows (axis=2) or columns (axis=1) of each sample that contain the shape."""
    return mask.any(axis=axis).sum(axis=1)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return generate(TrianglesConfig(n=48, seed=3), progress=False)


@pytest.fixture(scope="module")
def many() -> dict[str, np.ndarray]:
    return generate(TrianglesConfig(n=400, seed=11), progress=False)


# --------------------------------------------------------------------------- mixing system


def test_kernel_is_eq22():
    expected = [
        [1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.5, 1.0, 0.5],
        [0.0, 0.0, 0.0, 0.5, 1.0],
        [0.0, 0.0, 0.5, 1.0, 0.5],
        [1.0, 1.0, 0.0, 0.0, 0.0],
    ]
    assert DISTORTION_KERNEL.dtype == np.float32
    np.testing.assert_array_equal(DISTORTION_KERNEL, np.array(expected, dtype=np.float32))


def test_pnl_mixture_matches_reference_convolution():
    rng = np.random.default_rng(0)
    tri = (rng.random((4, 20, 24)) > 0.6).astype(np.float32)
    circ = (rng.random((4, 20, 24)) > 0.5).astype(np.float32)
    flip = np.array([False, True, False, True])

    out = pnl_mixture(tri, circ, flip, beta=6.0)

    assert out.dtype == np.float32 and out.shape == tri.shape
    for i in range(4):
        kernel = DISTORTION_KERNEL[:, ::-1] if flip[i] else DISTORTION_KERNEL
        squashed = _minmax(_sigmoid(3.0 * (tri[i].astype(np.float64) + circ[i])))
        expected = _minmax(convolve2d(squashed, kernel.astype(np.float64), mode="same"))
        np.testing.assert_allclose(out[i], expected, atol=1e-5)
    unflipped = pnl_mixture(tri, circ, np.zeros(4, dtype=bool))
    assert np.abs(unflipped[1] - out[1]).max() > 0.1


def _impulses(shape=(1, 32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Triangle pixels at (8, 8) and (20, 20); the circle overlaps only at (8, 8)."""
    tri = np.zeros(shape, dtype=np.float32)
    circ = np.zeros(shape, dtype=np.float32)
    tri[0, 8, 8] = tri[0, 20, 20] = 1.0
    circ[0, 8, 8] = 1.0
    return tri, circ


@pytest.mark.parametrize("flip", [False, True])
def test_pnl_mixture_by_hand(flip: bool):
    # After the sigmoid and min-max: background 0, overlap 1, a single shape
    # a = (sigmoid(3) - 1/2) / (sigmoid(6) - 1/2).  A true convolution copies the kernel
    # (mirrored if flipped) around each impulse, scaled by the impulse value.
    tri, circ = _impulses()
    a = (1 / (1 + math.exp(-3)) - 0.5) / (1 / (1 + math.exp(-6)) - 0.5)
    kernel = DISTORTION_KERNEL[:, ::-1] if flip else DISTORTION_KERNEL
    expected = np.zeros((32, 32), dtype=np.float32)
    expected[6:11, 6:11] = kernel
    expected[18:23, 18:23] = a * kernel

    out = pnl_mixture(tri, circ, np.array([flip]), beta=6.0)[0]

    assert a == pytest.approx(0.909647, abs=1e-6)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_pnl_mixture_without_overlap_gives_equal_levels():
    tri, circ = _impulses()
    circ[0, 8, 8] = 0.0
    circ[0, 8, 24] = 1.0
    out = pnl_mixture(tri, circ, np.array([False]))[0]
    for row, col in [(8, 8), (20, 20), (8, 24)]:
        np.testing.assert_allclose(out[row - 2 : row + 3, col - 2 : col + 3], DISTORTION_KERNEL)


def test_pnl_mixture_constant_input_is_zero():
    zeros = np.zeros((2, 8, 8), dtype=np.float32)
    out = pnl_mixture(zeros, zeros, np.array([False, True]))
    np.testing.assert_array_equal(out, 0.0)


# --------------------------------------------------------------------------- generated data


def test_shapes_dtypes_and_ranges(data):
    for key in ("mixture", "triangle", "circle"):
        assert data[key].shape == (48, SIZE, SIZE)
        assert data[key].dtype == np.float32
        assert data[key].min() >= 0.0 and data[key].max() <= 1.0
    assert data["flipped"].shape == (48,) and data["flipped"].dtype == bool
    np.testing.assert_array_equal(data["mixture"].min(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(data["mixture"].max(axis=(1, 2)), 1.0, atol=1e-6)
    for key in ("triangle", "circle"):
        np.testing.assert_array_equal(data[key].min(axis=(1, 2)), 0.0)
        np.testing.assert_allclose(data[key].max(axis=(1, 2)), 1.0)


def test_mixture_is_pnl_of_sources(data):
    expected = pnl_mixture(data["triangle"], data["circle"], data["flipped"])
    np.testing.assert_array_equal(data["mixture"], expected)


def test_about_half_flipped(many):
    # Binomial(400, 0.5) has standard deviation 10.
    assert 150 <= many["flipped"].sum() <= 250


def test_shape_widths(many):
    low, high = 0.4 * SIZE - 2, 0.6 * SIZE + 2
    for key in ("triangle", "circle"):
        width = _extent(many[key] > 0.5, axis=1)
        assert width.min() >= low and width.max() <= high
        assert width.max() - width.min() >= 8, "widths should spread over the range"


def test_shapes_are_whole(many):
    # A shape clipped by the border loses extent along one axis only.
    tri, circ = many["triangle"] > 0.5, many["circle"] > 0.5
    circ_gap = _extent(circ, axis=2) - _extent(circ, axis=1)
    assert np.abs(circ_gap).max() <= 2
    tri_gap = _extent(tri, axis=2) - math.sqrt(3) / 2 * _extent(tri, axis=1)
    assert tri_gap.min() >= -2 and tri_gap.max() <= 3.5
    for key in ("triangle", "circle"):
        image = many[key]
        border = np.concatenate(
            [image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], axis=1
        )
        assert (border.max(axis=1) > 0.5).mean() < 0.25


def test_sampled_geometry_inside_render_area():
    config = TrianglesConfig(n=1, geometry="continuous")
    left, top, width = triangles._sample_geometry(np.random.default_rng(0), 2000, config)
    height = width * np.array([math.sqrt(3) / 2, 1.0])
    limit = config.render_size - 1
    assert width.min() >= 0.4 * 128 and width.max() <= 0.6 * 128
    assert left.min() >= 0 and (left + width).max() <= limit
    assert top.min() >= 0 and (top + height).max() <= limit
    # Positions cover the admissible range, not only its middle.
    assert (left / (limit - width)).min() < 0.05 and (left / (limit - width)).max() > 0.95


def test_authors_geometry_is_integer_and_inside():
    config = TrianglesConfig(n=1)
    left, top, width = triangles._sample_geometry(np.random.default_rng(0), 4000, config)
    limit = config.render_size - 1
    # The authors' recipe: integer widths 51..75 at 128 px, every value drawn, integer corners.
    assert set(np.unique(width).astype(int)) == set(range(51, 76))
    assert np.all(left == np.round(left)) and np.all(top == np.round(top))
    height = np.stack([np.ceil(width[:, 0] * math.sqrt(3) / 2), width[:, 1]], axis=1)
    assert left.min() == 0 and (left + width).max() == limit
    assert top.min() == 0 and (top + height).max() == limit


def test_authors_geometry_is_darker_than_continuous():
    """The continuous widths (mean 64 px instead of 63) make mixtures about 2-3 % brighter."""
    authors = generate(TrianglesConfig(n=1000, seed=0), progress=False)["mixture"].mean()
    continuous = generate(TrianglesConfig(n=1000, seed=0, geometry="continuous"), progress=False)["mixture"].mean()
    assert 0.01 < continuous / authors - 1 < 0.05


def test_continuous_geometry_keeps_its_version_1_key():
    # The key of the first generator's caches and results, before the geometry option existed.
    assert TrianglesConfig(n=8000, geometry="continuous").key() == "2dc953b2d872b4c3"
    assert TrianglesConfig(n=8000).key() != "2dc953b2d872b4c3"
    with pytest.raises(ValueError, match="geometry"):
        TrianglesConfig(n=8, geometry="round")


def test_triangle_apex_direction(data):
    # Authors' geometry: apex towards increasing row index, so the widest row is the first.
    tri = data["triangle"] > 0.5
    for mask in tri[:8]:
        rows = np.where(mask.any(axis=1))[0]
        assert mask[rows[0]].sum() > mask[rows[-1]].sum()
    legacy = generate(TrianglesConfig(n=8, seed=3, geometry="continuous"), progress=False)["triangle"] > 0.5
    for mask in legacy:
        rows = np.where(mask.any(axis=1))[0]
        assert mask[rows[0]].sum() < mask[rows[-1]].sum()


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_data(data):
    again = generate(TrianglesConfig(n=48, seed=3), progress=False)
    for key, value in data.items():
        np.testing.assert_array_equal(again[key], value)


def test_different_seed_different_data(data):
    other = generate(TrianglesConfig(n=48, seed=4), progress=False)
    for key in ("mixture", "triangle", "circle"):
        assert not np.array_equal(other[key], data[key])


def test_independent_of_jobs(monkeypatch):
    monkeypatch.setattr(triangles, "CHUNK_SIZE", 8)
    config = TrianglesConfig(n=20, seed=7)
    serial = generate(config, n_jobs=1, progress=False)
    parallel = generate(config, n_jobs=2, progress=False)
    for key, value in serial.items():
        np.testing.assert_array_equal(parallel[key], value)


# --------------------------------------------------------------------------- config and cache


def test_config_key_and_validation():
    config = TrianglesConfig(n=10, seed=1)
    assert config.key() == TrianglesConfig(n=10, seed=1).key()
    assert len(config.key()) == 16 and int(config.key(), 16) >= 0
    assert config.key() != TrianglesConfig(n=10, seed=2).key()
    assert config.key() != TrianglesConfig(n=10, seed=1, beta=4.0).key()
    assert config.to_dict()["beta"] == 6.0 and config.to_dict()["n"] == 10
    for bad in (dict(n=0), dict(n=5, min_width=0.7), dict(n=5, flip_prob=1.5)):
        with pytest.raises(ValueError):
            TrianglesConfig(**bad)


def _fail(*args, **kwargs):
    raise AssertionError("dataset was regenerated")


def test_cache_roundtrip(tmp_path, monkeypatch):
    config = TrianglesConfig(n=12, seed=5)
    first = load_or_generate(config, tmp_path, progress=False)
    fresh = generate(config, progress=False)

    target = tmp_path / f"triangles-{config.key()}"
    assert sorted(p.name for p in target.iterdir()) == [
        "circle.npy", "config.json", "flipped.npy", "mixture.npy", "triangle.npy",
    ]  # fmt: skip
    assert json.loads((target / "config.json").read_text()) == config.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]

    monkeypatch.setattr(triangles, "generate", _fail)
    monkeypatch.setattr(triangles, "_iter_chunks", _fail)
    second = load_or_generate(config, tmp_path, progress=False)
    for key in ("mixture", "triangle", "circle"):
        for loaded in (first[key], second[key]):
            assert isinstance(loaded, np.memmap) and loaded.dtype == np.float16
            np.testing.assert_array_equal(loaded, fresh[key].astype(np.float16))
    np.testing.assert_array_equal(second["flipped"], fresh["flipped"])


def test_cache_separates_configs(tmp_path):
    a = load_or_generate(TrianglesConfig(n=6, seed=0), tmp_path, progress=False)
    b = load_or_generate(TrianglesConfig(n=6, seed=1), tmp_path, progress=False)
    assert len(list(tmp_path.glob("triangles-*"))) == 2
    assert not np.array_equal(a["mixture"], b["mixture"])


def test_cache_ignores_leftover_tmp_dirs(tmp_path):
    config = TrianglesConfig(n=6, seed=2)
    dead = tmp_path / f".triangles-{config.key()}.tmp-999999999-abc"
    alive = tmp_path / f".triangles-{config.key()}.tmp-{os.getpid()}-xyz"
    for leftover in (dead, alive):
        leftover.mkdir()
        (leftover / "mixture.npy").write_bytes(b"garbage")

    out = load_or_generate(config, tmp_path, progress=False)

    expected = generate(config, progress=False)["mixture"].astype(np.float16)
    np.testing.assert_array_equal(out["mixture"], expected)
    assert not dead.exists(), "leftover of a dead writer should be removed"
    assert alive.exists(), "a directory possibly still being written must be left alone"


# --------------------------------------------------------------------------- splits


def test_split_indices():
    split = split_indices(1000, seed=0)
    assert [len(split[k]) for k in ("train", "valid", "test")] == [750, 50, 200]
    joined = np.concatenate(list(split.values()))
    np.testing.assert_array_equal(np.sort(joined), np.arange(1000))
    for part in split.values():
        assert np.all(np.diff(part) > 0)
    again = split_indices(1000, seed=0)
    for key, part in split.items():
        np.testing.assert_array_equal(again[key], part)
    assert not np.array_equal(split_indices(1000, seed=1)["test"], split["test"])


def test_split_indices_small_n():
    split = split_indices(10, seed=3)
    assert [len(split[k]) for k in ("train", "valid", "test")] == [7, 1, 2]
    with pytest.raises(ValueError):
        split_indices(0, seed=0)


# --------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datasets.triangles", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_writes_npz(tmp_path):
    out = tmp_path / "x.npz"
    result = _cli("--n", "8", "--seed", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with np.load(out) as npz:
        assert sorted(npz.files) == ["circle", "flipped", "mixture", "triangle"]
        expected = generate(TrianglesConfig(n=8, seed=1), progress=False)
        for key in ("mixture", "triangle", "circle"):
            assert npz[key].shape == (8, SIZE, SIZE) and npz[key].dtype == np.float32
            np.testing.assert_array_equal(npz[key], expected[key])
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


@pytest.mark.parametrize(
    "args",
    [("--n", "0", "--out", "x.npz"), ("--n", "2", "--out", "/nonexistent-dir/sub/x.npz")],
)
def test_cli_errors(args):
    result = _cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr
