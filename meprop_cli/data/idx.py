"""MNIST: the IDX files (gzip-compressed or raw) and the papers' train/dev/test split."""
from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from meprop_cli.data.paths import find_file
from meprop_cli.errors import ConfigError, DataError

N_CLASSES = 10  # labels are the digits 0..9
REFETCH = "delete it and run `meprop data fetch mnist`"
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
        raise DataError(f"{path} is corrupt ({e}); {REFETCH}") from None


def parse_idx(raw: bytes, where: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (the only type MNIST uses) as an array of its declared shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{where} is not an IDX file of unsigned bytes; {REFETCH}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{where} is truncated or corrupt (its header is cut short); {REFETCH}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) != header + math.prod(shape):  # math.prod: numpy's product of large sizes would overflow
        raise DataError(f"{where} is truncated or corrupt (header says {shape}, file holds {len(raw) - header} "
                        f"bytes of data); {REFETCH}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_mnist_file(root: str | Path, stem: str) -> np.ndarray:
    path = find_file(root, "mnist", [stem + ".gz", stem])
    array = parse_idx(read_idx_bytes(path), path)
    if array.shape != MNIST_FILES[stem][1]:
        raise DataError(f"{path} holds shape {array.shape}, MNIST has {MNIST_FILES[stem][1]}; {REFETCH}")
    if stem.endswith("labels-idx1-ubyte"):
        wrong = np.flatnonzero(array >= N_CLASSES)
        if len(wrong):
            raise DataError(f"{path}: label {array[wrong[0]]} at index {wrong[0]} is outside 0..{N_CLASSES - 1} "
                            f"({len(wrong)} label(s) out of range); {REFETCH}")
    return array


def load_mnist(root: str | Path, dev_size: int = 5000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "dev", "test"}: (uint8 images N×28×28, int64 labels); dev = the first dev_size training images."""
    total = MNIST_FILES["train-images-idx3-ubyte"][1][0]
    if not 0 < dev_size < total:  # checked before the 47 MB are read; dev and train must both hold images
        raise ConfigError(f"task.dev_size={dev_size} must be between 1 and {total - 1:,}: the dev set is the first "
                          f"dev_size of the {total:,} MNIST training images, the rest is the training set")
    images = read_mnist_file(root, "train-images-idx3-ubyte")
    labels = read_mnist_file(root, "train-labels-idx1-ubyte").astype(np.int64)
    return {
        "train": (images[dev_size:], labels[dev_size:]),
        "dev": (images[:dev_size], labels[:dev_size]),
        "test": (read_mnist_file(root, "t10k-images-idx3-ubyte"),
                 read_mnist_file(root, "t10k-labels-idx1-ubyte").astype(np.int64)),
    }
