"""Chen & Manning's 48 features on a configuration checked by hand, and the vocabularies."""
from __future__ import annotations

from meprop_cli.data.conllu import Sentence, Token
from meprop_cli.tasks.parse.features import (NULL_ID, ROOT_ID, UNK_ID, N_FEATURES, Vocabularies, arc_label,
                                             features, positions)
from meprop_cli.tasks.parse.transitions import LEFT, RIGHT, SHIFT, Configuration

A, B, C, D, E = 11, 12, 13, 14, 15  # arc label ids


def hand_built_configuration() -> Configuration:
    """7 words: 2→1 (A), 3→2 (B), 4→5 (C), 6→7 (E), 4→6 (D); stack [ROOT, 3, 4], buffer empty."""
    config = Configuration(7)
    for action, label in [(SHIFT, -1), (SHIFT, -1), (LEFT, A), (SHIFT, -1), (LEFT, B), (SHIFT, -1), (SHIFT, -1),
                          (RIGHT, C), (SHIFT, -1), (SHIFT, -1), (RIGHT, E), (RIGHT, D)]:
        config.apply(action, label)
    assert config.stack == [0, 3, 4] and config.buffer_empty()
    return config


def test_positions_follow_chen_and_manning_order():
    config = hand_built_configuration()
    assert positions(config) == [
        4, 3, 0, -1, -1, -1,  # s1 s2 s3 b1 b2 b3
        -1, 6, -1, 5,  # lc1(s1) rc1(s1) lc2(s1) rc2(s1): 4 has right dependents 5 and 6 only
        2, -1, -1, -1,  # lc1(s2) rc1(s2) lc2(s2) rc2(s2): 3 has the left dependent 2 only
        -1, 7, 1, -1,  # lc1(lc1(s1)) rc1(rc1(s1)) lc1(lc1(s2)) rc1(rc1(s2))
    ]


def test_features_are_words_tags_and_labels_of_those_positions():
    config = hand_built_configuration()
    words = [ROOT_ID] + [100 + i for i in range(1, 8)]
    tags = [ROOT_ID] + [200 + i for i in range(1, 8)]
    feats = features(config, words, tags)
    assert len(feats) == N_FEATURES == 48
    N = NULL_ID
    assert feats[:18] == [104, 103, ROOT_ID, N, N, N, N, 106, N, 105, 102, N, N, N, N, 107, 101, N]
    assert feats[18:36] == [204, 203, ROOT_ID, N, N, N, N, 206, N, 205, 202, N, N, N, N, 207, 201, N]
    assert feats[36:] == [N, D, N, C, B, N, N, N, N, E, A, N]


def test_initial_configuration_sees_root_and_the_first_three_words():
    feats = features(Configuration(2), [ROOT_ID, 50, 51], [ROOT_ID, 60, 61])
    assert feats[:6] == [ROOT_ID, NULL_ID, NULL_ID, 50, 51, NULL_ID]
    assert feats[36:] == [NULL_ID] * 12


def sentence(*forms: str) -> Sentence:
    return Sentence([Token(i, f, f, "NOUN", "NN", "_", 0 if i == 1 else 1, "nmod:poss" if i > 1 else "root", "_",
                           "_") for i, f in enumerate(forms, start=1)])


def test_vocabularies_map_rare_and_unseen_words_to_unk_and_survive_the_checkpoint():
    vocabs = Vocabularies.build([sentence("a", "a", "b")], min_word_count=2, labeled=True)
    words, tags = vocabs.encode(sentence("a", "b", "zzz"))
    assert words[0] == ROOT_ID and words[1] == vocabs.words.id("a") != UNK_ID
    assert words[2] == UNK_ID and words[3] == UNK_ID  # b was seen once, zzz never
    assert tags == [ROOT_ID] + [vocabs.tags.id("NN")] * 3
    assert vocabs.labels.items == ["<NULL>", "nmod", "root"]  # universal part of nmod:poss
    again = Vocabularies.from_state(vocabs.state())
    assert again.words.items == vocabs.words.items and again.labels.items == vocabs.labels.items


def test_normalized_words_share_an_id_across_case_and_digits_and_survive_the_checkpoint():
    vocabs = Vocabularies.build([sentence("The", "the", "1999", "2001")], min_word_count=2, labeled=True,
                                normalize_words=True)
    words, _ = vocabs.encode(sentence("THE", "1234", "cat"))
    assert words[1] == vocabs.words.id("the") != UNK_ID and words[2] == vocabs.words.id("0000") != UNK_ID
    assert words[3] == UNK_ID and vocabs.words.counts == {"the": 2, "0000": 2}
    again = Vocabularies.from_state(vocabs.state())
    assert again.normalize_words and again.encode(sentence("THE"))[0] == words[:2]


def test_arc_labels_are_universal_or_one_placeholder():
    assert arc_label("obl:tmod", labeled=True) == "obl"
    assert arc_label("obl:tmod", labeled=False) == arc_label("nsubj", labeled=False)
