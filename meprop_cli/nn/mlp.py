"""A multi-layer perceptron whose linear layers come from a method's layer factory."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from meprop_cli.ops import SelectionState
from meprop_cli.ops.activations import ACTIVATIONS

# make_linear(in_features, out_features, role) -> module, role "hidden" or "output"; the hidden ones are
# MePropLinear (or a subclass): the MLP calls their activated(x, activation)
LinearFactory = Callable[[int, int, str], nn.Module]


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: list[int], out_features: int, make_linear: LinearFactory,
                 activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        sizes = [in_features, *hidden]
        self.hidden = nn.ModuleList(make_linear(a, b, "hidden") for a, b in zip(sizes, sizes[1:]))
        self.output = make_linear(sizes[-1], out_features, "output")
        self.activation = activation
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    # -- Shrinkable (nn/shrink.py): one group per hidden layer
    def hidden_sizes(self) -> list[int]:
        return [layer.out_features for layer in self.hidden]

    def hidden_records(self) -> list[list[SelectionState]]:
        return [[layer.state] for layer in self.hidden]

    def keep_hidden(self, group: int, keep: torch.Tensor) -> None:
        self.hidden[group].keep_outputs(keep)
        reader = self.hidden[group + 1] if group + 1 < len(self.hidden) else self.output
        reader.keep_inputs(keep)

    # -- the hidden layers, each computing activation(x Wᵀ + b) through layer.activated: meAct (methods/meact.py)
    # acts on them, the diagnostics (diagnostics.py) watch them
    def feedforward_layers(self) -> list[nn.Module]:
        return list(self.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = self.dropout(layer.activated(x, self.activation))
        return self.output(x)
