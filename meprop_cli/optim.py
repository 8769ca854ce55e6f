"""The optimizers of the papers, built from the optim/ config group, and their row-sparse versions.

optim.sparse_update=true (off by default) swaps in LazyAdam / LazyAdagrad: a parameter whose gradient
is a sparse row tensor (meProp layers built with Sparsity.sparse_grad) has only those rows updated,
their optimizer state included; every other row, and its state, is left exactly as it was. Dense
gradients get the ordinary update. How this differs from the papers' unmodified optimizers:

- AdaGrad: not at all. A zero gradient row gets a zero AdaGrad step and adds nothing to its sum of
  squares, so the lazy update equals the dense one (tests/test_optim.py checks it).
- Adam: a row without gradient in a step keeps its moments and does not move, where dense Adam decays
  its moments and still moves it by lr·m̂/(√v̂+ε) (the momentum of earlier steps). The bias correction
  uses the global step count, as torch.optim.SparseAdam and TensorFlow's LazyAdam do.
- SGD (momentum 0, no weight decay): exact, as for AdaGrad.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

from meprop_cli.errors import ConfigError
from meprop_cli.ops import native


# optim.implementation as torch's keyword arguments. The three compute the same update, up to rounding.
IMPLEMENTATIONS = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for_loop": dict(foreach=False)}


def build_optimizer(cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    sparse = bool(cfg.get("sparse_update", False))
    # configs saved before the option existed ran torch's CPU default, the for-loop
    dense = IMPLEMENTATIONS[str(cfg.get("implementation", "for_loop"))]
    if cfg.name == "adam":
        if sparse:
            return LazyAdam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
                                **dense)
    if cfg.name == "adagrad":
        if sparse:
            return LazyAdagrad(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
        return torch.optim.Adagrad(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay, **dense)
    if sparse:
        if cfg.momentum or cfg.weight_decay:
            raise ConfigError("optim.sparse_update=true with sgd needs optim.momentum=0 and optim.weight_decay=0; "
                              "set them to 0 or use adam/adagrad")
        # torch's SGD updates only the rows of a sparse gradient when momentum and weight decay are 0, and only
        # in its for-loop
        dense = IMPLEMENTATIONS["for_loop"]
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **dense)


@torch.no_grad()
def clip_elements(params: Iterable[torch.Tensor], bound: float) -> None:
    """Clamp every gradient element to ±bound before the step (optim.clip; the C# code's ClipBound, 5)."""
    for p in params:
        if p.grad is not None:
            (p.grad._values() if p.grad.is_sparse else p.grad).clamp_(-bound, bound)


def rows_of(grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(rows, one gradient row per entry of rows) of a sparse row gradient; (None, grad) for a dense one."""
    if not grad.is_sparse:
        return None, grad.contiguous()
    if not grad.is_coalesced():  # a weight used twice in the graph (an LSTM over time) sums its gradients
        grad = grad.coalesce()
    return grad.indices()[0].contiguous(), grad.values().contiguous()


class RowSparseOptimizer(torch.optim.Optimizer):
    """The step loop of the lazy optimizers: each parameter's state, then one row-wise update (subclasses)."""

    def new_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def update(self, p: torch.Tensor, state: dict[str, Any], rows: torch.Tensor | None, grad: torch.Tensor,
               group: dict[str, Any]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, **self.new_state(p))
                state["step"] += 1
                rows, grad = rows_of(p.grad)
                self.update(p, state, rows, grad, group)
        return loss


def zeros_state(p: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(p, memory_format=torch.contiguous_format)


class LazyAdam(RowSparseOptimizer):
    """torch.optim.Adam, except that a sparse row gradient updates only its rows (module doc)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def new_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(exp_avg=zeros_state(p), exp_avg_sq=zeros_state(p))

    def update(self, p, state, rows, grad, group) -> None:
        beta1, beta2 = group["betas"]
        native.adam_rows(p, state["exp_avg"], state["exp_avg_sq"], grad, rows, lr=group["lr"], beta1=beta1,
                         beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"], step=state["step"])


class LazyAdagrad(RowSparseOptimizer):
    """torch.optim.Adagrad (lr_decay 0), updating only the rows of a sparse row gradient: the same steps."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-2, eps: float = 1e-10,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    def new_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(sum=zeros_state(p))

    def update(self, p, state, rows, grad, group) -> None:
        native.adagrad_rows(p, state["sum"], grad, rows, lr=group["lr"], eps=group["eps"],
                            weight_decay=group["weight_decay"])
