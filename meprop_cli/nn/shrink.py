"""Models whose hidden layers can lose neurons during training (meSimp), and what checkpoints need of them.

A shrinkable model groups its hidden neurons: an MLP has one group per hidden layer, a BiLSTM one per
direction of each layer (a memory cell is the unit; the two directions shrink independently). It says
how big each group is, which selection states count the group's neurons in the top-k record, and how
to keep only some neurons of a group, which also removes what read them (the next layer's columns).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from meprop_cli.ops import SelectionState


@runtime_checkable
class Shrinkable(Protocol):
    def hidden_sizes(self) -> list[int]:
        """The size of each group of hidden neurons."""

    def hidden_records(self) -> list[list[SelectionState]]:
        """Per group, the selection states whose top-k record counts its neurons (an LSTM cell: its four gates)."""

    def keep_hidden(self, group: int, keep: torch.Tensor) -> None:
        """Keep only these neurons (ascending indices) of a group, with everything that reads or feeds them."""


def fit_to_sizes(model: nn.Module, sizes: list[int] | None) -> None:
    """Shrink a freshly built model to saved sizes (keeping the first neurons), so a pruned checkpoint loads.

    The weights are then overwritten by load_state_dict, so which neurons are kept does not matter.
    """
    if sizes is None or not isinstance(model, Shrinkable):
        return
    current = model.hidden_sizes()
    if len(current) != len(sizes) or any(n > c for n, c in zip(sizes, current)):
        raise ValueError(f"saved hidden sizes {sizes} do not fit a model built with {current}")
    for group, (n, c) in enumerate(zip(sizes, current)):
        if n < c:
            model.keep_hidden(group, torch.arange(n))


def sizes_of(model: nn.Module) -> list[int] | None:
    return model.hidden_sizes() if isinstance(model, Shrinkable) else None


def selection_states(model: nn.Module) -> dict[str, SelectionState]:
    """Every SelectionState the model's layers hold (run_grad, top-k record), by a stable name."""
    found: dict[str, SelectionState] = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, SelectionState):
                found[f"{name}.{attr}"] = value
            elif isinstance(value, list) and value and all(isinstance(v, SelectionState) for v in value):
                found.update((f"{name}.{attr}.{i}", v) for i, v in enumerate(value))
    return found


def selection_state_dict(model: nn.Module) -> dict[str, dict]:
    return {name: state.state_dict() for name, state in selection_states(model).items()}


def load_selection_state_dict(model: nn.Module, saved: dict[str, dict]) -> None:
    """The saved states, onto the model's device."""
    states = selection_states(model)
    device = next(model.parameters()).device
    for name, state in saved.items():
        states[name].load_state_dict(state, device)


# -- carrying state across a shrink ----------------------------------------------------------------
# Layers remove neurons through keep_along(), which makes the smaller parameter and, inside
# tracking_shrink(), notes where it came from; the trainer then slices the optimizer state and the
# weight average of each parameter the same way (train.Run.apply), in one place for every model.

Slices = list[tuple[int, torch.Tensor]]  # (dim, kept indices), applied in order
_origins: dict[nn.Parameter, tuple[nn.Parameter, int, torch.Tensor]] | None = None


def keep_along(param: nn.Parameter, dim: int, keep: torch.Tensor) -> nn.Parameter:
    """A new parameter holding param's slices `keep` along dim."""
    with torch.no_grad():
        new = nn.Parameter(param.index_select(dim, keep.to(param.device)).contiguous(),
                           requires_grad=param.requires_grad)
    if _origins is not None:
        _origins[new] = (param, dim, keep)
    return new


class ShrinkRecord:
    """Filled by tracking_shrink(): for each new parameter, the parameter it was cut from and the cuts."""

    def __init__(self) -> None:
        self.origins: dict[nn.Parameter, tuple[nn.Parameter, Slices]] = {}

    def origin(self, param: nn.Parameter) -> tuple[nn.Parameter, Slices]:
        """(the parameter before the shrink, slices from it to param); (param, []) if param was not cut."""
        return self.origins.get(param, (param, []))

    @property
    def changed(self) -> bool:
        return bool(self.origins)


def apply_slices(tensor: torch.Tensor, slices: Slices) -> torch.Tensor:
    for dim, keep in slices:
        tensor = tensor.index_select(dim, keep.to(tensor.device))
    return tensor.contiguous()


class tracking_shrink:
    """with tracking_shrink() as record: ...keep_hidden()...  → record.origin(new_param)."""

    def __enter__(self) -> ShrinkRecord:
        global _origins
        self.record = ShrinkRecord()
        _origins = {}
        return self.record

    def __exit__(self, *exc) -> None:
        global _origins
        steps, _origins = _origins, None
        for new in steps:
            chain: Slices = []
            param = new
            while param in steps:  # a weight cut twice (an LSTM's recurrent rows, then columns)
                param, dim, keep = steps[param]
                chain.insert(0, (dim, keep))
            self.record.origins[new] = (param, chain)
        # keep only the parameters that survive to the end (intermediate ones are gone)
        intermediates = {steps[new][0] for new in steps}
        for p in intermediates:
            self.record.origins.pop(p, None)
