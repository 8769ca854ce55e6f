"""An exponential moving average of a model's weights, to score dev and test with (trainer.average_decay).

After update t the average moves toward the weights by 1 − d_t, with d_t = min(decay, (1 + t) / (10 + t)):
the warm-up (TensorFlow's ExponentialMovingAverage with num_updates) keeps the first updates from being
averaged with the random initial weights for thousands of steps. Only parameters are averaged; buffers
(batch-norm statistics) are the model's own.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from meprop_cli.nn.shrink import apply_slices


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.owners = list(model.parameters())
        self.params = [p.detach() for p in self.owners]  # views of the weights, built once
        self.average = [p.clone() for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Call after each optimizer step."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, self.params, 1.0 - decay)

    @contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its trained weights again after it."""
        trained = [p.clone() for p in self.params]
        for p, a in zip(self.params, self.average):
            p.copy_(a)
        try:
            yield
        finally:
            for p, t in zip(self.params, trained):
                p.copy_(t)

    @torch.no_grad()
    def rebuilt(self, model: torch.nn.Module, origin: Callable) -> "WeightAverage":
        """The average for the model's parameters after some were cut (meSimp): origin(p) gives the parameter
        p was cut from and the slices (nn.shrink.ShrinkRecord.origin); the average is cut the same way."""
        averages = dict(zip(self.owners, self.average))
        new = WeightAverage(model, self.decay)
        for i, p in enumerate(new.owners):
            old, slices = origin(p)
            new.average[i] = apply_slices(averages[old], slices)
        new.updates = self.updates
        return new

    def state_dict(self) -> dict:
        return {"average": self.average, "updates": self.updates}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for a, saved in zip(self.average, state["average"]):
            a.copy_(saved)
        self.updates = state["updates"]
