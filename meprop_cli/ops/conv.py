"""meProp-CNN: top-k per feature map on the gradient of a convolution's output (Wei et al., 2017).

Forward is an ordinary convolution, y = conv2d(x, W) + b, with y of shape (batch, C, h, w). In backward
the gradient g = ∂L/∂y is sliced per feature map c: the slice g[:, c] holds batch·h·w entries (all
examples and all positions of the map, the paper's Fig. 4), and only the k entries of largest score
are kept, k = keep_count(topk_ratio, batch·h·w). The score is |g|, or with decay > 0 (eq. 15)

    run_grad = decay·run_grad + (1 − decay)·|∂L/∂y|     kept per layer across steps in a SelectionState

and then, with the sparse top(g) (the paper's eq. 12-13):

    ∂L/∂W = Σ over kept entries (n, c, i, j) of g · the input window under output (n, i, j)
    ∂L/∂x = Σ over kept entries of g · W[c], added into that window
    ∂L/∂b = Σ top(g)

The compiled kernels (native.select_maps and native.conv_grads, kernels.c) read the maps in place and
visit only kept entries whose gradient is nonzero, so the backward costs the selection plus work in
proportion to k; without a C compiler the same results come from torch's dense convolution backward on
the zero-filled top(g).

topk_ratio=None (or a ratio keeping every entry) is the dense backward of torch's own convolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from meprop_cli.ops import native
from meprop_cli.ops.meprop import SelectionState
from meprop_cli.ops.timing import linear_backward_timer


def keep_count(topk_ratio: float, slice_size: int) -> int:
    """k of a feature map: topk_ratio·slice_size rounded to the nearest integer (halves up), at least 1."""
    if not 0.0 < topk_ratio <= 1.0:
        raise ValueError(f"topk_ratio must be in (0, 1], got {topk_ratio}")
    # The small epsilon keeps 0.05·1000 = 50.000000000000004 and 0.07·50 = 3.5000000000000004 honest.
    return max(1, min(slice_size, math.floor(topk_ratio * slice_size + 0.5 + 1e-9)))


def feature_map_topk(g: torch.Tensor, topk_ratio: float, decay: float = 0.0,
                     state: SelectionState | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept entries of g (batch, C, h, w), per feature map: (positions, values), each (C, k).

    Row c lists the kept positions p = n·h·w + i·w + j of map c (ascending) and g[n, c, i, j] there.
    """
    channels = g.shape[1]
    k = keep_count(topk_ratio, g.numel() // channels)
    if decay == 0.0:
        return native.select_maps(g, k)
    if state is None:
        raise ValueError("decay > 0 needs a SelectionState to keep run_grad across steps")
    g_maps_abs = g.transpose(0, 1).reshape(channels, -1).abs()  # (C, batch·h·w): one row per feature map
    return native.select_maps(g, k, state.score(g_maps_abs, decay))


def feature_map_sparsify(g: torch.Tensor, topk_ratio: float, decay: float = 0.0,
                         state: SelectionState | None = None) -> torch.Tensor:
    """top(g) as a dense tensor of g's shape, the unkept entries zeroed."""
    positions, values = feature_map_topk(g, topk_ratio, decay, state)
    return native.scatter_maps(g.shape, positions, values)


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

        start = linear_backward_timer.clock(grad_y)
        if sparse:
            positions, values = feature_map_topk(grad_y, ctx.topk_ratio, ctx.decay, ctx.state)
            grad_x, grad_w = native.conv_grads(x, weight, ctx.stride, ctx.padding, positions, values, grad_y.shape,
                                               need_x, need_w)
            grad_b = values.sum(dim=1) if need_b else None
        else:
            grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_y, x, weight, [weight.shape[0]] if need_b else None, list(ctx.stride), list(ctx.padding),
                [1, 1], False, [0, 0], 1, [need_x, need_w, need_b])
        linear_backward_timer.add_since(start, grad_y)

        if ctx.stats is not None:
            kept = float(torch.count_nonzero(values)) / grad_y.numel() if sparse else nonzero
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
