"""Experiment loggers (trainer.loggers): TensorBoard and MLflow, a side channel beside the run folder's own files.

metrics.jsonl and result.json stay the record that `meprop table` reads. A logger gets the same records as they
are written (Run.consider: one evaluation, Run.write: the result), and the resolved config as hyper-parameters
when it opens. Both write offline, into the run folder by default:

    tensorboard/      TensorBoard event files (torch.utils.tensorboard): `tensorboard --logdir RUN_OR_SWEEP`
    mlflow.db         MLflow's sqlite tracking store (trainer.mlflow_uri picks another); mlflow_run.json: its run id

Names: a record's numbers under '/'-joined keys (dev/accuracy, train_loss, timing/forward_s, diagnostics/0/...),
the result's under result/ (result/test/accuracy, result/best_epoch), each at the run's update number (step).

A resumed run (trainer.resume) continues in the same event folder and the same MLflow run, and logs no step twice.
metrics.jsonl is cut back to the checkpoint's step; TensorBoard mirrors that with purge_step (readers drop what
the stopped session logged from that step on, and the records from there are logged again from metrics.jsonl).
MLflow cannot delete a value: it keeps the steps it holds and takes only later ones, so a step logged after the
checkpoint and before a kill keeps the first session's timings (its scores are the same: the resume is exact).
A logger opened for a run that logged nothing to it (added on resume) gets the whole run from metrics.jsonl.

A logger that fails while the run trains (a full disk, a locked database) is one warning line, kept in
result.json's warnings, and is off for the rest of the run: training goes on, since metrics.jsonl and result.json
hold everything it would have logged. One that cannot open stops the run at start with one sentence.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meprop_cli import results
from meprop_cli.errors import ConfigError, UserError

log = logging.getLogger("meprop")

INSTALL = "install the extra: pip install -e '.[loggers]' in a source checkout, pip install 'meprop-cli[loggers]' otherwise"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"  # the default store, inside the run folder
MLFLOW_RUN_FILE = "mlflow_run.json"  # {"tracking_uri": null (the run folder's store) or the URI, "run_id": ...}
MLFLOW_ARTIFACTS = "mlflow-artifacts"  # the default store's artifact root (nothing is logged there today)
NOT_SCALARS = ("step", results.PRUNE_CHECKS)  # the x axis; a list of events, whose effect hidden_sizes shows
RESULT_FIELDS = ("best_epoch", "best_step", "epochs_run", "dev", "test", "params", "timing")


def scalars(value: Any, name: str = "") -> dict[str, float]:
    """The numbers in a record as {name: value}: mappings and lists open into '/'-joined names ("dev/accuracy",
    "diagnostics/0/dead_fraction"), booleans count 1 or 0; nulls and text are left out (metrics.jsonl writes a
    NaN as null, so a logger leaves it out too)."""
    if isinstance(value, dict):
        items: Iterable = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    elif isinstance(value, (int, float)) and math.isfinite(value):
        return {name: float(value)}
    else:
        return {}
    found: dict[str, float] = {}
    for key, item in items:
        found.update(scalars(item, f"{name}/{key}" if name else str(key)))
    return found


def evaluation_scalars(record: dict[str, Any]) -> dict[str, float]:
    """What a logger gets of one metrics.jsonl record."""
    return scalars({key: value for key, value in record.items() if key not in NOT_SCALARS})


def result_scalars(record: dict[str, Any]) -> dict[str, float]:
    """What a logger gets of result.json: best epoch, dev and test, counts and timings."""
    return scalars({key: record.get(key) for key in RESULT_FIELDS}, "result")


def param_text(value: Any) -> str:
    """A config value as MLflow's string parameter, in YAML's spelling (true, null, [500, 500])."""
    return value if isinstance(value, str) else json.dumps(value)


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:///PATH store (sqlite:////abs/path or sqlite:///relative/path)."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def store_lock(database: Path | None) -> Iterator[None]:
    """One process at a time opening a shared sqlite store: jobs of a parallel sweep opening a new one at once
    would each create its tables, and all but one fail ("table ... already exists")."""
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def describe(error: Exception) -> str:
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__


@dataclass
class Start:
    """What a logger is told when the run opens it."""

    run_dir: Path
    task: str
    method: str
    hparams: dict[str, Any]  # the resolved config, flat: {"optim.lr": 0.001, "task.hidden": [500, 500], ...}
    config_text: str  # config.yaml
    metrics: tuple[str, ...]  # the task's score names (dev and test)
    resume_step: int | None  # the update last.pt was saved after, for a resumed run; None for a new one


class Logger:
    """One side channel. A subclass opens (setting what it holds already), logs a dict of scalars at a step, marks
    the result and closes; the skip rule that keeps a resumed run from logging a step twice is here."""

    name = ""
    where = ""  # its folder or store, for messages
    through = -1  # the last step whose evaluation it holds
    result_through = -1  # the last step it holds a result at

    def open(self, start: Start) -> None:
        raise NotImplementedError

    def log(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def mark_result(self, record: dict[str, Any]) -> None:
        """Beside the result's numbers: its status and error, where the logger has a place for them."""

    def close(self, record: dict[str, Any] | None) -> None:
        raise NotImplementedError

    def evaluation(self, record: dict[str, Any]) -> None:
        if record["step"] > self.through:
            self.log(evaluation_scalars(record), record["step"])
            self.through = record["step"]

    def result(self, record: dict[str, Any], step: int) -> None:
        if step > self.result_through:
            self.log(result_scalars(record), step)
            self.result_through = step
        self.mark_result(record)


class TensorBoardLogger(Logger):
    """Event files in <run>/tensorboard, through torch.utils.tensorboard.SummaryWriter."""

    name = "tensorboard"

    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(f"trainer.loggers=[tensorboard] needs the tensorboard package: {INSTALL}") from None
        self.writer_class = SummaryWriter
        self.folder = run_dir / TENSORBOARD_DIR
        self.where = str(self.folder)
        self.writer = None

    def open(self, start: Start) -> None:
        from torch.utils.tensorboard.summary import hparams

        continued = start.resume_step is not None and any(self.folder.glob("events.out.tfevents.*"))
        # readers drop what earlier event files hold from purge_step on: on resume, the steps metrics.jsonl was cut
        # back from (the record at the checkpoint's own step is logged again from it); a leftover of a run that
        # died before its first record is dropped whole
        purge = start.resume_step if continued else (0 if any(self.folder.glob("events.*")) else None)
        self.writer = self.writer_class(str(self.folder), purge_step=purge)
        if continued:
            self.through = self.result_through = start.resume_step - 1
            return
        shown = {key: value if isinstance(value, (int, float, str)) else json.dumps(value)
                 for key, value in start.hparams.items() if value is not None}
        targets = {f"result/{split}/{metric}": 0.0 for split in ("dev", "test") for metric in start.metrics}
        for summary in hparams(shown, targets):  # the HParams tab: this run's settings beside its result
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "    " + start.config_text.rstrip().replace("\n", "\n    "))  # a code block
        self.writer.flush()

    def log(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()  # evaluations are rare: a kill keeps every one logged

    def close(self, record: dict[str, Any] | None) -> None:
        if self.writer is not None:
            self.writer.close()


class MlflowLogger(Logger):
    """An MLflow run in a local store: the sqlite file <run>/mlflow.db unless trainer.mlflow_uri names another.
    (MLflow 3's file store ./mlruns refuses to open unless MLFLOW_ALLOW_FILE_STORE=true: it is in maintenance.)"""

    name = "mlflow"

    def __init__(self, run_dir: Path, uri: str | None) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # offline: MLflow 3 would send usage data
        self.in_run_dir = uri is None
        self.uri = f"sqlite:///{(run_dir / MLFLOW_DB).resolve()}" if uri is None else uri
        self.run_dir, self.where, self.run_id = run_dir, self.uri, None
        try:
            from mlflow.tracking import MlflowClient
            if self.uri.startswith("sqlite:"):
                import alembic  # noqa: F401  (MLflow's sqlite store needs both, and mlflow-skinny leaves them out)
                import sqlalchemy  # noqa: F401
        except ImportError:
            raise ConfigError(f"trainer.loggers=[mlflow] needs the mlflow-skinny, SQLAlchemy and alembic packages "
                              f"(for its sqlite store): {INSTALL}") from None
        for name in ("mlflow", "alembic"):  # their INFO lines on creating the store's tables are noise in a run's log
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client_class = MlflowClient

    def open(self, start: Start) -> None:
        # the run folder's own store needs no lock: the run holds its folder (train.run_lock)
        with store_lock(None if self.in_run_dir else sqlite_file(self.uri)):
            self.open_run(start)

    def open_run(self, start: Start) -> None:
        from mlflow.entities import Param

        self.client = self.client_class(tracking_uri=self.uri)
        params = {key: param_text(value) for key, value in start.hparams.items()}
        self.run_id = self.logged_run() if start.resume_step is not None else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            self.through, self.result_through = self.last_step("epoch"), self.last_step("result/epochs_run")
            logged = self.client.get_run(self.run_id).data.params  # MLflow refuses to change a logged parameter
            params = {key: value for key, value in params.items() if key not in logged}
        else:
            run = self.client.create_run(self.experiment_id(start.task), run_name=f"{start.method}/{start.run_dir.name}",
                                         tags={"meprop.run_dir": str(start.run_dir.resolve()),
                                               "meprop.task": start.task, "meprop.method": start.method})
            self.run_id = run.info.run_id
            results.write_json_atomic(self.run_dir / MLFLOW_RUN_FILE,
                                      {"tracking_uri": None if self.in_run_dir else self.uri, "run_id": self.run_id})
        self.client.log_batch(self.run_id, params=[Param(key, value) for key, value in params.items()])

    def logged_run(self) -> str | None:
        """The run id this folder's earlier sessions logged to, if it is in this store."""
        from mlflow.exceptions import MlflowException

        try:
            saved = json.loads((self.run_dir / MLFLOW_RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if saved.get("tracking_uri") != (None if self.in_run_dir else self.uri):
            return None  # another store now: a new run there, which gets the whole run from metrics.jsonl
        try:
            run = self.client.get_run(saved["run_id"])
        except (MlflowException, KeyError, TypeError):
            return None
        return run.info.run_id if run.info.lifecycle_stage == "active" else None

    def last_step(self, key: str) -> int:
        return max((metric.step for metric in self.client.get_metric_history(self.run_id, key)), default=-1)

    def experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = (self.run_dir / MLFLOW_ARTIFACTS).resolve().as_uri() if self.in_run_dir else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another job of a sweep into the same store created it just now
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step) for key, value in values.items()])

    def mark_result(self, record: dict[str, Any]) -> None:
        self.client.set_tag(self.run_id, "meprop.status", record["status"])
        if record.get("error"):
            self.client.set_tag(self.run_id, "meprop.error", record["error"][:5000])

    def close(self, record: dict[str, Any] | None) -> None:
        if self.run_id is None or record is None:
            return
        status = ("FINISHED" if record["status"] == "completed"
                  else "KILLED" if record.get(results.INTERRUPTED_BY) else "FAILED")
        self.client.set_terminated(self.run_id, status)


class Loggers:
    """The loggers trainer.loggers asks for. The trainer calls evaluation() where it appends to metrics.jsonl,
    result() where it writes result.json, and close() once as the run ends."""

    def __init__(self, chosen: Iterable[Logger] = (), warn: Callable[[str], None] = log.warning) -> None:
        self.waiting = list(chosen)  # built (their packages are there), not opened yet
        self.active: list[Logger] = []
        self.warn = warn

    @classmethod
    def build(cls, trainer_cfg: Any, run_dir: Path, warn: Callable[[str], None]) -> Loggers:
        """At start: a package missing is one sentence (ConfigError) naming the extra to install."""
        names = dict.fromkeys(str(name) for name in trainer_cfg.get("loggers") or ())
        return cls([TensorBoardLogger(run_dir) if name == "tensorboard" else
                    MlflowLogger(run_dir, trainer_cfg.get("mlflow_uri")) for name in names], warn)

    def open(self, start: Start, records: list[dict[str, Any]]) -> None:
        """records: metrics.jsonl as the run continues from it; each logger takes those it does not hold."""
        for logger in self.waiting:
            try:
                logger.open(start)
                self.active.append(logger)
                for record in records:
                    logger.evaluation(record)
            except Exception as e:  # noqa: BLE001  (any failure: nothing is trained yet, so stop, saying what to change)
                raise UserError(f"trainer.loggers: {logger.name} could not open {logger.where} ({describe(e)}); "
                                f"fix that, or leave {logger.name} out of trainer.loggers") from None
        self.waiting = []

    def evaluation(self, record: dict[str, Any]) -> None:
        for logger in list(self.active):
            self.guard(logger, f"at step {record['step']}", logger.evaluation, record)

    def result(self, record: dict[str, Any], step: int) -> None:
        for logger in list(self.active):
            self.guard(logger, "logging the result", logger.result, record, step)

    def close(self, record: dict[str, Any]) -> None:
        for logger in list(self.active):
            self.guard(logger, "closing", logger.close, record)
        self.active = []

    def guard(self, logger: Logger, doing: str, call: Callable[..., None], *args: Any) -> None:
        try:
            call(*args)
        except Exception as e:  # noqa: BLE001  (a side channel: no failure of it may cost the run)
            self.active.remove(logger)
            with contextlib.suppress(Exception):  # it has failed already: the warning below says so
                logger.close(None)
            self.warn(f"trainer.loggers: {logger.name} failed {doing} ({describe(e)}) and is off for the rest of the "
                      f"run; metrics.jsonl and result.json hold everything")
