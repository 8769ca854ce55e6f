"""The tagger's input for one word: the word itself (50 dims) and seven discrete features (20 dims each).

    word            the form lower-cased, every digit replaced by 0 (so 1984 and 2025 share an entry)
    prefix2         the first 2 characters of that normalised form
    prefix3         the first 3 characters
    suffix1         the last character
    suffix2         the last 2 characters
    suffix3         the last 3 characters (-ing, -ed, -est, -ly: most of what tells an unknown word's tag)
    capitalization  lower | initial | upper | mixed | none (no letter), with "@start" added for the
                    first word of the sentence, where an initial capital says little
    shape           the form with upper → X, lower → x, digit → d, other characters kept, runs
                    collapsed and cut to 6 characters: "Xx", "d.d", "x-x", "X.X.", "$d"

Vocabularies come from the training set only. Entry 0 of every vocabulary is UNK: unknown words and
features map to it, and rare training words are dropped to it at random (word dropout, α/(α + count),
Kiperwasser & Goldberg 2016) so its embedding is trained. Features seen fewer than min_count times in
training map to UNK too.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

FEATURES = ("prefix2", "prefix3", "suffix1", "suffix2", "suffix3", "capitalization", "shape")
UNK = "<unk>"
SHAPE_LENGTH = 6


def normalize(form: str) -> str:
    return "".join("0" if ch.isdigit() else ch for ch in form.lower())


def capitalization(form: str, first: bool) -> str:
    letters = [ch for ch in form if ch.isalpha()]
    if not letters:
        kind = "none"
    elif all(ch.islower() for ch in letters):
        kind = "lower"
    elif form[0].isupper() and all(ch.islower() for ch in letters[1:]):
        kind = "initial"
    elif all(ch.isupper() for ch in letters):
        kind = "upper"
    else:
        kind = "mixed"
    return kind + "@start" if first else kind


def shape(form: str) -> str:
    out: list[str] = []
    for ch in form:
        s = "X" if ch.isupper() else "x" if ch.isalpha() else "d" if ch.isdigit() else ch
        if not out or out[-1] != s:
            out.append(s)
    return "".join(out)[:SHAPE_LENGTH]


def word_features(forms: list[str]) -> list[tuple[str, ...]]:
    """The seven feature values of every word of a sentence, in FEATURES order."""
    rows = []
    for position, form in enumerate(forms):
        w = normalize(form)
        rows.append((w[:2], w[:3], w[-1:], w[-2:], w[-3:], capitalization(form, position == 0), shape(form)))
    return rows


class Vocabulary:
    """Strings ↔ ids, id 0 = UNK; built from training counts, saved as its list of strings."""

    def __init__(self, items: Iterable[str], counts: dict[str, int] | None = None) -> None:
        self.items = [UNK, *(i for i in items if i != UNK)]
        self.index = {item: i for i, item in enumerate(self.items)}
        self.counts = counts or {}

    @classmethod
    def from_counts(cls, counts: Counter, min_count: int = 1) -> "Vocabulary":
        kept = sorted((item for item, n in counts.items() if n >= min_count), key=lambda i: (-counts[i], i))
        return cls(kept, {item: counts[item] for item in kept})

    def __len__(self) -> int:
        return len(self.items)

    def id(self, item: str) -> int:
        return self.index.get(item, 0)


class TagSet:
    """The tags of the training set, in a fixed order; a tag unseen in training gets id -1 (always wrong)."""

    def __init__(self, tags: Iterable[str]) -> None:
        self.items = list(tags)
        self.index = {t: i for i, t in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def id(self, tag: str) -> int:
        return self.index.get(tag, -1)
