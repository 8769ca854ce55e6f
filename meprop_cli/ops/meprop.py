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

The backward never forms the dense top_k(g): per example it works from the (rows, k) kept indices and
values with the compiled kernels of ops/native.py (or their torch twins), unified from the (rows, k)
columns g[:, idx]. sparsify() below is the reference formula (dense, masked) the tests compare with.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from meprop_cli.ops import buffers, native
from meprop_cli.ops.timing import linear_backward_timer

MODES = ("topk", "unified", "random")


@dataclass(frozen=True)
class Sparsity:
    """How one layer's output gradient is sparsified: keep k of its entries, chosen by mode."""

    k: int
    mode: str = "topk"
    decay: float = 0.0
    sparse_grad: bool = False  # weight/bias gradients as sparse rows, for the row-sparse optimizer
    dense_bias: bool = False  # the bias gets the whole ∂L/∂y summed, not only the kept entries (the authors' code)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown meProp mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {self.decay}")


class SelectionState:
    """What one layer's selection carries from step to step.

    run_grad: the decayed |g| the top-k is chosen on when decay > 0.
    hits, seen: the top-k record (meSimp), kept only after start_record(): hits[j] counts the examples
    (rows of g) whose kept entries held output j with a nonzero gradient (or, with count_zeros, at all),
    seen the examples counted, both since the last start_record(). A layer with k ≥ its outputs keeps
    every entry.
    """

    def __init__(self) -> None:
        self.run_grad: torch.Tensor | None = None
        self.hits: torch.Tensor | None = None
        self.seen = 0
        self.count_zeros = False
        self.watch = None  # a diagnostics.LayerWatch that sees every backward's g and kept values (or None)

    def score(self, g_abs: torch.Tensor, decay: float) -> torch.Tensor:
        """Update run_grad with |g| and return it; a new batch shape starts it afresh from |g|."""
        if self.run_grad is None or self.run_grad.shape != g_abs.shape:
            self.run_grad = g_abs.clone()
        else:
            self.run_grad.mul_(decay).add_(g_abs, alpha=1.0 - decay)
        return self.run_grad

    def start_record(self, outputs: int, count_zeros: bool = False, device: torch.device | str = "cpu") -> None:
        """Count from now on (and from zero) which outputs the selection keeps. count_zeros=False counts a kept
        entry only if its gradient is nonzero (it updates its row); True counts every kept index, as the
        reference code does, including the zero entries a top-k takes when a row has fewer than k nonzero.
        device: the layer's, so that counting never waits for a copy from a GPU."""
        self.hits = torch.zeros(outputs, dtype=torch.int64, device=device)
        self.seen = 0
        self.count_zeros = count_zeros

    def record(self, idx: torch.Tensor | None, rows: int, kept: torch.Tensor) -> None:
        """idx: the kept indices, (rows, k) per example, (k,) for the whole batch, or None: all were kept;
        kept: the kept gradient values, the same shape as the selection ((rows, k), (rows, k), (rows, n))."""
        if self.hits is None:
            return
        counted = torch.ones_like(kept, dtype=torch.int64) if self.count_zeros else (kept != 0).long()
        if idx is None or idx.dim() == 1:  # columns: all outputs, or the batch's k
            if idx is None:
                self.hits += counted.sum(0)
            else:
                self.hits.index_add_(0, idx, counted.sum(0))
        else:
            self.hits.index_add_(0, idx.reshape(-1), counted.reshape(-1))
        self.seen += rows

    @torch.no_grad()
    def keep_outputs(self, keep: torch.Tensor) -> None:
        """The layer kept only these outputs (meSimp): drop the others' run_grad and record."""
        if self.run_grad is not None:
            self.run_grad = self.run_grad.index_select(-1, keep.to(self.run_grad.device)).contiguous()
        if self.hits is not None:
            self.hits = self.hits[keep.to(self.hits.device)]

    def state_dict(self) -> dict:
        return {"run_grad": self.run_grad, "hits": self.hits, "seen": self.seen, "count_zeros": self.count_zeros}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        """device: the layer's (a checkpoint is read onto the CPU, whichever device saved it)."""
        run_grad, hits = state["run_grad"], state["hits"]
        self.run_grad = None if run_grad is None else run_grad.to(device)
        self.hits = None if hits is None else hits.to(device)
        self.seen = state["seen"]
        self.count_zeros = state.get("count_zeros", False)


def topk_indices(g: torch.Tensor, k: int, mode: str = "topk", decay: float = 0.0,
                 state: SelectionState | None = None) -> torch.Tensor:
    """Indices kept by the selection: (rows, k) for "topk"/"random", (k,) for "unified"."""
    if mode == "random":
        return torch.rand(g.shape, device=g.device).topk(k, dim=1, sorted=False).indices
    if mode == "unified" and decay == 0.0:  # the column sums of |g| in one pass, without |g| written out
        return native.column_abs_sum(g).topk(k, sorted=False).indices
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
    """top_k(g) as a dense tensor with the unselected entries zeroed (g is 2-D: rows × features).

    The reference: top_k(g) W and top_k(g)ᵀ x with this dense matrix are what the kernels must equal.
    """
    idx = topk_indices(g, k, mode, decay, state)
    if mode == "unified":
        mask = torch.zeros(g.shape[1], dtype=torch.bool, device=g.device)
        mask[idx] = True
        return g * mask
    return torch.zeros_like(g).scatter_(1, idx, g.gather(1, idx))


def _rows_gradient(rows: torch.Tensor, values: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """A gradient that is zero outside the given rows (ascending, unique), as a sparse COO tensor."""
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, size, is_coalesced=True, check_invariants=False,
                                   device=values.device)


class MePropLinearFunction(torch.autograd.Function):
    """The backward reads only the kept entries of g (ops/native.py: compiled kernels or their torch twins).

    sparse_grad=True returns ∂L/∂W and ∂L/∂b as sparse row tensors holding only the rows that got
    gradient, for the row-sparse optimizer (optim.sparse_update); otherwise they are dense.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, k, mode, decay, state, sparse_grad, dense_bias):
        ctx.save_for_backward(x, weight)
        ctx.k, ctx.mode, ctx.decay, ctx.state, ctx.sparse_grad = k, mode, decay, state, sparse_grad
        ctx.dense_bias = dense_bias
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_y):
        start = linear_backward_timer.clock(grad_y)
        x, weight = ctx.saved_tensors
        out_features, in_features = weight.shape
        g = grad_y.reshape(-1, out_features)
        x2 = x.reshape(-1, in_features)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        grad_x = grad_w = grad_b = None
        if need_b and ctx.dense_bias:  # the C# and PyTorch reference codes add the bias after the top-k'd product
            grad_b, need_b = g.sum(0), False

        if ctx.k is None or ctx.k >= out_features:  # full back propagation
            if need_x:
                grad_x = torch.mm(g, weight, out=buffers.output(x2.shape, g.dtype, g.device)).reshape(x.shape)
            if need_w:
                grad_w = g.t() @ x2
            if need_b:
                grad_b = g.sum(0)
            if ctx.state is not None:
                ctx.state.record(None, g.shape[0], g)
                kept = g
        elif ctx.mode == "unified":
            # One index set for the batch: the products shrink to dense (rows × k) ones.
            idx = topk_indices(g, ctx.k, "unified", ctx.decay, ctx.state)
            if ctx.sparse_grad:  # sparse rows go ascending; a dense result does not care (a sort costs ~4 µs)
                idx = idx.sort().values
            g_k = g.index_select(1, idx)
            if ctx.state is not None:
                ctx.state.record(idx, g.shape[0], g_k)
                kept = g_k
            if need_x:  # k is small: native's thin products, which a BLAS's packing for deep products outweighs
                grad_x = native.thin_product(g_k, weight.index_select(0, idx),
                                             out=buffers.output(x2.shape, g.dtype, g.device)).reshape(x.shape)
            if need_w:
                rows_w = native.thin_product_t(g_k, x2)
                grad_w = (_rows_gradient(idx, rows_w, weight.shape) if ctx.sparse_grad
                          else weight.new_zeros(weight.shape).index_copy_(0, idx, rows_w))
            if need_b:
                rows_b = g_k.sum(0)
                grad_b = (_rows_gradient(idx, rows_b, (out_features,)) if ctx.sparse_grad
                          else g.new_zeros(out_features).index_copy_(0, idx, rows_b))
        else:
            # Per example: each row keeps its own k entries; the kernels read only those (idx, val).
            if ctx.mode == "random":
                score = torch.rand(g.shape, device=g.device)  # the same draw as topk_indices(mode="random")
            elif ctx.decay > 0.0:
                score = ctx.state.score(g.abs(), ctx.decay)
            else:
                score = None  # |g| itself, taken inside the selection
            idx, val, grad_x, grad_w, kept_b, rows = native.topk_backward(
                g, ctx.k, score, weight, x2, need_x, need_w, need_b, touched_only=ctx.sparse_grad)
            if ctx.state is not None:
                ctx.state.record(idx, g.shape[0], val)
                kept = val
            if need_x:
                grad_x = grad_x.reshape(x.shape)
            if rows is not None:  # sparse_grad: only the touched rows, as sparse row tensors
                grad_w = None if grad_w is None else _rows_gradient(rows, grad_w, weight.shape)
                kept_b = None if kept_b is None else _rows_gradient(rows, kept_b, (out_features,))
            if need_b:  # else grad_b stays None, or the dense bias gradient from above
                grad_b = kept_b
        linear_backward_timer.add_since(start, grad_y)
        if ctx.state is not None and ctx.state.watch is not None:  # outside the timed part: it is not meProp's cost
            ctx.state.watch.observe_gradient(g, kept)
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def meprop_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  k: int | None = None, mode: str = "topk", *, decay: float = 0.0,
                  state: SelectionState | None = None, sparse_grad: bool = False,
                  dense_bias: bool = False) -> torch.Tensor:
    """F.linear(x, weight, bias) whose backward keeps only k entries of ∂L/∂y per example (see module doc).

    x may have any number of leading dimensions; each row of the flattened (-1, out_features)
    gradient is one example. k=None or k ≥ out_features gives exact full back propagation.
    sparse_grad=True makes the weight and bias gradients sparse row tensors (for optim.sparse_update).
    dense_bias=True gives the bias the full gradient Σ_rows ∂L/∂y, as the authors' code does.
    """
    if mode not in MODES:
        raise ValueError(f"unknown meProp mode {mode!r}; choose one of {', '.join(MODES)}")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if decay > 0.0 and state is None:
        state = SelectionState()  # a one-off call: run_grad starts from this step's |g|
    return MePropLinearFunction.apply(x, weight, bias, k, mode, decay, state, sparse_grad, dense_bias)


def sparsified_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, sparsity: Sparsity | None,
                      state: SelectionState, training: bool) -> torch.Tensor:
    """A layer's product under its Sparsity: exact back propagation without one, or outside training."""
    if sparsity is None or not training:  # the state only for a watch: full back propagation selects nothing
        return meprop_linear(x, weight, bias, None, state=state if training and state.watch is not None else None)
    s = sparsity
    return meprop_linear(x, weight, bias, s.k, s.mode, decay=s.decay, state=state, sparse_grad=s.sparse_grad,
                         dense_bias=s.dense_bias)
