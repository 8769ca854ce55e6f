"""The run-folder contract: what a run writes and what `meprop table` / `meprop plot` read.

    config.yaml     the resolved configuration
    metrics.jsonl   one JSON object per evaluation (epoch ends, and every N steps if asked)
    result.json     the final record (RESULT_KEYS at least), written atomically
    best.pt         the best-dev checkpoint (weights, config, task state); last.pt for resume
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"

STATUSES = ("completed", "failed")
RESULT_KEYS = ("task", "method", "seed", "status", "error", "best_epoch", "dev", "test", "hidden", "k",
               "k_output", "params", "timing")
TIMING_KEYS = ("forward_s", "backward_s", "linear_backward_s", "update_s", "total_s")


def _clean(value: Any) -> Any:
    """JSON cannot hold NaN or infinity: write null instead of an unreadable file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_clean(record), f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
