"""The hidden-layer activations by name, with the slope each one's backward needs (meAct computes its own)."""
from __future__ import annotations

from typing import Callable

import torch

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "cube": lambda y: y * y * y,  # Chen & Manning (2014)
}


def slope(name: str, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """f'(y) for a = f(y), from whichever of the two is cheaper."""
    if name == "relu":
        return (y > 0).to(y.dtype)
    if name == "tanh":
        return 1 - a * a
    if name == "sigmoid":
        return a * (1 - a)
    if name == "cube":
        return 3 * y * y
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
