"""MNIST: the IDX files (gzip-compressed or raw) and the papers' train/dev/test split."""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from meprop_cli.data.paths import find_file
from meprop_cli.errors import DataError

MNIST_FILES = {  # stem -> (md5 of the decompressed bytes, expected shape)
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", (60000,)),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", (10000,)),
}


def read_idx_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is corrupt ({e}); delete it and run `meprop data fetch mnist`") from None


def parse_idx(raw: bytes, where: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (the only type MNIST uses) as an array of its declared shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{where} is not an IDX file of unsigned bytes; delete it and run `meprop data fetch mnist`")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{where} is truncated or corrupt (header says {shape}, file holds {len(raw) - header} "
                        "bytes of data); delete it and run `meprop data fetch mnist`")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_mnist_file(root: str | Path, stem: str) -> np.ndarray:
    path = find_file(root, "mnist", [stem + ".gz", stem])
    array = parse_idx(read_idx_bytes(path), path)
    if array.shape != MNIST_FILES[stem][1]:
        raise DataError(f"{path} holds shape {array.shape}, MNIST has {MNIST_FILES[stem][1]}")
    return array


def load_mnist(root: str | Path, dev_size: int = 5000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "dev", "test"}: (uint8 images N×28×28, int64 labels); dev = the first dev_size training images."""
    images = read_mnist_file(root, "train-images-idx3-ubyte")
    labels = read_mnist_file(root, "train-labels-idx1-ubyte").astype(np.int64)
    return {
        "train": (images[dev_size:], labels[dev_size:]),
        "dev": (images[:dev_size], labels[:dev_size]),
        "test": (read_mnist_file(root, "t10k-images-idx3-ubyte"),
                 read_mnist_file(root, "t10k-labels-idx1-ubyte").astype(np.int64)),
    }
