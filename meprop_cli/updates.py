"""The size of the optimizer's updates: mean |Δw| per parameter per update (meAct's figure plots it per epoch).

For update t, Δw_t = w after the step − w before it, over every parameter of the model (P numbers); the
epoch's value is (1/T) Σ_t (1/P) Σ_p |Δw_p,t| over its T updates, and the same per parameter tensor.
The snapshot and the sums run outside the timed phases, so they do not change the measured times.
"""
from __future__ import annotations

import torch
from torch import nn

from meprop_cli import results


class UpdateMeter:
    def __init__(self) -> None:
        self.sums: dict[str, float] = {}  # per tensor: Σ_t mean |Δw| of the tensor
        self.total = 0.0  # Σ_t mean |Δw| over all parameters
        self.updates = 0
        self.before: list[torch.Tensor] = []  # the parameters before the step (buffers kept between steps)
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []

    @torch.no_grad()
    def snapshot(self, model: nn.Module) -> None:
        """Before the optimizer step."""
        named = list(model.named_parameters())
        self.params = [p.detach() for _, p in named]
        names = [name for name, _ in named]
        if names == self.names and all(b.shape == p.shape for b, p in zip(self.before, self.params)):
            torch._foreach_copy_(self.before, self.params)
        else:  # the first step, or a method changed the parameters (meSimp)
            self.before, self.names = [p.clone() for p in self.params], names
        self.numels = [p.numel() for p in self.params]

    @torch.no_grad()
    def measure(self) -> None:
        """After the optimizer step."""
        torch._foreach_sub_(self.before, self.params)  # before − after: the same |Δw|
        sizes = torch.stack(torch._foreach_norm(self.before, 1)).tolist()
        for name, size, numel in zip(self.names, sizes, self.numels):
            self.sums[name] = self.sums.get(name, 0.0) + size / numel
        self.total += sum(sizes) / sum(self.numels)
        self.updates += 1

    def state_dict(self) -> dict:
        """The epoch's sums so far (a checkpoint inside an epoch)."""
        return {"sums": dict(self.sums), "total": self.total, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.total, self.updates = dict(state["sums"]), state["total"], state["updates"]

    def epoch_fields(self) -> dict:
        """The epoch's means for metrics.jsonl; starts the next epoch's."""
        if not self.updates:
            return {}
        fields = {results.UPDATE_SIZE: self.total / self.updates,
                  results.UPDATE_SIZE_BY_PARAM: {name: s / self.updates for name, s in self.sums.items()}}
        self.sums, self.total, self.updates = {}, 0.0, 0
        return fields
