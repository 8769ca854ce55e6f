"""Word dropout: α / (α + c) per word, never for UNK and the specials."""
import pytest
import torch

from meprop_cli.tasks.word_dropout import drop_probabilities, drop_words


def test_probabilities_fall_with_the_training_count_and_are_zero_for_unseen_ids():
    p = drop_probabilities(torch.tensor([0, 1, 3, 99]), alpha=0.25)
    assert p.tolist() == pytest.approx([0.0, 0.25 / 1.25, 0.25 / 3.25, 0.25 / 99.25])
    assert drop_probabilities(torch.tensor([0, 1, 3]), alpha=0.0).tolist() == [0.0, 0.0, 0.0]


def test_drop_words_replaces_by_unk_at_each_words_rate():
    p = torch.tensor([0.0, 1.0, 0.0, 0.5])
    ids = torch.tensor([[0, 1, 2, 3]] * 4000)
    dropped = drop_words(ids, p, unk_id=7, generator=torch.Generator().manual_seed(0))
    assert (dropped[:, 1] == 7).all() and (dropped[:, [0, 2]] == ids[:, [0, 2]]).all()
    assert 0.45 < float((dropped[:, 3] == 7).float().mean()) < 0.55
    assert (ids[:, 1] == 1).all()  # the input is left as it was
