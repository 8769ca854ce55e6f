"""Greedy decoding always ends in a single-rooted tree; attachment scores on a hand-made prediction."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from meprop_cli.data.conllu import Sentence, Token
from meprop_cli.tasks.parse.decode import parse
from meprop_cli.tasks.parse.evaluate import attachment_scores
from meprop_cli.tasks.parse.transitions import TransitionSet, is_single_rooted_tree


class ScoresFrom(nn.Module):
    """A stand-in scorer: random scores, or a fixed preference for one transition."""

    def __init__(self, n_transitions: int, favourite: int | None, seed: int) -> None:
        super().__init__()
        self.n, self.favourite = n_transitions, favourite
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        assert feats.shape[1] == 48
        if self.favourite is None:
            return torch.randn(len(feats), self.n, generator=self.generator)
        scores = torch.zeros(len(feats), self.n)
        scores[:, self.favourite] = 100.0
        return scores


@pytest.mark.parametrize("favourite", [None, 0, 1, 4])  # random, always SHIFT, always LEFT, always RIGHT
def test_decoding_always_yields_a_single_rooted_tree(favourite):
    transitions = TransitionSet((1, 2, 3))
    lengths = [1, 2, 3, 5, 8, 13, 30]
    encoded = [([2] * (n + 1), [2] * (n + 1)) for n in lengths]
    for seed in range(3):
        configs = parse(ScoresFrom(len(transitions), favourite, seed), encoded, transitions, batch_sentences=3)
        assert [c.n for c in configs] == lengths  # the input order is kept
        for c in configs:
            assert c.is_terminal() and is_single_rooted_tree(c.heads)
            assert all(label in (1, 2, 3) for label in c.labels[1:])


def tok(i: int, head: int, deprel: str, upos: str = "NOUN") -> Token:
    return Token(i, f"w{i}", "_", upos, "NN", "_", head, deprel, "_", "_")


def test_uas_las_and_uas_without_punctuation_on_a_hand_made_prediction():
    gold = [Sentence([tok(1, 2, "nsubj"), tok(2, 0, "root", "VERB"), tok(3, 2, "obj"), tok(4, 2, "punct", "PUNCT")]),
            Sentence([tok(1, 0, "root"), tok(2, 1, "nmod:poss")])]
    predicted = [Sentence([tok(1, 2, "nsubj"), tok(2, 0, "root"), tok(3, 2, "iobj"), tok(4, 3, "punct")]),
                 Sentence([tok(1, 0, "root"), tok(2, 1, "nmod")])]  # nmod matches nmod:poss (universal part)
    scores = attachment_scores(gold, predicted)
    assert scores["uas"] == pytest.approx(5 / 6)  # word 4 has the wrong head
    assert scores["las"] == pytest.approx(4 / 6)  # and word 3 the wrong label
    assert scores["uas_nopunct"] == pytest.approx(5 / 5)  # the punctuation mark is not scored
    assert list(scores) == ["uas", "las", "uas_nopunct"]


def test_las_is_not_a_number_for_unlabeled_parsing():
    gold = [Sentence([tok(1, 0, "root")])]
    scores = attachment_scores(gold, gold, labeled=False)
    assert scores["uas"] == 1.0 and scores["las"] != scores["las"]
