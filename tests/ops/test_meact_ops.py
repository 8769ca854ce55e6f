"""meAct's layer: the active-set rule, the kernels against the masked reference, cached outputs, zero gradients."""
from __future__ import annotations

import pytest
import torch

from meprop_cli.nn import MeActLinear
from meprop_cli.ops import native
from meprop_cli.ops.activations import ACTIVATIONS
from meprop_cli.ops.meact import ActivityMemory, meact_linear
from meprop_cli.ops.native import csr


def test_the_threshold_rule_on_a_hand_made_record(backend):
    memory = ActivityMemory(4, 5, threshold=0.15)
    memory.grad_sum[0] = torch.tensor([5.0, 1.0, 2.0, 0.0, 2.0])  # total 10: shares .5 .1 .2 0 .2
    memory.grad_sum[1] = torch.tensor([1.0, 1.0, 1.0, 1.0, 16.0])  # shares .05 ×4, .8
    memory.grad_sum[2] = 0.0  # never recorded: every neuron computes
    memory.grad_sum[3] = torch.tensor([3.0, 3.0, 3.0, 3.0, 3.0])  # shares .2 each: all at or above .15
    mask = memory.active(torch.tensor([0, 1, 2, 3]))
    assert mask.tolist() == [[True, False, True, False, True], [False, False, False, False, True],
                             [True] * 5, [True] * 5]
    memory.threshold = 0.9  # above every share: the largest stays, so no example loses a whole layer
    assert memory.active(torch.tensor([0, 1])).tolist() == [[True, False, False, False, False],
                                                             [False, False, False, False, True]]
    # ids choose the rows; the pairs' places in the memory are id · neurons + neuron
    assert memory.active(torch.tensor([1])).tolist() == [[False, False, False, False, True]]
    offsets, cols, rows, flat = memory.plan(torch.tensor([3, 1]))
    assert offsets.tolist() == [0, 1, 2] and cols.tolist() == [0, 4] and rows.tolist() == [0, 1]
    assert flat.tolist() == [15, 9]


def test_csr_lists_each_rows_active_columns_in_order():
    mask = torch.tensor([[True, False, True], [False, False, False], [False, True, True]])
    offsets, cols = csr(mask)
    assert offsets.tolist() == [0, 2, 2, 4] and cols.tolist() == [0, 2, 1, 2]
    assert native.pair_rows(offsets).tolist() == [0, 0, 2, 2]


@pytest.mark.parametrize("shape", [(37, 70, 50), (3, 9, 4), (64, 128, 33), (70, 200, 300)])
def test_kernels_equal_the_masked_dense_reference(backend, shape):
    rows, m, n = shape
    torch.manual_seed(1)
    x, weight, bias = torch.randn(rows, m), torch.randn(n, m), torch.randn(n)
    mask = torch.rand(rows, n) < 0.3
    mask[1] = False  # an example with no active neuron at all
    offsets, cols = csr(mask)
    pair_rows = native.pair_rows(offsets)
    val = torch.randn(len(cols))
    dense_val = torch.zeros(rows, n)
    dense_val[pair_rows, cols] = val
    torch.testing.assert_close(native.active_forward(x, weight, bias, offsets, cols),
                               (x @ weight.t() + bias)[pair_rows, cols], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(native.active_forward(x, weight, None, offsets, cols),
                               (x @ weight.t())[pair_rows, cols], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(native.active_grad_input(offsets, cols, val, weight), dense_val @ weight,
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(native.active_grad_weight(offsets, cols, val, x, n), dense_val.t() @ x,
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(native.grad_bias(cols, val, n), dense_val.sum(0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "cube"])
def test_inactive_neurons_output_their_cached_activation_and_get_no_gradient(backend, activation):
    torch.manual_seed(2)
    rows, m, n, examples = 12, 20, 16, 30
    memory = ActivityMemory(examples, n, threshold=0.08)
    memory.grad_sum.uniform_(0, 1).pow_(3)
    memory.last.normal_()
    ids = torch.randperm(examples)[:rows]
    memory.ids, memory.acting = ids, True
    memory.grad_sum[ids[0]] = 0.0  # an example not recorded yet: all its neurons compute
    mask = memory.active(ids)
    assert 0 < mask.sum() < mask.numel() and mask[0].all()
    cached = memory.last[ids].clone()
    before = memory.grad_sum.clone()
    x = torch.randn(rows, m, requires_grad=True)
    weight, bias = torch.randn(n, m, requires_grad=True), torch.randn(n, requires_grad=True)
    out = meact_linear(x, weight, bias, activation, memory)
    f = ACTIVATIONS[activation]
    reference = torch.where(mask, f(x @ weight.t() + bias), cached)  # the masked reference
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
    assert torch.equal(out[~mask], cached[~mask])  # inactive: exactly the last activation
    # the memory now holds this encounter's activations
    torch.testing.assert_close(memory.last[ids], reference.detach(), rtol=1e-4, atol=1e-4)

    upstream = torch.randn(rows, n)
    out.backward(upstream)
    grads = [t.grad.clone() for t in (x, weight, bias)]
    for t in (x, weight, bias):
        t.grad = None
    y = x @ weight.t() + bias
    torch.where(mask, f(y), cached).backward(upstream)
    for got, want in zip(grads, (x.grad, weight.grad, bias.grad)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    never = ~mask.any(0)  # a neuron inactive for every example of the batch: its row gets nothing
    assert torch.all(grads[1][never] == 0) and torch.all(grads[2][never] == 0)
    # the record grew by |∂L/∂y| on the active pairs only
    y = y.detach()
    slope_ref = torch.autograd.functional.vjp(f, y, upstream)[1]
    added = memory.grad_sum[ids] - before[ids]
    torch.testing.assert_close(added, torch.where(mask, slope_ref.abs(), torch.zeros_like(y)), rtol=1e-4, atol=1e-5)


def test_the_warm_up_layer_is_the_plain_layer_and_records_gradients():
    torch.manual_seed(3)
    layer, plain = MeActLinear(6, 4), MeActLinear(6, 4)
    plain.load_state_dict(layer.state_dict())
    memory = ActivityMemory(10, 4, threshold=0.1)
    layer.memory = memory
    ids = torch.tensor([7, 2, 5])
    memory.ids = ids
    x = torch.randn(3, 6)
    out = layer.activated(x, "tanh")
    assert torch.equal(out, plain.activated(x, "tanh"))  # bit-identical to the layer without meAct
    upstream = torch.randn(3, 4)
    out.backward(upstream)
    plain.activated(x, "tanh").backward(upstream)
    assert torch.equal(layer.weight.grad, plain.weight.grad)
    y = (x @ layer.weight.t() + layer.bias).detach()
    torch.testing.assert_close(memory.grad_sum[ids], (upstream * (1 - torch.tanh(y) ** 2)).abs())
    torch.testing.assert_close(memory.last[ids], out.detach())
    assert memory.grad_sum[[0, 1, 3, 4, 6, 8, 9]].abs().sum() == 0
    layer.eval()  # test time: a normal forward, the memory untouched
    memory.ids = None
    assert torch.equal(layer.activated(x, "tanh"), plain.activated(x, "tanh"))


def test_a_layer_without_the_batch_ids_says_so():
    layer = MeActLinear(3, 2)
    layer.memory = ActivityMemory(5, 2, threshold=0.1)
    with pytest.raises(RuntimeError, match="ids of the batch"):
        layer.activated(torch.randn(4, 3), "relu")
