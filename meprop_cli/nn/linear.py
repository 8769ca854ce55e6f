"""A linear layer whose backward is meProp's (or exact, with sparsity=None), timed the same either way."""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

from meprop_cli.nn.shrink import keep_along
from meprop_cli.ops import SelectionState, Sparsity, sparsified_linear
from meprop_cli.ops.activations import ACTIVATIONS
from meprop_cli.ops.meact import ActivityMemory, meact_linear


# How linear layers start: torch's (nn.Linear), or as one of the authors' two codes (lancopku/meProp).
INITS = ("torch", "lancopku_csharp", "lancopku_pytorch")


def use_init(model: nn.Module, init: str) -> None:
    """Give every linear layer of the model the initialisation `init` (now, and whenever it is reset)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    for module in model.modules():
        if isinstance(module, MePropLinear):
            module.init = init
            module.reset_parameters()


class MePropLinear(nn.Module):
    """nn.Linear with the same initialisation; sparsity=None is full back propagation.

    The baseline uses this class too (sparsity=None), so baseline and meProp backward times
    are measured by the same timer around the same code.
    """

    def __init__(self, in_features: int, out_features: int, sparsity: Sparsity | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.sparsity = sparsity
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.state = SelectionState()  # run_grad across steps when sparsity.decay > 0
        self.init = "torch"  # one of INITS; use_init() sets it for a whole model
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in, fan_out = self.in_features, self.out_features
        if self.init == "lancopku_csharp":  # GlorotNormalInit.cs: the Glorot uniform bound used as the std
            nn.init.normal_(self.weight, 0.0, math.sqrt(6.0 / (fan_in + fan_out)))
            if self.bias is not None:
                nn.init.zeros_(self.bias)
        elif self.init == "lancopku_pytorch":  # src/pytorch/modules.py: U(±1/√fan_out) for weights and bias
            bound = 1.0 / math.sqrt(fan_out)
            nn.init.uniform_(self.weight, -bound, bound)
            if self.bias is not None:
                nn.init.uniform_(self.bias, -bound, bound)
        else:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as torch.nn.Linear: U(±1/√fan_in)
            if self.bias is not None:
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sparsified_linear(x, self.weight, self.bias, self.sparsity, self.state, self.training)

    def activated(self, x: torch.Tensor, activation: str) -> torch.Tensor:
        """activation(self(x)): an MLP's hidden unit (meAct's layer computes the two together)."""
        a = ACTIVATIONS[activation](self(x))
        if self.state.watch is not None and self.training:
            self.state.watch.observe_activations(a)
        return a

    def keep_outputs(self, keep: torch.Tensor) -> None:
        """Remove every output neuron not in keep (ascending indices): its weight row, bias and record."""
        self.weight = keep_along(self.weight, 0, keep)
        if self.bias is not None:
            self.bias = keep_along(self.bias, 0, keep)
        self.out_features = len(keep)
        self.state.keep_outputs(keep)

    def keep_inputs(self, keep: torch.Tensor) -> None:
        """Remove every input not in keep: the columns of the weight that read removed neurons."""
        self.weight = keep_along(self.weight, 1, keep)
        self.in_features = len(keep)

    def extra_repr(self) -> str:
        s = self.sparsity
        sparse = "full backprop" if s is None else f"k={s.k}, mode={s.mode}, decay={s.decay}"
        return f"in_features={self.in_features}, out_features={self.out_features}, {sparse}"


class MeActLinear(MePropLinear):
    """A hidden layer with full back propagation whose training examples, once its memory acts, compute
    only their active neurons (ops/meact.py). Without a memory, or in eval mode, it is MePropLinear(sparsity=None).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, None, bias)
        self.memory: ActivityMemory | None = None  # attached by the meAct method (methods/meact.py)

    def activated(self, x: torch.Tensor, activation: str) -> torch.Tensor:
        memory = self.memory
        if memory is None or not self.training:
            return super().activated(x, activation)
        ids = memory.batch_ids(x.shape[0])
        if memory.acting:
            a = meact_linear(x, self.weight, self.bias, activation, memory)
        else:  # warm-up: the baseline's own computation, watched (a gradient hook returning None changes nothing)
            y = self(x)
            a = ACTIVATIONS[activation](y)
            if y.requires_grad:
                y.register_hook(functools.partial(memory.record_dense, ids))
            memory.remember(ids, a)
            memory.active_pairs += y.numel()
            memory.pairs += y.numel()
        if self.state.watch is not None:  # trainer.diagnostics (its gradient side sees only the warm-up's products)
            self.state.watch.observe_activations(a)
        return a
