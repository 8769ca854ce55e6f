"""The switches that give the authors' settings (lancopku/meProp C# and PyTorch), and the presets that set them."""
from __future__ import annotations

import math

import pytest
import torch

from meprop_cli.methods import build_method
from meprop_cli.nn.linear import MePropLinear, use_init
from meprop_cli.ops import meprop_linear
from meprop_cli.optim import clip_elements
from meprop_cli.train import Run, timed_step


@pytest.mark.parametrize("mode", ["topk", "unified", "random"])
@pytest.mark.parametrize("sparse_grad", [False, True])
def test_a_dense_bias_gradient_is_the_whole_output_gradient_and_a_sparse_one_only_the_kept_entries(mode,
                                                                                                  sparse_grad):
    torch.manual_seed(0)
    x = torch.randn(6, 9)
    weight = torch.randn(12, 9, requires_grad=True)
    bias = torch.randn(12, requires_grad=True)
    g = torch.randn(6, 12)
    grads = {}
    for dense in (False, True):
        torch.manual_seed(1)  # the same random-k draw for both
        meprop_linear(x, weight, bias, 3, mode, sparse_grad=sparse_grad, dense_bias=dense).backward(g)
        grads[dense] = (bias.grad.to_dense(), weight.grad.to_dense())
        bias.grad = weight.grad = None
    torch.testing.assert_close(grads[True][0], g.sum(0))
    kept_rows = grads[False][1].abs().sum(1) > 0  # the outputs that kept a gradient entry for some example
    assert not torch.allclose(grads[False][0], g.sum(0))
    assert torch.all(grads[False][0][~kept_rows] == 0)
    torch.testing.assert_close(grads[True][1], grads[False][1])  # the weights' gradient is the same


@pytest.mark.parametrize("init, weight_check, bias_check", [
    ("torch", lambda w, fi, fo: w.abs().max() <= 1 / math.sqrt(fi) and abs(w.std() - 1 / math.sqrt(3 * fi)) < 2e-3,
     lambda b, fi, fo: b.abs().max() <= 1 / math.sqrt(fi)),
    ("lancopku_csharp", lambda w, fi, fo: abs(w.std() - math.sqrt(6 / (fi + fo))) < 3e-3 and abs(w.mean()) < 2e-3,
     lambda b, fi, fo: torch.all(b == 0)),
    ("lancopku_pytorch", lambda w, fi, fo: w.abs().max() <= 1 / math.sqrt(fo)
     and abs(w.std() - 1 / math.sqrt(3 * fo)) < 1e-3, lambda b, fi, fo: b.abs().max() <= 1 / math.sqrt(fo)),
])
def test_each_initialisation_has_the_statistics_of_its_code(init, weight_check, bias_check):
    torch.manual_seed(0)
    layer = torch.nn.Sequential(MePropLinear(784, 500))
    use_init(layer, init)
    w, b = layer[0].weight.detach(), layer[0].bias.detach()
    assert weight_check(w, 784, 500) and bias_check(b, 784, 500)


def test_the_task_init_reaches_every_linear_layer_and_survives_a_reset(make_cfg, tmp_path):
    run = Run(make_cfg(["task.init=lancopku_csharp", "trainer.progress=none"]), tmp_path)
    run.setup()
    layers = [m for m in run.model.modules() if isinstance(m, MePropLinear)]
    assert len(layers) == 3 and all(torch.all(m.bias == 0) for m in layers)
    layers[0].reset_parameters()  # as meSimp's hidden_from does for a fresh start at new sizes
    assert torch.all(layers[0].bias == 0)


def test_summing_the_loss_scales_the_gradient_by_the_batch_size(make_cfg, tmp_path):
    run = Run(make_cfg(["optim=sgd", "optim.lr=0.01", "trainer.progress=none"]), tmp_path)
    run.setup()
    batch = next(iter(run.task.train_batches(torch.Generator().manual_seed(0))))
    start = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    steps = {}
    for sum_loss in (False, True):
        run.model.load_state_dict(start)
        torch.manual_seed(0)
        timed_step(run.task, run.model, run.optimizer, batch, dict.fromkeys(("forward_s", "backward_s", "update_s"),
                                                                           0.0), sum_loss=sum_loss)
        steps[sum_loss] = {n: p.detach() - start[n] for n, p in run.model.named_parameters()}
    for name in start:
        torch.testing.assert_close(steps[True][name], len(batch.targets) * steps[False][name])


def test_clipping_bounds_every_gradient_element_dense_or_row_sparse():
    dense = torch.nn.Parameter(torch.zeros(3, 4))
    dense.grad = torch.tensor([[9.0, -9.0, 0.5, -0.5]] * 3)
    sparse = torch.nn.Parameter(torch.zeros(5, 2))
    sparse.grad = torch.sparse_coo_tensor([[1, 3]], torch.tensor([[7.0, -0.5], [-8.0, 2.0]]), (5, 2),
                                          check_invariants=True).coalesce()
    clip_elements([dense, sparse], 1.0)
    assert dense.grad.tolist() == [[1.0, -1.0, 0.5, -0.5]] * 3
    assert sparse.grad.to_dense()[[1, 3]].tolist() == [[1.0, -0.5], [-1.0, 1.0]]


def test_a_clipped_sgd_step_moves_no_weight_more_than_lr_times_the_bound(make_cfg, tmp_path):
    run = Run(make_cfg(["optim=sgd", "optim.lr=1", "optim.clip=1e-4", "trainer.progress=none"]), tmp_path)
    run.setup()
    start = [p.detach().clone() for p in run.model.parameters()]
    batch = next(iter(run.task.train_batches(torch.Generator().manual_seed(0))))
    timed_step(run.task, run.model, run.optimizer, batch, dict.fromkeys(("forward_s", "backward_s", "update_s"), 0.0),
               clip=run.cfg.optim.clip)
    moves = torch.cat([(p.detach() - s).abs().flatten() for p, s in zip(run.model.parameters(), start)])
    assert moves.max() <= 1e-4 + 1e-6 and moves.max() > 0.9e-4  # float32 rounding of w + Δw


@pytest.mark.parametrize("preset, method, expected", [
    ("lancopku_pytorch", "meprop", {"task.hidden": [512, 512], "task.batch_size": 32, "task.dropout": 0.1,
                                    "task.init": "lancopku_pytorch", "topk": 30, "topk_output": None,
                                    "method.bias_grad": "dense", "optim.clip": None, "seed": 12976,
                                    "trainer.loss_reduction": "mean", "trainer.max_epochs": 20}),
    ("lancopku_pytorch_unified", "meprop_unified", {"task.hidden": [500, 500], "task.batch_size": 50, "topk": 30,
                                                    "task.dropout": 0.1, "method.mode": "unified"}),
    ("lancopku_csharp", "meprop", {"task.hidden": [500, 500], "task.batch_size": 100, "task.dropout": 0.0,
                                   "task.init": "lancopku_csharp", "topk": 160, "method.bias_grad": "dense",
                                   "optim.clip": 5.0, "optim.eps": 1e-8, "trainer.loss_reduction": "sum"}),
])
def test_the_presets_set_the_reference_codes_settings(make_cfg, preset, method, expected):
    from omegaconf import OmegaConf

    cfg = make_cfg([f"experiment={preset}", f"method={method}"])
    assert cfg.task.name == "mnist_mlp" and cfg.optim.name == "adam"
    for key, value in expected.items():
        got = OmegaConf.select(cfg, key)
        assert (list(got) if OmegaConf.is_list(got) else got) == value, key
    assert build_method(cfg).sparsity("hidden").dense_bias and build_method(cfg).sparsity("output") is None


def test_a_preset_gives_way_to_the_command_line(make_cfg):
    cfg = make_cfg(["experiment=lancopku_pytorch", "method=meprop", "topk=20", "seed=3", "task.dropout=0"])
    assert (cfg.topk, cfg.seed, cfg.task.dropout) == (20, 3, 0.0)
