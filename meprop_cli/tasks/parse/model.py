"""The parser's scorer: 48 feature embeddings (50 dims each) → MLP → one score per transition."""
from __future__ import annotations

import torch
from torch import nn

from meprop_cli.methods import Method
from meprop_cli.nn import MLP
from meprop_cli.tasks.parse.features import N_LABEL_FEATURES, N_POSITIONS


class ParserModel(nn.Module):
    """Chen & Manning (2014) with the meProp paper's MLP: every linear layer comes from the method."""

    def __init__(self, n_words: int, n_tags: int, n_labels: int, n_transitions: int, method: Method,
                 embed_dim: int, activation: str, dropout: float, embed_init: float) -> None:
        super().__init__()
        self.words = nn.Embedding(n_words, embed_dim)
        self.tags = nn.Embedding(n_tags, embed_dim)
        self.labels = nn.Embedding(n_labels, embed_dim)
        for table in (self.words, self.tags, self.labels):
            nn.init.uniform_(table.weight, -embed_init, embed_init)
        in_features = (2 * N_POSITIONS + N_LABEL_FEATURES) * embed_dim
        self.mlp = MLP(in_features, method.hidden, n_transitions, method.make_linear, activation, dropout)

    # -- Shrinkable (nn/shrink.py): the MLP's hidden layers
    def hidden_sizes(self) -> list[int]:
        return self.mlp.hidden_sizes()

    def hidden_records(self) -> list:
        return self.mlp.hidden_records()

    def keep_hidden(self, group: int, keep: torch.Tensor) -> None:
        self.mlp.keep_hidden(group, keep)

    def feedforward_layers(self) -> list[nn.Module]:
        return self.mlp.feedforward_layers()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats: (batch, 48) ids → (batch, transitions) scores."""
        words = self.words(feats[:, :N_POSITIONS])
        tags = self.tags(feats[:, N_POSITIONS:2 * N_POSITIONS])
        labels = self.labels(feats[:, 2 * N_POSITIONS:])
        x = torch.cat([words.flatten(1), tags.flatten(1), labels.flatten(1)], dim=1)
        return self.mlp(x)
