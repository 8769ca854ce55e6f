"""The table kinds: which runs each shows, its key columns (the setting) and value columns (aggregated)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from meprop_cli.table.cells import fmt_sizes, size_stats
from meprop_cli.table.frame import BASELINE, MESIMP, number, present

KINDS = ("main", "overall", "same_kh", "dropout", "layers", "unified", "synthetic", "mesimp", "cnn")
METHOD_ORDER = ("baseline", "small", "meprop", "meprop_unified", "random", "mesimp", "meact")


@dataclass
class Column:
    header: str
    field: str
    style: str = "key"  # key | score | time | count | pct | int | ratio | sizes (one value per group)
    extra: str | None = None  # per-seed field shown in brackets: a delta (score) or a speedup (time)


def sizes(hidden: Any) -> str:
    """Hidden sizes, one number when all groups are the same size."""
    if not hidden:
        return "-"
    return str(hidden[0]) if len(set(hidden)) == 1 else ",".join(map(str, hidden))


def dash(value: Any) -> str:
    if present(value) is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


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
    "h_initial": ("h (initial)", lambda r: sizes(r["initial"])),
    "prune_rate": ("prune rate", lambda r: dash(r["prune_rate"])),
    "topk_pct": ("top-k %", lambda r: "-" if number(r["topk_ratio"]) is None or r["method"] == BASELINE
                 else f"{100 * number(r['topk_ratio']):g}"),
    "decay": ("decay", lambda r: "-" if r["method"] == BASELINE else dash(r["decay"])),
    "batch_norm": ("batch norm", lambda r: "-" if present(r["batch_norm"]) is None
                   else ("yes" if r["batch_norm"] else "no")),
}


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
    arrange: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None  # relabel and reorder rows


def small_sizes(frame: pd.DataFrame) -> list[int]:
    small = frame[frame["method"] == "small"]
    return sorted({h[0] for h in small["hidden"] if h})


# -- meSimp ----------------------------------------------------------------------------------

FROM_SCRATCH = "(from scratch)"


def mesimp_rows(frame: pd.DataFrame) -> pd.Series:
    """meSimp runs, and what they are compared with: the full-size baseline (same task, optimizer and
    context), the meProp run of the same k, and the runs built at a meSimp run's tested sizes. Without a
    meSimp run under the paths, every run (their sizes)."""
    simp = frame[frame["method"] == MESIMP]
    if simp.empty:
        return pd.Series(True, index=frame.index)
    settings = set(zip(simp["task"], simp["optimizer"], simp["context"]))
    with_k = set(zip(simp["task"], simp["optimizer"], simp["context"], simp["k"]))
    sources = set(simp["run"])

    def keep(row: pd.Series) -> bool:
        if row["method"] == MESIMP or row["source"] in sources:
            return True
        if row["method"] == BASELINE:
            return (row["task"], row["optimizer"], row["context"]) in settings
        if row["method"] == "meprop":
            return (row["task"], row["optimizer"], row["context"], row["k"]) in with_k
        return False

    return frame.apply(keep, axis=1).astype(bool)


def arrange_mesimp(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row built at a meSimp row's tested sizes is marked 'from scratch' and follows that meSimp row; its
    h (initial) are its runs' (the meSimp seeds' tested sizes, which may differ)."""
    owner = {run: id(e) for e in groups if e["_first"]["method"] == MESIMP for run in e["_runs"]}
    after: dict[int, list[dict[str, Any]]] = {}
    for entry in groups:
        key = owner.get(entry["_first"]["source"])
        if key is not None:
            entry["method"] = f"{entry['_first']['method']} {FROM_SCRATCH}"
            entry["h_initial"] = fmt_sizes(size_stats(list(entry["_group"]["initial"])))
            after.setdefault(key, []).append(entry)
    scratch = {id(e) for rows in after.values() for e in rows}
    ordered = []
    for entry in groups:
        if id(entry) not in scratch:
            ordered += [entry, *after.get(id(entry), [])]
    return ordered


MESIMP_CAPTION = (
    "meSimp: sizes are per group of hidden neurons (an MLP's hidden layers; a BiLSTM layer's left and right "
    "direction). h (initial): at the start of training; h (tested): of the best-dev model, the one test was "
    "scored with; h (end): when training ended; % of original: hidden units of the tested model / hidden units "
    "at the start (units, not parameters; for a from-scratch row: / its meSimp run's start); params: parameters "
    "of the tested model; decode speedup: test forward time at the initial sizes / at the tested sizes (runs "
    "whose sizes changed). A '(from scratch)' row is trained anew at the tested sizes of the meSimp row above "
    "it (hidden_from=that run, or a baseline of the same sizes); deltas are against the full-size baseline.")

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
    "mesimp": Kind(["task", "optimizer", "method", "h_initial", "k", "prune_rate"],
                   [Column("h (tested)", "hidden", "sizes"), Column("h (end)", "final", "sizes"),
                    Column("% of original", "size_pct", "pct"), Column("params", "params_tested", "int"),
                    *score_columns(), Column("decode speedup", "decode_speedup", "ratio")],
                   keep=mesimp_rows, caption=MESIMP_CAPTION, arrange=arrange_mesimp),
    "cnn": Kind(["task", "optimizer", "method", "topk_pct", "decay", "batch_norm"], score_columns(),
                caption="top-k %: the share of each feature map's output gradient kept; deltas are against "
                        "the baseline with the same batch norm."),
}
