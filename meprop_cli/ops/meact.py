"""meAct: a hidden layer in which each training example computes only its active neurons.

For every training example (by its stable id) a layer keeps an ActivityMemory row: the accumulated
|∂L/∂y| of each neuron (y = x Wᵀ + b, the linear output whose gradient meProp sparsifies) and the
neuron's activation a = f(y) at the example's last encounter. Once meAct acts, neuron j is active for
example i unless its share of the row's accumulated total is below the threshold:

    active(i, j)  ⇔  grad_sum[i, j] ≥ threshold · Σ_j' grad_sum[i, j']   (and the row's largest always is)

An inactive neuron is not computed: it outputs last[i, j], a constant, so its gradient is zero and no
backward work is done for it. The forward and backward visit only the active pairs, in CSR form
(offsets, cols), through the kernels of ops/native.py (C, or their torch twins). An example whose row
holds no gradient yet (never trained on, or every gradient exactly zero) computes every neuron.

Accumulation goes on while meAct acts, over the active pairs (the inactive ones get no gradient), so an
inactive neuron's share only falls: an example's active set can only shrink.
"""
from __future__ import annotations

import torch

from meprop_cli.ops import native
from meprop_cli.ops.activations import ACTIVATIONS, slope
from meprop_cli.ops.timing import linear_backward_timer

MEMORY_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ActivityMemory:
    """One hidden layer's per-example memory: grad_sum (examples, neurons) float32 and last (examples, neurons).

    ids: the examples of the current training batch (set by the method before each step). acting: whether
    inactive neurons are skipped (False: every neuron is computed and the memory only records). device: where
    the layer is (the memory is read and written at every step of it).
    """

    def __init__(self, examples: int, neurons: int, threshold: float, last_dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        self.grad_sum = torch.zeros(examples, neurons, device=device)
        self.last = torch.zeros(examples, neurons, dtype=last_dtype, device=device)
        self.threshold = threshold
        self.ids: torch.Tensor | None = None
        self.acting = False
        self.active_pairs = 0  # since reset_counts(): active (example, neuron) pairs computed
        self.pairs = 0  # since reset_counts(): (example, neuron) pairs a full layer would compute

    @property
    def neurons(self) -> int:
        return self.grad_sum.shape[1]

    def nbytes(self) -> int:
        return self.grad_sum.numel() * self.grad_sum.element_size() + self.last.numel() * self.last.element_size()

    def reset_counts(self) -> tuple[int, int]:
        counts = self.active_pairs, self.pairs
        self.active_pairs = self.pairs = 0
        return counts

    def batch_ids(self, rows: int) -> torch.Tensor:
        ids = self.ids
        if ids is None or len(ids) != rows:
            raise RuntimeError(f"meAct needs the ids of the batch's {rows} examples (Method.on_batch_start), "
                               f"got {None if ids is None else len(ids)}")
        return ids

    def plan(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The active pairs of these examples (the rule in the module doc): (offsets, cols, rows, flat)."""
        return native.active_plan(self.grad_sum, ids, self.threshold)

    def active(self, ids: torch.Tensor) -> torch.Tensor:
        """The (rows, neurons) mask of active neurons of these examples."""
        offsets, cols, rows, _ = self.plan(ids)
        mask = torch.zeros(len(ids), self.neurons, dtype=torch.bool, device=self.grad_sum.device)
        mask[rows, cols] = True
        return mask

    def record_dense(self, ids: torch.Tensor, g: torch.Tensor) -> None:
        """Every neuron was computed: add |g| (rows, neurons) to the examples' rows."""
        self.grad_sum.index_add_(0, ids, g.detach().abs().to(self.grad_sum.dtype))

    def record_pairs(self, flat: torch.Tensor, g: torch.Tensor) -> None:
        """Only the pairs at flat (ids · neurons + col) were computed: add their |g|."""
        self.grad_sum.view(-1).index_add_(0, flat, g.abs())

    def remember(self, ids: torch.Tensor, a: torch.Tensor) -> None:
        self.last.index_copy_(0, ids, a.detach().to(self.last.dtype))

    def state_dict(self) -> dict:
        # acting and the counts matter to a checkpoint taken inside an epoch (trainer.checkpoint_every_steps)
        return {"grad_sum": self.grad_sum, "last": self.last, "acting": self.acting,
                "active_pairs": self.active_pairs, "pairs": self.pairs}

    def load_state_dict(self, state: dict) -> None:
        if state["grad_sum"].shape != self.grad_sum.shape:
            raise ValueError(f"meAct memory of shape {tuple(state['grad_sum'].shape)} does not fit "
                             f"{tuple(self.grad_sum.shape)}")
        self.grad_sum.copy_(state["grad_sum"])
        self.last.copy_(state["last"])
        self.acting = state.get("acting", False)
        self.active_pairs, self.pairs = state.get("active_pairs", 0), state.get("pairs", 0)


class MeActLinearFunction(torch.autograd.Function):
    """a = f(x Wᵀ + b) at the active pairs; the example's last activation everywhere else."""

    @staticmethod
    def forward(ctx, x, weight, bias, ids, offsets, cols, rows, flat, activation, memory):
        y = native.active_forward(x, weight, bias, offsets, cols)
        a = ACTIVATIONS[activation](y)
        out = native.active_merge(memory.last, ids, offsets, cols, rows, flat, a)
        ctx.save_for_backward(x, weight, offsets, cols, flat, rows, slope(activation, y, a))
        ctx.memory, ctx.has_bias = memory, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        start = linear_backward_timer.clock(grad_out)
        x, weight, offsets, cols, flat, rows, slopes = ctx.saved_tensors
        n = weight.shape[0]
        g = grad_out.reshape(-1)[rows * n + cols] * slopes  # ∂L/∂y at the active pairs
        ctx.memory.record_pairs(flat, g)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = native.active_grad_input(offsets, cols, g, weight) if need_x else None
        grad_w = native.active_grad_weight(offsets, cols, g, x, n) if need_w else None
        grad_b = native.grad_bias(cols, g, n) if need_b and ctx.has_bias else None
        linear_backward_timer.add_since(start, grad_out)
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None


def meact_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str,
                 memory: ActivityMemory) -> torch.Tensor:
    """f(x Wᵀ + b) of a training batch (x is (rows, in_features), its examples memory.ids) computing only
    their active neurons; the others output the memory's last activation, which takes this encounter's."""
    ids = memory.batch_ids(x.shape[0])
    offsets, cols, rows, flat = memory.plan(ids)
    memory.active_pairs += len(cols)
    memory.pairs += x.shape[0] * memory.neurons
    return MeActLinearFunction.apply(x, weight, bias, ids, offsets, cols, rows, flat, activation, memory)
