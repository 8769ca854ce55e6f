"""Convolution backward, dense vs meProp-CNN, on the MNIST CNN's two layers (batch 10).

For each layer it times, per step, the dense backward (torch's convolution backward: weight, bias and,
for conv2, input gradients) and the sparse one (per-feature-map top-k selection included), on an
output gradient shaped like training's (ReLU + 2×2 max-pool: at most 25% nonzero). conv1 needs no input
gradient (its input is the image). Prints milliseconds (median of --repeat) and dense/sparse ratios.

    python scripts/bench_conv.py --threads 1 --ratio 0.05
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from meprop_cli.ops.conv import meprop_conv2d

LAYERS = {  # name: (in channels, out channels, side, needs input gradient) of the paper's MNIST CNN
    "conv1": (1, 32, 28, False),
    "conv2": (32, 64, 14, True),
}


def training_like_gradient(y: torch.Tensor) -> torch.Tensor:
    """A gradient for y as ReLU + 2×2 max-pool pass it back: nonzero only at each window's kept maximum."""
    pooled, where = F.max_pool2d(torch.relu(y), 2, return_indices=True)
    return F.max_unpool2d(torch.randn_like(pooled) * (pooled > 0), where, 2, output_size=y.shape[2:])


def time_backward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, g: torch.Tensor,
                  ratio: float | None, repeat: int) -> float:
    """Median seconds of one backward through meprop_conv2d (the forward is outside the clock)."""
    times = []
    for _ in range(repeat + 2):  # two warm-up steps
        y = meprop_conv2d(x, weight, bias, 1, 2, ratio)
        start = time.perf_counter()
        y.backward(g)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--ratio", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads {args.threads}, batch {args.batch}, median of {args.repeat} backward passes")
    for name, (c_in, c_out, side, input_grad) in LAYERS.items():
        x = torch.randn(args.batch, c_in, side, side, requires_grad=input_grad)
        weight = torch.randn(c_out, c_in, 5, 5, requires_grad=True) * 0.1
        weight = weight.detach().requires_grad_()
        bias = torch.zeros(c_out, requires_grad=True)
        g = training_like_gradient(F.conv2d(x.detach(), weight.detach(), None, 1, 2))
        dense = time_backward(x, weight, bias, g, None, args.repeat)
        line = f"{name}: grad nonzero {float((g != 0).float().mean()):.3f}, dense {dense * 1e3:.2f} ms"
        for ratio in args.ratio:
            sparse = time_backward(x, weight, bias, g, ratio, args.repeat)
            line += f" | {ratio:.0%}: {sparse * 1e3:.2f} ms (dense/sparse {dense / sparse:.2f}x)"
        print(line)


if __name__ == "__main__":
    main()
