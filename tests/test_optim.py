"""The row-sparse optimizers (optim.sparse_update): what they update, and what they leave alone."""
import pytest
import torch
from omegaconf import OmegaConf

from meprop_cli.errors import ConfigError
from meprop_cli.nn import MLP
from meprop_cli.ops import Sparsity
from meprop_cli.nn.linear import MePropLinear
from meprop_cli.optim import LazyAdagrad, LazyAdam, build_optimizer
from meprop_cli.train import train


def mlp(sparse_grad: bool, seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(12, [40, 40], 5, lambda a, b, role: MePropLinear(a, b, Sparsity(3, "topk", 0.0, sparse_grad)))


def train_steps(model, optimizer, steps=6):
    data = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(4, 12, generator=data), torch.randint(0, 5, (4,), generator=data)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def test_lazy_adam_on_dense_gradients_is_torch_adam(backend):
    dense, lazy = mlp(False), mlp(False)
    train_steps(dense, torch.optim.Adam(dense.parameters(), lr=1e-2, weight_decay=0.01))
    train_steps(lazy, LazyAdam(lazy.parameters(), lr=1e-2, weight_decay=0.01))
    for a, b in zip(dense.parameters(), lazy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_lazy_adagrad_on_sparse_rows_equals_dense_adagrad(backend):
    """A row without gradient gets no AdaGrad step at all: the lazy update is the paper's."""
    dense, lazy = mlp(False), mlp(True)
    train_steps(dense, torch.optim.Adagrad(dense.parameters(), lr=0.1, eps=1e-6))
    train_steps(lazy, LazyAdagrad(lazy.parameters(), lr=0.1, eps=1e-6))
    for a, b in zip(dense.parameters(), lazy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_sparse_sgd_equals_dense_sgd(backend):
    dense, lazy = mlp(False), mlp(True)
    train_steps(dense, torch.optim.SGD(dense.parameters(), lr=0.1))
    train_steps(lazy, torch.optim.SGD(lazy.parameters(), lr=0.1))
    for a, b in zip(dense.parameters(), lazy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda p: LazyAdam(p, lr=0.1), lambda p: LazyAdagrad(p, lr=0.1)],
                         ids=["adam", "adagrad"])
def test_sparse_update_leaves_untouched_rows_and_their_state_unchanged(backend, make):
    weight = torch.nn.Parameter(torch.randn(8, 5))
    optimizer = make([weight])
    weight.grad = torch.randn(8, 5)  # a dense step first, so every row has optimizer state
    optimizer.step()
    before = weight.detach().clone()
    state_before = {k: v.clone() for k, v in optimizer.state[weight].items() if torch.is_tensor(v)}
    rows = torch.tensor([1, 6])
    weight.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), torch.randn(2, 5), (8, 5), check_invariants=True)
    optimizer.step()
    untouched = torch.tensor([0, 2, 3, 4, 5, 7])
    assert torch.equal(weight.detach()[untouched], before[untouched])
    assert not torch.equal(weight.detach()[rows], before[rows])
    for name, old in state_before.items():
        new = optimizer.state[weight][name]
        assert torch.equal(new[untouched], old[untouched]), name
        assert not torch.equal(new[rows], old[rows]), name


def test_uncoalesced_row_gradients_are_summed(backend):
    weight = torch.nn.Parameter(torch.zeros(4, 3))
    twice = torch.sparse_coo_tensor(torch.tensor([[2, 2]]), torch.ones(2, 3), (4, 3), check_invariants=True)
    weight.grad = twice
    LazyAdagrad([weight], lr=1.0, eps=0.0).step()
    # AdaGrad's first step moves by lr·g/|g| = 1 per entry whatever the size of g, so check the state
    once = torch.nn.Parameter(torch.zeros(4, 3))
    once.grad = torch.sparse_coo_tensor(torch.tensor([[2]]), 2 * torch.ones(1, 3), (4, 3), check_invariants=True)
    reference = LazyAdagrad([once], lr=1.0, eps=0.0)
    reference.step()
    assert torch.equal(weight.detach(), once.detach())


def optim_cfg(**overrides):
    base = dict(name="adam", lr=1e-3, betas=[0.9, 0.999], eps=1e-8, momentum=0.0, weight_decay=0.0,
                sparse_update=False)
    return OmegaConf.create({**base, **overrides})


def test_build_optimizer_picks_the_row_sparse_optimizers():
    model = torch.nn.Linear(3, 2)
    assert isinstance(build_optimizer(optim_cfg(), model), torch.optim.Adam)
    assert isinstance(build_optimizer(optim_cfg(sparse_update=True), model), LazyAdam)
    assert isinstance(build_optimizer(optim_cfg(name="adagrad", sparse_update=True), model), LazyAdagrad)
    with pytest.raises(ConfigError, match="momentum=0"):
        build_optimizer(optim_cfg(name="sgd", momentum=0.9, sparse_update=True), model)


def test_training_with_sparse_update_learns_digits(make_cfg, tmp_path):
    cfg = make_cfg(["task=digits", "method=meprop", "optim.sparse_update=true", "trainer.max_epochs=2",
                    "trainer.progress=none", "trainer.threads=1", "trainer.checkpoint=false"])
    record = train(cfg, tmp_path)
    assert record["status"] == "completed"
    assert record["test"]["accuracy"] > 0.6  # chance is 0.1; dense-update meProp gets 0.74 here


@pytest.mark.parametrize("name", ["adam", "adagrad", "sgd"])
def test_the_optimizer_implementations_take_the_same_steps(name):
    """optim.implementation picks torch's kernels, not the update: fused and foreach equal the for-loop."""
    torch.manual_seed(0)
    models = {impl: torch.nn.Linear(30, 20) for impl in ("for_loop", "foreach", "fused")}
    for model in models.values():
        model.load_state_dict(models["for_loop"].state_dict())
    start = models["for_loop"].weight.detach().clone()
    optimizers = {impl: build_optimizer(optim_cfg(name=name, lr=0.01, implementation=impl), model)
                  for impl, model in models.items()}
    assert optimizers["fused"].defaults["fused"] and optimizers["foreach"].defaults["foreach"]
    for _ in range(20):
        grads = [torch.randn_like(p) for p in models["for_loop"].parameters()]
        for impl, model in models.items():
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            optimizers[impl].step()
    for impl in ("foreach", "fused"):
        for p, q in zip(models[impl].parameters(), models["for_loop"].parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert (models["fused"].weight - start).abs().max() > 0.01  # the steps moved the weights
