"""Classification of fixed-size feature vectors held in memory as tensors (digits, MNIST)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from meprop_cli.methods import Method
from meprop_cli.nn import MLP
from meprop_cli.tasks.base import LabeledBatch, Task


class TensorClassificationTask(Task):
    n_classes: int = 10

    def set_splits(self, splits: dict[str, tuple[np.ndarray, np.ndarray]], scale: float) -> None:
        """Store each split as float features (flattened, divided by scale) and int64 labels."""
        self.splits = {
            name: (torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / scale), torch.from_numpy(y))
            for name, (x, y) in splits.items()
        }

    @property
    def in_features(self) -> int:
        return self.splits["train"][0].shape[1]

    def build_model(self, method: Method) -> nn.Module:
        return MLP(self.in_features, method.hidden, self.n_classes, method.make_linear,
                   self.cfg.activation, self.cfg.dropout)

    def train_size(self) -> int:
        return len(self.splits["train"][1])

    def train_batches(self, generator: torch.Generator) -> Iterator[LabeledBatch]:
        x, y = self.splits["train"]
        order = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y), self.cfg.batch_size):
            idx = order[i:i + self.cfg.batch_size]
            yield LabeledBatch(x[idx], y[idx], idx)

    def loss(self, model: nn.Module, batch: LabeledBatch) -> tuple[torch.Tensor, int]:
        x, y = batch.inputs, batch.targets
        return F.cross_entropy(model(x), y), len(y)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        x, y = self.splits[split]
        correct = 0
        for i in range(0, len(y), self.cfg.eval_batch_size):
            inputs, targets = self.to_device((x[i:i + self.cfg.eval_batch_size], y[i:i + self.cfg.eval_batch_size]))
            correct += int((model(inputs).argmax(dim=1) == targets).sum())
        return {"accuracy": correct / len(y)}

    def describe(self) -> dict[str, int]:
        return {f"{name}_size": len(y) for name, (_, y) in self.splits.items()}
