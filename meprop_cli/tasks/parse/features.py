"""Vocabularies from the training trees and the 48 features of Chen & Manning (2014).

Positions read from a configuration (C&M's order; s = stack from the top, b = buffer from the front,
lc1/lc2 = leftmost / second-leftmost dependent, rc1/rc2 = rightmost / second-rightmost):

    s1 s2 s3 b1 b2 b3                                                   6 positions
    lc1(s1) rc1(s1) lc2(s1) rc2(s1) lc1(s2) rc1(s2) lc2(s2) rc2(s2)     8
    lc1(lc1(s1)) rc1(rc1(s1)) lc1(lc1(s2)) rc1(rc1(s2))                 4

The word and the tag of all 18 positions (18 + 18 features) and the arc label of the 12 dependents
(12 features): 48 ids, looked up in three 50-dim embedding tables by the model. An empty position is
NULL, the artificial root word is ROOT, a word or tag unseen in training is UNK.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from meprop_cli.data.conllu import Sentence
from meprop_cli.tasks.parse.transitions import Configuration
from meprop_cli.tasks.pos_features import normalize

NULL, UNK, ROOT = "<NULL>", "<UNK>", "<ROOT>"
NULL_ID, UNK_ID, ROOT_ID = 0, 1, 2
UNLABELED = "_"  # the one arc label of unlabeled parsing, also written as DEPREL
N_POSITIONS, N_LABEL_FEATURES = 18, 12
N_FEATURES = 2 * N_POSITIONS + N_LABEL_FEATURES  # 48


class Vocab:
    """Strings ↔ ids; ids 0-2 are NULL, UNK, ROOT when specials=True (word and tag tables)."""

    def __init__(self, items: list[str], specials: bool = True, counts: dict[str, int] | None = None) -> None:
        self.items = [NULL, UNK, ROOT, *items] if specials else [NULL, *items]
        self.index = {s: i for i, s in enumerate(self.items)}
        self.specials = specials
        self.counts = counts or {}  # training counts (for word dropout); not kept in checkpoints

    def __len__(self) -> int:
        return len(self.items)

    def id(self, item: str) -> int:
        """The item's id; unknown words and tags are UNK (labels come from train only, so never unknown)."""
        return self.index.get(item, UNK_ID) if self.specials else self.index[item]


def word_form(form: str, normalize_words: bool) -> str:
    """The string a word is looked up by: its form, or with normalize_words its normalized form."""
    return normalize(form) if normalize_words else form


def arc_label(deprel: str, labeled: bool) -> str:
    """The universal part of a DEPREL (`nmod:poss` → `nmod`), as CoNLL 2018 LAS compares them."""
    return deprel.split(":")[0] if labeled else UNLABELED


@dataclass
class Vocabularies:
    words: Vocab
    tags: Vocab
    labels: Vocab  # NULL, then the arc labels; the transitions use ids 1..len-1
    normalize_words: bool = False  # words looked up lowercased, digits as 0 (as the POS tagger does)

    @classmethod
    def build(cls, train: list[Sentence], min_word_count: int, labeled: bool,
              normalize_words: bool = False) -> "Vocabularies":
        """Words seen at least min_word_count times (rarer ones are UNK), all tags and labels of train."""
        counts = Counter(word_form(t.form, normalize_words) for s in train for t in s.tokens)
        words = sorted(w for w, c in counts.items() if c >= min_word_count)
        tags = sorted({t.xpos for s in train for t in s.tokens})
        labels = sorted({arc_label(t.deprel, labeled) for s in train for t in s.tokens})
        return cls(Vocab(words, counts={w: counts[w] for w in words}), Vocab(tags), Vocab(labels, specials=False),
                   normalize_words)

    def state(self) -> dict[str, Any]:
        """What the checkpoint keeps to rebuild the vocabularies (the specials are implied)."""
        return {"words": self.words.items[3:], "tags": self.tags.items[3:], "labels": self.labels.items[1:],
                "normalize_words": self.normalize_words}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Vocabularies":
        return cls(Vocab(state["words"]), Vocab(state["tags"]), Vocab(state["labels"], specials=False),
                   state.get("normalize_words", False))

    def encode(self, sentence: Sentence, tags: list[str] | None = None) -> tuple[list[int], list[int]]:
        """Word and tag ids indexed by word position, ROOT at 0; tags replace the sentence's XPOS if given."""
        tags = tags if tags is not None else [t.xpos for t in sentence.tokens]
        return ([ROOT_ID] + [self.words.id(word_form(t.form, self.normalize_words)) for t in sentence.tokens],
                [ROOT_ID] + [self.tags.id(tag) for tag in tags])


def positions(config: Configuration) -> list[int]:
    """The 18 word positions of the module docstring; -1 where there is none."""
    stack, lefts, rights = config.stack, config.lefts, config.rights
    depth = len(stack)
    out = [stack[-1 - i] if i < depth else -1 for i in range(3)]
    out += [config.next + i if config.next + i <= config.n else -1 for i in range(3)]
    grand = []
    for i in range(2):
        if i >= depth:
            out += [-1, -1, -1, -1]
            grand += [-1, -1]
            continue
        left, right = lefts[stack[-1 - i]], rights[stack[-1 - i]]
        lc1 = left[0] if left else -1
        rc1 = right[-1] if right else -1
        out += [lc1, rc1, left[1] if len(left) > 1 else -1, right[-2] if len(right) > 1 else -1]
        grand += [lefts[lc1][0] if lc1 >= 0 and lefts[lc1] else -1,
                  rights[rc1][-1] if rc1 >= 0 and rights[rc1] else -1]
    return out + grand


def features(config: Configuration, words: list[int], tags: list[int]) -> list[int]:
    """The 48 feature ids: 18 words, 18 tags, 12 labels (see the module docstring)."""
    where = positions(config)
    labels = config.labels
    return ([words[p] if p >= 0 else NULL_ID for p in where]
            + [tags[p] if p >= 0 else NULL_ID for p in where]
            + [labels[p] if p >= 0 else NULL_ID for p in where[6:]])
