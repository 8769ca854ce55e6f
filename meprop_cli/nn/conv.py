"""A 2-D convolution whose backward is meProp-CNN's (or exact, with topk_ratio=None), timed the same either way."""
from __future__ import annotations

import math

import torch
from torch import nn

from meprop_cli.ops import SelectionState
from meprop_cli.ops.conv import GradientStats, meprop_conv2d


class MePropConv2d(nn.Module):
    """nn.Conv2d (square kernel, same initialisation) whose output gradient keeps topk_ratio of each feature map.

    The baseline uses this class too (topk_ratio=None), so both backward times come from one timer.
    `stats` counts, over training steps, the nonzero fraction of the output gradient before and after the top-k.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 topk_ratio: float | None = None, decay: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.topk_ratio, self.decay = topk_ratio, decay
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.state = SelectionState()  # run_grad of this layer across steps when decay > 0
        self.stats = GradientStats()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as torch.nn.Conv2d
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size ** 2)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return meprop_conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return meprop_conv2d(x, self.weight, self.bias, self.stride, self.padding, self.topk_ratio,
                             decay=self.decay, state=self.state, stats=self.stats)

    def extra_repr(self) -> str:
        sparse = "full backprop" if self.topk_ratio is None else f"topk_ratio={self.topk_ratio}, decay={self.decay}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, {sparse}")
