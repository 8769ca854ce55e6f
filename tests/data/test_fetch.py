"""Downloads are verified by checksum before they are saved (the network is replaced by a dict)."""
import gzip

import pytest

from meprop_cli.data import fetch
from meprop_cli.errors import DataError


def test_ewt_files_are_saved_only_when_their_checksum_matches(tmp_path, monkeypatch):
    served = {fetch.EWT_RELEASE + name: f"content of {name}".encode() for name in fetch.EWT_FILES}
    monkeypatch.setattr(fetch, "download", lambda url: served[url])
    monkeypatch.setattr(fetch, "EWT_FILES", {name: fetch.md5(served[fetch.EWT_RELEASE + name])
                                             for name in fetch.EWT_FILES})
    fetch.fetch_ewt(tmp_path, log=lambda line: None)
    assert sorted(p.name for p in (tmp_path / "ud-english-ewt").iterdir()) == sorted(fetch.EWT_FILES)

    name = next(iter(fetch.EWT_FILES))
    (tmp_path / "ud-english-ewt" / name).unlink()
    served[fetch.EWT_RELEASE + name] = b"tampered"
    with pytest.raises(DataError, match="does not match its checksum"):
        fetch.fetch_ewt(tmp_path, log=lambda line: None)
    assert not (tmp_path / "ud-english-ewt" / name).exists()


def test_mnist_tries_the_next_mirror_after_a_bad_download(tmp_path, monkeypatch):
    payloads = {stem: f"{stem} bytes".encode() for stem in fetch.MNIST_FILES}
    monkeypatch.setattr(fetch, "MNIST_FILES", {s: (fetch.md5(p), None) for s, p in payloads.items()})
    first, second = fetch.MNIST_MIRRORS[:2]

    def download(url):
        stem = url.rsplit("/", 1)[1][:-3]
        return gzip.compress(b"garbage" if url.startswith(first) else payloads[stem])

    monkeypatch.setattr(fetch, "download", download)
    lines = []
    fetch.fetch_mnist(tmp_path, log=lines.append)
    assert all(second in line for line in lines) and len(lines) == 4
    assert all(fetch.mnist_content_md5(tmp_path / "mnist" / f"{s}.gz") == fetch.md5(p) for s, p in payloads.items())
