"""A (bidirectional) LSTM whose gate products back-propagate through meProp.

One step of the cell, the torch.nn.LSTM form (gates i, f, g, o):

    a_j = W_j x_t + U_j h_{t-1} + b_j                  j ∈ {i, f, g, o}, each a_j of size h
    c_t = σ(a_f) ⊙ c_{t-1} + σ(a_i) ⊙ tanh(a_g)
    h_t = σ(a_o) ⊙ tanh(c_t)

meProp acts on the products W_j x_t and U_j h_{t-1}: in backward, the gradient of each gate
pre-activation ∂L/∂a_j is replaced by top_k(∂L/∂a_j), per token and at every time step, and only
that sparse gradient reaches W_j, U_j, b_j, x_t and h_{t-1} (ops.meprop_linear). Every gate is a
product of its own, so **k applies per gate**: of the 4h gate gradients of a token, 4k survive
(k ≥ h is full back propagation). The element-wise parts (σ, tanh, ⊙) and the memory path
c_{t-1} ← c_t back-propagate in full, as the paper prescribes.

Both products of a gate receive the same ∂L/∂a_j, so in "topk" mode they keep the same k entries.
In "random" mode each product draws its own k, and in "unified" mode the input product picks one
index set for all tokens of the batch while the recurrent product picks one per time step.

Speed: the input products of all time steps are one call per gate; sequences are packed
(time-major, longest first, as torch's PackedSequence), so step t runs on the batch_sizes[t]
sequences still going and padding is never computed nor back-propagated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from meprop_cli.nn.shrink import keep_along
from meprop_cli.ops import SelectionState, Sparsity, sparsified_linear

GATES = ("i", "f", "g", "o")  # input, forget, cell candidate, output: torch.nn.LSTM's order


@dataclass
class Packing:
    """Where the tokens of a batch of sequences sit in the packed, time-major order.

    Packed row r holds token steps[r] of sequence rows[r]; the rows of step t are contiguous and
    number batch_sizes[t]. `reverse` maps the packing of the sequences to that of the same sequences
    read right to left (row r ↔ the row of the same sequence at step length-1-step); it is its own
    inverse, so it also maps the right-to-left outputs back.
    """

    batch_sizes: list[int]
    rows: torch.Tensor
    steps: torch.Tensor
    reverse: torch.Tensor

    @classmethod
    def from_lengths(cls, lengths: Sequence[int]) -> "Packing":
        """lengths must be sorted longest first and all ≥ 1."""
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
        if len(lengths_t) == 0 or int(lengths_t.min()) < 1:
            raise ValueError("every sequence needs at least one token")
        if bool((lengths_t[1:] > lengths_t[:-1]).any()):
            raise ValueError("sequences must be sorted longest first")
        active = torch.arange(int(lengths_t[0]))[:, None] < lengths_t[None, :]  # (T, B)
        steps, rows = active.nonzero(as_tuple=True)  # row-major over (T, B): time-major packing
        batch_sizes = active.sum(dim=1)
        offsets = batch_sizes.cumsum(0) - batch_sizes
        reverse = offsets[lengths_t[rows] - 1 - steps] + rows
        return cls(batch_sizes.tolist(), rows, steps, reverse)


class LSTMDirection(nn.Module):
    """One LSTM layer read in one direction over packed sequences; one product per gate."""

    def __init__(self, in_features: int, hidden_size: int, sparsity: Sparsity | None = None) -> None:
        super().__init__()
        self.in_features, self.hidden_size, self.sparsity = in_features, hidden_size, sparsity
        # Separate parameters per gate: a gate's product gets its own k, and no slicing of a fused
        # matrix (whose backward would allocate the whole matrix) happens at every step.
        self.weight_x = nn.ParameterList(nn.Parameter(torch.empty(hidden_size, in_features)) for _ in GATES)
        self.weight_h = nn.ParameterList(nn.Parameter(torch.empty(hidden_size, hidden_size)) for _ in GATES)
        self.bias = nn.ParameterList(nn.Parameter(torch.empty(hidden_size)) for _ in GATES)
        # run_grad of each product when sparsity.decay > 0
        self.states_x = [SelectionState() for _ in GATES]
        self.states_h = [SelectionState() for _ in GATES]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # torch.nn.LSTM's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def product(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                state: SelectionState) -> torch.Tensor:
        return sparsified_linear(x, weight, bias, self.sparsity, state, self.training)

    def keep_cells(self, keep: torch.Tensor) -> None:
        """Remove every memory cell not in keep (meSimp's unit): its row in the four gates' input and recurrent
        weights and biases, and its column of the recurrent weights."""
        for j in range(len(GATES)):
            self.weight_x[j] = keep_along(self.weight_x[j], 0, keep)
            self.weight_h[j] = keep_along(keep_along(self.weight_h[j], 0, keep), 1, keep)
            self.bias[j] = keep_along(self.bias[j], 0, keep)
            self.states_x[j].keep_outputs(keep)
            self.states_h[j].keep_outputs(keep)
        self.hidden_size = len(keep)

    def keep_inputs(self, keep: torch.Tensor) -> None:
        """Remove the input columns not in keep (the previous layer removed those neurons)."""
        for j in range(len(GATES)):
            self.weight_x[j] = keep_along(self.weight_x[j], 1, keep)
        self.in_features = len(keep)

    def forward(self, x: torch.Tensor, batch_sizes: list[int]) -> torch.Tensor:
        """x: (tokens, in_features) packed time-major; returns h_t for every token, same order."""
        inputs = [self.product(x, w, b, s).split(batch_sizes)
                  for w, b, s in zip(self.weight_x, self.bias, self.states_x)]
        h = c = None
        outputs = []
        for t, n in enumerate(batch_sizes):
            a = [gate[t] for gate in inputs]
            if h is not None:
                if n < h.shape[0]:  # the shortest sequences have ended
                    h, c = h[:n], c[:n]
                a = [a_j + self.product(h, u, None, s) for a_j, u, s in zip(a, self.weight_h, self.states_h)]
            i, f, g, o = torch.sigmoid(a[0]), torch.sigmoid(a[1]), torch.tanh(a[2]), torch.sigmoid(a[3])
            c = i * g if c is None else torch.addcmul(i * g, f, c)
            h = o * torch.tanh(c)
            outputs.append(h)
        return torch.cat(outputs)

    def extra_repr(self) -> str:
        s = self.sparsity
        sparse = "full backprop" if s is None else f"k={s.k} per gate, mode={s.mode}, decay={s.decay}"
        return f"in_features={self.in_features}, hidden_size={self.hidden_size}, {sparse}"


class BiLSTM(nn.Module):
    """Layers of a left-to-right and a right-to-left LSTMDirection, outputs concatenated."""

    def __init__(self, in_features: int, hidden: Sequence[int], sparsity: Sparsity | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        sizes = [in_features, *(2 * h for h in hidden)]
        self.layers = nn.ModuleList(
            nn.ModuleList([LSTMDirection(a, h, sparsity), LSTMDirection(a, h, sparsity)])
            for a, h in zip(sizes, hidden))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # between layers
        self.out_features = sizes[-1]

    # -- shrinking (nn/shrink.py): one group per direction of each layer, left then right
    def hidden_sizes(self) -> list[int]:
        return [direction.hidden_size for pair in self.layers for direction in pair]

    def hidden_records(self) -> list[list[SelectionState]]:
        # Both products of a gate get the same gradient, so the input product's record is the gate's.
        return [list(direction.states_x) for pair in self.layers for direction in pair]

    def keep_hidden(self, group: int, keep: torch.Tensor) -> torch.Tensor | None:
        """Keep these cells of one direction. Returns, when the last layer shrank, the output columns that
        remain (indices into the old output), for the layer reading the BiLSTM to keep; else None."""
        depth, side = divmod(group, 2)
        left, right = (d.hidden_size for d in self.layers[depth])
        self.layers[depth][side].keep_cells(keep)
        columns = (torch.cat([keep, left + torch.arange(right, device=keep.device)]) if side == 0
                   else torch.cat([torch.arange(left, device=keep.device), left + keep]))
        if depth + 1 < len(self.layers):
            for direction in self.layers[depth + 1]:
                direction.keep_inputs(columns)
            return None
        self.out_features = len(columns)
        return columns

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        for depth, (left, right) in enumerate(self.layers):
            if depth > 0:
                x = self.dropout(x)
            h_left = left(x, packing.batch_sizes)
            h_right = right(x[packing.reverse], packing.batch_sizes)[packing.reverse]
            x = torch.cat([h_left, h_right], dim=1)
        return x
