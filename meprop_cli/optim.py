"""The optimizers of the papers, built from the optim/ config group."""
from __future__ import annotations

from typing import Any

import torch


def build_optimizer(cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
