"""The interface between the one trainer and a task: data, model, loss and metric.

A task module subclasses Task and registers itself in meprop_cli.tasks.TASKS; the trainer calls
load → build_model → (train_batches, loss)* → evaluate, and nothing else task-specific.
"""
from __future__ import annotations

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


class Task(ABC):
    metrics: tuple[str, ...] = ("accuracy",)  # the first one selects the best dev epoch (higher is better)

    def __init__(self, cfg: Any, data_root: Path) -> None:
        self.cfg = cfg  # this task's config node (cfg.task)
        self.data_root = data_root

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
        """Scores on "dev" or "test" as fractions in [0, 1]; called in eval mode under no_grad."""

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
