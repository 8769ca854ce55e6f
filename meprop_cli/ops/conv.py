"""meProp-CNN: top-k per feature map on the gradient of a convolution's output (Wei et al., 2017).

Forward is an ordinary convolution, y = conv2d(x, W) + b, with y of shape (batch, C, h, w). In backward
the gradient g = ∂L/∂y is sliced per feature map c: the slice g[:, c] holds batch·h·w entries (all
examples and all positions of the map, the paper's Fig. 4), and only the k entries of largest score
are kept, k = keep_count(topk_ratio, batch·h·w). The score is |g|, or with decay > 0 (eq. 15)

    run_grad = decay·run_grad + (1 − decay)·|∂L/∂y|     kept per layer across steps in a SelectionState

and then, with the sparse top(g) (the paper's eq. 12-13, with the convolution written as y = W' x'
over im2col columns x'):

    ∂L/∂W = top(g) x'ᵀ         a (C × batch·h·w) sparse matrix with C·k entries times x': C·k rows read
    ∂L/∂x = conv backward of top(g) (dense: on a CPU, oneDNN's input gradient beats sparse kernels here)
    ∂L/∂b = Σ top(g)            the sparse g, as the linear op does

topk_ratio=None (or a ratio keeping every entry) is the dense backward of torch's own convolution.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from meprop_cli.ops.meprop import SelectionState
from meprop_cli.ops.timing import linear_backward_timer



def keep_count(topk_ratio: float, slice_size: int) -> int:
    """k of a feature map: topk_ratio·slice_size rounded to the nearest integer (halves up), at least 1."""
    if not 0.0 < topk_ratio <= 1.0:
        raise ValueError(f"topk_ratio must be in (0, 1], got {topk_ratio}")
    # The small epsilon keeps 0.05·1000 = 50.000000000000004 and 0.07·50 = 3.5000000000000004 honest.
    return max(1, min(slice_size, math.floor(topk_ratio * slice_size + 0.5 + 1e-9)))


def feature_maps(g: torch.Tensor) -> torch.Tensor:
    """g (batch, C, h, w) as (C, batch·h·w): row c is map c's slice, entry p = n·h·w + i·w + j."""
    return g.transpose(0, 1).reshape(g.shape[1], -1)


def topk_of_positive(score: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices (rows, k) of each row's k largest entries, for rows with more than k positive entries.

    The positive entries are first packed to the left of a narrower matrix (ReLU and max-pooling leave a
    conv gradient mostly zero), so the top-k scans only them; the result is that of score.topk(k).
    """
    positive = score > 0
    rows, cols = positive.nonzero(as_tuple=True)
    slot = (positive.cumsum(dim=1) - 1)[rows, cols]  # rank of each positive entry within its row
    width = int(slot.max()) + 1
    packed = score.new_zeros(score.shape[0], width)  # zero padding loses to every positive entry
    packed[rows, slot] = score[rows, cols]
    where = torch.zeros(score.shape[0], width, dtype=torch.int64, device=score.device)
    where[rows, slot] = cols
    return where.gather(1, packed.topk(k, dim=1, sorted=False).indices)


def feature_map_keep(g_maps: torch.Tensor, k: int, decay: float = 0.0,
                     state: SelectionState | None = None) -> torch.Tensor:
    """Boolean (C, batch·h·w) mask of the entries each feature map keeps: its top-k by score, zeros left out.

    Leaving out zero entries changes nothing (they add nothing to either product) and lets a map with at
    most k nonzero entries skip the top-k at decay 0: ReLU and max-pooling leave many such maps.
    """
    keep = g_maps != 0
    if decay > 0.0:
        if state is None:
            raise ValueError("decay > 0 needs a SelectionState to keep run_grad across steps")
        top = state.score(g_maps.abs(), decay).topk(k, dim=1, sorted=False).indices
        return keep & torch.zeros_like(keep).scatter_(1, top, True)
    crowded = (keep.sum(dim=1) > k).nonzero().squeeze(1)  # maps with more than k nonzero entries
    if crowded.numel():
        top = topk_of_positive(g_maps.index_select(0, crowded).abs(), k)
        keep[crowded] = torch.zeros(crowded.numel(), keep.shape[1], dtype=torch.bool,
                                    device=keep.device).scatter_(1, top, True)
    return keep


def feature_map_sparsify(g: torch.Tensor, topk_ratio: float, decay: float = 0.0,
                         state: SelectionState | None = None) -> torch.Tensor:
    """top(g) as a dense tensor of g's shape, the unkept entries zeroed."""
    g_maps = feature_maps(g)
    kept = g_maps * feature_map_keep(g_maps, keep_count(topk_ratio, g_maps.shape[1]), decay, state)
    return kept.reshape(g.shape[1], g.shape[0], *g.shape[2:]).transpose(0, 1).contiguous()


@dataclass
class GradientStats:
    """Fraction of nonzero entries in a conv layer's output gradient, before and after the top-k.

    Before the top-k it shows how much ReLU and max-pooling already sparsify (the paper, §2.2).
    """

    steps: int = 0
    nonzero_sum: float = 0.0  # Σ over steps of the nonzero fraction of ∂L/∂y
    kept_sum: float = 0.0  # Σ over steps of the nonzero fraction of the gradient passed on
    first_step_nonzero: float | None = None  # the paper reports this after one iteration

    def add(self, nonzero: float, kept: float) -> None:
        if self.first_step_nonzero is None:
            self.first_step_nonzero = nonzero
        self.steps += 1
        self.nonzero_sum += nonzero
        self.kept_sum += kept

    def summary(self) -> dict[str, float | int | None]:
        steps = max(self.steps, 1)
        return {"steps": self.steps, "first_step_nonzero": self.first_step_nonzero,
                "mean_nonzero_before_topk": self.nonzero_sum / steps if self.steps else None,
                "mean_nonzero_after_topk": self.kept_sum / steps if self.steps else None}


def im2col_rows(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int]) -> torch.Tensor:
    """x' of the paper's eq. 14: one row per output position p = n·h·w + i·w + j, (batch·h·w × kh·kw·C_in).

    Columns are ordered (kh, kw, C_in): built from a channels-last copy of x, each row is a run of
    contiguous C_in-length reads, which is several times faster than transposing F.unfold's output.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    x_last = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1).contiguous()  # (batch, H+2ph, W+2pw, C_in)
    windows = x_last.unfold(1, kh, sh).unfold(2, kw, sw)  # (batch, h, w, C_in, kh, kw), a view
    return windows.permute(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * x.shape[1])


def sparse_weight_grad(x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                       g_maps: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """∂L/∂W = top(g) x'ᵀ (eq. 13) from the kept entries only (g_maps, keep: (C, batch·h·w), see feature_map_keep).

    top(g) becomes a sparse (C × batch·h·w) CSR matrix with at most C·k entries, so the product reads that
    many rows of x' (kh·kw·C_in each) instead of C·batch·h·w; the dense work left is building x' (im2col).
    """
    channels = g_maps.shape[0]
    kernel = (weight.shape[2], weight.shape[3])
    crow = torch.zeros(channels + 1, dtype=torch.int64, device=keep.device)
    crow[1:] = keep.sum(dim=1).cumsum(0)
    positions = keep.nonzero()[:, 1]  # row-major: by map, then ascending position, as CSR wants
    with warnings.catch_warnings():  # torch calls CSR "beta"; CSR @ dense, all that is used here, is stable
        warnings.simplefilter("ignore")
        top_g = torch.sparse_csr_tensor(crow, positions, g_maps[keep], g_maps.shape, check_invariants=False)
    grad_w_rows = top_g @ im2col_rows(x, kernel, stride, padding)  # (C × kh·kw·C_in)
    return grad_w_rows.reshape(channels, *kernel, -1).permute(0, 3, 1, 2).contiguous()


class MePropConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, topk_ratio, decay, state, stats):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        ctx.topk_ratio, ctx.decay, ctx.state, ctx.stats = topk_ratio, decay, state, stats
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        slice_size = grad_y.shape[0] * grad_y.shape[2] * grad_y.shape[3]
        sparse = ctx.topk_ratio is not None and keep_count(ctx.topk_ratio, slice_size) < slice_size
        nonzero = float(torch.count_nonzero(grad_y)) / grad_y.numel() if ctx.stats is not None else 0.0

        start = linear_backward_timer.clock()
        if sparse:
            g_maps = feature_maps(grad_y)
            keep = feature_map_keep(g_maps, keep_count(ctx.topk_ratio, slice_size), ctx.decay, ctx.state)
            grad_x = grad_w = grad_b = None
            if need_w:
                grad_w = sparse_weight_grad(x, weight, ctx.stride, ctx.padding, g_maps, keep)
            if need_x or need_b:
                top_maps = g_maps * keep
                grad_b = top_maps.sum(dim=1) if need_b else None
            if need_x:
                # CPU sparse kernels and col2im lose to oneDNN's dense input gradient here (see
                # scripts/bench_conv.py), so ∂L/∂x is the dense product with the zero-filled top(g).
                top_g = top_maps.reshape(grad_y.shape[1], grad_y.shape[0], *grad_y.shape[2:]).transpose(0, 1)
                grad_x = torch.ops.aten.convolution_backward(
                    top_g.contiguous(), x, weight, None, list(ctx.stride), list(ctx.padding), [1, 1], False,
                    [0, 0], 1, [True, False, False])[0]
        else:
            grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_y, x, weight, [weight.shape[0]] if need_b else None, list(ctx.stride), list(ctx.padding),
                [1, 1], False, [0, 0], 1, [need_x, need_w, need_b])
        linear_backward_timer.add_since(start)

        if ctx.stats is not None:
            kept = float(keep.sum()) / grad_y.numel() if sparse else nonzero
            ctx.stats.add(nonzero, kept)
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def meprop_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                  topk_ratio: float | None = None, *, decay: float = 0.0, state: SelectionState | None = None,
                  stats: GradientStats | None = None) -> torch.Tensor:
    """F.conv2d(x, weight, bias, stride, padding) whose backward keeps topk_ratio of each feature map's
    output gradient (see the module doc). topk_ratio=None is exact full back propagation."""
    if topk_ratio is not None and not 0.0 < topk_ratio <= 1.0:
        raise ValueError(f"topk_ratio must be in (0, 1], got {topk_ratio}")
    if decay > 0.0 and state is None:
        state = SelectionState()  # a one-off call: run_grad starts from this step's |g|
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    return MePropConv2dFunction.apply(x, weight, bias, pair(stride), pair(padding), topk_ratio, decay, state,
                                      stats)
