"""Benchmark a meAct hidden layer against the full layer, in one process, on this machine.

    python scripts/bench_meact.py                    # MNIST and parsing layer shapes, active fractions 1 ... 0.05
    python scripts/bench_meact.py --fractions 0.3    # one fraction (e.g. the one a run measured)

One hidden layer's training forward (linear + activation, with meAct the merge of the cached activations)
and its backward to x, W and b, per call, median of --reps repetitions after a warm-up, meAct and the full
layer interleaved so that a load change hits both alike. meAct's active sets come from a memory whose
records give each example the wanted share of active neurons at random (the cost depends on how many pairs
are active, not on which); "ideal" is 1 / fraction, the speedup if the cost fell exactly with the pairs
computed. Everything a training step does for the layer is inside the timed call: the active-set plan, the
kernels, the cached activations and the record's update.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import meprop_cli  # noqa: F401  (first: sets THP_MEM_ALLOC_ENABLE before torch allocates)
import torch

from meprop_cli.nn import MeActLinear, MePropLinear
from meprop_cli.ops import native
from meprop_cli.ops.meact import ActivityMemory

# (name, batch, in, out, activation, training examples kept in the memory)
SETTINGS = (("MNIST layer 1, batch 10", 10, 784, 500, "relu", 55_000),
            ("MNIST layer 2, batch 10", 10, 500, 500, "relu", 55_000),
            ("MNIST layer 1, batch 100", 100, 784, 500, "relu", 55_000),
            ("parsing layer 1, batch 1000", 1000, 2400, 500, "tanh", 100_000),
            ("parsing layer 2, batch 1000", 1000, 500, 500, "tanh", 100_000))
QUICK = (("small, batch 10", 10, 64, 32, "relu", 200), ("small, batch 100", 100, 64, 32, "tanh", 200))


def memory_with_fraction(examples: int, neurons: int, fraction: float, generator: torch.Generator) -> ActivityMemory:
    """A memory whose every example has round(fraction · neurons) active neurons (threshold 0.5 / active).
    The records are large (1e6) so that the |gradients| the timed backward adds to them keep the shares."""
    active = max(1, round(fraction * neurons))
    memory = ActivityMemory(examples, neurons, threshold=0.5 / active)
    chosen = torch.rand(examples, neurons, generator=generator).argsort(1)[:, :active]
    memory.grad_sum.scatter_(1, chosen, 1e6)  # equal shares 1/active ≥ threshold; the rest 0 < threshold
    memory.acting = True
    return memory


def one_call(layer: torch.nn.Module, x: torch.Tensor, activation: str, upstream: torch.Tensor) -> None:
    out = layer.activated(x, activation)
    out.backward(upstream)
    x.grad = layer.weight.grad = layer.bias.grad = None


def median_ms(layer: torch.nn.Module, x: torch.Tensor, activation: str, upstream: torch.Tensor, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        one_call(layer, x, activation, upstream)
    return (time.perf_counter() - started) / calls * 1e3


def bench(settings, fractions: list[float], reps: int, calls: int) -> None:
    generator = torch.Generator().manual_seed(0)
    print("| setting | active fraction | ideal | full layer ms | meAct ms (speedup) |")
    print("| --- | --- | --- | --- | --- |")
    for name, batch, fan_in, fan_out, activation, examples in settings:
        torch.manual_seed(0)
        full, meact = MePropLinear(fan_in, fan_out), MeActLinear(fan_in, fan_out)
        meact.load_state_dict(full.state_dict())
        x = torch.randn(batch, fan_in, requires_grad=True)
        upstream = torch.randn(batch, fan_out)
        for fraction in fractions:
            meact.memory = memory_with_fraction(examples, fan_out, fraction, generator)
            timings = {"full": [], "meact": []}
            for rep in range(reps + 1):  # the first is the warm-up
                meact.memory.ids = torch.randperm(examples, generator=generator)[:batch]
                for label, layer in (("full", full), ("meact", meact)):
                    ms = median_ms(layer, x, activation, upstream, max(1, calls * 10 // batch))
                    if rep:
                        timings[label].append(ms)
            done, pairs = meact.memory.reset_counts()
            measured = done / pairs
            dense, sparse = statistics.median(timings["full"]), statistics.median(timings["meact"])
            print(f"| {name} | {measured:.3f} | {1 / measured:.1f}x | {dense:.3f} | {sparse:.3f} "
                  f"({dense / sparse:.2f}x) |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", nargs="*", type=float, default=[1.0, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05])
    parser.add_argument("--reps", type=int, default=7, help="repetitions (medians); the warm-up is extra")
    parser.add_argument("--calls", type=int, default=50,
                        help="layer calls per repetition at batch 10 (fewer at larger batches: 50 · 10 / batch)")
    parser.add_argument("--threads", type=int, default=1, help="torch (and kernel) threads")
    parser.add_argument("--kernels", choices=["auto", "torch"], default="auto",
                        help="torch: measure the pure-torch twins (they compute the full product: no saving)")
    parser.add_argument("--quick", action="store_true", help="small shapes, for a smoke run in seconds")
    args = parser.parse_args(argv)
    os.environ["MEPROP_KERNELS"] = args.kernels
    torch.set_num_threads(args.threads)
    print(f"# bench_meact: torch {torch.__version__}, {os.cpu_count()} CPUs, kernels {native.backend()}, "
          f"{args.threads} thread(s), {' '.join(sys.argv)}\n")
    started = time.perf_counter()
    bench(QUICK if args.quick else SETTINGS, args.fractions, args.reps, args.calls)
    print(f"\n# {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
