"""`meprop table`: the papers' tables from run folders (and the speed benchmark's records).

Reads only what meprop_cli.results reads (result.json, config.yaml, metrics.jsonl; benchmark files), never
trains. Each run folder is one row of a run frame; runs of the same setting (every config value except
the seed and bookkeeping) are aggregated as mean ± std over their seeds, with the count shown.

Baseline of a run: the runs with method=baseline of the same task, optimizer, seed and context (every
config value that is not a method's: hidden sizes as configured, dropout, batch, lr, epochs, batch norm,
...). Speedups (baseline time / run time) and deltas (run score - baseline score) are taken per seed, then
averaged. Runs without such a baseline get '-'; the notes under the table say so.

Kinds (paper tables; `--kind`, or inferred from the runs):
    main       Table 1: task, optimizer, method, h, k, Iter, backprop time (speedup), dev, test (deltas)
    overall    Table 2: forward, backward (speedup), update, their sum, and the wall time of the run
    same_kh    Table 3: small networks with h = k against meProp with that k
    dropout    Table 4: meProp and baseline at each dropout rate
    layers     Table 5: 2-5 hidden layers
    unified    Table 6: unified top-k (one index set per mini-batch): overall backprop time, dev, test
    synthetic  Table 7: the benchmark's dense vs sparse backward times (results.BENCH_COLUMNS)
    mesimp     meSimp: per-layer sizes after simplification, % of the original, and from-scratch
               baselines of the same size
    cnn        meProp-CNN: top-k %, decay, batch norm, Iter, dev, test
Formats: markdown (default), latex, csv (numbers only: mean and std in separate columns).

Keys read beyond results.RESULT_KEYS, each optional (a missing one shows '-'): optimizer, batch_size,
decay, timing.*, topk_ratio, batch_norm (CNN; else the config key of that name), hidden_initial and
hidden_final (meSimp; else config task.hidden and result hidden), and the config's task.dropout and any
config key ending in prune_rate.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from meprop_cli import results
from meprop_cli.errors import UserError

KINDS = ("main", "overall", "same_kh", "dropout", "layers", "unified", "synthetic", "mesimp", "cnn")
FORMATS = ("markdown", "latex", "csv")
BASELINE = "baseline"
METHOD_ORDER = ("baseline", "small", "meprop", "meprop_unified", "random", "mesimp", "meact")

# Config values that never change what a run computes: left out of the setting a run is grouped by.
BOOKKEEPING = {"seed", "data_root", "trainer.threads", "trainer.progress", "trainer.log_every_steps",
               "trainer.checkpoint", "trainer.resume", "task.eval_batch_size"}
# Config values replaced by the result's own account of them (baseline runs carry an unused topk), or
# that only give another key its default (task.average_decay → trainer.average_decay, which is compared).
REPLACED = {"topk", "topk_output", "task.topk", "task.topk_output", "task.average_decay"}
# The last part of config keys that belong to a method, not to the context a baseline must share.
METHOD_PARTS = {"topk", "topk_output", "topk_ratio", "decay", "k", "k_output", "hidden_final", "hidden_initial"}
# Result keys that are settings (they split runs into rows); batch_norm is context a baseline shares.
RESULT_SETTINGS = ("decay", "topk_ratio", "batch_norm", "hidden_final", "hidden_initial")


# -- the run frame ----------------------------------------------------------------------------

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


def by_suffix(flat: dict[str, Any], suffix: str) -> Any:
    """The value of the first config key that is, or ends in, `suffix` (None if there is none)."""
    for key, value in flat.items():
        if key == suffix or key.endswith("." + suffix):
            return value
    return None


def is_method_key(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return key.startswith("method.") or last in METHOD_PARTS or "prune" in last or "meact" in key \
        or "mesimp" in key


def as_tuple(value: Any) -> tuple | None:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else None


def run_row(run: results.RunFolder) -> dict[str, Any]:
    """One completed run as a flat row: identity, setting, scores in %, timings in seconds."""
    res, flat = run.result, flatten(run.config)
    hidden = as_tuple(res.get("hidden_final")) or as_tuple(res.get("hidden")) or as_tuple(flat.get("task.hidden"))
    configured = as_tuple(res.get("hidden_initial")) or as_tuple(flat.get("task.hidden")) or hidden
    dev, test = res.get("dev") or {}, res.get("test") or {}
    metric = next(iter(dev), None) or next(iter(test), None)
    timing = res.get("timing") or {}
    setting = {k: v for k, v in flat.items() if k not in BOOKKEEPING | REPLACED}
    setting.update({"k": res.get("k"), "k_output": res.get("k_output"), "hidden": hidden})
    for key in RESULT_SETTINGS:  # a method may report a setting only in result.json
        if key in res:
            setting[f"result.{key}"] = as_tuple(res[key]) or res[key]
    context = {k: v for k, v in setting.items() if not is_method_key(k) and k != "hidden"}
    context["task.hidden"] = configured
    row = {
        "run": str(run.path),
        "task": res.get("task", flat.get("task.name")),
        "method": res.get("method", flat.get("method.name")),
        "optimizer": res.get("optimizer", flat.get("optim.name")),
        "seed": res.get("seed", flat.get("seed")),
        "hidden": hidden, "configured": configured, "layers": len(hidden) if hidden else None,
        "k": res.get("k"), "k_output": res.get("k_output"),
        "decay": res.get("decay", flat.get("decay")),
        "dropout": flat.get("task.dropout"),
        "batch_size": res.get("batch_size", flat.get("task.batch_size")),
        "topk_ratio": res.get("topk_ratio", by_suffix(flat, "topk_ratio")),
        "batch_norm": res.get("batch_norm", by_suffix(flat, "batch_norm")),
        "prune_rate": by_suffix(flat, "prune_rate"),
        "metric": metric,
        "best_epoch": res.get("best_epoch"), "epochs_run": res.get("epochs_run"),
        "dev": percent(dev.get(metric)), "test": percent(test.get(metric)),
        "setting": repr(sorted(setting.items(), key=lambda kv: kv[0])),
        "context": repr(sorted(context.items(), key=lambda kv: kv[0])),
        "_setting": setting,
    }
    for name in ("forward_s", "backward_s", "linear_backward_s", "update_s", "total_s"):
        row[name] = number(timing.get(name))
    phases = [row[p] for p in ("forward_s", "backward_s", "update_s")]
    row["train_s"] = sum(phases) if all(p is not None for p in phases) else None
    if configured and hidden:
        row["size_pct"] = 100.0 * sum(hidden) / sum(configured)
    return row


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
    return None if value is None else 100.0 * value


def run_frame(runs: Iterable[results.RunFolder]) -> pd.DataFrame:
    """Completed runs as rows, with per-seed speedups and deltas against their baseline."""
    rows = [run_row(run) for run in runs if run.status == "completed"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
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


# -- columns and aggregation --------------------------------------------------------------------

@dataclass
class Column:
    header: str
    field: str
    style: str = "key"  # key | score | time | count | pct | ratio_pct
    extra: str | None = None  # per-seed field shown in brackets: a delta (score) or a speedup (time)


KEY_FIELDS = {
    "task": ("task", lambda r: r["task"]),
    "metric": ("metric", lambda r: dash(r["metric"])),
    "optimizer": ("optimizer", lambda r: r["optimizer"]),
    "method": ("method", lambda r: r["method"]),
    "h": ("h", lambda r: sizes(r["hidden"])),
    "k": ("k", lambda r: dash(r["k"])),
    "layers": ("layers", lambda r: dash(r["layers"])),
    "dropout": ("dropout", lambda r: dash(r["dropout"])),
    "batch": ("batch", lambda r: dash(r["batch_size"])),
    "h_initial": ("h (initial)", lambda r: sizes(r["configured"])),
    "h_final": ("h (final)", lambda r: sizes(r["hidden"])),
    "prune_rate": ("prune rate", lambda r: dash(r["prune_rate"])),
    "topk_pct": ("top-k %", lambda r: "-" if number(r["topk_ratio"]) is None or r["method"] == BASELINE
                 else f"{100 * number(r['topk_ratio']):g}"),
    "decay": ("decay", lambda r: "-" if r["method"] == BASELINE else dash(r["decay"])),
    "batch_norm": ("batch norm", lambda r: "-" if present(r["batch_norm"]) is None
                   else ("yes" if r["batch_norm"] else "no")),
}


def sizes(hidden: Any) -> str:
    if not hidden:
        return "-"
    return str(hidden[0]) if len(set(hidden)) == 1 else ",".join(map(str, hidden))


def dash(value: Any) -> str:
    if present(value) is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def score_columns(time_field: str | None = None, time_header: str = "", speedup: str | None = None) -> list[Column]:
    cols = [Column("Iter", "best_epoch", "count")]
    if time_field:
        cols.append(Column(time_header, time_field, "time", speedup))
    return cols + [Column("dev (%)", "dev", "score", "dev_delta"), Column("test (%)", "test", "score", "test_delta")]


@dataclass
class Kind:
    keys: list[str]  # KEY_FIELDS shown first, in order
    values: list[Column]
    keep: Callable[[pd.DataFrame], pd.Series] | None = None  # which runs the table shows
    caption: str = ""


BACKPROP = "backprop time (s)"
KIND_SPECS: dict[str, Kind] = {
    "main": Kind(["task", "optimizer", "method", "h", "k"],
                 score_columns("linear_backward_s", BACKPROP, "linear_speedup"),
                 caption="Backprop time: the backward of the linear transformations, summed over the run."),
    "overall": Kind(["task", "optimizer", "method", "h", "k"],
                    [Column("forward (s)", "forward_s", "time"),
                     Column("backward (s)", "backward_s", "time", "backward_speedup"),
                     Column("update (s)", "update_s", "time"),
                     Column("total (s)", "train_s", "time", "train_speedup"),
                     Column("wall (s)", "total_s", "time")],
                    caption="total = forward + backward + update of training; wall = the whole run, "
                            "with evaluation and data loading."),
    "same_kh": Kind(["task", "optimizer", "method", "h", "k"], score_columns(),
                    keep=lambda f: f["method"].isin(["small"]) | (f["k"].isin(small_sizes(f))
                                                                  & f["method"].isin(["meprop", "meprop_unified"])),
                    caption="Small networks (method=small: h = k, full back propagation) against meProp with "
                            "that k on the full-size network."),
    "dropout": Kind(["task", "optimizer", "dropout", "method", "h", "k"], score_columns(),
                    caption="Deltas are against the baseline with the same dropout."),
    "layers": Kind(["task", "optimizer", "layers", "method", "h", "k", "dropout"], score_columns(),
                   caption="Deltas are against the baseline with the same number of layers and dropout."),
    "unified": Kind(["task", "optimizer", "layers", "batch", "method", "h", "k"],
                    score_columns("backward_s", "overall backprop time (s)", "backward_speedup"),
                    keep=lambda f: f["method"].isin([BASELINE, "meprop_unified"]),
                    caption="Unified top-k: one index set per mini-batch. Overall backprop time: the whole "
                            "backward pass."),
    "mesimp": Kind(["task", "optimizer", "method", "h_initial", "k", "prune_rate", "h_final"],
                   [Column("% of original", "size_pct", "pct")] + score_columns(),
                   caption="h (final): hidden sizes after simplification; baselines trained from scratch at "
                           "a meSimp run's final sizes are marked 'from scratch'."),
    "cnn": Kind(["task", "optimizer", "method", "topk_pct", "decay", "batch_norm"], score_columns(),
                caption="top-k %: the share of each feature map's output gradient kept; deltas are against "
                        "the baseline with the same batch norm."),
}


def small_sizes(frame: pd.DataFrame) -> list[int]:
    small = frame[frame["method"] == "small"]
    return sorted({h[0] for h in small["hidden"] if h})


def method_rank(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def aggregate(frame: pd.DataFrame, kind: Kind) -> tuple[list[dict[str, Any]], list[str]]:
    """One entry per setting: the key cells, and mean/std/n of every value field; plus notes."""
    notes: list[str] = []
    groups = []
    for _, group in frame.groupby("setting", sort=False, dropna=False):
        first = group.iloc[0]
        entry: dict[str, Any] = {"_first": first, "_runs": list(group["run"]), "n": len(group),
                                 "seeds": sorted(group["seed"].tolist())}
        for name, (_, cell) in KEY_FIELDS.items():
            entry[name] = cell(first)
        for column in kind.values:
            for field in (column.field, column.extra):
                if field:
                    values = [v for v in (number(x) for x in group[field]) if v is not None]
                    entry[field] = stats(values)
        seeds = entry["seeds"]
        if len(set(seeds)) < len(seeds):
            notes.append(f"{describe(entry, kind)} has {len(seeds)} runs but seeds {seeds}: the same seed twice "
                         f"(the runs are averaged as if independent): {', '.join(entry['_runs'])}")
        groups.append(entry)
    groups.sort(key=lambda e: sort_key(e["_first"]))
    return groups, notes


def sort_key(row: pd.Series) -> tuple:
    """Task, optimizer, depth, dropout, then the baseline first and methods in METHOD_ORDER, then h, k."""
    def num(field: str) -> float:
        return number(row[field]) or 0.0

    return (str(row["task"]), str(row["optimizer"]), num("layers"), num("dropout"), str(row["batch_norm"]),
            method_rank(str(row["method"])), tuple(row["hidden"] or ()), num("k"), num("topk_ratio"), num("decay"))


def stats(values: list[float]) -> tuple[float, float | None, int] | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std, len(values)


def describe(entry: dict[str, Any], kind: Kind) -> str:
    return " ".join(f"{KEY_FIELDS[k][0]}={entry[k]}" for k in kind.keys)


def distinguishing(groups: list[dict[str, Any]], kind: Kind) -> list[str]:
    """Setting values to show besides the kind's keys, so that no two rows look the same."""
    def shown(entry: dict[str, Any], extra: list[str]) -> tuple:
        return tuple(entry[k] for k in kind.keys) + tuple(repr(entry["_first"]["_setting"].get(x)) for x in extra)

    extra: list[str] = []
    candidates = sorted({key for e in groups for key in e["_first"]["_setting"]})
    while len({shown(e, extra) for e in groups}) < len(groups):
        clashes: dict[tuple, list[dict[str, Any]]] = {}
        for entry in groups:
            clashes.setdefault(shown(entry, extra), []).append(entry)
        varying = [key for key in candidates if key not in extra and any(
            len({repr(e["_first"]["_setting"].get(key)) for e in clash}) > 1 for clash in clashes.values())]
        if not varying:
            break
        extra.append(varying[0])
    return extra


# -- cells ------------------------------------------------------------------------------------

def fmt_time(seconds: float, like: float | None = None) -> str:
    """Seconds with 2 decimals below 10 s, else 1 (paper style: 9,077.7); `like` picks them for a std."""
    return f"{seconds:,.2f}" if (seconds if like is None else like) < 10 else f"{seconds:,.1f}"


def fmt_mean(value: tuple[float, float | None, int] | None, style: str) -> str:
    if value is None:
        return "-"
    mean, std, _ = value
    fmt = {"score": "{:.2f}", "pct": "{:.1f}", "count": "{:.1f}"}.get(style)
    if style == "count" and std is None:
        return f"{mean:g}"
    if style == "time":
        text = fmt_time(mean)
        return text if std is None else f"{text} ± {fmt_time(std, like=mean)}"
    text = fmt.format(mean)
    return text if std is None else f"{text} ± {fmt.format(std)}"


def cell(entry: dict[str, Any], column: Column) -> str:
    text = fmt_mean(entry.get(column.field), column.style)
    extra = entry.get(column.extra) if column.extra else None
    if extra is not None and text != "-":
        mean = extra[0]
        text += f" ({mean:+.2f})" if column.style == "score" else f" ({mean:.1f}x)"
    return text


# -- the table --------------------------------------------------------------------------------

@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]  # display cells
    numbers: list[dict[str, Any]]  # the same rows as numbers (CSV)
    caption: str
    notes: list[str]  # shown under the table: skipped runs, missing baselines, repeated seeds


def build_table(runs: list[results.RunFolder], kind: str) -> Table:
    spec = KIND_SPECS[kind]
    notes = [f"{run.path}: {run.status}: {run.reason}" for run in runs if run.status != "completed"]
    frame = run_frame(runs)
    if not frame.empty and spec.keep is not None:
        frame = frame[spec.keep(frame)]
    groups, group_notes = aggregate(frame, spec) if not frame.empty else ([], [])
    if kind == "mesimp":
        mark_from_scratch(groups)
    if not frame.empty and frame["metric"].nunique() > 1:  # tasks scored differently: name each row's metric
        spec = replace(spec, keys=[*spec.keys[:1], "metric", *spec.keys[1:]])
    extra = distinguishing(groups, spec) if groups else []
    headers = [KEY_FIELDS[k][0] for k in spec.keys] + extra + [c.header for c in spec.values] + ["n"]
    rows, numbers = [], []
    for entry in groups:
        setting = entry["_first"]["_setting"]
        keys = [entry[k] for k in spec.keys] + [dash(setting.get(x)) for x in extra]
        rows.append(keys + [cell(entry, c) for c in spec.values] + [str(entry["n"])])
        numbers.append(numeric_row(entry, spec, extra))
    if not frame.empty:
        lacking = frame[(frame["method"] != BASELINE) & ~frame["has_baseline"].astype(bool)]
        if len(lacking) and any(c.extra for c in spec.values):
            notes.append(f"{len(lacking)} run(s) have no baseline run (method=baseline, same task, optimizer, "
                         f"seed and settings), so no speedup or delta: {', '.join(lacking['run'])}")
        uneven = frame[frame["has_baseline"].astype(bool) & frame["baseline_epochs"].notna()
                       & (frame["epochs_run"].astype(float) != frame["baseline_epochs"].astype(float))]
        if len(uneven) and any(c.style == "time" for c in spec.values):
            notes.append("times are totals over a run, and these ran a different number of epochs than their "
                         "baseline, so their speedups mix epochs with speed: " +
                         ", ".join(f"{r['run']} ({r['epochs_run']} epochs, baseline {r['baseline_epochs']:g})"
                                   for _, r in uneven.iterrows()))
    caption = (f"{spec.caption} Dev and test in %, test at the best dev epoch ('Iter'); mean ± std over the n "
               f"runs (seeds) of a setting; (+x.xx) = difference from the baseline of the same task, optimizer and "
               f"seed; (Nx) = baseline time / this time.")
    if frame.empty:
        notes.insert(0, f"no completed run fits the '{kind}' table")
    return Table(headers, rows, numbers, caption.strip(), group_notes + notes)


def mark_from_scratch(groups: list[dict[str, Any]]) -> None:
    """Baselines whose hidden sizes equal a meSimp run's final sizes are its from-scratch comparison."""
    final = {(e["_first"]["task"], e["_first"]["hidden"]) for e in groups if e["_first"]["method"] == "mesimp"}
    for entry in groups:
        first = entry["_first"]
        if first["method"] in (BASELINE, "small") and (first["task"], first["hidden"]) in final:
            entry["method"] = f"{first['method']} (from scratch)"


def numeric_row(entry: dict[str, Any], spec: Kind, extra: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {KEY_FIELDS[k][0]: entry[k] for k in spec.keys}
    row.update({x: entry["_first"]["_setting"].get(x) for x in extra})
    for column in spec.values:
        value = entry.get(column.field)
        row[column.header] = round(value[0], 6) if value else None
        row[f"{column.header} std"] = round(value[1], 6) if value and value[1] is not None else None
        if column.extra:
            name = "delta" if column.style == "score" else "speedup"
            row[f"{column.header} {name}"] = round(entry[column.extra][0], 6) if entry.get(column.extra) else None
    row["n"] = entry["n"]
    row["seeds"] = " ".join(map(str, entry["seeds"]))
    return row


def build_synthetic(records: list[dict[str, Any]]) -> Table:
    """Table 7: mean dense and sparse backward times per product and k, with the speedup dense/sparse."""
    frame = pd.DataFrame(records)
    frame["speedup"] = frame["dense_ms"] / frame["sparse_ms"]
    optional = [c for c in results.BENCH_OPTIONAL if c in frame and frame[c].notna().any()]
    frame[optional] = frame[optional].fillna("-").astype(str)
    keys = [c for c in optional if c == "name"] + ["mode", "batch", "in", "out", "k"] + \
        [c for c in optional if c != "name"]
    headers = keys + ["k/out (%)", "dense (ms)", "sparse (ms)", "speedup", "n"]
    rows, numbers = [], []
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        values = {c: stats(group[c].astype(float).tolist()) for c in ("dense_ms", "sparse_ms", "speedup")}
        k, out = group.iloc[0]["k"], group.iloc[0]["out"]
        cells = [str(v) for v in key] + [f"{100 * k / out:.2f}"]
        cells += [fmt_mean(values["dense_ms"], "score"), fmt_mean(values["sparse_ms"], "score"),
                  f"{values['speedup'][0]:.1f}x", str(len(group))]
        rows.append(cells)
        row = dict(zip(keys, key))
        row.update({"k/out (%)": 100 * k / out, "dense (ms)": values["dense_ms"][0],
                    "sparse (ms)": values["sparse_ms"][0], "speedup": values["speedup"][0], "n": len(group)})
        numbers.append(row)
    caption = ("Synthetic backward of one linear layer: dense = full backward, sparse = meProp backward with "
               "that k; milliseconds per backward, mean ± std over n measurements; speedup = dense / sparse.")
    return Table(headers, rows, numbers, caption, [])


# -- inputs -----------------------------------------------------------------------------------

BENCH_SUFFIXES = (".jsonl", ".csv")


def bench_files(paths: list[Path]) -> list[Path]:
    """Benchmark record files: given directly, or named bench*.jsonl / bench*.csv under a given folder."""
    found = []
    for path in paths:
        if path.is_file() and path.suffix in BENCH_SUFFIXES and path.name != results.METRICS_FILE:
            found.append(path)
        elif path.is_dir():
            found += sorted(p for s in BENCH_SUFFIXES for p in path.rglob(f"bench*{s}"))
    return found


def infer_kind(runs: list[results.RunFolder], benches: list[Path]) -> str:
    completed = [run_row(r) for r in runs if r.status == "completed"]
    if not completed and benches:
        return "synthetic"
    methods = {row["method"] for row in completed}
    if "mesimp" in methods:
        return "mesimp"
    if any(row["task"] == "mnist_cnn" or row["topk_ratio"] is not None for row in completed):
        return "cnn"
    return "main"


def make_table(paths: list[Path], kind: str | None = None) -> tuple[Table, str]:
    """The table of the runs (or benchmark records) under paths, and the kind it is."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"{', '.join(missing)} does not exist: give run folders, sweep folders or benchmark files")
    if kind is not None and kind not in KINDS:
        raise UserError(f"--kind {kind} is unknown; use one of {', '.join(KINDS)}")
    runs = results.load_runs(*[p for p in paths if p.is_dir()])
    benches = bench_files(paths)
    kind = kind or infer_kind(runs, benches)
    if kind == "synthetic":
        if not benches:
            raise UserError("--kind synthetic needs the benchmark's .jsonl or .csv file (scripts/bench_backprop.py): "
                            "give its path")
        records = []
        for path in benches:
            try:
                records += results.read_benchmark(path)
            except (ValueError, KeyError) as e:
                raise UserError(f"cannot read benchmark records: {e}; it needs columns "
                                f"{', '.join(results.BENCH_COLUMNS)}") from e
        if not records:
            raise UserError(f"{', '.join(map(str, benches))} hold no benchmark records")
        return build_synthetic(records), kind
    if not runs:
        raise UserError(f"no run folders (with config.yaml or result.json) under {', '.join(map(str, paths))}")
    return build_table(runs, kind), kind


# -- output formats -----------------------------------------------------------------------------

def to_markdown(table: Table) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(table.headers), "| " + " | ".join("---" for _ in table.headers) + " |"]
    out += [line(row) for row in table.rows]
    out += ["", table.caption]
    if table.notes:
        out += ["", "Not in the table, or to know:", *[f"- {note}" for note in table.notes]]
    return "\n".join(out) + "\n"


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    text = "".join(LATEX_ESCAPES.get(ch, ch) for ch in text)
    return text.replace("±", r"$\pm$")


def to_latex(table: Table) -> str:
    """A booktabs tabular; the caption and notes follow as comments (they are for the author, not the page)."""
    spec = "l" * len(table.headers)
    out = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
           " & ".join(latex_escape(h) for h in table.headers) + r" \\", "\\midrule"]
    out += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    out += ["\\bottomrule", "\\end{tabular}", f"% {table.caption}"]
    out += [f"% not in the table, or to know: {note}" for note in table.notes]
    return "\n".join(out) + "\n"


def to_csv(table: Table) -> str:
    return pd.DataFrame(table.numbers).to_csv(index=False)


def render(table: Table, fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt} is unknown; use one of {', '.join(FORMATS)}")
    return {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](table)
