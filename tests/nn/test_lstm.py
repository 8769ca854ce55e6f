"""The project's LSTM equals torch.nn.LSTM under full backprop, and meProp equals a masked reference."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import copy_from_torch
from meprop_cli.nn.lstm import BiLSTM, LSTMDirection, Packing
from meprop_cli.ops import Sparsity

LENGTHS = [6, 4, 4, 1]  # longest first; includes a one-token sequence


def padded_input(in_features: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(LENGTHS), max(LENGTHS), in_features, generator=g)
    for b, n in enumerate(LENGTHS):
        x[b, n:] = 0.0
    return x


def test_packing_reverse_reads_each_sequence_backwards():
    packing = Packing.from_lengths(LENGTHS)
    assert packing.batch_sizes == [4, 3, 3, 3, 1, 1]
    assert torch.equal(packing.reverse[packing.reverse], torch.arange(sum(LENGTHS)))
    rows, steps = packing.rows[packing.reverse], packing.steps[packing.reverse]
    lengths = torch.tensor(LENGTHS)
    assert torch.equal(rows, packing.rows)
    assert torch.equal(steps, lengths[packing.rows] - 1 - packing.steps)


def test_packing_rejects_unsorted_lengths():
    with pytest.raises(ValueError, match="longest first"):
        Packing.from_lengths([2, 3])


@pytest.mark.parametrize("sparsity", [None, Sparsity(k=5)], ids=["baseline", "k_equals_h"])
def test_bilstm_matches_torch_lstm_outputs_and_gradients(sparsity):
    torch.manual_seed(0)
    in_features, hidden = 7, 5
    reference = nn.LSTM(in_features, hidden, bidirectional=True)
    ours = BiLSTM(in_features, [hidden], sparsity)
    copy_from_torch(ours.layers[0][0], reference, "")
    copy_from_torch(ours.layers[0][1], reference, "_reverse")

    x_ref = padded_input(in_features).requires_grad_(True)
    packed = pack_padded_sequence(x_ref, torch.tensor(LENGTHS), batch_first=True)
    out_ref, _ = pad_packed_sequence(reference(packed)[0], batch_first=True)

    packing = Packing.from_lengths(LENGTHS)
    x_ours = x_ref.detach().clone().requires_grad_(True)
    out_ours = ours(x_ours[packing.rows, packing.steps], packing)
    assert torch.allclose(out_ours, out_ref[packing.rows, packing.steps], atol=1e-6)

    weights = torch.randn(out_ours.shape)
    (out_ref[packing.rows, packing.steps] * weights).sum().backward()
    (out_ours * weights).sum().backward()
    assert torch.allclose(x_ours.grad, x_ref.grad, atol=1e-6)
    for suffix, direction in (("", ours.layers[0][0]), ("_reverse", ours.layers[0][1])):
        grad_ih = getattr(reference, f"weight_ih_l0{suffix}").grad.chunk(4)
        grad_hh = getattr(reference, f"weight_hh_l0{suffix}").grad.chunk(4)
        grad_b = getattr(reference, f"bias_ih_l0{suffix}").grad.chunk(4)
        for j in range(4):
            assert torch.allclose(direction.weight_x[j].grad, grad_ih[j], atol=1e-6)
            assert torch.allclose(direction.weight_h[j].grad, grad_hh[j], atol=1e-6)
            assert torch.allclose(direction.bias[j].grad, grad_b[j], atol=1e-6)


class TopKGradient(torch.autograd.Function):
    """Identity forward; backward keeps the k largest |g| of each row (the masked reference)."""

    @staticmethod
    def forward(ctx, a, k):
        ctx.k = k
        return a.view_as(a)

    @staticmethod
    def backward(ctx, g):
        idx = g.abs().topk(ctx.k, dim=1).indices
        return torch.zeros_like(g).scatter_(1, idx, g.gather(1, idx)), None


def reference_direction(d: LSTMDirection, x: torch.Tensor, lengths: list[int], k: int) -> torch.Tensor:
    """The same cell in plain autograd, each gate pre-activation's gradient masked to its top-k."""
    outputs = torch.zeros(len(lengths), max(lengths), d.hidden_size)
    h = torch.zeros(len(lengths), d.hidden_size)
    c = torch.zeros_like(h)
    for t in range(max(lengths)):
        n = sum(1 for length in lengths if length > t)
        a = [TopKGradient.apply(x[:n, t] @ d.weight_x[j].t() + h[:n] @ d.weight_h[j].t() + d.bias[j], k)
             for j in range(4)]
        c = torch.sigmoid(a[1]) * c[:n] + torch.sigmoid(a[0]) * torch.tanh(a[2])
        h = torch.sigmoid(a[3]) * torch.tanh(c)
        outputs = outputs.index_put((torch.arange(n), torch.full((n,), t)), h)
    return outputs


def test_meprop_lstm_gradients_equal_masked_reference():
    torch.manual_seed(1)
    in_features, hidden, k = 6, 8, 3
    ours = LSTMDirection(in_features, hidden, Sparsity(k=k))
    x = padded_input(in_features, seed=2).requires_grad_(True)
    packing = Packing.from_lengths(LENGTHS)
    out = ours(x[packing.rows, packing.steps], packing.batch_sizes)
    weights = torch.randn(out.shape)
    (out * weights).sum().backward()
    ours_grads = [p.grad.clone() for p in ours.parameters()]
    ours_x_grad = x.grad.clone()

    ours.zero_grad()
    x.grad = None
    ref = reference_direction(ours, x, LENGTHS, k)
    (ref[packing.rows, packing.steps] * weights).sum().backward()
    assert torch.allclose(ours_x_grad, x.grad, atol=1e-6)
    for mine, theirs in zip(ours_grads, (p.grad for p in ours.parameters())):
        assert torch.allclose(mine, theirs, atol=1e-6)
    # and the sparsification really removed gradient: full backprop differs
    ours.zero_grad()
    ours.sparsity = None
    ours(x[packing.rows, packing.steps].detach(), packing.batch_sizes).mul(weights).sum().backward()
    assert not torch.allclose(ours.weight_h[0].grad, ours_grads[4], atol=1e-6)


def test_meprop_keeps_k_rows_per_gate_of_the_recurrent_weight_for_one_token():
    torch.manual_seed(3)
    hidden, k = 10, 2
    d = LSTMDirection(4, hidden, Sparsity(k=k))
    x = torch.randn(2, 4)  # one sequence of two tokens: the recurrent product runs once
    d(x, [1, 1]).sum().backward()
    for j in range(4):
        rows_with_gradient = int((d.weight_h[j].grad.abs().sum(dim=1) > 0).sum())
        assert rows_with_gradient == k
