"""Convolution backward, dense vs meProp-CNN, on the MNIST CNN's two layers (batch 10).

For each layer it times, per step, the dense backward (torch's convolution backward: weight, bias and,
for conv2, input gradients) and the sparse one (per-feature-map top-k selection included), on an
output gradient shaped like training's (ReLU + 2×2 max-pool: at most 25% nonzero). conv1 needs no input
gradient (its input is the image). Prints milliseconds (median of --repeat) and dense/sparse ratios.
Times are CPU time of this process (time.process_time), which a machine shared with other jobs does not
inflate the way it inflates wall time; with --clock wall the wall clock is used instead.

--nonzero thins the gradient to training's measured sparsity; --dense-gradient makes it dense, as batch
norm does. --parts also times the selection and each product alone (docs/kernels.md has the results).

    python scripts/bench_conv.py --threads 1 --ratio 0.05 0.1 --parts --nonzero 0.064 0.016
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from meprop_cli.ops import native
from meprop_cli.ops.conv import feature_map_topk, keep_count, meprop_conv2d

LAYERS = {  # name: (in channels, out channels, side, needs input gradient) of the paper's MNIST CNN
    "conv1": (1, 32, 28, False),
    "conv2": (32, 64, 14, True),
}


def training_like_gradient(y: torch.Tensor, nonzero: float | None = None) -> torch.Tensor:
    """A gradient for y as ReLU + 2×2 max-pool pass it back: nonzero only at each window's kept maximum.

    With nonzero, entries are dropped at random until about that fraction is left (training's gradients are
    sparser than at initialisation: result.json's conv_grad_nonzero gives the measured fractions).
    """
    pooled, where = F.max_pool2d(torch.relu(y), 2, return_indices=True)
    g = F.max_unpool2d(torch.randn_like(pooled) * (pooled > 0), where, 2, output_size=y.shape[2:])
    if nonzero is not None:
        have = float((g != 0).float().mean())
        g = g * (torch.rand_like(g) < nonzero / have)
    return g


def time_backwards(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, g: torch.Tensor,
                   ratios: list[float | None], repeat: int, clock) -> list[float]:
    """Median seconds of one backward through meprop_conv2d per ratio (None: dense), the forward outside the
    clock. The ratios take turns in every repetition, so warm-up and changing load hit them alike."""
    times: list[list[float]] = [[] for _ in ratios]
    for _ in range(repeat + 2):  # two warm-up rounds
        for ratio, samples in zip(ratios, times):
            y = meprop_conv2d(x, weight, bias, 1, 2, ratio)
            start = clock()
            y.backward(g)
            samples.append(clock() - start)
    return [statistics.median(samples[2:]) for samples in times]


def time_call(fn, repeat: int, clock) -> float:
    """Median seconds of fn() after two warm-up calls."""
    times = []
    for _ in range(repeat + 2):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times[2:])


def parts(x: torch.Tensor, weight: torch.Tensor, g: torch.Tensor, ratio: float, repeat: int, clock) -> str:
    """Where the sparse backward's time goes, next to the dense weight-only and input-only gradients."""
    slice_size = g.shape[0] * g.shape[2] * g.shape[3]
    k = keep_count(ratio, slice_size)
    positions, values = feature_map_topk(g, ratio)
    conv_backward = torch.ops.aten.convolution_backward
    sparse = lambda need_x, need_w: native.conv_grads(x, weight, (1, 1), (2, 2), positions, values, g.shape,  # noqa: E731
                                                       need_x, need_w)
    dense = lambda need_x, need_w: conv_backward(g, x, weight, None, [1, 1], [2, 2], [1, 1], False, [0, 0], 1,  # noqa: E731
                                                 [need_x, need_w, False])
    timed = {
        "select": lambda: feature_map_topk(g, ratio),
        "sparse dW": lambda: sparse(False, True),
        "sparse dx": lambda: sparse(True, False),
        "dense dW": lambda: dense(False, True),
        "dense dx": lambda: dense(True, False),
    }
    return f"    {ratio:.0%} (k={k} of {slice_size} per map): " + ", ".join(
        f"{name} {time_call(fn, repeat, clock) * 1e3:.2f}" for name, fn in timed.items()) + " ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--ratio", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--parts", action="store_true", help="also time the pieces of the sparse backward")
    sparsity = parser.add_mutually_exclusive_group()
    sparsity.add_argument("--nonzero", type=float, nargs=2, metavar=("CONV1", "CONV2"),
                          help="thin each layer's gradient to this nonzero fraction (e.g. a run's conv_grad_nonzero)")
    sparsity.add_argument("--dense-gradient", action="store_true",
                          help="a gradient with every entry nonzero, as batch norm between conv and ReLU makes it")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads {args.threads}, batch {args.batch}, kernels {native.backend()}, "
          f"median {args.clock} time of {args.repeat} backward passes")
    for layer, (name, (c_in, c_out, side, input_grad)) in enumerate(LAYERS.items()):
        x = torch.randn(args.batch, c_in, side, side, requires_grad=input_grad)
        weight = torch.randn(c_out, c_in, 5, 5, requires_grad=True) * 0.1
        weight = weight.detach().requires_grad_()
        bias = torch.zeros(c_out, requires_grad=True)
        y = F.conv2d(x.detach(), weight.detach(), None, 1, 2)
        g = torch.randn_like(y) if args.dense_gradient else training_like_gradient(
            y, args.nonzero[layer] if args.nonzero else None)
        dense, *sparse_times = time_backwards(x, weight, bias, g, [None, *args.ratio], args.repeat, clock)
        line = f"{name}: grad nonzero {float((g != 0).float().mean()):.3f}, dense {dense * 1e3:.2f} ms"
        for ratio, sparse in zip(args.ratio, sparse_times):
            line += f" | {ratio:.0%}: {sparse * 1e3:.2f} ms (dense/sparse {dense / sparse:.2f}x)"
        print(line)
        if args.parts:
            for ratio in args.ratio:
                print(parts(x.detach(), weight.detach(), g, ratio, args.repeat, clock))


if __name__ == "__main__":
    main()
