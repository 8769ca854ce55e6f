"""How far a meAct run's cached activations are from what its neurons compute now, and what that does.

    MEPROP_DATA=... python scripts/meact_drift.py RUN_DIR [--batches 20]

Loads RUN_DIR/last.pt of a meAct run (task mnist_mlp, digits or parse) with its per-example memory, takes
training batches, and runs each twice without dropout: the meAct forward training would run next (inactive
neurons output their cached activation) and the normal forward that dev and test use. Prints per hidden
layer the active fraction, and over the inactive pairs the mean |cached| and the mean |fresh − cached|
(against the mean |fresh| of the active pairs), the share of inactive pairs whose fresh activation is
nonzero; then the training loss and accuracy of the two forwards. The gap between them is the gap between
what training optimised and what is scored.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meprop_cli.ops.activations import ACTIVATIONS  # noqa: E402
from meprop_cli.ops.meact import meact_linear  # noqa: E402
from meprop_cli.train import Run, run_from_last  # noqa: E402


def load_run(run_dir: Path) -> Run:
    def meact_only(cfg) -> None:
        if cfg.method.name != "meact":
            raise SystemExit(f"{run_dir} is a method={cfg.method.name} run; this script reads meAct runs")

    run, last = run_from_last(run_dir, meact_only)
    for memory, state in zip(run.method.memories, last["method"]["memories"]):
        memory.load_state_dict(state)
    return run


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000,
                        help="order of the batches; not the run's seed: the examples that came first in its first "
                             "epoch, seen while the network was untrained, have larger active sets")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = load_run(args.run_dir)
    model = run.model
    mlp = getattr(model, "mlp", model)
    activation = ACTIVATIONS[mlp.activation]
    inputs: list[torch.Tensor] = []
    mlp.register_forward_pre_hook(lambda module, given: inputs.append(given[0]))
    model.eval()  # no dropout; the MeAct layers run their normal forward unless called as below
    stats = [dict(active=0, pairs=0, cached=0.0, drift=0.0, nonzero=0, fresh_active=0.0) for _ in mlp.hidden]
    totals = {"fresh": [0.0, 0], "meact": [0.0, 0]}  # loss sum, correct
    examples = 0
    for seed, batch in zip(range(args.batches), run.task.train_batches(torch.Generator().manual_seed(args.seed))):
        inputs.clear()
        fresh_logits = model(batch.inputs)
        x_fresh = x_meact = inputs[0]
        for layer, memory, stat in zip(mlp.hidden, run.method.memories, stats):
            memory.ids = batch.ids
            mask = memory.active(batch.ids)
            cached = memory.last.index_select(0, batch.ids).float()
            fresh = activation(layer(x_fresh))
            stat["active"] += int(mask.sum())
            stat["pairs"] += mask.numel()
            stat["cached"] += float(cached[~mask].abs().sum())
            stat["drift"] += float((fresh - cached)[~mask].abs().sum())
            stat["nonzero"] += int((fresh[~mask] != 0).sum())
            stat["fresh_active"] += float(fresh[mask].abs().sum())
            memory.acting = True
            x_meact = meact_linear(x_meact, layer.weight, layer.bias, mlp.activation, memory)
            x_fresh = fresh
        meact_logits = mlp.output(x_meact)
        for name, logits in (("fresh", fresh_logits), ("meact", meact_logits)):
            totals[name][0] += float(F.cross_entropy(logits, batch.targets, reduction="sum"))
            totals[name][1] += int((logits.argmax(1) == batch.targets).sum())
        examples += len(batch.targets)
    print(f"{args.run_dir}: {examples} training examples, {args.batches} batches")
    for i, s in enumerate(stats, 1):
        inactive = s["pairs"] - s["active"]
        print(f"layer {i}: active fraction {s['active'] / s['pairs']:.3f}; inactive pairs: mean |cached| "
              f"{s['cached'] / max(inactive, 1):.4f}, mean |fresh - cached| {s['drift'] / max(inactive, 1):.4f} "
              f"(active pairs' mean |fresh| {s['fresh_active'] / max(s['active'], 1):.4f}), fresh nonzero in "
              f"{100 * s['nonzero'] / max(inactive, 1):.1f}%")
    for name, (loss, correct) in totals.items():
        label = "meAct forward (cached inactive)" if name == "meact" else "normal forward (as dev/test)"
        print(f"{label}: train loss {loss / examples:.4f}, train accuracy {100 * correct / examples:.2f}%")


if __name__ == "__main__":
    main()
