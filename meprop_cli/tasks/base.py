"""The interface between the one trainer and a task: data, model, loss and metric.

A task module subclasses Task and registers itself in meprop_cli.tasks.TASKS; the trainer calls
load → build_model → (train_batches, loss)* → evaluate, and nothing else task-specific.

Devices: a task builds its data and batches on the CPU (every random draw comes from the trainer's CPU
generator, so a seed gives the same batches on any device). The trainer sets Task.device and moves each
training batch there with Task.to_device; a task's evaluate() moves its own evaluation batches the same way.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import torch
from torch import nn

from meprop_cli.methods import Method


class LabeledBatch(NamedTuple):
    """A training batch of tensors: inputs, targets, and the examples' ids (rows of the training set)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    ids: torch.Tensor


def to_device(value: Any, device: torch.device) -> Any:
    """value with every tensor in it on device: a tensor, or a named tuple, dataclass, list, tuple or dict of
    them, nested (a POS batch holds its packing); anything else (ints, lists of sizes) as it is."""
    if torch.is_tensor(value):
        return value.to(device)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: to_device(getattr(value, f.name), device)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
        return type(value)(*(to_device(v, device) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


class Task(ABC):
    metrics: tuple[str, ...] = ("accuracy",)  # the first one selects the best dev epoch (higher is better)

    def __init__(self, cfg: Any, data_root: Path) -> None:
        self.cfg = cfg  # this task's config node (cfg.task)
        self.data_root = data_root
        self.device = torch.device("cpu")  # where the model is: the trainer sets it (trainer.device)

    def to_device(self, value: Any) -> Any:
        """A batch (or any tensors) on the model's device: the trainer's training batches, a task's evaluation."""
        return to_device(value, self.device)

    @abstractmethod
    def load(self) -> None:
        """Read the data; raise meprop_cli.errors.DataError with one clear sentence when it is missing."""

    @abstractmethod
    def build_model(self, method: Method) -> nn.Module:
        """The model, its layers made by method.make_linear / method.sparsity, hidden sizes method.hidden."""

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """One epoch of training batches in an order drawn from generator."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, int]:
        """Forward pass: the mean loss of the batch and its number of examples."""

    @abstractmethod
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Scores on "dev" or "test" as fractions in [0, 1]; called in eval mode under no_grad. The model is on
        self.device: move what it reads there with self.to_device."""

    def example_ids(self, batch: Any) -> torch.Tensor | None:
        """The stable ids (0..train size − 1, the same every epoch) of a training batch's examples."""
        return getattr(batch, "ids", None)

    def steps_per_epoch(self) -> int | None:
        """Updates in one epoch of train_batches (None if unknown): where a method's checks fall in an epoch."""
        size = self.train_size()
        return None if size is None else -(-size // self.cfg.batch_size)

    def train_size(self) -> int | None:
        """Number of training examples, for the progress bar (None if unknown)."""
        return None

    def write_outputs(self, model: nn.Module, run_dir: Path) -> None:
        """Write prediction files into the run folder (called once, with the best checkpoint loaded)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs besides the weights to use the model later (vocabularies, ...)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Extra facts for result.json (dataset sizes, ...): merged after setup and again at the end of training,
        so a task may also report what it measured during training."""
        return {}
