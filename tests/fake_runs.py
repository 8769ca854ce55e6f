"""Run folders written by hand, exactly as `meprop train` lays them out, with numbers chosen by the test."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from meprop_cli import results

SHRINKABLE = ("digits", "mnist_mlp", "pos", "parse")  # tasks whose models' hidden neurons can be removed

def write_run(root: Path, name: str, *, task: str = "mnist_mlp", method: str = "meprop", optimizer: str = "adam",
              seed: int = 1, k: int | None = 20, hidden: list[int] | None = None, dev: float | None = 0.98,
              test: float | None = 0.97, best_epoch: int = 3, timing: dict[str, float] | None = None,
              dropout: float = 0.0, batch_size: int = 10, max_epochs: int = 20, status: str | None = "completed",
              error: str | None = None, extra_result: dict[str, Any] | None = None,
              extra_config: dict[str, Any] | None = None, metrics: list[dict[str, Any]] | None = None,
              drop: tuple[str, ...] = (), initial: list[int] | None = None, tested: list[int] | None = None,
              final: list[int] | None = None, hidden_from: str | None = None, decode: float | None = None,
              prune_rate: float = 0.1) -> Path:
    """Write config.yaml (always), metrics.jsonl (if given) and result.json (unless status is None).

    hidden is the configured size; method=small gets hidden [k]*layers in its result, like build_method.
    Sizes, as the trainer writes them for the SHRINKABLE tasks (results.HIDDEN_*): initial (default: the
    model's hidden), tested (default initial), final (default tested); parameters count 1000 per unit.
    hidden_from: the config's and result's results.HIDDEN_FROM; decode: the results.DECODE speedup.
    method=mesimp gets its method config (prune_rate, ...) and result keys.
    drop: result keys to leave out (a run from an older or newer version of the trainer)."""
    run = root / name
    run.mkdir(parents=True)
    hidden = hidden or [500, 500]
    config = {
        "task": {"name": task, "batch_size": batch_size, "eval_batch_size": 1000, "hidden": hidden,
                 "activation": "relu", "dropout": dropout, "topk": 20, "topk_output": 20, "adagrad_lr": 0.1},
        "method": {"name": method, "mode": None if method in ("baseline", "small") else "topk",
                   "hidden_is_k": method == "small"},
        "optim": {"name": optimizer, "lr": 0.001 if optimizer == "adam" else 0.1},
        "trainer": {"max_epochs": max_epochs, "threads": 1, "progress": "none", "checkpoint": True},
        "seed": seed, "topk": k if k is not None else 20, "topk_output": k, "decay": 0.0,
        "data_root": "/somewhere", results.HIDDEN_FROM: hidden_from,
    }
    if method == "mesimp":
        config["method"].update(prune_rate=prune_rate, prune_checks_per_epoch=8, cycle_epochs=5,
                                count_zero_gradients=False)
    for key, value in (extra_config or {}).items():  # dotted keys: "method.prune_rate"
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    OmegaConf.save(OmegaConf.create(config), run / "config.yaml")
    if metrics is not None:
        (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in metrics))
    if status is None:
        return run
    uses_k = method not in ("baseline", "small")
    result = {
        "task": task, "method": method, "seed": seed, "status": status, "error": error,
        "best_epoch": best_epoch, "best_step": best_epoch * 100, "epochs_run": max_epochs,
        "dev": {} if dev is None else {"accuracy": dev}, "test": {} if test is None else {"accuracy": test},
        "hidden": [k] * len(hidden) if method == "small" else hidden, "k": k if uses_k else None,
        "k_output": k if uses_k else None, "decay": 0.0, "optimizer": optimizer, "batch_size": batch_size,
        "params": 1000,
        "timing": timing or {"forward_s": 10.0, "backward_s": 20.0, "linear_backward_s": 15.0, "update_s": 5.0,
                             "total_s": 40.0, "examples_per_s": 100.0},
    }
    if task in SHRINKABLE:
        initial = initial or result["hidden"]
        tested = tested or initial
        final = final or tested
        result.update({results.HIDDEN_FROM: hidden_from, results.HIDDEN_INITIAL: initial,
                       results.HIDDEN_FINAL: final, results.PARAMS_FINAL: 1000 * sum(final),
                       results.HIDDEN_TESTED: tested, results.PARAMS_TESTED: 1000 * sum(tested)})
        result["params"] = 1000 * sum(initial)
    if method == "mesimp":
        result.update({"prune_rate": prune_rate, "prune_checks_per_epoch": 8, "cycle_epochs": 5,
                       results.PRUNE_CHECK_COUNT: 8 * max_epochs})
    if decode is not None:
        result[results.DECODE] = {"test_s": 1.0, "test_s_initial": decode, "speedup": decode}
    result.update(extra_result or {})
    for key in drop:
        result.pop(key)
    (run / "result.json").write_text(json.dumps(result, indent=2))
    return run


def timing(linear: float, backward: float = 20.0, forward: float = 10.0, update: float = 5.0) -> dict[str, float]:
    return {"forward_s": forward, "backward_s": backward, "linear_backward_s": linear, "update_s": update,
            "total_s": forward + backward + update + 1.0, "examples_per_s": 100.0}
