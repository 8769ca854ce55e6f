"""meProp: top-k sparsified back propagation through a linear transformation (Sun et al., 2017).

Forward is unchanged: y = x Wᵀ + b. In backward the incoming gradient g = ∂L/∂y is replaced by
top_k(g) (the k entries of largest |g| kept, the rest zero), and then

    ∂L/∂W = top_k(g)ᵀ x        only k rows of W receive a gradient
    ∂L/∂x = top_k(g) W         only k columns of W are read
    ∂L/∂b = Σ_batch top_k(g)   the sparsified g, so the bias rows match the weight rows that learn

(the authors' code used the dense g for the bias; here bias and weight get gradient on the same rows,
which is what a sparse-row update needs.)

Selection modes:
    "topk"     per example: each row of g keeps its own k indices (the paper's eq. 5-6).
    "unified"  per mini-batch: one index set from the column sums of |g| (the paper's GPU variant).
    "random"   per example: k indices drawn uniformly at random (the random-k baseline).

With decay > 0 the top-k is chosen on run_grad = decay·run_grad + (1−decay)·|g| (meProp-CNN §3),
kept across steps in a SelectionState; decay = 0 is plain top-k. k ≥ out_features is full backprop.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from meprop_cli.ops.timing import linear_backward_timer

MODES = ("topk", "unified", "random")


@dataclass(frozen=True)
class Sparsity:
    """How one layer's output gradient is sparsified: keep k of its entries, chosen by mode."""

    k: int
    mode: str = "topk"
    decay: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown meProp mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {self.decay}")


class SelectionState:
    """run_grad of one layer, carried from step to step when decay > 0."""

    def __init__(self) -> None:
        self.run_grad: torch.Tensor | None = None

    def score(self, g_abs: torch.Tensor, decay: float) -> torch.Tensor:
        """Update run_grad with |g| and return it; a new batch shape starts it afresh from |g|."""
        if self.run_grad is None or self.run_grad.shape != g_abs.shape:
            self.run_grad = g_abs.clone()
        else:
            self.run_grad.mul_(decay).add_(g_abs, alpha=1.0 - decay)
        return self.run_grad


def topk_indices(g: torch.Tensor, k: int, mode: str = "topk", decay: float = 0.0,
                 state: SelectionState | None = None) -> torch.Tensor:
    """Indices kept by the selection: (rows, k) for "topk"/"random", (k,) for "unified"."""
    if mode == "random":
        return torch.rand(g.shape, device=g.device).topk(k, dim=1, sorted=False).indices
    score = g.abs()
    if decay > 0.0:
        if state is None:
            raise ValueError("decay > 0 needs a SelectionState to keep run_grad across steps")
        score = state.score(score, decay)
    if mode == "unified":
        return score.sum(dim=0).topk(k, sorted=False).indices
    return score.topk(k, dim=1, sorted=False).indices


def sparsify(g: torch.Tensor, k: int, mode: str = "topk", decay: float = 0.0,
             state: SelectionState | None = None) -> torch.Tensor:
    """top_k(g) as a dense tensor with the unselected entries zeroed (g is 2-D: rows × features)."""
    idx = topk_indices(g, k, mode, decay, state)
    if mode == "unified":
        mask = torch.zeros(g.shape[1], dtype=torch.bool, device=g.device)
        mask[idx] = True
        return g * mask
    return torch.zeros_like(g).scatter_(1, idx, g.gather(1, idx))


class MePropLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, k, mode, decay, state):
        ctx.save_for_backward(x, weight)
        ctx.k, ctx.mode, ctx.decay, ctx.state = k, mode, decay, state
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_y):
        start = linear_backward_timer.clock()
        x, weight = ctx.saved_tensors
        out_features, in_features = weight.shape
        g = grad_y.reshape(-1, out_features)
        x2 = x.reshape(-1, in_features)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None

        if ctx.k is not None and ctx.k < out_features and ctx.mode == "unified":
            # One index set for the batch: the products shrink to dense (rows × k) ones.
            idx = topk_indices(g, ctx.k, "unified", ctx.decay, ctx.state)
            g_k = g.index_select(1, idx)
            if need_x:
                grad_x = (g_k @ weight.index_select(0, idx)).reshape(x.shape)
            if need_w:
                grad_w = torch.zeros_like(weight).index_copy_(0, idx, g_k.t() @ x2)
            if need_b and ctx.has_bias:
                grad_b = torch.zeros(out_features, dtype=g.dtype, device=g.device).index_copy_(0, idx, g_k.sum(0))
        else:
            if ctx.k is not None and ctx.k < out_features:
                g = sparsify(g, ctx.k, ctx.mode, ctx.decay, ctx.state)
            if need_x:
                grad_x = (g @ weight).reshape(x.shape)
            if need_w:
                grad_w = g.t() @ x2
            if need_b and ctx.has_bias:
                grad_b = g.sum(0)
        linear_backward_timer.add_since(start)
        return grad_x, grad_w, grad_b, None, None, None, None


def meprop_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  k: int | None = None, mode: str = "topk", *, decay: float = 0.0,
                  state: SelectionState | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) whose backward keeps only k entries of ∂L/∂y per example (see module doc).

    x may have any number of leading dimensions; each row of the flattened (-1, out_features)
    gradient is one example. k=None or k ≥ out_features gives exact full back propagation.
    """
    if mode not in MODES:
        raise ValueError(f"unknown meProp mode {mode!r}; choose one of {', '.join(MODES)}")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if decay > 0.0 and state is None:
        state = SelectionState()  # a one-off call: run_grad starts from this step's |g|
    return MePropLinearFunction.apply(x, weight, bias, k, mode, decay, state)
