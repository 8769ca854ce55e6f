"""Time spent in the backward of the linear transformations: the papers' "backprop time".

The meProp autograd functions add to this accumulator; the trainer reads and resets it per epoch.
"""
from __future__ import annotations

import time


class BackwardTimer:
    def __init__(self) -> None:
        self.seconds = 0.0

    def reset(self) -> float:
        """Return the seconds accumulated so far and start again from zero."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds

    def clock(self) -> float:
        return time.perf_counter()

    def add_since(self, start: float) -> None:
        self.seconds += time.perf_counter() - start


linear_backward_timer = BackwardTimer()
