"""The one trainer: epochs of mini-batches, dev after every epoch, test at the best dev epoch.

It times, per epoch and in total, the forward pass (loss included), the whole backward pass, the
backward of the linear transformations alone (the papers' "backprop time", measured inside the meProp
autograd functions) and the update (zero_grad + optimizer step).
"""
from __future__ import annotations

import copy
import contextlib
import logging
import random
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from meprop_cli import results
from meprop_cli.averaging import WeightAverage
from meprop_cli.config import validate
from meprop_cli.errors import UserError
from meprop_cli.methods import Method, build_method
from meprop_cli.optim import build_optimizer
from meprop_cli.ops import linear_backward_timer
from meprop_cli.tasks import Task, build_task

log = logging.getLogger("meprop")

PHASES = ("forward_s", "backward_s", "linear_backward_s", "update_s")


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
               times: dict[str, float]) -> tuple[torch.Tensor, int]:
    """One update; adds its forward, backward and update seconds to times. Returns (loss, examples)."""
    t0 = time.perf_counter()
    loss, n = task.loss(model, batch)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    times["forward_s"] += t1 - t0
    times["backward_s"] += t2 - t1
    times["update_s"] += t3 - t2
    return loss, n


def use_progress_bar(setting: str) -> bool:
    return setting == "bar" or (setting == "auto" and sys.stderr.isatty())


class Run:
    """One training run writing into run_dir; fit() returns the result record."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.record: dict[str, Any] = {
            "task": cfg.task.name, "method": cfg.method.name, "seed": cfg.seed, "status": "failed",
            "error": None, "best_epoch": None, "best_step": None, "epochs_run": 0, "dev": {}, "test": {},
            "hidden": None, "k": None, "k_output": None, "decay": cfg.decay, "optimizer": cfg.optim.name,
            "batch_size": cfg.task.batch_size, "params": None, "timing": {},
        }
        self.epoch = 0  # last finished epoch
        self.step = 0  # updates so far
        self.examples = 0
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.best_dev: dict[str, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.started = time.perf_counter()
        self.elapsed_before = 0.0  # wall time of earlier sessions of a resumed run

    # -- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        validate(cfg)
        seed_everything(cfg.seed)
        if cfg.trainer.threads > 0:
            torch.set_num_threads(cfg.trainer.threads)
        self.task: Task = build_task(cfg.task, Path(cfg.data_root).expanduser().resolve())
        self.method: Method = build_method(cfg)
        self.record.update(hidden=self.method.hidden, k=self.method.k, k_output=self.method.k_output)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, self.run_dir / results.CONFIG_FILE, resolve=True)
        self.task.load()
        self.model = self.task.build_model(self.method)
        self.optimizer = build_optimizer(cfg.optim, self.model)
        decay = cfg.trainer.average_decay
        self.average = WeightAverage(self.model, decay) if decay > 0 else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.record["params"] = sum(p.numel() for p in self.model.parameters())
        self.record.update(self.task.describe())
        if cfg.trainer.resume:
            self.load_last()

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        try:
            self.setup()
            log.info("%s / %s: hidden %s, k %s, k_output %s, %d parameters", self.record["task"],
                     self.record["method"], self.method.hidden, self.method.k, self.method.k_output,
                     self.record["params"])
            for epoch in range(self.epoch + 1, self.cfg.trainer.max_epochs + 1):
                self.train_epoch(epoch)
            self.finish(error=None)
        except KeyboardInterrupt:
            self.finish(error=f"interrupted during epoch {self.epoch + 1}; dev and test are those of the best "
                              f"epoch so far; resume with trainer.resume=true hydra.run.dir={self.run_dir}")
        except UserError as e:
            self.record["error"] = str(e)
            self.write()
            raise
        except Exception as e:
            self.record["error"] = f"{type(e).__name__}: {e}"
            self.record["traceback"] = traceback.format_exc()
            self.write()
            raise
        return self.record

    def train_epoch(self, epoch: int) -> None:
        cfg = self.cfg.trainer
        lr = self.set_epoch_lr(epoch)
        times = dict.fromkeys(PHASES, 0.0)
        linear_backward_timer.reset()
        examples, loss_sum, steps = 0, 0.0, 0
        batches = self.task.train_batches(self.generator)
        bar = None
        if use_progress_bar(cfg.progress):
            total = cfg.max_steps_per_epoch or None
            bar = batches = tqdm(batches, desc=f"epoch {epoch}", total=total, leave=False, unit="batch")
        for batch in batches:
            if cfg.max_steps_per_epoch and steps >= cfg.max_steps_per_epoch:
                break
            loss, n = timed_step(self.task, self.model, self.optimizer, batch, times)
            if self.average is not None:
                started = time.perf_counter()
                self.average.update()
                times["update_s"] += time.perf_counter() - started
            steps += 1
            self.step += 1
            examples += n
            loss_sum += loss.item() * n
            if bar is not None and steps % 50 == 0:
                bar.set_postfix(loss=f"{loss_sum / examples:.4f}")
            elif cfg.progress != "none" and bar is None and steps % cfg.log_every_steps == 0:
                log.info("epoch %d step %d: train loss %.4f", epoch, steps, loss_sum / examples)
            if cfg.eval_every_steps and self.step % cfg.eval_every_steps == 0:
                with self.scored_weights():
                    self.consider(evaluate(self.task, self.model, "dev"), epoch, {"step": self.step})
        if bar is not None:
            bar.close()
        times["linear_backward_s"] = linear_backward_timer.reset()
        for phase in PHASES:
            self.totals[phase] += times[phase]
        self.examples += examples
        self.epoch = epoch
        self.record["epochs_run"] = epoch
        busy = times["forward_s"] + times["backward_s"] + times["update_s"]
        line = {"step": self.step, "lr": lr, "train_loss": loss_sum / max(examples, 1), "examples": examples,
                "examples_per_s": examples / busy if busy > 0 else None, "timing": times}
        with self.scored_weights():
            self.consider(evaluate(self.task, self.model, "dev"), epoch, line)
        self.save_last()

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
            if self.cfg.trainer.checkpoint:
                self.save_checkpoint(self.run_dir / results.BEST_CHECKPOINT, self.best_state)
        results.append_metrics(self.run_dir, {"epoch": epoch, **extra, "dev": dev, "best": improved})
        log.info("epoch %d step %d: dev %s%s", epoch, self.step,
                 " ".join(f"{k} {v:.4f}" for k, v in dev.items()), " (best)" if improved else "")

    def finish(self, error: str | None) -> None:
        """Score test with the best-dev weights, write predictions and result.json."""
        self.record.update(self.task.describe())  # again: now with what the task measured during training
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.record["test"] = evaluate(self.task, self.model, "test")
            self.model.eval()
            with torch.no_grad():
                self.task.write_outputs(self.model, self.run_dir)
            log.info("best epoch %s: dev %s, test %s", self.record["best_epoch"], self.record["dev"],
                     self.record["test"])
        self.record["status"] = "completed" if error is None else "failed"
        self.record["error"] = error
        self.write()

    def write(self) -> None:
        total = self.elapsed_before + time.perf_counter() - self.started
        busy = sum(self.totals[p] for p in ("forward_s", "backward_s", "update_s"))
        self.record["timing"] = {**self.totals, "total_s": total,
                                 "examples_per_s": self.examples / busy if busy > 0 else None}
        if self.run_dir.is_dir():
            results.write_result(self.run_dir, self.record)

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, path: Path, weights: dict[str, torch.Tensor], **extra: Any) -> None:
        payload = {"model": weights, "config": OmegaConf.to_container(self.cfg, resolve=True),
                   "task_state": self.task.state(), "hidden": self.method.hidden, **extra}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)

    def save_last(self) -> None:
        if not self.cfg.trainer.checkpoint:
            return
        self.save_checkpoint(
            self.run_dir / results.LAST_CHECKPOINT, self.model.state_dict(),
            optimizer=self.optimizer.state_dict(), epoch=self.epoch, step=self.step, examples=self.examples,
            totals=self.totals, best_dev=self.best_dev, best_state=self.best_state, record=self.record,
            average=self.average.state_dict() if self.average is not None else None,
            generator=self.generator.get_state(), torch_rng=torch.get_rng_state(),
            elapsed=self.elapsed_before + time.perf_counter() - self.started)

    def load_last(self) -> None:
        path = self.run_dir / results.LAST_CHECKPOINT
        if not path.is_file():
            raise UserError(f"trainer.resume=true but {path} does not exist: point hydra.run.dir at the folder "
                            "of the run to continue")
        last = torch.load(path, weights_only=False)
        self.model.load_state_dict(last["model"])
        self.optimizer.load_state_dict(last["optimizer"])
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
        self.elapsed_before = last["elapsed"]
        log.info("resumed from %s after epoch %d", path, self.epoch)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, a scheduler's time limit) like Ctrl-C, so the run still scores test and writes its result."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train as cfg says, writing the run folder; returns the result record (also in result.json)."""
    with sigterm_as_interrupt():
        return Run(cfg, run_dir).fit()
