"""The run-folder contract: what a run writes and what `meprop table` / `meprop plot` read.

    config.yaml     the resolved configuration
    metrics.jsonl   one JSON object per evaluation (epoch ends, and every N steps if asked)
    result.json     the final record (RESULT_KEYS at least), written atomically
    best.pt         the best-dev checkpoint (weights, config, task state); last.pt for resume

load_runs() is how `meprop table` / `meprop plot` see run folders: every folder found, each with a
status (completed, failed, unfinished, unreadable) and, when it is not completed, the reason why. The
readers check the shape of what they read (RESULT_SHAPES, METRICS_SHAPES, CONFIG_SHAPES: the keys the
table and plot use), so a hand-edited or foreign file makes its run unreadable, not the command fail.
read_benchmark() reads the synthetic-speed benchmark's records (BENCH_COLUMNS), read_checkpoint() a best.pt
or last.pt (CHECKPOINT_KEYS).
"""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from meprop_cli.errors import DataError, OutputError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"
CHECKPOINT_KEYS = ("model", "config")  # what every checkpoint holds (train.Run.save_checkpoint), each a mapping

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
WARNINGS = "warnings"  # result.json: what the run was told but did not use (config.ignored_options), or what a
#                        sweep's launcher said of it (more threads than cores), one line each
INTERRUPTED_BY = "interrupted_by"  # result.json: "SIGINT" or "SIGTERM" when a signal ended the run, "SIGUSR2" when
#                                    a scheduler stopped it to requeue it (launch.py); else absent
THREADS = "threads"  # result.json: the torch threads the run trained with
STARTED_AT = "started_at"  # result.json: when the run began (its first session, if resumed), ISO 8601 with the offset
ENDED_AT = "ended_at"  # result.json: when result.json was written
ACTIVE_FRACTION = "active_fraction"  # metrics.jsonl (meAct): per hidden layer, active (example, neuron) pairs / all
MEACT_ACTING = "meact_acting"  # metrics.jsonl (meAct): whether the epoch skipped inactive neurons (else: warm-up)
UPDATE_SIZE = "mean_abs_update"  # metrics.jsonl (trainer.track_updates): mean |Δw| per parameter per update
UPDATE_SIZE_BY_PARAM = "mean_abs_update_by_param"  # metrics.jsonl: the same per parameter tensor, by name
MEACT_MEMORY = "meact_memory"  # result.json (meAct): {examples, neurons, dtype, bytes} of the per-example memory
DEVICE = "device"  # result.json: "cpu" or "cuda", where the run trained (trainer.device)
GPU = "gpu"  # result.json: the GPU's name on cuda, else null
KERNELS = "kernels"  # result.json: "c" (the compiled meProp kernels) or "torch" (their torch paths: any GPU run)
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
    a signal) the temp file is removed and `path` keeps what it held. An OSError becomes one sentence
    (OutputError).

    Missing parent folders are created. A symlink's target is replaced, not the link; a path that exists but is
    not a regular file (/dev/stdout, a pipe) is written directly: renaming over it would replace the device."""
    path = Path(path)
    encoding = {} if "b" in mode else {"encoding": "utf-8"}
    if path.exists() and not path.is_file() and not path.is_dir():
        try:
            with open(path, mode, **encoding) as f:
                yield f
        except OSError as e:
            raise output_error(path, e) from None
        return
    target = Path(os.path.realpath(path))
    tmp = target.with_name(target.name + ".tmp")
    try:
        if target.is_dir():  # before any work: a temp file could be written but never renamed over a folder
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode, **encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _fault_point(target)
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise output_error(path, e) from None
        raise


def output_error(path: Path, error: OSError) -> OutputError:
    """Why path could not be written, and what to do, in one sentence."""
    folder = next((p for p in path.absolute().parents if p.exists()), Path("/"))  # the nearest existing folder
    if error.errno == errno.EISDIR:
        return OutputError(f"could not write {path}: it is a folder; give the path of a file")
    if error.errno in (errno.ENOTDIR, errno.EEXIST) or not folder.is_dir():
        return OutputError(f"could not write {path}: {folder} is a file, not a folder; give a path in a folder")
    if error.errno in (errno.EACCES, errno.EPERM):
        return OutputError(f"could not write {path}: {error.strerror} in {folder}; give a path in a folder you can "
                           "write to")
    if error.errno == errno.EROFS:
        return OutputError(f"could not write {path}: {folder} is on a read-only file system; give a path on "
                           "another disk")
    if error.errno == errno.ENOENT:
        return OutputError(f"could not write {path}: its folder cannot be made in {folder} ({error.strerror}); give "
                           "a path in a folder you can write to")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"could not write {path}: {error.strerror} (the file keeps what it held); free some "
                           "space or write to another disk")
    return OutputError(f"could not write {path}: {error.strerror or error}; give a path in a folder you can write "
                       "to")


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one existing file (another spelling, a symlink, a hard link): an output that would
    overwrite an input."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (yet)
        return False


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
    """One line more; a line cut short by a full disk is dropped by the readers and cut off on resume."""
    path = Path(run_dir) / METRICS_FILE
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(record)) + "\n")
    except OSError as e:
        raise output_error(path, e) from None


# -- the shapes readers rely on ------------------------------------------------------------------
# The keys `meprop table` and `meprop plot` read, and the JSON type each must have where it is present (null
# always passes: a missing value shows '-'). A file of another shape (hand-edited, or another program's)
# makes its run unreadable, naming the first key that is wrong, instead of failing inside the table.

@dataclass(frozen=True)
class Shape:
    name: str  # as a message says it: "a list of integers"
    fits: Callable[[Any], bool]  # the value's own type
    items: Shape | None = None  # each entry of a list, or each value of a mapping
    fields: dict[str, Shape] | None = None  # the keys of a mapping that readers use (each may be absent)
    null_items: bool = True  # entries may be null (a NaN is written as null)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _list(value: Any) -> bool:
    return isinstance(value, list)


def _mapping(value: Any) -> bool:
    return isinstance(value, dict)


def mapping(fields: dict[str, Shape] | None = None) -> Shape:
    return Shape("a mapping", _mapping, fields=fields)


TEXT = Shape("a string", lambda v: isinstance(v, str))
INTEGER = Shape("an integer", _integer)
NUMBER = Shape("a number", _number)
FLAG = Shape("true or false", lambda v: isinstance(v, bool))
INTEGERS = Shape("a list of integers", _list, items=INTEGER, null_items=False)
NUMBERS = Shape("a list of numbers", _list, items=NUMBER)
NUMBERS_BY_NAME = Shape("a mapping of names to numbers", _mapping, items=NUMBER)

RESULT_SHAPES = {
    "task": TEXT, "method": TEXT, "optimizer": TEXT, "status": TEXT, "error": TEXT, HIDDEN_FROM: TEXT,
    DEVICE: TEXT, GPU: TEXT, KERNELS: TEXT,
    "seed": INTEGER, "best_epoch": INTEGER, "best_step": INTEGER, "epochs_run": INTEGER, "batch_size": INTEGER,
    "params": INTEGER, PARAMS_FINAL: INTEGER, PARAMS_TESTED: INTEGER,
    "k": NUMBER, "k_output": NUMBER, "decay": NUMBER, "topk_ratio": NUMBER, "batch_norm": FLAG,
    "dev": NUMBERS_BY_NAME, "test": NUMBERS_BY_NAME, "timing": NUMBERS_BY_NAME, DECODE: NUMBERS_BY_NAME,
    "hidden": INTEGERS, HIDDEN_INITIAL: INTEGERS, HIDDEN_FINAL: INTEGERS, HIDDEN_TESTED: INTEGERS,
}
METRICS_SHAPES = {
    "epoch": INTEGER, "step": INTEGER, "train_loss": NUMBER, "dev": NUMBERS_BY_NAME, "best": FLAG,
    "timing": NUMBERS_BY_NAME, SIZES: INTEGERS, ACTIVE_FRACTION: NUMBERS, MEACT_ACTING: FLAG, UPDATE_SIZE: NUMBER,
    UPDATE_SIZE_BY_PARAM: NUMBERS_BY_NAME,
    DIAGNOSTICS: Shape("a list of layers' statistics", _list, null_items=False, items=NUMBERS_BY_NAME),
    PRUNE_CHECKS: Shape("a list of prune checks", _list, null_items=False, items=mapping(
        {"epoch": INTEGER, "step": INTEGER, "pruned": FLAG, SIZES: INTEGERS})),
}
CONFIG_SHAPES = {
    "task": mapping({"name": TEXT, "hidden": INTEGERS, "dropout": NUMBER, "batch_size": INTEGER,
                     "batch_norm": FLAG}),
    "method": mapping({"name": TEXT, "prune_rate": NUMBER}), "optim": mapping({"name": TEXT}),
    "trainer": mapping(), "seed": INTEGER, "topk_ratio": NUMBER, "decay": NUMBER,
}


def json_type(value: Any) -> str:
    """The JSON name of a value's type, as a message says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    for types, name in ((int, "an integer"), (float, "a number"), (str, "a string"), ((list, tuple), "a list"),
                        (dict, "a mapping")):
        if isinstance(value, types):
            return name
    return type(value).__name__


def _problem(where: str, value: Any, shape: Shape) -> str | None:
    if not shape.fits(value):
        return f'"{where}" is {json_type(value)}, not {shape.name}'
    for key, field_shape in (shape.fields or {}).items():
        if value.get(key) is not None:
            problem = _problem(f"{where}.{key}" if where else key, value[key], field_shape)
            if problem:
                return problem
    if shape.items is not None:
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            if item is not None or not shape.null_items:
                problem = _problem(f"{where}.{key}" if isinstance(value, dict) else f"{where}[{key}]", item,
                                   shape.items)
                if problem:
                    return problem
    return None


def shape_problem(record: Any, shapes: dict[str, Shape]) -> str | None:
    """What in record does not have the shape readers expect, in words ('"dev.accuracy" is a string, not a
    number'), or None when it fits."""
    if not isinstance(record, dict):
        return f"it holds {json_type(record)}, not a mapping of keys to values"
    return _problem("", record, mapping(shapes))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluations of a run; raises ValueError for a line of the wrong shape (METRICS_SHAPES).

    A line that is not JSON is a line torn by a kill: it is skipped (a resumed run appends after it)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        problem = shape_problem(record, METRICS_SHAPES)
        if problem:
            raise ValueError(f"line {number}: {problem}")
        records.append(record)
    return records


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """A run's result.json, or None if the run has not finished writing it; raises ValueError (the message says
    what is wrong) for a file that is not JSON or not of the shape readers expect (RESULT_SHAPES)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    problem = shape_problem(record, RESULT_SHAPES)
    if problem:
        raise ValueError(problem)
    return record


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """A run's resolved config.yaml as plain dicts and lists, or None if absent; raises ValueError for a file
    of another shape (CONFIG_SHAPES), and what OmegaConf raises for one that is not YAML."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return None
    from omegaconf import OmegaConf  # only the readers need it

    config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    problem = shape_problem(config, CONFIG_SHAPES)
    if problem:
        raise ValueError(problem)
    return config


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint (best.pt, last.pt) as the dict the trainer saved; DataError, in one sentence, for a file that
    is not one (another kind of file, empty, truncated) or lacks CHECKPOINT_KEYS."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a checkpoint; give the {BEST_CHECKPOINT} file of a run")
    if not path.exists():
        raise DataError(f"checkpoint {path} not found; give the {BEST_CHECKPOINT} file of a run")
    import torch  # only the commands that load a model need it

    hint = f"give the {BEST_CHECKPOINT} or {LAST_CHECKPOINT} a meprop run wrote"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except PermissionError as e:
        raise DataError(f"{path} cannot be read ({e.strerror}); check its permissions") from None
    except Exception as e:  # unpickling a damaged or foreign file can raise almost any exception type
        why = "the file is empty" if path.stat().st_size == 0 else one_line(f"{type(e).__name__}: {e}", 120)
        raise DataError(f"{path} is not a meprop checkpoint (torch cannot load it: {why}); it may be truncated or "
                        f"another kind of file: {hint}") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path} is not a meprop checkpoint (it holds a {type(payload).__name__}, not a mapping); {hint}")
    wrong = [key for key in CHECKPOINT_KEYS if not isinstance(payload.get(key), dict)]
    if wrong:
        raise DataError(f"{path} is not a meprop checkpoint (its {' and '.join(wrong)} "
                        f"{'is' if len(wrong) == 1 else 'are'} missing or not a mapping); {hint}")
    return payload


def scores_text(scores: dict[str, float]) -> str:
    """Scores as the tables print them, in % with two decimals: {"uas": 0.8512, "las": 0.82} -> "uas 85.12 las 82.00"."""
    return " ".join(f"{metric} {100 * value:.2f}" for metric, value in scores.items()) or "not scored"


def best_epoch_text(record: dict[str, Any]) -> str:
    """A result's scores in one phrase: "best epoch 1: dev accuracy 93.34, test accuracy 92.85"."""
    if record.get("best_epoch") is None:
        return "no epoch scored"
    return f"best epoch {record['best_epoch']}: dev {scores_text(record['dev'])}, test {scores_text(record['test'])}"


def one_line(text: str, limit: int = 300) -> str:
    """text on one line (YAML and torch errors span several), cut at limit characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class RunFolder:
    """One run folder as the table and plot commands see it."""

    path: Path
    status: str  # completed | failed | unfinished (no result.json yet) | unreadable
    reason: str | None  # why a run is not completed, in one sentence; None when completed
    result: dict[str, Any] = field(default_factory=dict)  # result.json ({} if absent)
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml ({} if absent)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl


def unreadable(name: str, error: Exception) -> str:
    """The reason of an unreadable run: which of its files, and why."""
    if isinstance(error, OSError) and error.strerror:
        return f"{name} cannot be read ({error.strerror})"
    if isinstance(error, UnicodeDecodeError):
        return f"{name} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})"
    if isinstance(error, json.JSONDecodeError):
        return f"{name} is not JSON ({error.msg}, line {error.lineno} column {error.colno})"
    return f"{name} is unreadable ({one_line(error)})"


def load_run(run_dir: Path) -> RunFolder:
    """Read one run folder, never raising for a broken run: the status and reason say what is wrong."""
    run_dir = Path(run_dir)
    try:
        config = read_config(run_dir) or {}
    except Exception as e:  # YAML parsers raise many types; a torn or hand-edited config must not hide the others
        return RunFolder(run_dir, "unreadable", unreadable(CONFIG_FILE, e))
    try:
        metrics = read_metrics(run_dir)
    except (OSError, ValueError) as e:
        return RunFolder(run_dir, "unreadable", unreadable(METRICS_FILE, e), config=config)
    try:
        result = read_result(run_dir)
    except (OSError, ValueError) as e:
        return RunFolder(run_dir, "unreadable", unreadable(RESULT_FILE, e), config=config, metrics=metrics)
    if result is None:
        epochs = sum(1 for line in metrics if "train_loss" in line)
        return RunFolder(run_dir, "unfinished", f"no result.json (still running, or killed): {epochs} epoch(s) "
                         f"in {METRICS_FILE}", config=config, metrics=metrics)
    status = result.get("status")
    if status == "completed":
        return RunFolder(run_dir, "completed", None, result, config, metrics)
    reason = result.get("error") or f"status {status!r} without an error message"
    return RunFolder(run_dir, "failed", f"{one_line(reason)} (after {result.get('epochs_run', '?')} epoch(s))",
                     result, config, metrics)


def walk_runs(*paths: Path) -> tuple[list[Path], list[Path], dict[Path, str]]:
    """Under the given paths: the run folders (with config.yaml or result.json), the folders of Hydra jobs
    (with .hydra/), and the folders that could not be listed, with why. Symlinked folders are not followed
    (as rglob), except a given path."""
    runs: set[Path] = set()
    jobs: set[Path] = set()
    closed: dict[Path, str] = {}

    def note(error: OSError) -> None:
        if not isinstance(error, (NotADirectoryError, FileNotFoundError)):  # a given file; a folder removed meanwhile
            closed[Path(error.filename)] = error.strerror or str(error)

    for root in map(Path, paths):
        for folder, dirs, files in os.walk(root, onerror=note):
            names = set(dirs) | set(files)
            if Path(folder).name != ".hydra" and names & {CONFIG_FILE, RESULT_FILE}:
                runs.add(Path(folder))
            if ".hydra" in dirs:
                jobs.add(Path(folder))
    return sorted(runs), sorted(jobs - runs), closed


def find_run_dirs(*paths: Path) -> Iterator[Path]:
    """Every run folder under the given paths (a folder with config.yaml or result.json), sorted."""
    yield from walk_runs(*paths)[0]


def load_runs(*paths: Path) -> list[RunFolder]:
    """Every run folder under the given paths (single runs and sweeps, nested), sorted by path.

    Nothing is skipped silently: a job folder that Hydra created (.hydra/) but that holds neither config.yaml nor
    result.json is a job that died before training started, and a folder that cannot be listed (permissions)
    may hold runs: both are listed too."""
    found, jobs, closed = walk_runs(*paths)
    runs = [load_run(run_dir) for run_dir in found]
    runs += [RunFolder(job, "failed", f"the job started but wrote neither {CONFIG_FILE} nor {RESULT_FILE} (see its "
                       "log)") for job in jobs]
    runs += [RunFolder(folder, "unreadable", f"the folder cannot be listed ({why}), so its runs cannot be read")
             for folder, why in closed.items()]
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
    """The benchmark records of a .jsonl or .csv file; raises ValueError naming what is wrong (and OSError)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        records: list[Any] = list(csv.DictReader(text.splitlines()))
    else:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {number} is not JSON ({e.msg})") from None
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise ValueError(f"{path} record {number} is {json_type(record)}, not a mapping of columns to values")
        missing = [c for c in BENCH_COLUMNS if record.get(c) in (None, "")]
        if missing:
            raise ValueError(f"{path} record {number} lacks {', '.join(missing)}")
        for column in ("batch", "in", "out", "k", "dense_ms", "sparse_ms"):
            whole = not column.endswith("_ms")
            try:  # a CSV holds text: "20" and "20.0" are a count, "20.5", "x", "nan" or true are not
                value = math.nan if isinstance(record[column], bool) else float(record[column])
            except (TypeError, ValueError):
                value = math.nan
            if not (math.isfinite(value) and value > 0) or whole and value != int(value):
                kind = "a positive whole number" if whole else "a positive number of milliseconds"
                raise ValueError(f"{path} record {number}: {column} is {record[column]!r}, not {kind}")
            record[column] = int(value) if whole else value
    return records
