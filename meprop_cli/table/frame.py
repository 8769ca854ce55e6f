"""Reading run folders: one row per completed run, with its setting, context and per-seed baseline.

A row's setting is every config value except the seed and bookkeeping: runs of the same setting are the
seeds of one table row. Its context is the setting without the method's own values: the baseline of a
run is the method=baseline run of the same task, optimizer, seed and context. Every key read from a run
folder beyond the config is named in meprop_cli.results.
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from meprop_cli import results

BASELINE = "baseline"
MESIMP = "mesimp"

# Config values that never change what a run computes: left out of the setting a run is grouped by.
BOOKKEEPING = {"seed", "data_root", "trainer.threads", "trainer.progress", "trainer.log_every_steps",
               "trainer.checkpoint", "trainer.resume", "task.eval_batch_size"}
# Config values replaced by the result's own account of them (baseline runs carry an unused topk; hidden_from
# is read from the result and resolved to the run it names), or that only give another key its default
# (task.average_decay → trainer.average_decay, which is compared).
REPLACED = {"topk", "topk_output", "task.topk", "task.topk_output", "task.average_decay", results.HIDDEN_FROM}
# Config keys that belong to a method, not to the context a baseline must share: everything under method.
# (meSimp's method.prune_rate, ...), and these top-level keys or result settings.
METHOD_PARTS = {"topk", "topk_output", "topk_ratio", "decay", "k", "k_output"}
# Result keys that are settings (they split runs into rows); batch_norm is context a baseline shares.
RESULT_SETTINGS = ("decay", "topk_ratio", "batch_norm")
# meSimp's prune rate, read from its method config (conf/method/mesimp.yaml).
PRUNE_RATE = "method.prune_rate"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"task": {"hidden": [500]}} -> {"task.hidden": (500,)}: lists become tuples so they can be grouped."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    if isinstance(tree, list):
        tree = tuple(tree)
    return {prefix[:-1]: tree}


def is_method_key(key: str) -> bool:
    return key.startswith("method.") or key.rsplit(".", 1)[-1] in METHOD_PARTS


def as_tuple(value: Any) -> tuple | None:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else None


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, text, booleans): missing cells show '-'."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        value = float(value)
        return value if math.isfinite(value) else None
    return None


def present(value: Any) -> Any:
    """None for a missing cell (None, or the NaN pandas puts in a column with gaps), else the value."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def percent(value: Any) -> float | None:
    value = number(value)
    return None if value is None else number(100.0 * value)  # 1e308 is finite, 100 times it is not


def share(part: tuple | None, whole: tuple | None) -> float | None:
    """Hidden units of `part` as % of `whole`."""
    return 100.0 * sum(part) / sum(whole) if part and whole and sum(whole) else None


def run_row(run: results.RunFolder) -> dict[str, Any]:
    """One completed run as a flat row: identity, setting, sizes, scores in %, timings in seconds.

    Sizes (one per group of hidden neurons): hidden = the tested model's (results.HIDDEN_TESTED: the scores
    belong to it), initial and final = at the start and the end of training; runs from before the trainer
    wrote them, and models that cannot shrink, have the sizes they were built with for all three."""
    res, flat = run.result, flatten(run.config)
    per_layer = as_tuple(res.get("hidden")) or as_tuple(flat.get("task.hidden"))  # method=small: [k] * layers
    tested = as_tuple(res.get(results.HIDDEN_TESTED)) or per_layer
    initial = as_tuple(res.get(results.HIDDEN_INITIAL)) or tested
    dev, test = res.get("dev") or {}, res.get("test") or {}
    metric = next(iter(dev), None) or next(iter(test), None)
    timing = res.get("timing") or {}
    setting = {k: v for k, v in flat.items() if k not in BOOKKEEPING | REPLACED}
    # the sizes a run starts at are its setting; a meSimp run's tested sizes are an outcome of it
    setting.update({"k": res.get("k"), "k_output": res.get("k_output"), "hidden": initial,
                    results.HIDDEN_FROM: res.get(results.HIDDEN_FROM)})
    for key in RESULT_SETTINGS:  # a method may report a setting only in result.json
        if key in res:
            setting[f"result.{key}"] = as_tuple(res[key]) or res[key]
    context = {k: v for k, v in setting.items() if not is_method_key(k) and k != "hidden"}
    decode = res.get(results.DECODE) or {}
    row = {
        "run": str(run.path),
        "task": res.get("task", flat.get("task.name")),
        "method": res.get("method", flat.get("method.name")),
        "optimizer": res.get("optimizer", flat.get("optim.name")),
        "seed": res.get("seed", flat.get("seed")),
        "hidden": tested, "initial": initial,
        "final": as_tuple(res.get(results.HIDDEN_FINAL)) or tested,
        "task_hidden": as_tuple(flat.get("task.hidden")) or per_layer,  # as configured (method=small: the full h)
        "layers": len(per_layer) if per_layer else None,
        "k": res.get("k"), "k_output": res.get("k_output"),
        "decay": res.get("decay", flat.get("decay")),
        "dropout": flat.get("task.dropout"),
        "batch_size": res.get("batch_size", flat.get("task.batch_size")),
        "topk_ratio": res.get("topk_ratio", flat.get("topk_ratio")),
        "batch_norm": res.get("batch_norm", flat.get("task.batch_norm")),
        "prune_rate": flat.get(PRUNE_RATE),
        "params_tested": number(res.get(results.PARAMS_TESTED, res.get("params"))),
        "decode_speedup": number(decode.get("speedup")),
        "hidden_from": res.get(results.HIDDEN_FROM),
        "source": None,  # the meSimp run whose tested sizes this run was built with (link_sources)
        "metric": metric,
        "best_epoch": res.get("best_epoch"), "epochs_run": res.get("epochs_run"),
        "dev": percent(dev.get(metric)), "test": percent(test.get(metric)),
        "setting": describe_setting(setting),
        "context": describe_setting(context),
        "_setting": setting,
    }
    for name in ("forward_s", "backward_s", "linear_backward_s", "update_s", "total_s"):
        row[name] = number(timing.get(name))
    phases = [row[p] for p in ("forward_s", "backward_s", "update_s")]
    row["train_s"] = sum(phases) if all(p is not None for p in phases) else None
    row["size_pct"] = share(row["hidden"], row["initial"])
    return row


def describe_setting(setting: dict[str, Any]) -> str:
    return repr(sorted(setting.items(), key=lambda kv: kv[0]))


def find_run(folder: str, runs: list[str]) -> str | None:
    """The run among `runs` that `folder` (a hidden_from value, relative to where that run was trained) names."""
    wanted = Path(folder).expanduser()
    resolved = {str(Path(run).resolve()): run for run in runs}
    if wanted.is_absolute() or str(wanted.resolve()) in resolved:
        return resolved.get(str(wanted.resolve()))
    parts = tuple(p for p in wanted.parts if p not in ("", "."))
    ending = [run for run in runs if Path(run).resolve().parts[-len(parts):] == parts] if parts else []
    return ending[0] if len(ending) == 1 else None


def link_sources(frame: pd.DataFrame) -> None:
    """Each run built at a meSimp run's tested sizes gets that run as its source.

    By hidden_from (results.HIDDEN_FROM) when the run names one: its setting then holds the source's setting
    instead of the folder and the sizes (those differ per seed), so the from-scratch runs of one meSimp
    setting's seeds are one row. Else a baseline of the same task and optimizer at the tested sizes of a meSimp
    run whose sizes changed is its from-scratch comparison too (a baseline trained with task.hidden=...)."""
    runs = list(frame["run"])
    by_run = {row["run"]: row for _, row in frame.iterrows()}
    pruned = [row for _, row in frame.iterrows() if row["method"] == MESIMP and row["hidden"] != row["initial"]]
    for i, row in frame.iterrows():
        source = None
        if row["hidden_from"]:
            source = find_run(str(row["hidden_from"]), runs)
            if source is not None:
                setting = {**row["_setting"], "hidden": None, results.HIDDEN_FROM: by_run[source]["setting"]}
                frame.at[i, "_setting"] = setting
                frame.at[i, "setting"] = describe_setting(setting)
        elif row["method"] == BASELINE:
            same = [s for s in pruned if (s["task"], s["optimizer"], s["hidden"]) ==
                    (row["task"], row["optimizer"], row["hidden"])]
            if same:
                source = next((s for s in same if s["seed"] == row["seed"]), same[0])["run"]
        if source is not None:
            frame.at[i, "source"] = source
            frame.at[i, "size_pct"] = share(row["hidden"], by_run[source]["initial"])


def run_frame(runs: Iterable[results.RunFolder]) -> pd.DataFrame:
    """Completed runs as rows, with per-seed speedups and deltas against their baseline."""
    rows = [run_row(run) for run in runs if run.status == "completed"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["source"] = frame["source"].astype(object)
    link_sources(frame)
    base = frame[frame["method"] == BASELINE]
    timing = ["linear_backward_s", "backward_s", "forward_s", "train_s", "dev", "test", "epochs_run"]
    means = base.groupby(["task", "optimizer", "seed", "context"], dropna=False)[timing].mean()
    lookup = {key: row for key, row in means.iterrows()}
    for name in ("linear_speedup", "backward_speedup", "train_speedup", "dev_delta", "test_delta"):
        frame[name] = None
    frame["has_baseline"] = False
    frame["baseline_epochs"] = None
    for i, row in frame.iterrows():
        b = lookup.get((row["task"], row["optimizer"], row["seed"], row["context"]))
        if b is None or row["method"] == BASELINE:
            continue
        frame.at[i, "has_baseline"] = True
        frame.at[i, "baseline_epochs"] = number(b["epochs_run"])
        frame.at[i, "linear_speedup"] = ratio(b["linear_backward_s"], row["linear_backward_s"])
        frame.at[i, "backward_speedup"] = ratio(b["backward_s"], row["backward_s"])
        frame.at[i, "train_speedup"] = ratio(b["train_s"], row["train_s"])
        frame.at[i, "dev_delta"] = difference(row["dev"], b["dev"])
        frame.at[i, "test_delta"] = difference(row["test"], b["test"])
    return frame


def ratio(a: Any, b: Any) -> float | None:
    a, b = number(a), number(b)
    return a / b if a is not None and b else None


def difference(a: Any, b: Any) -> float | None:
    a, b = number(a), number(b)
    return a - b if a is not None and b is not None else None
