"""The seven word features and the train-only vocabularies with UNK."""
from __future__ import annotations

from collections import Counter

from meprop_cli.tasks.pos_features import (FEATURES, UNK, TagSet, Vocabulary, capitalization, normalize, shape,
                                           word_features)


def test_seven_features_of_a_sentence():
    rows = word_features(["Walking", "3,000", "well-known", "NASA", "iPhone"])
    assert len(FEATURES) == 7 and all(len(r) == 7 for r in rows)
    assert dict(zip(FEATURES, rows[0])) == {
        "prefix2": "wa", "prefix3": "wal", "suffix1": "g", "suffix2": "ng", "suffix3": "ing",
        "capitalization": "initial@start", "shape": "Xx"}
    assert rows[1][:5] == ("0,", "0,0", "0", "00", "000") and rows[1][5:] == ("none", "d,d")
    assert rows[2][6] == "x-x" and rows[2][5] == "lower"
    assert rows[3][5:] == ("upper", "X")
    assert rows[4][5:] == ("mixed", "xXx")


def test_normalize_lowercases_and_maps_digits_to_zero():
    assert normalize("Route66") == "route00"


def test_capitalization_marks_the_first_word():
    assert capitalization("The", first=True) == "initial@start"
    assert capitalization("The", first=False) == "initial"
    assert capitalization("I", first=False) == "initial"


def test_shape_collapses_runs_and_is_cut():
    assert shape("U.S.") == "X.X."
    assert shape("$1,234.56") == "$d,d.d"
    assert len(shape("a-b-c-d-e-f")) == 6


def test_vocabulary_maps_unknown_and_rare_to_unk():
    vocab = Vocabulary.from_counts(Counter({"ing": 5, "ed": 2, "zzz": 1}), min_count=2)
    assert vocab.items == [UNK, "ing", "ed"]
    assert vocab.id("ing") == 1 and vocab.id("zzz") == 0 and vocab.id("never") == 0
    assert Vocabulary(vocab.items[1:]).items == vocab.items  # rebuilt from a checkpoint's list


def test_tag_unseen_in_training_can_never_be_predicted():
    tags = TagSet(["DT", "NN"])
    assert tags.id("NN") == 1 and tags.id("XX") == -1
