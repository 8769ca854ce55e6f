"""Word dropout (Kiperwasser & Goldberg, 2016), shared by the tasks that embed words.

In training, a word seen c times in the training set becomes UNK with probability α / (α + c). Rare words
keep an embedding of their own, and the UNK embedding is trained on the kind of word that is rare, which
is what an unseen word at test time resembles.
"""
from __future__ import annotations

import torch


def drop_probabilities(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """α / (α + c) per word id, from the training counts c; 0 where c = 0 (UNK and the other specials)."""
    counts = counts.float()
    if alpha <= 0:
        return torch.zeros_like(counts)
    return torch.where(counts > 0, alpha / (alpha + counts), torch.zeros_like(counts))


def drop_words(ids: torch.Tensor, probabilities: torch.Tensor, unk_id: int,
               generator: torch.Generator) -> torch.Tensor:
    """ids with each replaced by unk_id with its word's probability (a new tensor)."""
    drop = torch.rand(ids.shape, generator=generator) < probabilities[ids]
    return ids.masked_fill(drop, unk_id)
