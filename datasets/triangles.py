"""Triangles & circles toy dataset of post-non-linear (PNL) single-channel mixtures.

Generator for the toy dataset of "Blind Source Separation of Single-Channel Mixtures via
Multi-Encoder Autoencoders" (section 4.1, Eq. 19-22, appendix C.2).

Each sample holds two sources, drawn with Pillow at ``render_size`` x ``render_size`` pixels
(1.0 inside a shape, 0.0 outside) and downsampled to ``size`` x ``size`` with bilinear
resampling:

* a triangle whose base (its width) and height ``width * sqrt(3) / 2`` make it equilateral;
* a circle whose diameter is its width.

Two geometries are offered (``TrianglesConfig.geometry``):

``"authors"`` (default, generator version 2)
    The authors' recipe, behind the paper's Table 1: integer widths uniform in
    ``[int(min_width * render_size), int(max_width * render_size))`` (51..75 px at 128), integer
    corners keeping the shape inside, apex towards increasing row index (vertices ``(x0, y0)``,
    ``(x0 + w // 2, y0 + w * sqrt(3) / 2)``, ``(x0 + w, y0)`` in (column, row) coordinates).
``"continuous"`` (generator version 1, kept for reproducibility)
    Real-valued widths in ``[min_width, max_width] * render_size`` (mean 64 px, not 63) and
    positions, apex towards decreasing row index (the kernel is symmetric top-to-bottom, so
    only the widths change the data's statistics).

The mixture follows Eq. 19-20::

    mixture = Scaled(Scaled(sigmoid(beta / 2 * (triangle + circle))) * K)

where ``Scaled`` is a per-sample min-max scaling to [0, 1], ``*`` a true 2-D convolution ('same'
size, zero padding) and ``K`` the 5x5 distortion kernel of Eq. 22, flipped left-right for each
sample with probability ``flip_prob``.  The outer ``Scaled`` maps each final mixture to [0, 1];
both sources are also min-max scaled per sample.

Samples are generated in fixed-size chunks whose random generators are spawned from
``np.random.SeedSequence(seed)``, so the dataset depends only on the configuration, never on the
number of parallel jobs.  ``load_or_generate`` adds an atomic on-disk cache (float16) and the
module doubles as a command line tool::

    python -m datasets.triangles --n 150000 --seed 0 --out triangles.npz --jobs 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from PIL import Image, ImageDraw
from scipy import ndimage
from tqdm import tqdm

from datasets.notebook_shapes import render_notebook_shape

__all__ = [
    "DISTORTION_KERNEL",
    "TrianglesConfig",
    "generate",
    "load_or_generate",
    "pnl_mixture",
    "split_indices",
]

DISTORTION_KERNEL: np.ndarray = np.array(
    [
        [1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.5, 1.0, 0.5],
        [0.0, 0.0, 0.0, 0.5, 1.0],
        [0.0, 0.0, 0.5, 1.0, 0.5],
        [1.0, 1.0, 0.0, 0.0, 0.0],
    ],
    dtype=np.float32,
)
DISTORTION_KERNEL.setflags(write=False)

#: Samples per chunk; each chunk has its own spawned random generator.
CHUNK_SIZE = 2000
PROCESS_JOBS_FROM = 4
#: Bumped whenever the generator changes its output, so that stale caches are not reused.
#: Version 1 is the ``"continuous"`` geometry, version 2 added the authors' integer geometry,
#: version 3 the authors' notebook pixels (``"notebook"``, :mod:`datasets.notebook_shapes`).
GENERATOR_VERSION = 2
GEOMETRY_VERSIONS = {"continuous": 1, "authors": 2, "notebook": 3}
GEOMETRIES = ("authors", "continuous", "notebook")

ARRAY_KEYS = ("mixture", "triangle", "circle")
_TRIANGLE_HEIGHT = math.sqrt(3.0) / 2.0


@dataclass(frozen=True)
class TrianglesConfig:
    """Parameters of a triangles & circles dataset.

    Parameters
    ----------
    n : int
        Number of samples.
    seed : int
        Seed of the root ``np.random.SeedSequence``.
    beta : float
        Steepness of the sigmoid non-linearity (Eq. 19); the paper uses 6.
    size : int
        Side length in pixels of the returned images.
    render_size : int
        Side length in pixels at which shapes are drawn before downsampling.
    min_width, max_width : float
        Range of shape widths as fractions of the image width.
    flip_prob : float
        Probability of flipping the distortion kernel left-right for a sample.
    geometry : {"authors", "continuous", "notebook"}
        How widths and positions are drawn (see the module docstring); ``"notebook"`` also
        draws the pixels as the authors' notebook does (8-bit RGB canvas, 0.5 scaling to 8
        bits before the resize; :mod:`datasets.notebook_shapes`).
    """

    n: int
    seed: int = 0
    beta: float = 6.0
    size: int = 64
    render_size: int = 128
    min_width: float = 0.4
    max_width: float = 0.6
    flip_prob: float = 0.5
    geometry: str = "authors"

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"n must be positive, got {self.n}")
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if not 0 < self.size <= self.render_size:
            raise ValueError("need 0 < size <= render_size")
        if not 0 < self.min_width <= self.max_width <= 1:
            raise ValueError("need 0 < min_width <= max_width <= 1")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError("flip_prob must lie in [0, 1]")
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {self.geometry!r}")
        if self.geometry in ("authors", "notebook") and len(range(*self._integer_widths())) == 0:
            raise ValueError("the authors' geometry needs int(min_width * render_size) < int(max_width * render_size)")

    def _integer_widths(self) -> tuple[int, int]:
        """The half-open range of integer widths of the authors' geometry, in render pixels."""
        return int(self.min_width * self.render_size), int(self.max_width * self.render_size)

    def to_dict(self) -> dict[str, int | float]:
        """Return the fields as a plain dictionary.

        Returns
        -------
        dict
            Field name to value.
        """
        return asdict(self)

    def key(self) -> str:
        """Return a short, stable hash identifying the generated data.

        Returns
        -------
        str
            First 16 hex digits of the SHA-256 of the sorted JSON of the fields together with
            the generator version.  The ``"continuous"`` geometry keeps its version-1 key, so
            its caches and results stay addressable.
        """
        fields = self.to_dict()
        if self.geometry == "continuous":
            fields.pop("geometry")
        version = GEOMETRY_VERSIONS[self.geometry]
        payload = json.dumps({**fields, "version": version}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _minmax(x: np.ndarray) -> np.ndarray:
    """Min-max scale each sample of ``x`` (n, H, W) to [0, 1]; constant samples become 0."""
    flat = x.reshape(len(x), -1)
    lo = flat.min(axis=1)[:, None, None]
    span = flat.max(axis=1)[:, None, None] - lo
    out = np.subtract(x, lo, dtype=np.float32)
    np.divide(out, span, out=out, where=span > 0)
    out[span[:, 0, 0] == 0] = 0.0
    return out


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution of every sample with ``kernel``, 'same' size, zero padding."""
    return ndimage.convolve(x, kernel[None], mode="constant", cval=0.0)


def pnl_mixture(
    triangle: np.ndarray, circle: np.ndarray, flip: np.ndarray, beta: float = 6.0
) -> np.ndarray:
    """Mix sources with the sigmoid PNL system and the distortion kernel (Eq. 19-22).

    Parameters
    ----------
    triangle, circle : np.ndarray
        Sources of shape (n, H, W).
    flip : np.ndarray
        Boolean (n,); where true the kernel is flipped left-right for that sample.
    beta : float
        Steepness of the sigmoid.

    Returns
    -------
    np.ndarray
        Float32 mixtures (n, H, W), each min-max scaled to [0, 1].
    """
    flip = np.asarray(flip, dtype=bool)
    summed = np.asarray(triangle, dtype=np.float32) + np.asarray(circle, dtype=np.float32)
    if summed.ndim != 3 or flip.shape != summed.shape[:1]:
        raise ValueError("sources must be (n, H, W) and flip (n,)")
    squashed = _minmax(1.0 / (1.0 + np.exp(-beta / 2.0 * summed)))
    distorted = np.empty_like(squashed)
    distorted[~flip] = _convolve(squashed[~flip], DISTORTION_KERNEL)
    distorted[flip] = _convolve(squashed[flip], DISTORTION_KERNEL[:, ::-1])
    return _minmax(distorted)


def _sample_geometry(
    rng: np.random.Generator, m: int, config: TrianglesConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw shape geometry for ``m`` samples.

    Returns ``(left, top, width)``, each (m, 2) in render pixels with column 0 the triangle and
    column 1 the circle.  Pixel centres lie at integer coordinates, so a bounding box inside
    ``[0, render_size - 1]`` keeps the shape inside the image.
    """
    if config.geometry in ("authors", "notebook"):
        low, high = config._integer_widths()
        width = rng.integers(low, high, size=(m, 2)).astype(np.float64)
        extent = np.stack([np.ceil(width[:, 0] * _TRIANGLE_HEIGHT), width[:, 1]], axis=1)
        limit = config.render_size - 1
        left = np.floor(rng.random((m, 2)) * (limit - width + 1))
        top = np.floor(rng.random((m, 2)) * (limit - extent + 1))
        return left, top, width
    width = rng.uniform(config.min_width, config.max_width, size=(m, 2)) * config.render_size
    limit = config.render_size - 1
    height = width * np.array([_TRIANGLE_HEIGHT, 1.0])
    left = rng.random((m, 2)) * (limit - width)
    top = rng.random((m, 2)) * (limit - height)
    return left, top, width


def _render(
    draw_shape: str, left: float, top: float, width: float, config: TrianglesConfig
) -> np.ndarray:
    """Draw one shape at ``render_size`` and downsample it bilinearly to ``size``."""
    if config.geometry == "notebook":
        return render_notebook_shape(draw_shape, left, top, width, config.render_size, config.size)
    image = Image.new("F", (config.render_size, config.render_size), 0.0)
    draw = ImageDraw.Draw(image)
    if draw_shape == "triangle" and config.geometry == "authors":
        apex = (left + int(width) // 2, top + width * _TRIANGLE_HEIGHT)
        draw.polygon([(left, top), apex, (left + width, top)], fill=1.0)
    elif draw_shape == "triangle":
        bottom = top + width * _TRIANGLE_HEIGHT
        draw.polygon([(left, bottom), (left + width, bottom), (left + width / 2, top)], fill=1.0)
    else:
        draw.ellipse([left, top, left + width, top + width], fill=1.0)
    small = image.resize((config.size, config.size), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32)


def _generate_chunk(
    config: TrianglesConfig, seed: np.random.SeedSequence, m: int
) -> dict[str, np.ndarray]:
    """Generate ``m`` samples from their own ``seed``."""
    rng = np.random.default_rng(seed)
    left, top, width = _sample_geometry(rng, m, config)
    flipped = rng.random(m) < config.flip_prob
    sources = {}
    for column, name in enumerate(("triangle", "circle")):
        images = [
            _render(name, left[i, column], top[i, column], width[i, column], config)
            for i in range(m)
        ]
        sources[name] = _minmax(np.stack(images))
    mixture = pnl_mixture(sources["triangle"], sources["circle"], flipped, config.beta)
    return {"mixture": mixture, **sources, "flipped": flipped}


def _iter_chunks(
    config: TrianglesConfig, n_jobs: int, progress: bool
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(start, chunk)`` in order, generating chunks with ``n_jobs`` workers."""
    starts = range(0, config.n, CHUNK_SIZE)
    seeds = np.random.SeedSequence(config.seed).spawn(len(starts))
    sizes = [min(CHUNK_SIZE, config.n - start) for start in starts]
    tasks = (delayed(_generate_chunk)(config, s, m) for s, m in zip(seeds, sizes, strict=True))
    # Up to PROCESS_JOBS_FROM workers, threads avoid pickling ~100 MB per chunk back from worker
    # processes (Pillow resampling and NumPy release the GIL); the per-shape Python loop holds it,
    # so many workers (a GPU machine's 16 cores) are processes.
    prefer = "processes" if n_jobs >= PROCESS_JOBS_FROM or n_jobs < 0 else "threads"
    results = Parallel(n_jobs=n_jobs, return_as="generator", prefer=prefer)(tasks)
    with tqdm(total=config.n, desc="triangles", unit="img", disable=not progress) as bar:
        for start, chunk in zip(starts, results, strict=True):
            yield start, chunk
            bar.update(len(chunk["flipped"]))


def generate(
    config: TrianglesConfig, n_jobs: int = 1, progress: bool = True
) -> dict[str, np.ndarray]:
    """Generate a dataset in memory.

    Parameters
    ----------
    config : TrianglesConfig
        Dataset parameters; the output is a deterministic function of it.
    n_jobs : int
        Number of joblib workers; does not change the output.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict of str to np.ndarray
        Float32 ``"mixture"``, ``"triangle"`` and ``"circle"`` of shape (n, size, size), all in
        [0, 1], and boolean ``"flipped"`` (n,) telling which samples used the mirrored kernel.
    """
    shape = (config.n, config.size, config.size)
    out = {key: np.empty(shape, dtype=np.float32) for key in ARRAY_KEYS}
    out["flipped"] = np.empty(config.n, dtype=bool)
    for start, chunk in _iter_chunks(config, n_jobs, progress):
        for key, value in chunk.items():
            out[key][start : start + len(value)] = value
    return out


def _tmp_prefix(key: str) -> str:
    return f".triangles-{key}.tmp-{os.getpid()}-"


def _remove_stale_tmp_dirs(cache_dir: Path, key: str) -> None:
    """Remove half-written cache directories of ``key`` whose writing process is gone."""
    for path in cache_dir.glob(f".triangles-{key}.tmp-*"):
        try:
            pid = int(path.name.split(".tmp-")[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, OSError):
            continue


def _write_cache(config: TrianglesConfig, target: Path, n_jobs: int, progress: bool) -> None:
    """Stream the dataset into a temporary sibling of ``target``, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(config.key()), dir=target.parent))
    try:
        shape = (config.n, config.size, config.size)
        arrays = {
            key: np.lib.format.open_memmap(tmp / f"{key}.npy", "w+", np.float16, shape)
            for key in ARRAY_KEYS
        }
        flipped = np.empty(config.n, dtype=bool)
        for start, chunk in _iter_chunks(config, n_jobs, progress):
            stop = start + len(chunk["flipped"])
            flipped[start:stop] = chunk["flipped"]
            for key in ARRAY_KEYS:
                arrays[key][start:stop] = chunk[key]
        for array in arrays.values():
            array.flush()
        del arrays
        np.save(tmp / "flipped.npy", flipped)
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
            # Another process finished the same dataset first; keep its copy.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_or_generate(
    config: TrianglesConfig, cache_dir: str | Path, n_jobs: int = 1, progress: bool = True
) -> dict[str, np.ndarray]:
    """Load a dataset from the disk cache, generating and caching it first if needed.

    The cache lives in ``cache_dir/triangles-<config.key()>/`` and holds float16
    ``mixture.npy``, ``triangle.npy`` and ``circle.npy``, boolean ``flipped.npy`` and
    ``config.json``.  It is written into a temporary sibling directory that is renamed into place
    once complete, so a crash never leaves a partial cache behind; leftovers of crashed writers
    are removed.

    Parameters
    ----------
    config : TrianglesConfig
        Dataset parameters.
    cache_dir : str or Path
        Folder holding the cached datasets; created if missing.
    n_jobs : int
        Number of joblib workers used when generating.
    progress : bool
        Show a tqdm progress bar when generating.

    Returns
    -------
    dict of str to np.ndarray
        Read-only memory maps with the keys of :func:`generate`; images are float16, so cast
        them (e.g. ``np.asarray(x, dtype=np.float32)``) before computing with them.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"triangles-{config.key()}"
    if not (target / "config.json").exists():
        _remove_stale_tmp_dirs(cache_dir, config.key())
        _write_cache(config, target, n_jobs, progress)
    return {
        key: np.load(target / f"{key}.npy", mmap_mode="r", allow_pickle=False)
        for key in (*ARRAY_KEYS, "flipped")
    }


def split_indices(
    n: int, seed: int, test_fraction: float = 0.2, valid_fraction: float = 0.05
) -> dict[str, np.ndarray]:
    """Split ``n`` sample indices into disjoint train, validation and test sets.

    ``round(test_fraction * n)`` random samples form the test set (20 % as in the paper).  The
    validation set is carved out of the remaining training part and holds
    ``round(valid_fraction * n)`` samples, a fraction of the *total* ``n`` (defaults: 75 / 5 / 20),
    but at least one sample when ``n >= 10``.  The training set keeps the rest.

    Parameters
    ----------
    n : int
        Number of samples.
    seed : int
        Seed of the random permutation.
    test_fraction, valid_fraction : float
        Fractions of ``n`` going to the test and validation sets.

    Returns
    -------
    dict of str to np.ndarray
        Sorted int64 index arrays ``"train"``, ``"valid"`` and ``"test"``.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if test_fraction < 0 or valid_fraction < 0 or test_fraction + valid_fraction >= 1:
        raise ValueError("need non-negative fractions with test_fraction + valid_fraction < 1")
    n_test = round(test_fraction * n)
    n_valid = round(valid_fraction * n)
    if n >= 10:
        n_valid = max(n_valid, 1)
    order = np.random.default_rng(seed).permutation(n)
    parts = np.split(order, [n_test, n_test + n_valid])
    return {
        name: np.sort(part).astype(np.int64)
        for name, part in zip(("test", "valid", "train"), parts, strict=True)
    }


def _save_npz(data: dict[str, np.ndarray], out: Path) -> None:
    """Write ``data`` to ``out`` atomically via a temporary file in the same folder."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **data)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see ``python -m datasets.triangles --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m datasets.triangles",
        description="Generate the triangles & circles PNL mixture dataset as a .npz file.",
    )
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output .npz file")
    parser.add_argument("--jobs", type=int, default=1, help="parallel workers (default 1)")
    parser.add_argument("--beta", type=float, default=6.0, help="sigmoid steepness (default 6)")
    args = parser.parse_args(argv)
    try:
        config = TrianglesConfig(n=args.n, seed=args.seed, beta=args.beta)
    except ValueError as err:
        parser.error(str(err))
    if args.jobs == 0:
        parser.error("--jobs must not be 0")
    if not args.out.parent.is_dir():
        parser.error(f"output folder does not exist: {args.out.parent}")
    try:
        _save_npz(generate(config, n_jobs=args.jobs), args.out)
    except OSError as err:
        parser.error(f"cannot write {args.out}: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
