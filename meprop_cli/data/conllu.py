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

    def __len__(self) -> int:
        return len(self.tokens)


def _parse_token(fields: list[str], where: str) -> Token:
    if len(fields) != 10:
        raise DataError(f"{where}: expected 10 tab-separated CoNLL-U columns, found {len(fields)}")
    try:
        token_id = int(fields[0])
        head = -1 if fields[6] == "_" else int(fields[6])
    except ValueError:
        raise DataError(f"{where}: ID {fields[0]!r} or HEAD {fields[6]!r} is not a number") from None
    return Token(token_id, fields[1], fields[2], fields[3], fields[4], fields[5], head, *fields[7:10])


def read_conllu(path: str | os.PathLike) -> list[Sentence]:
    """Read every sentence of a CoNLL-U file; a malformed line raises DataError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CoNLL-U file {path} not found")
    sentences: list[Sentence] = []
    tokens: list[Token] = []
    comments: list[str] = []
    with open(path, encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                if tokens:
                    sentences.append(Sentence(tokens, comments))
                tokens, comments = [], []
                continue
            if line.startswith("#"):
                comments.append(line)
                continue
            fields = line.split("\t")
            if len(fields) == 10 and ("-" in fields[0] or "." in fields[0]):
                continue  # multiword-token range or empty node: not a syntactic word
            token = _parse_token(fields, f"{path}:{line_no}")
            if token.id != len(tokens) + 1:
                raise DataError(f"{path}:{line_no}: word ID {token.id} out of sequence (expected {len(tokens) + 1})")
            tokens.append(token)
    if tokens:
        sentences.append(Sentence(tokens, comments))
    return sentences


def write_conllu(path: str | os.PathLike, sentences: list[Sentence]) -> None:
    """Write sentences (syntactic words only) with their comments; written to a temp file, then renamed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for sentence in sentences:
            for comment in sentence.comments:
                out.write(comment + "\n")
            for t in sentence.tokens:
                head = "_" if t.head < 0 else str(t.head)
                out.write("\t".join([str(t.id), t.form, t.lemma, t.upos, t.xpos, t.feats, head, t.deprel, t.deps, t.misc]) + "\n")
            out.write("\n")
    os.replace(tmp, path)
