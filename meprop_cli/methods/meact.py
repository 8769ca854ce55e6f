"""meAct (Sun et al., 2017, "Training Simplification and Model Simplification for Deep Learning", the
minimal effort activation section): each training example computes only the hidden neurons its own
accumulated gradients call active; the others output the example's last activation.

No public code exists; the paper's text is the reference and leaves these choices to the project
(docs/meact.md has them with the measurements):
- the gradient accumulated is |∂L/∂y| of each hidden layer's linear output y (the quantity meProp's top-k
  ranks); it is accumulated from epoch 1, over the whole of training, and only for computed neurons;
- threshold: neuron j is inactive for example i when its share grad_sum[i, j] / Σ grad_sum[i, :] is below
  `threshold` (the layer's largest stays active, so an example never loses a layer);
- warm-up: epochs before `start_epoch` train exactly as the baseline (same computation, same random draws)
  while the memory records; the "last encounter" of an example is therefore always a full forward of it;
- an example not yet recorded computes every neuron; test-time (and dev) forward is always normal.
The hidden layers get full gradients on their active neurons (no top-k), as the paper's figure compares
meAct with the baseline; the output layer is a normal layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from meprop_cli import results
from meprop_cli.errors import ConfigError, UserError
from meprop_cli.methods.base import Change, Method
from meprop_cli.nn.linear import MeActLinear
from meprop_cli.ops.meact import MEMORY_DTYPES, ActivityMemory


@dataclass
class MeAct(Method):
    start_epoch: int = 6
    threshold: float = 0.001
    memory_dtype: str = "float32"
    memories: list[ActivityMemory] = field(default_factory=list)
    saved: list[dict] | None = None  # memories read from last.pt before bind() made them
    pending: dict[str, Any] = field(default_factory=dict)  # the finished epoch's fields for metrics.jsonl
    acting_epochs: list[list[float]] = field(default_factory=list)  # active fraction of each meAct epoch

    @classmethod
    def from_config(cls, cfg: Any, **extra: Any) -> "MeAct":
        m = cfg.method
        return super().from_config(cfg, start_epoch=int(m.start_epoch), threshold=float(m.threshold),
                                   memory_dtype=str(m.memory_dtype), **extra)

    def make_linear(self, in_features: int, out_features: int, role: str) -> nn.Module:
        if role == "hidden":
            return MeActLinear(in_features, out_features)
        return super().make_linear(in_features, out_features, role)

    def bind(self, model: nn.Module, task: Any) -> None:
        super().bind(model, task)
        layers = model.feedforward_layers() if hasattr(model, "feedforward_layers") else []
        if not layers or not all(isinstance(layer, MeActLinear) for layer in layers):
            raise ConfigError(f"method={self.name} needs a feed-forward network of hidden layers, and the "
                              f"{type(model).__name__} model of task={task.cfg.name} has none; use task=mnist_mlp, "
                              f"parse or digits")
        examples = task.train_size()
        if not examples:
            raise ConfigError(f"method={self.name} keeps a memory per training example, and task={task.cfg.name} "
                              "does not say how many it has")
        self.memories = [ActivityMemory(examples, layer.out_features, self.threshold,
                                        MEMORY_DTYPES[self.memory_dtype], layer.weight.device) for layer in layers]
        for layer, memory in zip(layers, self.memories):
            layer.memory = memory
        if self.saved is not None:
            for memory, state in zip(self.memories, self.saved):
                try:
                    memory.load_state_dict(state)
                except ValueError as e:
                    raise UserError(f"last.pt cannot continue this run: its {e} (examples × neurons); resume "
                                    "with the data and task.hidden it was trained with")
            self.saved = None

    def on_epoch_start(self, epoch: int) -> Change | None:
        for memory in self.memories:
            memory.acting = epoch >= self.start_epoch
            memory.reset_counts()
        return None

    def on_batch_start(self, example_ids: torch.Tensor) -> None:
        for memory in self.memories:
            memory.ids = example_ids

    def on_epoch_end(self, epoch: int) -> None:
        fractions = [active / pairs if pairs else None for active, pairs in (m.reset_counts() for m in self.memories)]
        acting = bool(self.memories) and self.memories[0].acting
        if acting and all(f is not None for f in fractions):
            self.acting_epochs.append(fractions)
        self.pending = {results.ACTIVE_FRACTION: fractions, results.MEACT_ACTING: acting}

    def metrics(self) -> dict[str, Any]:
        fields, self.pending = self.pending, {}
        return fields

    def memory_size(self) -> dict[str, Any]:
        return {"examples": self.memories[0].grad_sum.shape[0] if self.memories else 0,
                "neurons": [m.neurons for m in self.memories], "last_dtype": self.memory_dtype,
                "bytes": sum(m.nbytes() for m in self.memories)}

    def result_fields(self) -> dict[str, Any]:
        layers = list(zip(*self.acting_epochs))
        return {"start_epoch": self.start_epoch, "threshold": self.threshold, results.MEACT_MEMORY: self.memory_size(),
                # the mean over the epochs that skipped inactive neurons, per layer
                results.ACTIVE_FRACTION: [sum(f) / len(f) for f in layers] if layers else None}

    def state_dict(self) -> dict[str, Any]:
        return {"memories": [m.state_dict() for m in self.memories], "acting_epochs": self.acting_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saved = state["memories"]
        self.acting_epochs = [list(f) for f in state["acting_epochs"]]
