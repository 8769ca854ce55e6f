"""Why sparse back propagation misbehaves, measured while it trains (trainer.diagnostics=true).

Per hidden layer of a feed-forward model (model.feedforward_layers()), over the training steps since the
previous metrics.jsonl line:
    mean_abs_activation        mean |a| of the layer's activations a = f(x Wᵀ + b), before dropout
    dead_fraction              share of the layer's units whose activation was 0 for every example
    nonzero_negative_fraction  share of the nonzero entries of the full output gradient g = ∂L/∂y that are < 0
    kept_negative_fraction     the same share among the entries the selection kept (and that are nonzero); under
                               per-example top-k with Adam and ReLU it runs far above the former (the sign bias)
    gradient_cosine            mean over examples of cos(top_k(g_i), g_i) = ‖top_k(g_i)‖ / ‖g_i‖ (1 for full back
                               propagation)
The layers feed a LayerWatch from their forward (activated) and their backward (ops/meprop.py); with the
diagnostics off they only test that their watch is None.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from meprop_cli.errors import ConfigError


class LayerWatch:
    """The sums one hidden layer collects between two reports."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.abs_activation, self.activations = 0.0, 0
        self.ever_active: torch.Tensor | None = None
        self.nonzero, self.nonzero_negative, self.kept, self.kept_negative = 0, 0, 0, 0
        self.cosine_sum, self.cosine_rows = 0.0, 0

    @torch.no_grad()
    def observe_activations(self, a: torch.Tensor) -> None:
        a = a.reshape(-1, a.shape[-1])
        self.abs_activation += a.abs().sum().item()
        self.activations += a.numel()
        active = (a != 0).any(0)
        if self.ever_active is None or self.ever_active.shape != active.shape:  # meSimp removed units: start again
            self.ever_active = active
        else:
            self.ever_active |= active

    @torch.no_grad()
    def observe_gradient(self, g: torch.Tensor, kept: torch.Tensor) -> None:
        """g: the full output gradient (rows × outputs); kept: the values the selection kept, one row per example."""
        nonzero = g != 0
        self.nonzero += int(nonzero.sum())
        self.nonzero_negative += int((g < 0).sum())
        self.kept += int((kept != 0).sum())
        self.kept_negative += int((kept < 0).sum())
        norms = g.norm(dim=1)
        rows = norms > 0
        self.cosine_sum += (kept[rows].norm(dim=1) / norms[rows]).sum().item()
        self.cosine_rows += int(rows.sum())

    def report(self) -> dict[str, float | None]:
        def share(part: float, whole: float) -> float | None:
            return part / whole if whole else None

        fields = {
            "mean_abs_activation": share(self.abs_activation, self.activations),
            "dead_fraction": (None if self.ever_active is None
                              else 1.0 - self.ever_active.float().mean().item()),
            "nonzero_negative_fraction": share(self.nonzero_negative, self.nonzero),
            "kept_negative_fraction": share(self.kept_negative, self.kept),
            "gradient_cosine": share(self.cosine_sum, self.cosine_rows),
        }
        self.reset()
        return fields


class Diagnostics:
    """Attaches a LayerWatch to every hidden layer of the model; report() gives their fields, per layer."""

    def __init__(self, model: nn.Module, task_name: str) -> None:
        layers = model.feedforward_layers() if hasattr(model, "feedforward_layers") else []
        if not layers:
            raise ConfigError(f"trainer.diagnostics watches the hidden layers of a feed-forward network, and the "
                              f"{type(model).__name__} model of task={task_name} has none; use task=mnist_mlp, parse "
                              "or digits")
        self.watches = [LayerWatch() for _ in layers]
        self.device = next(model.parameters()).device
        for layer, watch in zip(layers, self.watches):
            layer.state.watch = watch

    def report(self) -> list[dict[str, Any]]:
        return [watch.report() for watch in self.watches]

    def state_dict(self) -> list[dict[str, Any]]:
        """The sums since the last report (a checkpoint inside an epoch keeps them)."""
        return [dict(vars(watch)) for watch in self.watches]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        """The sums of a checkpoint (read onto the CPU), the tensors among them onto the model's device."""
        for watch, sums in zip(self.watches, state):
            vars(watch).update({k: v.to(self.device) if torch.is_tensor(v) else v for k, v in sums.items()})
