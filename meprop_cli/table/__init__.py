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
    mesimp     meSimp: sizes per group at the start, tested and at the end, % of the original, parameters,
               dev, test, decode speedup; with its meProp run, the full-size baseline and the from-scratch run
               at its tested sizes (hidden_from)
    cnn        meProp-CNN: top-k %, decay, batch norm, Iter, dev, test
Formats: markdown (default), latex, csv (numbers only: mean and std in separate columns).

Keys read beyond results.RESULT_KEYS, each optional (a missing one shows '-'): optimizer, batch_size,
decay, timing.*, topk_ratio and batch_norm (CNN; else the config's topk_ratio and task.batch_norm); the
sizes, parameters, hidden_from and decode record named in results (HIDDEN_INITIAL, HIDDEN_TESTED,
HIDDEN_FINAL, PARAMS_TESTED, HIDDEN_FROM, DECODE; without them, the sizes the run was built with); the
config's task.hidden, task.dropout and method.prune_rate.

Modules: frame (run folders → the run frame), kinds (each table's rows and columns), cells (stats and
how each column shows them), aggregate (seeds → one row per setting), build (the Table, its inputs),
render (output formats).
"""
from __future__ import annotations

from meprop_cli.table.aggregate import aggregate, sort_key
from meprop_cli.table.cells import stats
from meprop_cli.table.build import Table, bench_files, build_synthetic, build_table, infer_kind, make_table
from meprop_cli.table.frame import BASELINE, MESIMP, is_method_key, number, run_frame, run_row
from meprop_cli.table.kinds import KIND_SPECS, KINDS, METHOD_ORDER, Column, Kind, sizes
from meprop_cli.table.render import FORMATS, render, to_csv, to_latex, to_markdown

__all__ = ["BASELINE", "FORMATS", "KINDS", "KIND_SPECS", "MESIMP", "METHOD_ORDER", "Column", "Kind", "Table",
           "aggregate", "bench_files", "build_synthetic", "build_table", "infer_kind", "is_method_key",
           "make_table", "number", "render", "run_frame", "run_row", "sizes", "sort_key", "stats", "to_csv",
           "to_latex", "to_markdown"]
