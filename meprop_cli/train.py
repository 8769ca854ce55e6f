"""The one trainer: epochs of mini-batches, dev after every epoch, test at the best dev epoch.

It times, per epoch and in total, the forward pass (loss included), the whole backward pass, the
backward of the linear transformations alone (the papers' "backprop time", measured inside the meProp
autograd functions) and the update (zero_grad + optimizer step). On a GPU (trainer.device) every clock
read waits for the GPU's queued work first (ops.timing.synchronize), so the times are the work's.
"""
from __future__ import annotations

import contextlib
import copy
import datetime
import enum
import fcntl
import itertools
import logging
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from meprop_cli import launch, results
from meprop_cli.averaging import WeightAverage
from meprop_cli.config import TrainerConfig, ignored_options, validate
from meprop_cli.diagnostics import Diagnostics
from meprop_cli.errors import ConfigError, UserError
from meprop_cli.loggers import Loggers, Start
from meprop_cli.methods import Change, Method, Step, build_method
from meprop_cli.nn.linear import use_init
from meprop_cli.nn.shrink import (ShrinkRecord, apply_slices, fit_to_sizes, load_selection_state_dict,
                                  selection_state_dict, sizes_of)
from meprop_cli.optim import build_optimizer, clip_elements
from meprop_cli.ops import linear_backward_timer, native
from meprop_cli.ops.timing import synchronize
from meprop_cli.tasks import Task, build_task
from meprop_cli.updates import UpdateMeter

log = logging.getLogger("meprop")

PHASES = ("forward_s", "backward_s", "linear_backward_s", "update_s")


@dataclass
class EpochProgress:
    """How far the running epoch is: what a checkpoint inside an epoch keeps, so that the epoch continues exactly.

    The batches already trained are not stored: a resumed epoch draws its order again from the generator as the
    epoch began and skips them (the tasks draw every random choice of a batch from that generator)."""

    epoch: int
    generator_state: torch.Tensor  # the data order's generator when the epoch began
    steps: int = 0
    examples: int = 0
    loss_sum: float = 0.0
    times: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    linear_backward_s: float = 0.0  # the linear backward seconds so far (kept by the ops' timer while it runs)
    updates: dict[str, Any] | None = None  # the update meter's sums so far (trainer.track_updates)
    diagnostics: list[dict[str, Any]] | None = None  # the diagnostics' sums so far (trainer.diagnostics)


def resolve_device(setting: str) -> torch.device:
    """trainer.device: auto is cuda when torch sees a GPU, else cpu; cuda without one is a ConfigError."""
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ConfigError(f"trainer.device=cuda needs a CUDA GPU, and torch {torch.__version__} ({build}) sees "
                          "none; use trainer.device=cpu (or auto), or install torch with CUDA on a machine with a GPU")
    return torch.device("cuda", torch.cuda.current_device())


def device_fields(device: torch.device) -> dict[str, Any]:
    """What result.json says of where the run trained: the device, the GPU's name, and which meProp backward
    ran (the compiled kernels are CPU-only; on a GPU meProp runs torch's paths)."""
    return {results.DEVICE: device.type,
            results.GPU: torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            results.KERNELS: native.backend() if device.type == "cpu" else "torch"}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(task: Task, model: torch.nn.Module, split: str) -> dict[str, float]:
    model.eval()
    scores = task.evaluate(model, split)
    model.train()
    return scores


def timed_step(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Any,
               times: dict[str, float], sum_loss: bool = False, clip: float | None = None) -> tuple[torch.Tensor, int]:
    """One update; adds its forward, backward and update seconds to times. Returns (mean loss, examples).

    sum_loss: back-propagate the batch's summed loss, n times the mean (trainer.loss_reduction=sum);
    clip: clamp every gradient element to ±clip before the step (optim.clip)."""
    t0 = time.perf_counter()
    loss, n = task.loss(model, batch)
    synchronize(loss.device)  # (a GPU's work is queued: wait for it before each clock read)
    t1 = time.perf_counter()
    (loss * n if sum_loss else loss).backward()
    synchronize(loss.device)
    t2 = time.perf_counter()
    if clip is not None:
        clip_elements(model.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    synchronize(loss.device)
    t3 = time.perf_counter()
    times["forward_s"] += t1 - t0
    times["backward_s"] += t2 - t1
    times["update_s"] += t3 - t2
    return loss, n


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def read_hidden_from(run_dir: str) -> list[int]:
    """The hidden sizes of the model a finished run scored test with (hidden_from=RUN_DIR)."""
    folder = Path(run_dir).expanduser()
    try:
        record = results.read_result(folder)
    except (OSError, ValueError) as e:
        raise UserError(f"hidden_from={run_dir}: its {results.RESULT_FILE} is unreadable ({e})")
    sizes = (record or {}).get(results.HIDDEN_TESTED)
    if not isinstance(sizes, list) or not sizes or not all(isinstance(n, int) and n > 0 for n in sizes):
        raise UserError(f"hidden_from={run_dir} must be the folder of a finished run that records "
                        f"{results.HIDDEN_TESTED} in its {results.RESULT_FILE} (a meSimp run, for example)")
    return sizes


# What a resumed run may set differently from the run it continues: how long, how fast, how it reports,
# and where the data is. Anything else would mix two settings in one result.
RESUME_MAY_CHANGE = ("trainer.max_epochs", "trainer.threads", "trainer.progress", "trainer.log_every_steps",
                     "trainer.checkpoint_every_steps", "trainer.checkpoint_every_minutes", "data_root", "trainer.device",
                     "trainer.loggers", "trainer.mlflow_uri", "trainer.resume")


def flat_config(node: Any, prefix: str = "") -> dict[str, Any]:
    """A resolved config as {"dotted.key": value} (lists are values)."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flat_config(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def config_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The settings of `now` that differ from `saved` (both resolved containers) and may not change on resume.
    Keys only one side has (an option added or removed since the run was saved) are not compared."""
    before, after = flat_config(saved), flat_config(now)
    return [f"{key}={after[key]} (the run: {before[key]})" for key in sorted(set(before) & set(after))
            if before[key] != after[key] and not key.startswith(RESUME_MAY_CHANGE)]


def plain(value: Any) -> Any:
    """The value with every config enum as its string: a checkpoint then loads without this version's classes."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


class Diverged(Exception):
    """A training batch's loss was not finite, or above trainer.max_loss."""


def use_progress_bar(setting: str) -> bool:
    return setting == "bar" or (setting == "auto" and sys.stderr.isatty())


def now() -> str:
    """The wall-clock time, as result.json keeps it: ISO 8601 to the millisecond, with the UTC offset."""
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


class Run:
    """One training run writing into run_dir; fit() returns the result record.

    warnings: what the caller (a sweep's launcher) has to say about the run, kept in result.json with its own."""

    def __init__(self, cfg: DictConfig, run_dir: Path, warnings: Sequence[str] = ()) -> None:
        self.cfg, self.run_dir, self.given_warnings = cfg, Path(run_dir), list(warnings)
        self.record: dict[str, Any] = {
            "task": cfg.task.name, "method": cfg.method.name, "seed": cfg.seed, "status": "failed",
            "error": None, "best_epoch": None, "best_step": None, "epochs_run": 0, "dev": {}, "test": {},
            "hidden": None, "k": None, "k_output": None, "decay": cfg.decay, "optimizer": cfg.optim.name,
            "batch_size": cfg.task.batch_size, "params": None, "timing": {}, results.STARTED_AT: now(),
        }
        self.epoch = 0  # last finished epoch
        self.step = 0  # updates so far
        self.examples = 0
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.best_dev: dict[str, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_sizes: list[int] | None = None  # hidden sizes of best_state
        self.started = time.perf_counter()
        self.elapsed_before = 0.0  # wall time of earlier sessions of a resumed run
        self.resumed_epoch: EpochProgress | None = None  # an epoch last.pt was saved inside of, to continue
        self.last_saved = time.monotonic()  # when last.pt was last written (trainer.checkpoint_every_minutes)
        self.loggers = Loggers()  # trainer.loggers, once setup has opened them

    # -- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        validate(cfg)
        self.device = resolve_device(cfg.trainer.get("device", "auto"))  # before any data is read
        self.record.update(device_fields(self.device))
        self.record[results.WARNINGS] = [*self.given_warnings, *ignored_options(cfg)]
        for warning in self.record[results.WARNINGS]:
            log.warning(warning)
        self.loggers = Loggers.build(cfg.trainer, self.run_dir, self.logger_failed)  # a missing package: one sentence
        seed_everything(cfg.seed)
        # the CLI has chosen for trainer.threads=0 (launch.job_threads); a caller of train() may leave it to the rule
        torch.set_num_threads(cfg.trainer.threads or launch.job_threads(0, {}, launch.cores(), cfg.task.auto_threads)[0])
        self.record[results.THREADS] = torch.get_num_threads()
        self.task: Task = build_task(cfg.task, Path(cfg.data_root).expanduser().resolve())
        self.task.device = self.device
        self.method: Method = build_method(cfg)
        self.record.update(hidden=self.method.hidden, k=self.method.k, k_output=self.method.k_output)
        sizes_wanted = read_hidden_from(cfg.hidden_from) if cfg.hidden_from else None
        last = self.read_last() if cfg.trainer.resume else None
        if last is not None:
            changed = config_changes(last["config"], OmegaConf.to_container(cfg, resolve=True))
            if changed:
                raise UserError(f"trainer.resume=true continues {self.run_dir} with its own settings, and this "
                                f"command changes {', '.join(changed)}; drop those overrides (only "
                                f"{', '.join(RESUME_MAY_CHANGE[:-1])} may change) or train into a new folder")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with results.atomic_file(self.run_dir / results.CONFIG_FILE) as f:
            f.write(OmegaConf.to_yaml(cfg, resolve=True))
        self.task.load()
        self.model = self.task.build_model(self.method)
        if cfg.task.get("init", "torch") != "torch":  # torch's is how the layers start: no second draw for it
            use_init(self.model, cfg.task.init)
        self.initial_sizes = sizes_of(self.model)
        if sizes_wanted is not None:
            self.start_at_sizes(sizes_wanted)
        self.record["params"] = count_parameters(self.model)
        self.record[results.HIDDEN_FROM] = cfg.hidden_from
        if self.initial_sizes is not None:
            self.record[results.HIDDEN_INITIAL] = sizes_of(self.model)
        if last is not None:
            fit_to_sizes(self.model, last.get("sizes"))
        self.model.to(self.device)  # before anything holds its parameters: optimizer, average, method, diagnostics
        self.optimizer = build_optimizer(cfg.optim, self.model)
        decay = cfg.trainer.average_decay
        self.average = WeightAverage(self.model, decay) if decay > 0 else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.updates = UpdateMeter() if cfg.trainer.track_updates else None
        self.record.update(self.task.describe())
        if last is not None:
            self.load_last(last)
        self.method.bind(self.model, self.task)
        self.diagnostics = Diagnostics(self.model, cfg.task.name) if cfg.trainer.get("diagnostics") else None
        if self.diagnostics is not None and self.resumed_epoch is not None and self.resumed_epoch.diagnostics:
            self.diagnostics.load_state_dict(self.resumed_epoch.diagnostics)
        self.loggers.open(Start(self.run_dir, cfg.task.name, cfg.method.name,
                                flat_config(plain(OmegaConf.to_container(cfg, resolve=True))),
                                (self.run_dir / results.CONFIG_FILE).read_text(encoding="utf-8"), self.task.metrics,
                                self.step if last is not None else None),
                          results.read_metrics(self.run_dir) if last is not None else [])

    def logger_failed(self, message: str) -> None:
        """A logger stopped mid-run (loggers.py): say so in the log and in result.json, and train on."""
        log.warning(message)
        self.record[results.WARNINGS].append(message)

    def start_at_sizes(self, sizes: list[int]) -> None:
        """hidden_from: the model at another run's sizes, its layers initialised afresh for those sizes."""
        if self.initial_sizes is None:
            raise UserError(f"hidden_from={self.cfg.hidden_from}: the {type(self.model).__name__} model of "
                            f"task={self.cfg.task.name} has no hidden sizes to set")
        try:
            fit_to_sizes(self.model, sizes)
        except ValueError:
            raise UserError(f"hidden_from={self.cfg.hidden_from} has hidden sizes {sizes}, which do not fit this "
                            f"model ({self.initial_sizes}): give task.hidden at least as large, as many layers")
        for module in self.model.modules():  # a fresh start: each layer's init for its new fan-in
            if module is not self.model and hasattr(module, "reset_parameters") and hasattr(module, "keep_inputs"):
                module.reset_parameters()

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        trained = False  # set up, and training has begun: there is a model to score
        try:
            self.setup()
            trained = True
            log.info("%s / %s: hidden %s, k %s, k_output %s, %d parameters", self.record["task"],
                     self.record["method"], self.method.hidden, self.method.k, self.method.k_output,
                     self.record["params"])
            for epoch in range(self.epoch + 1, self.cfg.trainer.max_epochs + 1):
                self.train_epoch(epoch)
            self.finish(error=None)
        except Preempted as e:
            PendingSignal.clear()
            self.record[results.INTERRUPTED_BY] = e.signal_name
            stopped = f"stopped by {e.signal_name} (a time limit or preemption) at {e.where}"
            if self.cfg.trainer.checkpoint:  # a requeued job continues from last.pt: test is scored at its end
                self.record.update(status="failed", error=f"{stopped}; last.pt holds the run: a requeued job "
                                   "continues from there")
                self.write()
            else:
                self.finish(error=f"{stopped}; dev and test are those of the best epoch so far; with "
                            "trainer.checkpoint=false there is no last.pt to continue from")
        except KeyboardInterrupt as e:
            PendingSignal.clear()  # handled here: the checks in finish's evaluation must not raise it again
            self.record[results.INTERRUPTED_BY] = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
            if not trained:
                self.record["error"] = "interrupted while setting up, before training began; nothing was trained"
                self.write()
                return self.record
            error = (f"interrupted during epoch {self.epoch + 1}; dev and test are those of the best epoch so far; "
                     f"resume with trainer.resume=true hydra.run.dir={self.run_dir}")
            try:
                self.finish(error=error)
            except KeyboardInterrupt:  # a second Ctrl-C while test is scored: stop scoring, still keep the record
                PendingSignal.clear()
                self.record.update(status="failed", error=f"{error}; a second interrupt stopped the scoring of test")
                self.write()
        except Diverged as e:  # scored like an interruption (the best epoch so far), then reported as bad input
            self.finish(error=str(e))
            raise UserError(str(e)) from None
        except UserError as e:
            self.record["error"] = str(e)
            self.write()
            raise
        except Exception as e:
            self.record["error"] = f"{type(e).__name__}: {e}"
            self.record["traceback"] = traceback.format_exc()
            self.write()
            raise
        finally:
            self.loggers.close(self.record)
        return self.record

    def train_epoch(self, epoch: int) -> None:
        cfg = self.cfg.trainer
        progress, self.resumed_epoch = self.resumed_epoch, None
        if progress is None:
            self.apply(self.method.on_epoch_start(epoch))
            progress = EpochProgress(epoch, self.generator.get_state())
        else:  # continuing inside the epoch: on_epoch_start ran before the checkpoint, its effects are in last.pt
            self.generator.set_state(progress.generator_state)
        lr = self.set_epoch_lr(epoch)
        steps_in_epoch = self.task.steps_per_epoch() or 0
        if cfg.max_steps_per_epoch:
            steps_in_epoch = min(steps_in_epoch, cfg.max_steps_per_epoch) if steps_in_epoch else cfg.max_steps_per_epoch
        times = progress.times
        sum_loss, clip = cfg.get("loss_reduction", "mean") == "sum", self.cfg.optim.get("clip")
        linear_backward_timer.reset()
        linear_backward_timer.seconds = progress.linear_backward_s
        examples, loss_sum, steps = progress.examples, progress.loss_sum, progress.steps
        high_losses = 0  # batches in a row with a loss above trainer.max_loss
        # the settings the loop reads at every step, read once (an OmegaConf lookup costs microseconds at batch 10)
        max_loss, max_loss_batches = cfg.max_loss, cfg.get("max_loss_batches", 1)
        max_steps, log_lines = cfg.max_steps_per_epoch, cfg.progress != "none"
        log_every, eval_every = cfg.log_every_steps, cfg.eval_every_steps
        batches = self.task.train_batches(self.generator)
        for _ in itertools.islice(batches, steps):  # draw the batches trained before the checkpoint, and drop them
            pass
        bar = None
        if use_progress_bar(cfg.progress):
            total = cfg.max_steps_per_epoch or None
            bar = batches = tqdm(batches, desc=f"epoch {epoch}", total=total, initial=steps, leave=False, unit="batch")
        for batch in batches:
            PendingSignal.raise_if_pending()
            if max_steps and steps >= max_steps:
                break
            batch = self.task.to_device(batch)  # the one place training batches move to the model's device
            self.method.on_batch_start(self.task.to_device(self.task.example_ids(batch)))
            if self.updates is not None:
                self.updates.snapshot(self.model)
            loss, n = timed_step(self.task, self.model, self.optimizer, batch, times, sum_loss, clip)
            if self.updates is not None:
                self.updates.measure()
            steps += 1
            self.step += 1
            started = time.perf_counter()  # the average and the method's step hook count as the update
            if self.average is not None:
                self.average.update()
            self.apply(self.method.on_step_end(Step(epoch, steps, steps_in_epoch, self.step)))
            synchronize(self.device)
            times["update_s"] += time.perf_counter() - started
            examples += n
            value = loss.item()
            # (a resume starts the count of high losses again: it only delays a stop)
            high_losses = high_losses + 1 if max_loss is not None and value > max_loss else 0
            if not math.isfinite(value) or high_losses >= max_loss_batches:
                bound = ("" if not math.isfinite(value) else
                         f", above trainer.max_loss={max_loss} in {high_losses} batches in a row")
                raise Diverged(f"training diverged at epoch {epoch}, step {self.step}: the batch loss is {value:.4g}"
                               f"{bound}; lower optim.lr (now {self.cfg.optim.lr}) or raise trainer.max_loss; dev and "
                               f"test are those of the best epoch before it, if one was scored")
            loss_sum += value * n
            if bar is not None and steps % 50 == 0:
                bar.set_postfix(loss=f"{loss_sum / examples:.4f}")
            elif log_lines and bar is None and steps % log_every == 0:
                log.info("epoch %d step %d: train loss %.4f", epoch, steps, loss_sum / examples)
            if eval_every and self.step % eval_every == 0 and steps != steps_in_epoch:
                # (the epoch's last step is scored by the epoch's own evaluation below, once)
                with self.scored_weights():
                    self.consider(evaluate(self.task, self.model, "dev"), epoch, {"step": self.step})
            preempted = PendingSignal.checkpoint_signum is not None
            if steps != steps_in_epoch and (preempted or self.checkpoint_due()):  # after the evaluation above:
                # last.pt then holds it (and metrics.jsonl agrees); the epoch's last step is saved by the epoch's own
                progress.steps, progress.examples, progress.loss_sum = steps, examples, loss_sum
                self.save_last(progress)
                if preempted:
                    raise Preempted(f"epoch {epoch}, step {self.step}")
        if bar is not None:
            bar.close()
        self.method.on_epoch_end(epoch)
        times["linear_backward_s"] = linear_backward_timer.reset()
        for phase in PHASES:
            self.totals[phase] += times[phase]
        self.examples += examples
        self.epoch = epoch
        self.record["epochs_run"] = epoch
        busy = times["forward_s"] + times["backward_s"] + times["update_s"]
        line = {"step": self.step, "lr": lr, "train_loss": loss_sum / max(examples, 1), "examples": examples,
                "examples_per_s": examples / busy if busy > 0 else None, "timing": times,
                **(self.updates.epoch_fields() if self.updates is not None else {})}
        with self.scored_weights():
            self.consider(evaluate(self.task, self.model, "dev"), epoch, line)
        self.save_last()
        PendingSignal.raise_if_pending()
        if PendingSignal.checkpoint_signum is not None:
            raise Preempted(f"the end of epoch {epoch}")

    def apply(self, change: Change | None) -> None:
        """Rebuild what depends on the model's parameters after a method changed them (the one place)."""
        if change is None:
            return
        log.info("%s: %s", self.method.name, change.reason)
        shrink = change.shrink or ShrinkRecord()
        old = self.optimizer
        self.optimizer = build_optimizer(self.cfg.optim, self.model)
        for group, old_group in zip(self.optimizer.param_groups, old.param_groups):
            group.update({k: v for k, v in old_group.items() if k != "params"})  # lr, initial_lr
        if not change.reset_optimizer:
            for p in self.optimizer.param_groups[0]["params"]:
                origin, slices = shrink.origin(p)
                if origin in old.state:
                    self.optimizer.state[p] = {
                        key: apply_slices(value, slices) if torch.is_tensor(value) and value.shape == origin.shape
                        else value for key, value in old.state[origin].items()}
        if self.average is not None:
            self.average = self.average.rebuilt(self.model, lambda p: shrink.origin(p))

    def scored_weights(self) -> contextlib.AbstractContextManager:
        """Inside it the model holds the weights dev is scored with (and best.pt keeps): the average, if any."""
        return self.average.applied() if self.average is not None else contextlib.nullcontext()

    def set_epoch_lr(self, epoch: int) -> float:
        """optim.lr_decay: epoch e trains at lr · lr_decay^(e−1), from the optimizer's own starting lr."""
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])  # saved with the optimizer: a resumed run keeps it
            group["lr"] = group["initial_lr"] * self.cfg.optim.lr_decay ** (epoch - 1)
        return self.optimizer.param_groups[0]["lr"]

    def consider(self, dev: dict[str, float], epoch: int, extra: dict[str, Any]) -> None:
        """Log an evaluation of dev, and keep the model if it is the best so far."""
        metric = self.task.metrics[0]
        improved = self.best_dev is None or dev[metric] > self.best_dev[metric]
        if improved:
            self.best_dev = dev
            self.record.update(best_epoch=epoch, best_step=self.step, dev=dev)
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.best_sizes = sizes_of(self.model)
            if self.cfg.trainer.checkpoint:
                self.save_checkpoint(self.run_dir / results.BEST_CHECKPOINT, self.best_state, self.best_sizes)
        sizes = {results.SIZES: sizes_of(self.model)} if self.initial_sizes is not None else {}
        watched = {results.DIAGNOSTICS: self.diagnostics.report()} if self.diagnostics is not None else {}
        line = {"epoch": epoch, **extra, **sizes, **self.method.metrics(), **watched, "dev": dev, "best": improved}
        results.append_metrics(self.run_dir, line)
        self.loggers.evaluation(line)
        log.info("epoch %d step %d: dev %s%s", epoch, self.step, results.scores_text(dev), " (best)" if improved else "")

    def finish(self, error: str | None) -> None:
        """Score test with the best-dev weights, write predictions and result.json."""
        self.record.update(self.task.describe())  # again: now with what the task measured during training
        self.record.update(self.method.result_fields())
        if self.initial_sizes is not None:
            self.record[results.HIDDEN_FINAL] = sizes_of(self.model)
            self.record[results.PARAMS_FINAL] = count_parameters(self.model)
        if self.best_state is not None:
            if self.best_sizes != sizes_of(self.model):  # pruned since: the best model was bigger
                self.model = self.model_at(self.best_sizes)
            self.model.load_state_dict(self.best_state)
            self.record["test"] = evaluate(self.task, self.model, "test")
            if self.initial_sizes is not None:
                self.record[results.HIDDEN_TESTED] = self.best_sizes
                self.record[results.PARAMS_TESTED] = count_parameters(self.model)
                if self.best_sizes != self.record[results.HIDDEN_INITIAL]:
                    self.record[results.DECODE] = self.decode_times()
            self.model.eval()
            with torch.no_grad():
                self.task.write_outputs(self.model, self.run_dir)
            log.info("%s", results.best_epoch_text(self.record))
        self.record["status"] = "completed" if error is None else "failed"
        self.record["error"] = error
        self.write()

    def model_at(self, sizes: list[int] | None) -> torch.nn.Module:
        """A new model of this run's task and method, shrunk to the given hidden sizes (weights: load them)."""
        model = self.task.build_model(self.method)
        fit_to_sizes(model, sizes)
        return model.to(self.device)

    def decode_times(self, repeats: int = 2) -> dict[str, float]:
        """Test forward (decoding) seconds of the tested model against the same model at its initial sizes;
        the best of `repeats` alternating runs each, so that a load change hits both alike."""
        initial = self.model_at(self.record[results.HIDDEN_INITIAL])
        best = {"tested": math.inf, "initial": math.inf}
        for _ in range(repeats):
            for name, model in (("tested", self.model), ("initial", initial)):
                started = time.perf_counter()
                evaluate(self.task, model, "test")
                best[name] = min(best[name], time.perf_counter() - started)
        return {"test_s": best["tested"], "test_s_initial": best["initial"],
                "speedup": best["initial"] / best["tested"]}

    def write(self) -> None:
        total = self.elapsed_before + time.perf_counter() - self.started
        busy = sum(self.totals[p] for p in ("forward_s", "backward_s", "update_s"))
        self.record["timing"] = {**self.totals, "total_s": total,
                                 "examples_per_s": self.examples / busy if busy > 0 else None}
        self.record[results.ENDED_AT] = now()
        self.loggers.result(self.record, self.step)  # first: a logger failing here is in result.json's warnings
        if self.run_dir.is_dir():
            results.write_result(self.run_dir, self.record)

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, path: Path, weights: dict[str, torch.Tensor], sizes: list[int] | None,
                        **extra: Any) -> None:
        """sizes: the hidden sizes the weights have, so that a pruned model can be rebuilt to load them."""
        payload = plain({"model": weights, "config": OmegaConf.to_container(self.cfg, resolve=True),
                         "task_state": self.task.state(), "hidden": self.method.hidden, "sizes": sizes, **extra})
        with results.atomic_file(path, "wb") as f:
            torch.save(payload, f)

    def checkpoint_due(self) -> bool:
        """Whether to save last.pt inside the epoch now (trainer.checkpoint_every_steps / _minutes)."""
        cfg = self.cfg.trainer
        return cfg.checkpoint and (bool(cfg.checkpoint_every_steps) and self.step % cfg.checkpoint_every_steps == 0
                                   or bool(cfg.checkpoint_every_minutes)
                                   and time.monotonic() - self.last_saved >= 60 * cfg.checkpoint_every_minutes)

    def save_last(self, progress: EpochProgress | None = None) -> None:
        """last.pt: everything a resumed run needs to continue exactly, after an epoch or (progress) inside one."""
        if not self.cfg.trainer.checkpoint:
            return
        if progress is not None:
            progress.linear_backward_s = linear_backward_timer.seconds
            progress.updates = self.updates.state_dict() if self.updates is not None else None
            progress.diagnostics = self.diagnostics.state_dict() if self.diagnostics is not None else None
        metrics = self.run_dir / results.METRICS_FILE
        self.save_checkpoint(
            self.run_dir / results.LAST_CHECKPOINT, self.model.state_dict(), sizes_of(self.model),
            progress=asdict(progress) if progress is not None else None,
            metrics_bytes=metrics.stat().st_size if metrics.exists() else 0,
            optimizer=self.optimizer.state_dict(), selection=selection_state_dict(self.model),
            method=self.method.state_dict(), best_sizes=self.best_sizes, epoch=self.epoch, step=self.step, examples=self.examples,
            totals=self.totals, best_dev=self.best_dev, best_state=self.best_state, record=self.record,
            average=self.average.state_dict() if self.average is not None else None,
            generator=self.generator.get_state(), torch_rng=torch.get_rng_state(),
            # dropout and random-k draw from the GPU's generator on a GPU
            cuda_rng=torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            device=self.device.type, elapsed=self.elapsed_before + time.perf_counter() - self.started)
        self.last_saved = time.monotonic()

    def read_last(self) -> dict[str, Any]:
        path = self.run_dir / results.LAST_CHECKPOINT
        if not path.is_file():
            raise UserError(f"trainer.resume=true but {path} does not exist: point hydra.run.dir at the folder "
                            "of the run to continue")
        return results.read_checkpoint(path)

    def load_last(self, last: dict[str, Any]) -> None:
        """Continue from last.pt; the model already has its saved sizes (setup)."""
        path = self.run_dir / results.LAST_CHECKPOINT
        self.model.load_state_dict(last["model"])
        self.optimizer.load_state_dict(last["optimizer"])
        load_selection_state_dict(self.model, last.get("selection", {}))
        if last.get("method"):
            self.method.load_state_dict(last["method"])
        self.best_sizes = last.get("best_sizes", self.record.get(results.HIDDEN_INITIAL))
        if self.average is not None:
            if last.get("average") is None:
                raise UserError(f"{path} was saved without weight averaging: resume it with trainer.average_decay=0, "
                                "the setting it was trained with")
            self.average.load_state_dict(last["average"])
        self.epoch, self.step, self.examples = last["epoch"], last["step"], last["examples"]
        self.totals, self.best_dev, self.best_state = last["totals"], last["best_dev"], last["best_state"]
        self.record.update({k: last["record"][k] for k in ("best_epoch", "best_step", "dev", "epochs_run")})
        self.generator.set_state(last["generator"])
        torch.set_rng_state(last["torch_rng"])
        if self.device.type == "cuda" and last.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(last["cuda_rng"], self.device)
        saved_on = last.get("device", "cpu")
        if saved_on != self.device.type:  # the weights and states are copied over; the random draws differ
            log.warning("resuming on %s a run saved on %s: it continues, but not bit-identical to a run never "
                        "stopped (that holds on the device it was saved on)", self.device.type, saved_on)
        self.elapsed_before = last["elapsed"]
        self.record[results.STARTED_AT] = last["record"].get(results.STARTED_AT, self.record[results.STARTED_AT])
        if last.get("progress"):
            self.resumed_epoch = EpochProgress(**last["progress"])
            if self.updates is not None and self.resumed_epoch.updates is not None:
                self.updates.load_state_dict(self.resumed_epoch.updates)
        self.cut_metrics(last.get("metrics_bytes"))
        where = (f"inside epoch {self.epoch + 1}, after its step {self.resumed_epoch.steps}" if self.resumed_epoch
                 else f"after epoch {self.epoch}")
        log.info("resumed from %s %s", path, where)

    def cut_metrics(self, saved_bytes: int | None) -> None:
        """metrics.jsonl as it was when last.pt was saved: a kill after an evaluation was written but before its
        checkpoint was complete would otherwise list that evaluation twice once the run is continued."""
        path = self.run_dir / results.METRICS_FILE
        if saved_bytes is None or not path.exists() or path.stat().st_size <= saved_bytes:
            return
        with open(path, "r+b") as f:
            f.truncate(saved_bytes)
        log.info("%s cut back to the evaluations last.pt knows of", path)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, so that it ends as a Ctrl-C does (and the CLI exits 143, not 130)."""


class Preempted(Exception):
    """A scheduler's signal that the job will be stopped (SIGUSR2 from submitit, before a time limit or a
    preemption) came: last.pt was saved at the step after it, where a requeued job continues."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where
        self.signal_name = signal.Signals(PendingSignal.checkpoint_signum).name


SAME_SIGTERM_S = 2.0  # a SIGTERM this soon after the one taken is its duplicate (sigterm_as_interrupt)


class PendingSignal:
    """The last SIGINT or SIGTERM not yet handled. The handlers raise at once, but an exception raised while
    Python runs a __del__ or a garbage-collection callback is printed and dropped; the training loop asks
    raise_if_pending() at every step, so such a signal still ends the run (it once ran on to completion).
    A signal noted before the run began (a parallel sweep's job, launch.note_signal) ends it at its first step."""

    signum: int | None = None
    checkpoint_signum: int | None = None  # a scheduler's warning: save last.pt at the next step, then stop
    sigterm_at: float = -math.inf  # time.monotonic() of the last SIGTERM taken

    @staticmethod
    def exception(signum: int) -> KeyboardInterrupt:
        return Terminated(f"signal {signum}") if signum == signal.SIGTERM else KeyboardInterrupt()

    @classmethod
    def raise_if_pending(cls) -> None:
        if cls.signum is not None:
            signum, cls.signum = cls.signum, None
            raise cls.exception(signum)

    @classmethod
    def clear(cls) -> None:
        cls.signum = cls.checkpoint_signum = None


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, a scheduler's time limit) like Ctrl-C, so the run still scores test and writes its result.

    SIGUSR2, when a handler of the process's own has it (submitit's, which requeues the job), first ends the run at
    its next step with last.pt saved (Preempted); the caller then hands the signal on to that handler."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if signum == signal.SIGTERM and now - PendingSignal.sigterm_at < SAME_SIGTERM_S:
            # `kill` to a parallel sweep's process group reaches a job twice: directly, and passed on by the
            # sweep (launch.stop_parallel_sweep); the second is the same request, not a second interrupt
            return
        if signum == signal.SIGTERM:
            PendingSignal.sigterm_at = now
        PendingSignal.signum = signum
        raise PendingSignal.exception(signum)

    def request_checkpoint(signum: int, frame: Any) -> None:
        PendingSignal.checkpoint_signum = signum

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    if callable(signal.getsignal(signal.SIGUSR2)):
        previous[signal.SIGUSR2] = signal.signal(signal.SIGUSR2, request_checkpoint)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        PendingSignal.clear()


RUN_FILES = (results.RESULT_FILE, results.METRICS_FILE, results.LAST_CHECKPOINT, results.BEST_CHECKPOINT)
LOCK_FILE = ".meprop.lock"


def holds_run(run_dir: Path) -> bool:
    """Whether a run has written into this folder (Hydra's own .hydra/ and log do not count)."""
    return any((Path(run_dir) / name).exists() for name in RUN_FILES)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the folder for this process: a second run into it at the same time is refused, not merged."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{run_dir} is in use by another meprop run; wait for it to end or choose another "
                        "hydra.run.dir") from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def run_from_last(run_dir: Path, adjust: Callable[[DictConfig], None] | None = None) -> tuple[Run, dict[str, Any]]:
    """A set-up Run of the run in run_dir holding its last.pt weights, and last.pt itself, for the scripts that
    inspect a run. adjust(cfg) may change (or reject) the saved config before setup loads the data."""
    last = results.read_checkpoint(Path(run_dir) / results.LAST_CHECKPOINT)
    # trainer options added since the run was saved take their defaults
    cfg = OmegaConf.merge({"trainer": OmegaConf.to_container(OmegaConf.structured(TrainerConfig))}, last["config"])
    cfg.trainer.resume = False
    cfg.trainer.device = "cpu"  # the scripts inspect on the CPU, with batches as the tasks make them
    cfg.trainer.loggers = []  # an inspection is not a run to log
    if adjust is not None:
        adjust(cfg)
    with tempfile.TemporaryDirectory(prefix="meprop-inspect-") as scratch:  # setup writes a config there
        run = Run(cfg, Path(scratch))
        run.setup()
    fit_to_sizes(run.model, last.get("sizes"))
    run.model.load_state_dict(last["model"])
    return run, last


def train(cfg: DictConfig, run_dir: Path, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """Train as cfg says, writing the run folder; returns the result record (also in result.json).

    A folder that already holds a run is never written over: continue it with trainer.resume=true.
    warnings: the caller's, kept in result.json (a sweep's launcher: more threads than cores)."""
    run_dir = Path(run_dir)
    with sigterm_as_interrupt(), run_lock(run_dir):
        if not cfg.trainer.resume and holds_run(run_dir):
            raise UserError(f"{run_dir} already holds a run ({', '.join(n for n in RUN_FILES if (run_dir / n).exists())}); "
                            "continue it with trainer.resume=true, or choose a new hydra.run.dir")
        return Run(cfg, run_dir, warnings).fit()
