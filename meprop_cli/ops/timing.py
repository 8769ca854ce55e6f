"""Time spent in the backward of the linear transformations: the papers' "backprop time".

The meProp autograd functions add to this accumulator; the trainer reads and resets it per epoch.

CUDA runs asynchronously: a kernel launch returns before the GPU has done the work, so a clock read after it
times the launch. Every clock read here (and the trainer's) first waits for the device of the tensors being
timed (synchronize); on the CPU that is nothing.
"""
from __future__ import annotations

import time

import torch


def synchronize(device: torch.device) -> None:
    """Wait until the device has done the work queued on it (CUDA); on the CPU the work is already done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BackwardTimer:
    def __init__(self) -> None:
        self.seconds = 0.0

    def reset(self) -> float:
        """Return the seconds accumulated so far and start again from zero."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds

    def clock(self, on: torch.Tensor) -> float:
        """The time now, once the device of `on` has finished the work queued before this backward."""
        synchronize(on.device)
        return time.perf_counter()

    def add_since(self, start: float, on: torch.Tensor) -> None:
        """Add the time since start, once the device of `on` has finished this backward's work."""
        synchronize(on.device)
        self.seconds += time.perf_counter() - start


linear_backward_timer = BackwardTimer()
