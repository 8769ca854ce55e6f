"""The run-folder contract: what a run writes and what `meprop table` / `meprop plot` read.

    config.yaml     the resolved configuration
    metrics.jsonl   one JSON object per evaluation (epoch ends, and every N steps if asked)
    result.json     the final record (RESULT_KEYS at least), written atomically
    best.pt         the best-dev checkpoint (weights, config, task state); last.pt for resume

load_runs() is how `meprop table` / `meprop plot` see run folders: every folder found, each with a
status (completed, failed, unfinished, unreadable) and, when it is not completed, the reason why.
read_benchmark() reads the synthetic-speed benchmark's records (BENCH_COLUMNS).
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from meprop_cli.errors import OutputError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"

STATUSES = ("completed", "failed")
RESULT_KEYS = ("task", "method", "seed", "status", "error", "best_epoch", "dev", "test", "hidden", "k",
               "k_output", "params", "timing")
TIMING_KEYS = ("forward_s", "backward_s", "linear_backward_s", "update_s", "total_s")

# Hidden sizes, for every model whose hidden neurons can be removed (nn/shrink.py): one size per group, an
# MLP's hidden layers or each BiLSTM layer's left and right direction. Written by the trainer for every such
# run, so a meSimp run and a baseline trained at its sizes (hidden_from) can be matched.
HIDDEN_INITIAL = "hidden_initial"  # result.json: the sizes training started with
HIDDEN_FINAL = "hidden_final"  # result.json: the sizes when training ended
HIDDEN_TESTED = "hidden_tested"  # result.json: the sizes of the best-dev model, the one test was scored with
PARAMS_FINAL = "params_final"  # result.json: parameters when training ended ("params": at the start)
PARAMS_TESTED = "params_tested"  # result.json: parameters of the model test was scored with
HIDDEN_FROM = "hidden_from"  # result.json: the run folder whose tested sizes this run was built with, or null
DECODE = "decode"  # result.json: {test_s, test_s_initial, speedup}, test forward of the tested model vs the
#                    same model at its initial sizes (runs whose sizes changed)
SIZES = "hidden_sizes"  # metrics.jsonl: the sizes at that evaluation; also in every prune check
PRUNE_CHECKS = "prune_checks"  # metrics.jsonl: the checks since the previous line, each {epoch, step, pruned, hidden_sizes}
PRUNE_CHECK_COUNT = "prune_check_count"  # result.json (meSimp): checks run
WARNINGS = "warnings"  # result.json: what the run was told but did not use (config.ignored_options), one line each
INTERRUPTED_BY = "interrupted_by"  # result.json: "SIGINT" or "SIGTERM" when a signal ended the run, else absent
ACTIVE_FRACTION = "active_fraction"  # metrics.jsonl (meAct): per hidden layer, active (example, neuron) pairs / all
MEACT_ACTING = "meact_acting"  # metrics.jsonl (meAct): whether the epoch skipped inactive neurons (else: warm-up)
UPDATE_SIZE = "mean_abs_update"  # metrics.jsonl (trainer.track_updates): mean |Δw| per parameter per update
UPDATE_SIZE_BY_PARAM = "mean_abs_update_by_param"  # metrics.jsonl: the same per parameter tensor, by name
MEACT_MEMORY = "meact_memory"  # result.json (meAct): {examples, neurons, dtype, bytes} of the per-example memory
DIAGNOSTICS = "diagnostics"  # metrics.jsonl (trainer.diagnostics): per hidden layer, diagnostics.LayerWatch's fields


def _clean(value: Any) -> Any:
    """JSON cannot hold NaN or infinity: write null instead of an unreadable file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# Fault injection for the tests of what a kill leaves behind: MEPROP_KILL_BEFORE_RENAME=NAME[:N] sends this process
# SIGKILL when the N-th (default first) complete temp file of NAME (e.g. last.pt) is about to replace NAME.
KILL_BEFORE_RENAME = "MEPROP_KILL_BEFORE_RENAME"
_renames: dict[str, int] = {}


def _fault_point(path: Path) -> None:
    wanted = os.environ.get(KILL_BEFORE_RENAME)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if path.name == name:
        _renames[name] = _renames.get(name, 0) + 1
        if _renames[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file to write that replaces `path` only once it is complete: on any failure (disk full, an exception,
    a signal) the temp file is removed and `path` keeps what it held. An OSError becomes one sentence."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _fault_point(path)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise OutputError(f"could not write {path}: {e.strerror or e}") from None
        raise


def write_json_atomic(path: Path, record: dict[str, Any]) -> None:
    with atomic_file(path) as f:
        json.dump(_clean(record), f, indent=2, sort_keys=False)
        f.write("\n")


def write_result(run_dir: Path, record: dict[str, Any]) -> None:
    missing = [key for key in RESULT_KEYS if key not in record]
    if missing or record["status"] not in STATUSES:
        raise ValueError(f"result record breaks the contract: missing {missing}, status {record.get('status')}")
    write_json_atomic(Path(run_dir) / RESULT_FILE, record)


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(_clean(record)) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluations of a run; a torn last line (a run killed mid-write) is ignored."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """A run's result.json, or None if the run has not finished writing it."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def find_run_dirs(*paths: Path) -> Iterator[Path]:
    """Every run folder under the given paths (a folder with config.yaml or result.json), sorted."""
    found: set[Path] = set()
    for root in map(Path, paths):
        for marker in (CONFIG_FILE, RESULT_FILE):
            found.update(p.parent for p in root.rglob(marker) if p.parent.name != ".hydra")
    yield from sorted(found)


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """A run's resolved config.yaml as plain dicts and lists, or None if absent."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    from omegaconf import OmegaConf  # only the readers need it

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


@dataclass
class RunFolder:
    """One run folder as the table and plot commands see it."""

    path: Path
    status: str  # completed | failed | unfinished (no result.json yet) | unreadable
    reason: str | None  # why a run is not completed, in one sentence; None when completed
    result: dict[str, Any] = field(default_factory=dict)  # result.json ({} if absent)
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml ({} if absent)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl


def load_run(run_dir: Path) -> RunFolder:
    """Read one run folder, never raising for a broken run: the status and reason say what is wrong."""
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    try:
        config = read_config(run_dir) or {}
    except Exception as e:  # a torn or hand-edited config.yaml must not hide the other runs
        return RunFolder(run_dir, "unreadable", f"config.yaml is unreadable ({type(e).__name__}: {e})",
                         metrics=metrics)
    try:
        result = read_result(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return RunFolder(run_dir, "unreadable", f"result.json is unreadable ({e})", config=config, metrics=metrics)
    if result is None:
        epochs = sum(1 for line in metrics if "train_loss" in line)
        return RunFolder(run_dir, "unfinished", f"no result.json (still running, or killed): {epochs} epoch(s) "
                         f"in {METRICS_FILE}", config=config, metrics=metrics)
    status = result.get("status")
    if status == "completed":
        return RunFolder(run_dir, "completed", None, result, config, metrics)
    reason = result.get("error") or f"status {status!r} without an error message"
    return RunFolder(run_dir, "failed", f"{reason} (after {result.get('epochs_run', '?')} epoch(s))",
                     result, config, metrics)


def load_runs(*paths: Path) -> list[RunFolder]:
    """Every run folder under the given paths (single runs and sweeps, nested), sorted by path.

    A job folder that Hydra created (.hydra/) but that holds neither config.yaml nor result.json is a job
    that died before training started: it is listed too, so that nothing is skipped silently."""
    runs = [load_run(run_dir) for run_dir in find_run_dirs(*paths)]
    found = {run.path for run in runs}
    for root in map(Path, paths):
        for hydra_dir in root.rglob(".hydra"):
            if hydra_dir.is_dir() and hydra_dir.parent not in found:
                found.add(hydra_dir.parent)
                runs.append(RunFolder(hydra_dir.parent, "failed", f"the job started but wrote neither {CONFIG_FILE} "
                                      f"nor {RESULT_FILE} (see its log)"))
    return sorted(runs, key=lambda run: run.path)


# The synthetic-speed benchmark (scripts/bench_backprop.py) writes one record per measured product, as
# JSON lines (.jsonl) or CSV (.csv) with a header. Required columns:
#   batch, in, out   the product: a (batch × in) input through an (in → out) linear layer
#   k                the k kept per row (mode topk/random) or per mini-batch (mode unified)
#   mode             the selection: topk | unified | random, or a label such as "topk, sparse dW"
#   dense_ms         one full backward of that layer (grad of input and weight), milliseconds
#   sparse_ms        one meProp backward with that k, milliseconds
# Optional (shown as columns when present): name (e.g. "MNIST layer 1"), calls, threads, kernels, device,
# dtype. Records with the same columns are repeated measurements and are averaged.
BENCH_COLUMNS = ("batch", "in", "out", "k", "mode", "dense_ms", "sparse_ms")
BENCH_OPTIONAL = ("name", "calls", "threads", "kernels", "device", "dtype")


def read_benchmark(path: Path) -> list[dict[str, Any]]:
    """The benchmark records of a .jsonl or .csv file; raises ValueError naming what is wrong."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        records: list[dict[str, Any]] = list(csv.DictReader(text.splitlines()))
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for number, record in enumerate(records, 1):
        missing = [c for c in BENCH_COLUMNS if record.get(c) in (None, "")]
        if missing:
            raise ValueError(f"{path} record {number} lacks {', '.join(missing)}")
        for column in ("batch", "in", "out", "k"):
            record[column] = int(record[column])
        for column in ("dense_ms", "sparse_ms"):
            record[column] = float(record[column])
    return records
