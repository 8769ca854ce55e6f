"""The arc-standard system: the static oracle rebuilds every projective tree; the rest is detected."""
from __future__ import annotations

import itertools

import pytest

from meprop_cli.tasks.parse.transitions import (LEFT, RIGHT, SHIFT, Configuration, TransitionSet, is_projective,
                                                is_single_rooted_tree, oracle)


def all_head_vectors(n: int):
    """Every assignment of a head in 0..n to each of n words, as heads lists with index 0 unused."""
    for heads in itertools.product(range(n + 1), repeat=n):
        yield [-1, *heads]


def descendants_projective(heads: list[int]) -> bool:
    """The textbook definition: every word between a head and its dependent descends from the head."""
    def dominated(word: int, head: int) -> bool:
        while word != 0:
            if word == head:
                return True
            word = heads[word]
        return head == 0
    for d in range(1, len(heads)):
        h = heads[d]
        lo, hi = sorted((h, d))
        if any(not dominated(w, h) for w in range(lo + 1, hi)):
            return False
    return True


def rebuild(heads: list[int], labels: list[int]) -> Configuration:
    config = Configuration(len(heads) - 1)
    for action, label in oracle(heads, labels):
        config.apply(action, label)
    assert config.is_terminal()
    return config


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_oracle_rebuilds_every_projective_tree_and_detects_the_others(n):
    trees = nonprojective = 0
    for heads in all_head_vectors(n):
        if not is_single_rooted_tree(heads):
            continue
        trees += 1
        labels = [-1] + [10 + d for d in range(1, n + 1)]  # a distinct label per word
        assert is_projective(heads) == descendants_projective(heads), heads
        if is_projective(heads):
            config = rebuild(heads, labels)
            assert config.heads[1:] == heads[1:] and config.labels[1:] == labels[1:]
        else:
            nonprojective += 1
            with pytest.raises(ValueError):
                rebuild(heads, labels)
    assert trees == n ** (n - 1)  # single-rooted trees on n words (Cayley: n^(n-2) per root, n roots)
    assert nonprojective > 0 or n < 4  # the first non-projective trees have 4 words


def test_trees_with_two_roots_or_cycles_are_not_trees():
    assert not is_single_rooted_tree([-1, 0, 0])
    assert not is_single_rooted_tree([-1, 2, 1, 0])
    assert not is_single_rooted_tree([-1, 1])
    assert is_single_rooted_tree([-1, 2, 0, 2])


def test_oracle_sequence_of_a_small_tree():
    # "She saw him": saw is the root, She and him depend on it.
    assert oracle([-1, 2, 0, 2], [-1, 1, 2, 3]) == [(SHIFT, -1), (SHIFT, -1), (LEFT, 1), (SHIFT, -1), (RIGHT, 3),
                                                     (RIGHT, 2)]


def test_root_takes_a_dependent_only_when_the_buffer_is_empty():
    config = Configuration(2)
    config.apply(SHIFT, -1)
    assert config.legal() == (True, False, False)
    config.apply(SHIFT, -1)
    assert config.legal() == (False, True, True)
    config.apply(RIGHT, 1)
    assert config.legal() == (False, False, True)


def test_transition_ids_round_trip():
    transitions = TransitionSet((1, 2, 3))
    assert len(transitions) == 7
    for t in range(len(transitions)):
        action, label = transitions.decode(t)
        assert transitions.encode(action, label) == t
    assert transitions.decode(0) == (SHIFT, None) and transitions.decode(1) == (LEFT, 1)
    assert transitions.decode(4) == (RIGHT, 1)
