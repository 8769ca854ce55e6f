"""Downloads for users online: MNIST and UD English EWT, each file verified by its md5.

MNIST checksums are of the decompressed bytes (mirrors recompress the archives); EWT checksums are
of the CoNLL-U files of the treebank's r2.16 release, as in the project's data README.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from meprop_cli.data.idx import MNIST_FILES
from meprop_cli.errors import DataError

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
EWT_RELEASE = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16/"
EWT_FILES = {
    "en_ewt-ud-train.conllu": "fa9865539033efcf99ea90f8b93d6646",
    "en_ewt-ud-dev.conllu": "cb1da95ff28a449cb9bc286c922e15e1",
    "en_ewt-ud-test.conllu": "01630da0129f8600ef761dbcfd18b9e2",
}
DATASETS = ("mnist", "ewt")
FOLDERS = {"mnist": "mnist", "ewt": "ud-english-ewt"}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def mnist_content_md5(path: Path) -> str:
    data = path.read_bytes()
    return md5(gzip.decompress(data) if path.suffix == ".gz" else data)


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def save_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def fetch_mnist(root: Path, log=print) -> None:
    for stem, (checksum, _) in MNIST_FILES.items():
        target = root / "mnist" / f"{stem}.gz"
        if target.is_file() and mnist_content_md5(target) == checksum:
            log(f"ok       {target}")
            continue
        errors = []
        for mirror in MNIST_MIRRORS:
            try:
                data = download(mirror + stem + ".gz")
                if md5(gzip.decompress(data)) != checksum:
                    errors.append(f"{mirror}: checksum mismatch")
                    continue
            except (urllib.error.URLError, OSError, EOFError) as e:
                errors.append(f"{mirror}: {e}")
                continue
            save_atomic(target, data)
            log(f"fetched  {target} from {mirror}")
            break
        else:
            raise DataError(f"could not download {stem}.gz ({'; '.join(errors)}); copy the MNIST files into "
                            f"{root / 'mnist'} by hand")


def fetch_ewt(root: Path, log=print) -> None:
    for name, checksum in EWT_FILES.items():
        target = root / "ud-english-ewt" / name
        if target.is_file() and md5(target.read_bytes()) == checksum:
            log(f"ok       {target}")
            continue
        try:
            data = download(EWT_RELEASE + name)
        except (urllib.error.URLError, OSError) as e:
            raise DataError(f"could not download {EWT_RELEASE + name} ({e}); copy the EWT files into "
                            f"{target.parent} by hand") from None
        if md5(data) != checksum:
            raise DataError(f"{EWT_RELEASE + name} does not match its checksum {checksum}; not saved")
        save_atomic(target, data)
        log(f"fetched  {target}")


def check(root: Path) -> list[str]:
    """One line per expected file: ok, missing or corrupt (checksums of the content)."""
    lines = []
    for stem, (checksum, _) in MNIST_FILES.items():
        candidates = [root / "mnist" / f"{stem}.gz", root / "mnist" / stem]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            lines.append(f"missing  {candidates[0]}")
            continue
        try:
            good = mnist_content_md5(path) == checksum
        except (OSError, EOFError, gzip.BadGzipFile):
            good = False
        lines.append(f"{'ok' if good else 'corrupt':8} {path}")
    for name, checksum in EWT_FILES.items():
        path = root / "ud-english-ewt" / name
        if not path.is_file():
            lines.append(f"missing  {path}")
        else:
            lines.append(f"{'ok' if md5(path.read_bytes()) == checksum else 'corrupt':8} {path}")
    return lines
