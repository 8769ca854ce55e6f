"""Benchmark meProp's backward against full back propagation, in one process, on this machine.

    python scripts/bench_backprop.py                  # linear backward: dense vs topk vs unified vs random vs the authors' code
    python scripts/bench_backprop.py --whole-step     # whole training steps: baseline vs meProp (± sparse update; meProp-CNN for the CNN)

Linear backward: the time of the meProp autograd function's backward (dx, dW, db), read from the kernels'
own timer (ops.linear_backward_timer, the trainer's "backprop time"), median of --reps repetitions after
a warm-up, with every mode run once per repetition in turn so that contention from other processes hits
all of them alike. "ideal" is n/k, the speedup if cost fell exactly with the kept fraction.

Whole step: forward + backward + optimizer update of one slice of an epoch (the trainer's timed step:
loss, backward, step, zero_grad; without the dev evaluation), per step, median over repetitions,
variants interleaved. Tasks: mnist_mlp (real data under --data-root), a parsing-shaped synthetic MLP
(batch 10,000, 2400-500-500-N, random inputs: the cost does not depend on the values) and every other
task in the registry whose data loads. The "bound" rows run the dense model with every linear backward
free (zero gradients, each written once): the step no linear backward can beat with that optimizer, so the
largest speedup any meProp kernel could reach there; without its update, the bound with any update.
POS also has a baseline on torch.nn.LSTM (the tagger's BiLSTM swapped for torch's own LSTM).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

import meprop_cli  # first: sets THP_MEM_ALLOC_ENABLE (and MEPROP_MALLOC) before torch allocates
import torch
import torch.nn.functional as F
from torch import nn

from meprop_cli.methods import Method
from meprop_cli.nn import MLP
from meprop_cli.ops import linear_backward_timer, meprop_linear, native
from meprop_cli.optim import build_optimizer
from meprop_cli.results import BENCH_COLUMNS
from meprop_cli.tasks.base import Task
from meprop_cli.train import timed_step

# (label, meprop mode, sparse_grad): "topk, sparse dW" hands the weight gradient on as sparse rows, as
# optim.sparse_update does; the others write a dense (out × in) gradient, whose size bounds their cost.
MODES = (("topk", "topk", False), ("topk, sparse dW", "topk", True), ("unified", "unified", False),
         ("unified, sparse dW", "unified", True), ("random", "random", False))


# -- the authors' code, as a peer -----------------------------------------------------------------
# lancopku/meProp src/pytorch/functions.py (2017) ported to torch 2 on the CPU, as it is written there: the
# weight in their (in × out) layout, a dense bias gradient torch.mv(dy.t(), ones), and for per-example top-k
# a sparse COO gradient multiplied with torch.dsmm (now torch.sparse.mm). Only the old-style Function API and
# .cuda() calls changed. Timed by the same timer as ours, around the same part (the backward's body).

class AuthorsLinearUnified(torch.autograd.Function):
    """linearUnified: one top-k of the column sums of |dy| for the batch, two small dense products."""

    @staticmethod
    def forward(ctx, x, w, b, k):
        ctx.save_for_backward(x, w)
        ctx.k = k
        ctx.add_buffer = x.new_ones(x.size(0))
        return torch.addmm(b, x, w)

    @staticmethod
    def backward(ctx, dy):
        start = linear_backward_timer.clock(dy)
        x, w = ctx.saved_tensors
        _, inds = dy.abs().sum(0).topk(ctx.k)
        inds = inds.view(-1)
        pdy = dy.index_select(-1, inds)
        dx = torch.mm(pdy, w.index_select(-1, inds).t_())
        dw = w.new(w.size()).zero_().index_copy_(-1, inds, torch.mm(x.t(), pdy))
        db = torch.mv(dy.t(), ctx.add_buffer)
        linear_backward_timer.add_since(start, dx)
        return dx, dw, db, None


class AuthorsLinear(AuthorsLinearUnified):
    """linear with sparse=True: each example's top-k of |dy| as a sparse COO matrix, then sparse × dense."""

    @staticmethod
    def backward(ctx, dy):
        start = linear_backward_timer.clock(dy)
        x, w = ctx.saved_tensors
        k = ctx.k
        _, indices = dy.abs().topk(k)
        values = dy.gather(-1, indices).view(-1)
        row_indices = torch.arange(0, dy.size()[0]).long().unsqueeze_(-1).repeat(1, k)
        indices = torch.stack([row_indices.view(-1), indices.view(-1)])
        pdy = torch.sparse_coo_tensor(indices, values, dy.size(), check_invariants=False)  # unchecked, as in 2017
        dx = torch.sparse.mm(pdy, w.t())
        dw = torch.sparse.mm(pdy.t(), x).t()
        db = torch.mv(dy.t(), ctx.add_buffer)
        linear_backward_timer.add_since(start, dx)
        return dx, dw, db, None


# label -> the authors' function; their columns follow ours in the table
PEERS = (("authors' unified", AuthorsLinearUnified), ("authors' per-example (COO)", AuthorsLinear))


# -- linear backward ------------------------------------------------------------------------------

def backward_seconds(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, g: torch.Tensor, k: int | None, mode: str,
                     sparse_grad: bool = False, calls: int = 1) -> float:
    """Seconds inside the backward of `calls` meprop_linear products (the forward is not timed)."""
    linear_backward_timer.reset()
    for _ in range(calls):
        y = meprop_linear(x, w, b, k, mode, sparse_grad=sparse_grad)
        y.backward(g)
        x.grad = w.grad = b.grad = None
    return linear_backward_timer.reset()


def peer_backward_seconds(peer: type[torch.autograd.Function], x: torch.Tensor, w_in_out: torch.Tensor,
                          b: torch.Tensor, g: torch.Tensor, k: int, calls: int = 1) -> float:
    """Seconds inside the backward of `calls` products of the authors' function (weight in their layout)."""
    linear_backward_timer.reset()
    for _ in range(calls):
        y = peer.apply(x, w_in_out, b, k)
        y.backward(g)
        x.grad = w_in_out.grad = b.grad = None
    return linear_backward_timer.reset()


# Only Table 7's products (6.9e10 multiply-adds, seconds each, 7 columns for each of 7 k) take fewer repetitions,
# but never fewer than 3 (or --reps): a single backward there took anything from 168 to 1186 ms, dense or
# sparse alike (first writes to a fresh 268 MB gradient, on 2 MB pages when the kernel has them at hand:
# docs/kernels.md, session 9), and one sample a column let that decide a cell. The parsing product (1.2e10)
# takes them all: with one sample a column, single calls 100-150 ms slower than their neighbours decided its
# unified-against-the-authors' cells (docs/kernels.md, session 8).
FEW_REPS_ABOVE = 2e10


def few_reps(reps: int) -> int:
    return min(3, reps)


def linear_settings(quick: bool) -> list[dict[str, Any]]:
    ks = [8, 32] if quick else [8, 16, 32, 64, 128, 256, 512]
    big = 1024 if quick else 8192  # --quick shrinks the big products so the script runs in seconds
    return [
        dict(name="MNIST layer 1", batch=10, n_in=784, n_out=500, ks=[20], calls=1),
        dict(name="MNIST layer 2", batch=10, n_in=500, n_out=500, ks=[20], calls=1),
        dict(name="parsing layer 1", batch=200 if quick else 10000, n_in=2400, n_out=500, ks=[20], calls=1),
        # the LSTM's backward runs one time step at a time: 25 products of one row each per sentence
        dict(name="POS LSTM gates, 25 steps", batch=1, n_in=190 + 500, n_out=4 * 500, ks=[20], calls=25),
        dict(name=f"Table 7 synthetic {big}", batch=128 if quick else 1024, n_in=big, n_out=big, ks=ks, calls=1),
    ]


def bench_linear(args: argparse.Namespace) -> None:
    modes = [m for m in MODES if not args.modes or m[0] in args.modes]
    peers = [p for p in PEERS if not args.modes or p[0] in args.modes]
    labels = [label for label, _, _ in modes] + [label for label, _ in peers]
    records: list[dict[str, Any]] = []
    print(f"## Linear backward (dx, dW, db) — kernels: {native.backend()}, threads: {torch.get_num_threads()}, "
          f"median of {args.reps} after warm-up (products over {FEW_REPS_ABOVE:.0e} multiply-adds: "
          f"{few_reps(args.reps)}); the authors' columns: their PyTorch code (PEERS)\n")
    print("| setting | batch | in → out | k | ideal n/k | dense ms | " + " | ".join(f"{label} ms (speedup)"
                                                                          for label in labels) + " |")
    print("|---" * (6 + len(labels)) + "|")
    for s in linear_settings(args.quick):
        if args.only and not any(part.lower() in s["name"].lower() for part in args.only):
            continue
        if args.ks and s["name"].startswith("Table 7"):
            s["ks"] = args.ks
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(s["batch"], s["n_in"], generator=gen).requires_grad_()
        w = torch.randn(s["n_out"], s["n_in"], generator=gen).requires_grad_()
        b = torch.randn(s["n_out"], generator=gen).requires_grad_()
        g = torch.randn(s["batch"], s["n_out"], generator=gen)
        w_in_out = w.detach().t().contiguous().requires_grad_()  # the authors' layout
        # (k, label) -> seconds of `calls` backward products
        runs: dict[tuple, Callable[[int], float]] = {
            (None, "dense"): lambda calls: backward_seconds(x, w, b, g, None, "topk", False, calls)}
        for k in s["ks"]:
            for label, mode, sparse_grad in modes:
                runs[(k, label)] = lambda calls, k=k, mode=mode, sparse_grad=sparse_grad: backward_seconds(
                    x, w, b, g, k, mode, sparse_grad, calls)
            for label, peer in peers:
                runs[(k, label)] = lambda calls, k=k, peer=peer: peer_backward_seconds(peer, x, w_in_out, b, g, k,
                                                                                       calls)
        times: dict[tuple, list[float]] = {key: [] for key in runs}
        reps = args.reps if s["batch"] * s["n_in"] * s["n_out"] < FEW_REPS_ABOVE else few_reps(args.reps)
        # many calls per sample for tiny products
        inner = 1 if s["batch"] * s["n_in"] * s["n_out"] > 1e7 else (2 if args.quick else 50)
        for rep in range(reps + 1):
            for key, run in runs.items():  # every column once per repetition, in turn
                t = run(s["calls"] * inner) / inner
                if rep > 0:  # repetition 0 is the warm-up
                    times[key].append(t)
        dense = statistics.median(times[(None, "dense")])
        for k in s["ks"]:
            cells = []
            for label in labels:
                t = statistics.median(times[(k, label)])
                cells.append(f"{t * 1e3:.3f} ({dense / t:.1f}x)")
                records.append(dict(zip(BENCH_COLUMNS, (s["batch"], s["n_in"], s["n_out"], k, label, dense * 1e3,
                                                        t * 1e3)),
                                    name=s["name"], calls=s["calls"], threads=torch.get_num_threads(),
                                    kernels=native.backend()))
            print(f"| {s['name']} | {s['batch']} | {s['n_in']} → {s['n_out']} | {k} | {s['n_out'] / k:.0f} | "
                  f"{dense * 1e3:.3f} | " + " | ".join(cells) + " |", flush=True)
    print()
    if args.out:
        write_records(Path(args.out), records)


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """The measurements as JSON lines (results.BENCH_COLUMNS and the setting), for `meprop table --kind synthetic`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:  # appended: repeated runs become the table's n
        for record in records:
            out.write(json.dumps(record) + "\n")
    print(f"{len(records)} records appended to {path}")


# -- whole training step --------------------------------------------------------------------------

class SyntheticParsingTask(Task):
    """The parsing MLP's shapes with random inputs: batch 10,000 rows of 2400 features, N transitions."""

    def __init__(self, batch_size: int, n_in: int, n_out: int) -> None:
        self.batch_size, self.n_in, self.n_out = batch_size, n_in, n_out

    def load(self) -> None:
        pass

    def build_model(self, method: Method) -> nn.Module:
        return MLP(self.n_in, method.hidden, self.n_out, method.make_linear, "relu")

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield (torch.randn(self.batch_size, self.n_in, generator=generator),
                   torch.randint(0, self.n_out, (self.batch_size,), generator=generator))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = batch
        return F.cross_entropy(model(x), y), len(y)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        raise NotImplementedError("the benchmark never evaluates")


class FreeLinearProducts(torch.autograd.Function):
    """F.linear forward; a backward that computes no product: zero gradients, each written once as any dense
    gradient is (dW and db fresh, for the optimizer's step; dx one zero tensor kept across steps, as meProp's dx
    keeps its memory through ops/buffers). A model on it times everything a linear backward cannot remove."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.x_shape, ctx.w_shape = x.shape, weight.shape
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, dy):
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        like = dict(dtype=dy.dtype, device=dy.device)
        return (kept_zeros(ctx.x_shape, **like) if needs_x else None,
                torch.zeros(ctx.w_shape, **like) if needs_w else None,
                torch.zeros(dy.shape[-1], **like) if needs_b else None)


@functools.cache
def kept_zeros(shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """One zero tensor per shape, made once: the free backward's dx costs no allocation (nothing writes to it)."""
    return torch.zeros(shape, dtype=dtype, device=device)


@contextmanager
def linear_path(path: str) -> Iterator[None]:
    """Every model's linear layers on another path than the timed meProp Function:

    - "torch": dense layers (no Sparsity) through torch's own autograd (F.linear: AddmmBackward in C++), the
      fastest dense path; the linear part of their backward is then not measured (0).
    - "free": every layer on FreeLinearProducts, a backward that costs nothing but writing its gradients: the
      step time no linear backward can go below (with the same optimizer), so the bound of any speedup."""
    import meprop_cli.nn.linear as linear_module
    import meprop_cli.nn.lstm as lstm_module

    def torch_dense(x, weight, bias, sparsity, state, training):
        return F.linear(x, weight, bias) if sparsity is None else original(x, weight, bias, sparsity, state, training)

    def free(x, weight, bias, sparsity, state, training):
        return FreeLinearProducts.apply(x, weight, bias) if training else F.linear(x, weight, bias)

    original = linear_module.sparsified_linear
    modules = (linear_module, lstm_module)
    for module in modules:
        module.sparsified_linear = {"torch": torch_dense, "free": free}[path]
    try:
        yield
    finally:
        for module in modules:
            module.sparsified_linear = original


class TorchBiLSTM(nn.Module):
    """torch.nn.LSTM in place of a model's BiLSTM (nn/lstm.py), same sizes: torch's own dense LSTM over the same
    packed, time-major tokens, for a baseline row that is not the project's code."""

    def __init__(self, ours: nn.Module) -> None:
        super().__init__()
        sizes = {direction.hidden_size for pair in ours.layers for direction in pair}
        if len(sizes) != 1:
            raise ValueError(f"torch.nn.LSTM needs one hidden size for every layer, not {sorted(sizes)}")
        between = isinstance(ours.dropout, nn.Dropout) and len(ours.layers) > 1  # ours drops out between layers only
        dropout = ours.dropout.p if between else 0.0
        self.lstm = nn.LSTM(ours.layers[0][0].in_features, sizes.pop(), num_layers=len(ours.layers),
                            dropout=dropout, bidirectional=True)
        self.out_features = ours.out_features

    def forward(self, x: torch.Tensor, packing: Any) -> torch.Tensor:
        packed = nn.utils.rnn.PackedSequence(x, torch.as_tensor(packing.batch_sizes, dtype=torch.long))
        return self.lstm(packed)[0].data


def use_torch_lstm(model: nn.Module) -> None:
    model.lstm = TorchBiLSTM(model.lstm)


class Variant:
    """One model + optimizer trained step by step; times each phase of the trainer's step."""

    def __init__(self, task: Task, method: Method, optim_cfg: Any, seed: int, path: str | None = None,
                 swap: Callable[[nn.Module], None] | None = None) -> None:
        torch.manual_seed(seed)
        self.path = path  # run under linear_path(path)
        self.task, self.model = task, task.build_model(method)
        if swap is not None:  # a part of the model replaced (MODEL_SWAPS) before the optimizer sees its parameters
            swap(self.model)
        self.model.train()
        self.optimizer = build_optimizer(optim_cfg, self.model)
        self.batches = self._forever(torch.Generator().manual_seed(seed))

    def _forever(self, generator: torch.Generator) -> Iterator[Any]:
        while True:
            yield from self.task.train_batches(generator)

    def run(self, steps: int) -> dict[str, float]:
        """Per-step seconds of forward, backward (and its linear part) and update over `steps` steps."""
        times = dict(forward_s=0.0, backward_s=0.0, update_s=0.0)
        linear_backward_timer.reset()
        with linear_path(self.path) if self.path else nullcontext():
            for _ in range(steps):
                timed_step(self.task, self.model, self.optimizer, next(self.batches), times)
        times["linear_backward_s"] = linear_backward_timer.reset()
        return {name[:-2]: t / steps for name, t in times.items()}  # forward, backward, ...


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from meprop_cli.cli import config_dir
    from meprop_cli.config import register_configs, validate

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    validate(cfg)
    return cfg


# (label, method overrides, sparse update, linear path) of each whole-step variant. The speedups are against the
# faster of the dense ones (labels starting "baseline"): the baseline method, or the same model on torch's own
# linear autograd. The "bound" row is the dense model with every linear backward free (FreeLinearProducts).
TORCH_LINEAR = "baseline, torch's F.linear autograd"
FREE_LINEAR = "bound: every linear backward free"
LINEAR_VARIANTS = (("baseline", ["method=baseline"], False, None), (TORCH_LINEAR, ["method=baseline"], False, "torch"),
                   ("meprop", ["method=meprop"], False, None), ("meprop + sparse update", ["method=meprop"], True, None),
                   (FREE_LINEAR, ["method=baseline"], False, "free"))
# The bound row again without its update: the bound of a sparse update too (printed, not run).
FREE_UPDATE = "bound: ... and the update free"
# meProp-CNN sparsifies only the convolutions (its FC layers get full gradients); sparse update is for linear.
CNN_VARIANTS = (("baseline", ["method=baseline"], False, None),
                ("meprop_cnn 5%", ["method=meprop_cnn", "topk_ratio=0.05"], False, None),
                ("meprop_cnn 5%, decay 0.6", ["method=meprop_cnn", "topk_ratio=0.05", "decay=0.6"], False, None))
# POS: torch's own LSTM (nn.LSTM over the packed tokens, the output layer on F.linear) is a dense path too.
TORCH_LSTM = "baseline, torch.nn.LSTM"
POS_VARIANTS = (*LINEAR_VARIANTS[:2], (TORCH_LSTM, ["method=baseline"], False, "torch"), *LINEAR_VARIANTS[2:])
MODEL_SWAPS = {TORCH_LSTM: use_torch_lstm}
VARIANTS = {"mnist_cnn": CNN_VARIANTS, "pos": POS_VARIANTS}


def whole_step_tasks(args: argparse.Namespace) -> Iterator[tuple[str, Callable[[list[str], bool], tuple[Task, Method, Any]]]]:
    """(name, make(method overrides, sparse_update) -> (task, method, optim cfg)) for every task to measure."""
    from meprop_cli.methods import build_method
    from meprop_cli.tasks import TASKS, build_task

    loaded: dict[str, Task] = {}

    def registered(name: str) -> Callable[[list[str], bool], tuple[Task, Method, Any]]:
        def make(method_overrides: list[str], sparse_update: bool) -> tuple[Task, Method, Any]:
            cfg = compose([f"task={name}", *method_overrides, f"optim={args.optim}",
                           f"optim.sparse_update={str(sparse_update).lower()}", f"optim.implementation={args.optim_implementation}",
                           f"data_root={args.data_root}"])
            if name not in loaded:
                loaded[name] = build_task(cfg.task, Path(cfg.data_root))
                loaded[name].load()
            return loaded[name], build_method(cfg), cfg.optim
        return make

    def synthetic(method_overrides: list[str], sparse_update: bool) -> tuple[Task, Method, Any]:
        cfg = compose(["task=digits", *method_overrides, f"optim={args.optim}",
                       f"optim.sparse_update={str(sparse_update).lower()}",
                       f"optim.implementation={args.optim_implementation}"])
        if args.optim == "adagrad":
            cfg.optim.lr = 0.01  # the papers' AdaGrad rate for parsing
        k = None if cfg.method.mode is None else 20  # the paper's k for parsing, output layer included
        method = Method(cfg.method.name, cfg.method.mode, [500, 500], k, k, sparse_grad=sparse_update)
        task = SyntheticParsingTask(1000 if args.quick else 10_000, 2400, args.parse_outputs)
        return task, method, cfg.optim

    names = [n for n in TASKS if n != "digits"] if not args.tasks else args.tasks
    for name in names:
        if name == "parse_synthetic":
            continue
        yield name, registered(name)
    if not args.tasks or "parse_synthetic" in args.tasks:
        yield "parse_synthetic", synthetic


def bench_whole_step(args: argparse.Namespace) -> None:
    print(f"## Whole training step — kernels: {native.backend()}, threads: {torch.get_num_threads()}, "
          f"optimizer: {args.optim} ({args.optim_implementation}; the sparse update's own kernels), median of {args.reps} slices after a warm-up slice; "
          "speedup against the faster baseline row (torch's F.linear autograd does not time its linear part)\n")
    print("| task | variant | steps/slice | forward ms | backward ms (linear part) | update ms | step ms | speedup |")
    print("|---|---|---|---|---|---|---|---|")
    for name, make in whole_step_tasks(args):
        try:
            runs = {label: Variant(*make(overrides, sparse), seed=1, path=path, swap=MODEL_SWAPS.get(label))
                    for label, overrides, sparse, path in VARIANTS.get(name, LINEAR_VARIANTS)}
        except Exception as e:  # a task whose data is absent, or that is not built yet
            print(f"| {name} | skipped: {type(e).__name__}: {str(e).splitlines()[0][:120]} | | | | | | |", flush=True)
            if args.verbose:
                traceback.print_exc()
            continue
        heavy = isinstance(next(iter(runs.values())).task, SyntheticParsingTask) or name == "parse"
        steps = args.heavy_steps if heavy else args.steps
        samples: dict[str, list[dict[str, float]]] = {label: [] for label in runs}
        for rep in range(args.reps + 1):
            for label, variant in runs.items():
                result = variant.run(steps)
                if rep > 0:
                    samples[label].append(result)
        steps_of = {label: statistics.median(s["forward"] + s["backward"] + s["update"] for s in samples[label])
                    for label in runs}
        base = min(step for label, step in steps_of.items() if label.startswith("baseline"))
        for label in runs:
            med = {key: statistics.median(s[key] for s in samples[label]) for key in samples[label][0]}
            step = steps_of[label]
            print(f"| {name} | {label} | {steps} | {med['forward'] * 1e3:.2f} | {med['backward'] * 1e3:.2f} "
                  f"({med['linear_backward'] * 1e3:.2f}) | {med['update'] * 1e3:.2f} | {step * 1e3:.2f} | "
                  f"{base / step:.2f}x |", flush=True)
        if FREE_LINEAR in runs:
            step = statistics.median(s["forward"] + s["backward"] for s in samples[FREE_LINEAR])
            print(f"| {name} | {FREE_UPDATE} | {steps} | | | 0 | {step * 1e3:.2f} | {base / step:.2f}x |", flush=True)
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--whole-step", action="store_true", help="time whole training steps instead")
    parser.add_argument("--reps", type=int, default=11, help="repetitions (medians); the warm-up is extra")
    parser.add_argument("--threads", type=int, default=1, help="torch (and kernel) threads")
    parser.add_argument("--kernels", choices=["auto", "torch"], default="auto",
                        help="torch: measure the pure-torch fallback instead of the compiled kernels")
    parser.add_argument("--only", nargs="*", help="linear settings whose name contains one of these words")
    parser.add_argument("--modes", nargs="*", help="linear columns to measure, by label (default: all)")
    parser.add_argument("--ks", nargs="*", type=int, help="k values of the Table 7 product (default 8 ... 512)")
    parser.add_argument("--quick", action="store_true", help="smaller shapes, for a smoke run in seconds")
    parser.add_argument("--tasks", nargs="*", help="whole-step tasks (default: all registered but digits, "
                                                   "and parse_synthetic)")
    parser.add_argument("--steps", type=int, default=200, help="steps per slice for small-batch tasks")
    parser.add_argument("--heavy-steps", type=int, default=2, help="steps per slice for batch-10,000 tasks")
    parser.add_argument("--optim", default="adam", choices=["adam", "adagrad"], help="optimizer of the whole step")
    parser.add_argument("--optim-implementation", default="fused", choices=["fused", "foreach", "for_loop"],
                        help="torch's kernels for the dense optimizer steps (optim.implementation)")
    parser.add_argument("--parse-outputs", type=int, default=25,
                        help="outputs of the synthetic parsing MLP (the paper's 25 transitions)")
    parser.add_argument("--data-root", default=os.environ.get("MEPROP_DATA", "data"))
    parser.add_argument("--out", help="linear backward: also append the measurements to this .jsonl file "
                                       "(read by `meprop table FILE --kind synthetic`)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    os.environ["MEPROP_KERNELS"] = args.kernels
    torch.set_num_threads(args.threads)
    allocator = "freed memory kept (MEPROP_MALLOC=reuse)" if meprop_cli.MALLOC_REUSE else "glibc's default"
    print(f"# bench_backprop: torch {torch.__version__}, {os.cpu_count()} CPUs, allocator: {allocator}, "
          f"{' '.join(sys.argv)}\n")
    started = time.perf_counter()
    if args.whole_step:
        bench_whole_step(args)
    else:
        bench_linear(args)
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
