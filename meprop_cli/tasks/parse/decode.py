"""Greedy decoding, batched across sentences: one forward pass per step for every unfinished parse.

Illegal transitions are masked before the argmax, so every parse ends in a single-rooted tree
(see transitions.py).
"""
from __future__ import annotations

import torch
from torch import nn

from meprop_cli.tasks.parse.features import features
from meprop_cli.tasks.parse.transitions import Configuration, TransitionSet


def action_columns(transitions: TransitionSet) -> torch.Tensor:
    """For each transition id, its action (SHIFT, LEFT or RIGHT): indexes a (batch, 3) legality mask."""
    return torch.tensor([transitions.decode(t)[0] for t in range(len(transitions))])


@torch.no_grad()
def parse(model: nn.Module, encoded: list[tuple[list[int], list[int]]], transitions: TransitionSet,
          batch_sentences: int, device: torch.device | str = "cpu") -> list[Configuration]:
    """Parse sentences given as (word ids, tag ids) with ROOT at 0; the final configurations, in order.
    device: the model's; each step's features and legality mask go there, the chosen transitions come back."""
    # Configuration.legal() is ordered (SHIFT, LEFT, RIGHT) = (0, 1, 2)
    columns = action_columns(transitions).to(device)
    done: list[Configuration] = []
    for start in range(0, len(encoded), batch_sentences):
        chunk = encoded[start:start + batch_sentences]
        configs = [Configuration(len(words) - 1) for words, _ in chunk]
        active = [i for i, c in enumerate(configs) if not c.is_terminal()]
        while active:
            feats = torch.tensor([features(configs[i], *chunk[i]) for i in active], device=device)
            legal = torch.tensor([configs[i].legal() for i in active], device=device)
            scores = model(feats).masked_fill(~legal[:, columns], float("-inf"))
            for i, t in zip(active, scores.argmax(dim=1).tolist()):
                configs[i].apply(*transitions.decode(t))
            active = [i for i in active if not configs[i].is_terminal()]
        done.extend(configs)
    return done
