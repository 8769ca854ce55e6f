"""meSimp (Sun et al., 2017, "Training Simplification and Model Simplification for Deep Learning"):
meProp training that removes the hidden neurons the top-k seldom keeps.

The record: every hidden layer's meProp backward counts, per neuron, the examples whose top-k held it
with a nonzero gradient (ops.SelectionState.record). A ReLU layer often has fewer than k nonzero entries
per example; a top-k then also takes zero entries, chosen by index, which update nothing. The reference
code counts those too (count_zero_gradients=true); here they are not counted by default, because once
the layer is removed rather than masked they would always land on its lowest surviving indices and keep
those alive whatever they do (docs/mesimp.md has the measurement). An LSTM cell is one unit: its four gates' counts are summed, and so are the
examples they saw (4 per token), so a cell is judged by its gates' mean rate.

A check (`prune_checks_per_epoch` per epoch, evenly spaced in steps): in a simplification stage, a neuron
whose count is below floor(prune_rate × examples counted since the last check) is removed (its rows, and
the columns that read it); in a normal stage nothing is removed. Either way the counts restart. A layer
with k or fewer neurons keeps them all (its top-k is every neuron), and a layer never loses its last one.
The reference code (lancopku/meSimp) clears the counts only when it prunes; here every check clears them,
so the first check of a simplification stage judges the last 1/prune_checks_per_epoch of an epoch, as every
other check does.

Stages: epochs 1..cycle_epochs simplify, the next cycle_epochs train normally (still meProp), and so on.
At the start of each stage the optimizer starts afresh (methods.md: "at the start of each stage the
optimizer state is re-initialised"). The reference code re-initialises it after every check of a stage's
last epoch; here it happens once, at the stage's first step. Between resets, a pruned layer's optimizer
state is cut with it, as the reference keeps the survivors' moments when it masks.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from meprop_cli.errors import ConfigError
from meprop_cli.methods.base import Change, Method, Step
from meprop_cli.nn.shrink import Shrinkable, tracking_shrink
from meprop_cli import results


@functools.lru_cache(maxsize=8)  # asked after every step, with the same two numbers all epoch
def check_steps(steps_in_epoch: int, checks: int) -> frozenset[int]:
    """The steps of an epoch (1-based) after which a check runs: evenly spaced, the last at the epoch's end."""
    return frozenset(max(1, math.ceil(i * steps_in_epoch / checks)) for i in range(1, checks + 1))


def kept_neurons(hits: torch.Tensor, seen: int, prune_rate: float) -> torch.Tensor:
    """The reference rule: keep neuron j iff hits[j] ≥ floor(seen × prune_rate); at least the most active one."""
    keep = (hits >= math.floor(seen * prune_rate)).nonzero().flatten()
    if len(keep) == 0:
        keep = hits.argmax().reshape(1)
    return keep


@dataclass
class MeSimp(Method):
    prune_rate: float = 0.1
    prune_checks_per_epoch: int = 8
    cycle_epochs: int = 5
    count_zero_gradients: bool = False
    checks: int = 0  # checks done so far
    pending: list[dict[str, Any]] = field(default_factory=list)  # checks not yet written to metrics.jsonl

    @classmethod
    def from_config(cls, cfg: Any, **extra: Any) -> "MeSimp":
        m = cfg.method
        return super().from_config(cfg, prune_rate=float(m.prune_rate),
                                   prune_checks_per_epoch=int(m.prune_checks_per_epoch),
                                   cycle_epochs=int(m.cycle_epochs),
                                   count_zero_gradients=bool(m.count_zero_gradients), **extra)

    def bind(self, model: nn.Module, task: Any) -> None:
        super().bind(model, task)
        if not isinstance(model, Shrinkable):
            raise ConfigError(f"method={self.name} removes hidden neurons, and the {type(model).__name__} model of "
                              f"task={task.cfg.name} cannot shrink; use task=mnist_mlp, parse, pos or digits")
        if self.mode is None:
            raise ConfigError(f"method={self.name} needs the top-k record: set method.mode=topk (or unified)")
        self.model = model
        device = next(model.parameters()).device  # the counts live beside the layers they count
        for states, size in zip(model.hidden_records(), model.hidden_sizes()):
            for state in states:
                if state.hits is None:  # a resumed run has its counts back already
                    state.start_record(size, self.count_zero_gradients, device)

    def simplifying(self, epoch: int) -> bool:
        return ((epoch - 1) // self.cycle_epochs) % 2 == 0

    def on_epoch_start(self, epoch: int) -> Change | None:
        if epoch > 1 and (epoch - 1) % self.cycle_epochs == 0:
            stage = "simplification" if self.simplifying(epoch) else "normal training"
            return Change(reset_optimizer=True, reason=f"epoch {epoch} starts a stage of {stage}")
        return None

    def on_step_end(self, where: Step) -> Change | None:
        if where.step_in_epoch not in check_steps(where.steps_in_epoch, self.prune_checks_per_epoch):
            return None
        self.checks += 1
        model = self.model
        before = model.hidden_sizes()
        prune = self.simplifying(where.epoch)
        with tracking_shrink() as shrink:
            for group, (states, size) in enumerate(zip(model.hidden_records(), before)):
                hits = sum(s.hits for s in states)
                seen = sum(s.seen for s in states)
                if prune and self.k is not None and size > self.k and seen > 0:
                    keep = kept_neurons(hits, seen, self.prune_rate)
                    if len(keep) < size:
                        model.keep_hidden(group, keep)
        device = next(model.parameters()).device
        for states, size in zip(model.hidden_records(), model.hidden_sizes()):
            for state in states:
                state.start_record(size, self.count_zero_gradients, device)
        after = model.hidden_sizes()
        self.pending.append({"epoch": where.epoch, "step": where.step, "pruned": prune, results.SIZES: after})
        if shrink.changed:
            return Change(shrink=shrink, reason=f"check {self.checks}: hidden sizes {before} -> {after}")
        return None

    def metrics(self) -> dict[str, Any]:
        checks, self.pending = self.pending, []
        return {results.PRUNE_CHECKS: checks} if checks else {}

    def result_fields(self) -> dict[str, Any]:
        return {"prune_rate": self.prune_rate, "prune_checks_per_epoch": self.prune_checks_per_epoch,
                "cycle_epochs": self.cycle_epochs,
                "count_zero_gradients": self.count_zero_gradients, results.PRUNE_CHECK_COUNT: self.checks}

    def state_dict(self) -> dict[str, Any]:
        return {"checks": self.checks, "pending": list(self.pending)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.checks, self.pending = state["checks"], list(state["pending"])
