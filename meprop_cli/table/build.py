"""Building a table: run folders (or benchmark records) → a Table of display cells, numbers and notes."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from meprop_cli import results
from meprop_cli.errors import UserError
from meprop_cli.table.aggregate import aggregate, distinguishing, numeric_row
from meprop_cli.table.cells import cell, fmt_mean, stats
from meprop_cli.table.frame import BASELINE, MESIMP, run_frame, run_row
from meprop_cli.table.kinds import KEY_FIELDS, KIND_SPECS, KINDS, dash


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
        if kind == "mesimp" and not (frame["method"] == MESIMP).any():
            notes.append("no completed meSimp run (method=mesimp) under the paths: every run is shown")
    caption = (f"{spec.caption} Dev and test in %, test at the best dev epoch ('Iter'); mean ± std over the n "
               f"runs (seeds) of a setting; (+x.xx) = difference from the baseline of the same task, optimizer and "
               f"seed; (Nx) = baseline time / this time.")
    if frame.empty:
        notes.insert(0, f"no completed run fits the '{kind}' table")
    return Table(headers, rows, numbers, caption.strip(), group_notes + notes)


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
    if MESIMP in methods:
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
            except OSError as e:
                raise UserError(f"cannot read {path} ({e.strerror or e}); check its permissions") from None
            except UnicodeDecodeError:
                raise UserError(f"{path} is not UTF-8 text; give the benchmark's .jsonl or .csv file") from None
            except ValueError as e:
                raise UserError(f"cannot read benchmark records: {e}; it needs columns "
                                f"{', '.join(results.BENCH_COLUMNS)}") from None
        if not records:
            raise UserError(f"{', '.join(map(str, benches))} hold{'s' if len(benches) == 1 else ''} no benchmark "
                            "records; give the file scripts/bench_backprop.py wrote")
        return build_synthetic(records), kind
    if not runs:
        raise UserError(f"no run folders (with config.yaml or result.json) under {', '.join(map(str, paths))}; give "
                        f"the folder of a run or a sweep")
    return build_table(runs, kind), kind
