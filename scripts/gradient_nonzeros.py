"""How many entries of each hidden layer's output gradient are nonzero per example, against k.

    MEPROP_DATA=... python scripts/gradient_nonzeros.py RUN_DIR [--batches 5]

Loads RUN_DIR/last.pt (a run of an MLP task: mnist_mlp, digits, parse), runs a few training batches
forward and backward in training mode (dropout on), and prints per hidden layer its size, the mean number
of nonzero output-gradient entries per example, and the share of examples with fewer than k: in those a
top-k also keeps zero entries, chosen by index (docs/mesimp.md, method.count_zero_gradients).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meprop_cli.train import run_from_last  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Full backward hook")  # the hooks read module outputs' grads only

    def as_saved(cfg) -> None:
        if cfg.method.name == "mesimp" and "count_zero_gradients" not in cfg.method:
            cfg.method.count_zero_gradients = True  # runs made before the option existed counted every kept index

    run, _ = run_from_last(args.run_dir, as_saved)
    run.model.train()
    mlp = getattr(run.model, "mlp", run.model)
    grads: dict[int, torch.Tensor] = {}
    for i, layer in enumerate(mlp.hidden):
        layer.register_full_backward_hook(lambda m, gin, gout, i=i: grads.__setitem__(i, gout[0].detach()))
    k = run.method.k or 0
    counts: dict[int, list[tuple[float, float]]] = {}
    active: dict[int, torch.Tensor] = {}  # per neuron: examples with a nonzero gradient there
    examples = 0
    for seed in range(args.batches):
        batch = next(run.task.train_batches(torch.Generator().manual_seed(seed)))
        loss, _ = run.task.loss(run.model, batch)
        loss.backward()
        examples += len(next(iter(grads.values())))
        for i, g in grads.items():
            active[i] = active.get(i, 0) + (g != 0).sum(0)
            nonzero = (g != 0).sum(1).float()
            counts.setdefault(i, []).append((float(nonzero.mean()), float((nonzero < min(k, g.shape[1])).float().mean())))
        run.model.zero_grad()
    for i in sorted(counts):
        mean = sum(c[0] for c in counts[i]) / len(counts[i])
        below = sum(c[1] for c in counts[i]) / len(counts[i])
        print(f"layer {i + 1}: size {mlp.hidden[i].out_features}, nonzero output-gradient entries per example "
              f"{mean:.1f}, examples with fewer than k={k}: {100 * below:.1f}%")
        share = (active[i].float() / examples).sort().values
        print(f"  share of examples in which a neuron has a nonzero gradient: min {100 * share[0]:.1f}%, "
              f"10th percentile {100 * share[len(share) // 10]:.1f}%, median {100 * share[len(share) // 2]:.1f}%")


if __name__ == "__main__":
    main()
