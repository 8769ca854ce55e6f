"""CoNLL-U reading and writing, shared by the POS and parsing tasks.

Only syntactic words are kept: multiword-token ranges (ID `3-4`) and empty nodes (ID `8.1`)
are skipped, and comment lines are kept apart from the tokens so they never reach a model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from meprop_cli.errors import DataError

COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


@dataclass(frozen=True)
class Token:
    id: int
    form: str
    lemma: str
    upos: str
    xpos: str
    feats: str
    head: int  # 0 = root; -1 where the file has `_` (no tree)
    deprel: str
    deps: str
    misc: str

    def with_(self, **changes) -> "Token":
        return replace(self, **changes)


@dataclass
class Sentence:
    tokens: list[Token]
    comments: list[str] = field(default_factory=list)
    # the file line of each token, for messages that point at a word; not part of the sentence's value
    lines: list[int] = field(default_factory=list, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.tokens)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # int() would also take "-1", " 3" and other scripts' digits


def _parse_token(fields: list[str], where: str) -> Token:
    if len(fields) != 10:
        raise DataError(f"{where}: expected 10 tab-separated CoNLL-U columns, found {len(fields)}; separate "
                        "ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC by tabs, `_` for an empty one")
    if not _is_number(fields[0]):
        raise DataError(f"{where}: ID {fields[0]!r} is not a word number (1, 2, ...; `3-4` for a multiword token, "
                        "`8.1` for an empty node); fix the first column")
    if fields[6] != "_" and not _is_number(fields[6]):
        raise DataError(f"{where}: HEAD {fields[6]!r} is not a word number; give the ID of the word's head, "
                        "0 for the root, or `_` for no tree")
    head = -1 if fields[6] == "_" else int(fields[6])
    return Token(int(fields[0]), fields[1], fields[2], fields[3], fields[4], fields[5], head, *fields[7:10])


def _is_range_or_empty_node(token_id: str) -> bool:
    """`3-4` (a multiword token) or `8.1` (an empty node): lines that are not syntactic words."""
    for sep in "-.":
        left, found, right = token_id.partition(sep)
        if found and _is_number(left) and _is_number(right):
            return True
    return False


def _not_utf8(path: Path) -> DataError:
    """The error for a file that does not decode as UTF-8, naming the line of the first bad byte."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        return DataError(f"{path} is gzip-compressed; decompress it (`gunzip`) and give the .conllu file")
    source = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "latin1"  # for the example command
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        return DataError(f"{path}:{line}: is not UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8 "
                         f"(for example `iconv -f {source} -t utf-8`)")
    return DataError(f"{path} is not UTF-8; save the file as UTF-8")


def read_conllu(path: str | os.PathLike) -> list[Sentence]:
    """Read every sentence of a CoNLL-U file; a malformed line raises DataError naming file and line.

    A UTF-8 byte-order mark is ignored; lines holding only spaces or tabs end a sentence, as blank ones do.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a CoNLL-U file; give the path of the .conllu file")
    if not path.is_file():
        raise DataError(f"CoNLL-U file {path} not found")
    sentences: list[Sentence] = []
    tokens: list[Token] = []
    comments: list[str] = []
    lines: list[int] = []
    try:
        with open(path, encoding="utf-8-sig") as text:
            for line_no, line in enumerate(text, start=1):
                line = line.rstrip("\n").rstrip("\r")
                if not line.strip():
                    if tokens:
                        sentences.append(Sentence(tokens, comments, lines))
                    tokens, comments, lines = [], [], []
                    continue
                if line.startswith("#"):
                    comments.append(line)
                    continue
                fields = line.split("\t")
                if len(fields) == 10 and _is_range_or_empty_node(fields[0]):
                    continue
                token = _parse_token(fields, f"{path}:{line_no}")
                if token.id != len(tokens) + 1:
                    raise DataError(f"{path}:{line_no}: word ID {token.id} out of sequence (expected "
                                    f"{len(tokens) + 1}); number the words of each sentence 1, 2, ... and end a "
                                    "sentence with a blank line")
                tokens.append(token)
                lines.append(line_no)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}); check its permissions") from None
    if tokens:
        sentences.append(Sentence(tokens, comments, lines))
    return sentences


def read_split(path: str | os.PathLike, setting: str) -> list[Sentence]:
    """read_conllu for a task's train, dev or test file, which must hold a sentence; setting names where it is set."""
    sentences = read_conllu(path)
    if not sentences:
        raise DataError(f"{path} holds no sentence; point {setting} at a CoNLL-U file with data")
    return sentences


def write_conllu(path: str | os.PathLike, sentences: list[Sentence]) -> None:
    """Write sentences (syntactic words only) with their comments, through the one atomic writer: a temp file
    renamed over path, removed on failure (OutputError, one sentence)."""
    from meprop_cli.results import atomic_file

    with atomic_file(Path(path)) as out:
        for sentence in sentences:
            for comment in sentence.comments:
                out.write(comment + "\n")
            for t in sentence.tokens:
                head = "_" if t.head < 0 else str(t.head)
                out.write("\t".join([str(t.id), t.form, t.lemma, t.upos, t.xpos, t.feats, head, t.deprel, t.deps, t.misc]) + "\n")
            out.write("\n")
