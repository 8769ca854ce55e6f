"""MNIST IDX reading: real files when present, and clear errors for corrupt ones."""
import struct

import numpy as np
import pytest

from meprop_cli.data.fetch import check
from meprop_cli.data.idx import load_mnist, parse_idx, read_mnist_file
from meprop_cli.errors import ConfigError, DataError


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_parse_idx_round_trips_shape_and_values(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(array), tmp_path), array)


def test_truncated_file_is_a_clear_error(tmp_path):
    raw = idx_bytes(np.zeros((3, 2), dtype=np.uint8))[:-1]
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_idx(raw, tmp_path / "x")


def test_corrupt_gzip_names_the_file_and_the_fix(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip data")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is corrupt.*meprop data fetch mnist"):
        read_mnist_file(tmp_path, "train-labels-idx1-ubyte")


def test_raw_idx_files_are_read_too(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(60000, dtype=np.uint8)))
    assert read_mnist_file(tmp_path, "train-labels-idx1-ubyte").shape == (60000,)


@pytest.mark.real_data
def test_real_mnist_has_the_papers_split(real_data):
    splits = load_mnist(real_data)
    assert {k: len(v[1]) for k, v in splits.items()} == {"train": 55000, "dev": 5000, "test": 10000}
    images, labels = splits["dev"]
    assert images.dtype == np.uint8 and images.shape == (5000, 28, 28) and labels.dtype == np.int64
    assert int(labels[0]) == 5 and set(np.unique(labels)) == set(range(10))  # MNIST's first training label is 5
    assert all(line.startswith("ok") for line in check(real_data) if "mnist" in line)


def test_a_header_cut_short_is_a_clear_error(tmp_path):
    raw = bytes([0, 0, 0x08, 200]) + b"\x00" * 12  # says 200 dimensions, holds three sizes
    with pytest.raises(DataError, match=r"x is truncated or corrupt \(its header is cut short\); delete it"):
        parse_idx(raw, tmp_path / "x")


def test_a_file_of_the_wrong_shape_says_how_to_get_the_right_one(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(9999, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"holds shape \(9999,\), MNIST has \(10000,\); delete it and run"):
        read_mnist_file(tmp_path, "t10k-labels-idx1-ubyte")


def test_a_label_outside_0_to_9_names_the_file_and_index(tmp_path):
    labels = np.zeros(10000, dtype=np.uint8)
    labels[[7, 9000]] = [12, 255]
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label 12 at index 7 is outside 0\.\.9 "
                                        r"\(2 label\(s\) out of range\); delete it and run `meprop data fetch mnist`"):
        read_mnist_file(tmp_path, "t10k-labels-idx1-ubyte")


@pytest.mark.parametrize("dev_size", [0, -5, 60000, 70000])
def test_a_dev_size_that_leaves_no_dev_or_train_image_is_a_config_error(tmp_path, dev_size):
    with pytest.raises(ConfigError, match=f"task.dev_size={dev_size} must be between 1 and 59,999: the dev set is"):
        load_mnist(tmp_path, dev_size)  # refused before any file is read
