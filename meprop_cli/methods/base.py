"""The Method base: which k each layer's backward keeps, the hidden sizes, and the trainer's hooks.

A task never asks which method runs: it builds its layers through Method.make_linear (or, for layers
of its own such as an LSTM cell, Method.sparsity) and gets meProp, random-k or full backprop from that.
A method that acts while training runs (meSimp prunes neurons) overrides the hooks below; the trainer
calls them at fixed points and rebuilds the optimizer and weight average when a hook says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from meprop_cli.errors import ConfigError
from meprop_cli.nn.conv import MePropConv2d
from meprop_cli.nn.linear import MePropLinear
from meprop_cli.nn.shrink import ShrinkRecord
from meprop_cli.ops import Sparsity

ROLES = ("hidden", "output")


@dataclass
class Step:
    """Where training is when a step ends: epoch (1-based), the step within it and the epoch's length."""

    epoch: int
    step_in_epoch: int
    steps_in_epoch: int
    step: int  # updates since the run started


@dataclass
class Change:
    """What a hook did to the model. shrink: parameters lost neurons, as recorded (their optimizer state and
    weight average are cut to match); reset_optimizer: the optimizer starts afresh (moments, step count)."""

    shrink: ShrinkRecord | None = None
    reset_optimizer: bool = False
    reason: str = ""


@dataclass
class Method:
    name: str
    mode: str | None  # None: full back propagation
    hidden: list[int]  # the hidden sizes the model is built with
    k: int | None  # k for hidden layers
    k_output: int | None  # k for the output layer (None: full gradient)
    decay: float = 0.0
    sparse_grad: bool = False  # meProp layers hand sparse row gradients to the row-sparse optimizer
    dense_bias: bool = False  # meProp layers give the bias the whole output gradient (method.bias_grad=dense)
    topk_ratio: float | None = None  # meProp-CNN: share of each feature map's output gradient kept (None: full)

    def sparsity(self, role: str) -> Sparsity | None:
        """The sparsification of a layer's output gradient for role "hidden" or "output"."""
        if role not in ROLES:
            raise ValueError(f"unknown layer role {role!r}; use one of {ROLES}")
        k = self.k if role == "hidden" else self.k_output
        if self.mode is None or k is None:
            return None
        return Sparsity(k, self.mode, self.decay, self.sparse_grad, self.dense_bias)

    def make_linear(self, in_features: int, out_features: int, role: str) -> nn.Module:
        return MePropLinear(in_features, out_features, self.sparsity(role))

    def make_conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                  padding: int = 0, bias: bool = True) -> nn.Module:
        """A convolution whose output gradient keeps topk_ratio per feature map (full when topk_ratio is None)."""
        return MePropConv2d(in_channels, out_channels, kernel_size, stride, padding, self.topk_ratio,
                            self.decay if self.topk_ratio is not None else 0.0, bias)

    @classmethod
    def from_config(cls, cfg: Any, **extra: Any) -> "Method":
        """The method of a validated run config (meprop_cli.config.validate has run)."""
        method = cfg.method
        hidden = [int(h) for h in cfg.task.hidden]
        if method.hidden_is_k:
            hidden = [int(cfg.topk)] * len(hidden)
        uses_k = method.mode is not None
        return cls(
            name=method.name,
            mode=method.mode,
            hidden=hidden,
            k=int(cfg.topk) if uses_k else None,
            k_output=int(cfg.topk_output) if uses_k and cfg.topk_output is not None else None,
            decay=float(cfg.decay),
            sparse_grad=bool(cfg.optim.sparse_update),
            dense_bias=method.get("bias_grad", "sparse") == "dense",
            topk_ratio=float(cfg.topk_ratio) if method.conv_topk else None,
            **extra,
        )

    # -- hooks (the trainer calls these; the defaults do nothing) -------------------------------------
    def bind(self, model: nn.Module, task: Any) -> None:
        """Called once the model is built (also after a resume), before training. A method that overrides it
        calls this first."""
        if self.topk_ratio is not None and not any(isinstance(m, MePropConv2d) for m in model.modules()):
            raise ConfigError(f"method={self.name} sparsifies the gradients of convolutions, and the "
                              f"{type(model).__name__} model of task={task.cfg.name} has none; use task=mnist_cnn")

    def on_epoch_start(self, epoch: int) -> Change | None:
        return None

    def on_batch_start(self, example_ids: torch.Tensor) -> None:
        """The training examples of the coming step, by their stable ids (Task.example_ids)."""

    def on_step_end(self, where: Step) -> Change | None:
        """After the optimizer step. Whatever shrinks the model must run inside nn.shrink.tracking_shrink."""
        return None

    def on_epoch_end(self, epoch: int) -> None:
        """After the epoch's last step, before dev is scored."""

    def metrics(self) -> dict[str, Any]:
        """Extra fields for the metrics.jsonl line of the next evaluation."""
        return {}

    def result_fields(self) -> dict[str, Any]:
        """Extra fields for result.json."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What last.pt must keep for a resumed run to continue exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

