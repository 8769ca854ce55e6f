"""A/B of two builds of the meProp C kernels in one process: a git revision's kernels.c against the working tree's.

    python scripts/bench_kernels_ab.py                 # HEAD's kernels.c (old) against the working tree's (new)
    python scripts/bench_kernels_ab.py --old 62db718 --threads 1 --rounds 9

Both sources are built with the flags the package uses, loaded side by side, and called through the package's own
wrappers (ops.native), in turns: each round times every case with the old library and then with the new one, so
contention from other processes hits both alike. Printed: the median per call over rounds, and old / new.
Cases: the weight gradient (all rows, and only the touched rows as optim.sparse_update uses) and the input
gradient at the papers' shapes, and a whole forward + backward of the MNIST MLP (784-500-500-10, batch 10, k=20).
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import meprop_cli  # noqa: F401  (first: sets THP_MEM_ALLOC_ENABLE before torch allocates)
import torch
import torch.nn.functional as F

from meprop_cli.ops import meprop_linear, native

REPO = Path(__file__).resolve().parent.parent
SOURCE = native.SOURCE.relative_to(REPO)

# (batch, in, out, k, calls per timing): MNIST layers 1 and 2, a wide output (POS's gates), parsing's first layer at its
# training batch (1000 in the papers' settings here, 10,000 in the authors')
SHAPES = ((10, 784, 500, 20, 2000), (10, 500, 500, 20, 2000), (16, 600, 2000, 10, 500),
          (1000, 2400, 500, 20, 50), (10000, 2400, 500, 20, 5))


def build(source: Path, folder: Path, name: str) -> ctypes.CDLL:
    target = folder / f"{name}.so"
    cc = native.compiler()
    if cc is None:
        sys.exit("no C compiler found (set CC): there are no kernels to compare")
    done = subprocess.run([cc, *native.FLAG_SETS[0], "-shared", "-fPIC", "-o", str(target), str(source),
                           "-lpthread", "-lm"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"building {source} failed: {done.stderr.strip()}")
    return native._declare(ctypes.CDLL(str(target)))


def per_call(fn: Callable[[], object], calls: int) -> float:
    fn(), fn()  # warm-up: caches, allocator
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(label: str, fn: Callable[[], object], calls: int, libs: dict[str, ctypes.CDLL], rounds: int) -> None:
    times: dict[str, list[float]] = {name: [] for name in libs}
    for _ in range(rounds):
        for name, lib in libs.items():
            native._lib = lib
            times[name].append(per_call(fn, calls))
    old, new = (statistics.median(times[name]) for name in ("old", "new"))
    print(f"| {label} | {old * 1e6:.1f} | {new * 1e6:.1f} | {old / new:.2f}x |", flush=True)


def mnist_step(sparse_grad: bool) -> Callable[[], None]:
    sizes = (784, 500, 500, 10)
    weights = [(torch.randn(o, i) * 0.05).requires_grad_() for i, o in zip(sizes, sizes[1:])]
    biases = [torch.zeros(o, requires_grad=True) for o in sizes[1:]]
    x, y = torch.randn(10, 784), torch.randint(0, 10, (10,))

    def step() -> None:
        h = x
        for layer, (w, b) in enumerate(zip(weights, biases)):
            hidden = layer < len(weights) - 1
            h = meprop_linear(h, w, b, k=20 if hidden else None, sparse_grad=sparse_grad)
            h = torch.relu(h) if hidden else h
        F.cross_entropy(h, y).backward()
        for p in weights + biases:
            p.grad = None
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="HEAD", help="git revision whose kernels.c is the old build (default HEAD)")
    parser.add_argument("--threads", type=int, default=1, help="torch and kernel threads (default 1)")
    parser.add_argument("--rounds", type=int, default=7, help="turns of old and new per case; the median is shown")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        shown = subprocess.run(["git", "-C", str(REPO), "show", f"{args.old}:{SOURCE}"], capture_output=True)
        if shown.returncode != 0:
            sys.exit(f"cannot read {SOURCE} at revision {args.old!r}: {shown.stderr.decode().strip()}")
        (folder / "old.c").write_bytes(shown.stdout)
        libs = {"old": build(folder / "old.c", folder, "old"), "new": build(native.SOURCE, folder, "new")}
        native._tried = True  # the wrappers use whichever library compare() installs
        print(f"old: {SOURCE} at {args.old}; new: the working tree; {args.threads} thread(s), median of "
              f"{args.rounds} rounds\n\n| case | old (µs) | new (µs) | old / new |\n| --- | --- | --- | --- |")
        for batch, n_in, n_out, k, calls in SHAPES:
            g, x, w = torch.randn(batch, n_out), torch.randn(batch, n_in), torch.randn(n_out, n_in)
            idx, val = native.select_topk(g, k)
            rows, pos = native.touched_rows(idx, n_out)
            shape = f"batch {batch}, {n_in} → {n_out}, k={k}"
            compare(f"grad_weight, {shape}", lambda: native.grad_weight(idx, val, x, n_out), calls, libs,
                    args.rounds)
            compare(f"grad_weight, touched rows, {shape}",
                    lambda: native.grad_weight(idx, val, x, n_out, rows, pos), calls, libs, args.rounds)
            compare(f"grad_input, {shape}", lambda: native.grad_input(idx, val, w), calls, libs, args.rounds)
        compare("MNIST MLP forward + backward, batch 10, k=20", mnist_step(False), 500, libs, args.rounds)
        compare("the same, sparse weight gradients", mnist_step(True), 500, libs, args.rounds)


if __name__ == "__main__":
    main()
