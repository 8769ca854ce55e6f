"""Shrinking models (meSimp): a pruned model computes what the original computes with those neurons masked."""
from __future__ import annotations

import pytest
import torch

from meprop_cli.methods import Method
from meprop_cli.nn import MLP
from meprop_cli.nn.lstm import BiLSTM, LSTMDirection, Packing
from meprop_cli.nn.shrink import fit_to_sizes, selection_states, tracking_shrink
from meprop_cli.ops import SelectionState, Sparsity, meprop_linear
from meprop_cli.tasks.pos import Batch, Tagger


def method(k=None, mode=None) -> Method:
    return Method(name="m", mode=mode, hidden=[], k=k, k_output=None)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_pruned_mlp_equals_the_original_with_the_neurons_masked(activation):
    torch.manual_seed(0)
    mlp = MLP(7, [6, 5], 3, method().make_linear, activation)
    x = torch.randn(4, 7)
    keep = [torch.tensor([0, 2, 5]), torch.tensor([1, 2, 3, 4])]
    masks = [torch.zeros(6).index_fill_(0, keep[0], 1), torch.zeros(5).index_fill_(0, keep[1], 1)]
    h = x
    for layer, mask in zip(mlp.hidden, masks):  # the masked original
        h = layer.activated(h, mlp.activation) * mask
    expected = mlp.output(h)
    for group, kept in enumerate(keep):
        mlp.keep_hidden(group, kept)
    assert mlp.hidden_sizes() == [3, 4]
    assert mlp.hidden[1].weight.shape == (4, 3) and mlp.output.weight.shape == (3, 4)
    torch.testing.assert_close(mlp(x), expected)


def lstm_outputs_with_cells_masked(lstm: BiLSTM, x, packing, masked: dict[int, torch.Tensor]):
    """The original BiLSTM with some cells' h held at 0: their output gate's bias at -1e9 (σ = 0 exactly)."""
    saved = []
    for group, cells in masked.items():
        depth, side = divmod(group, 2)
        bias = lstm.layers[depth][side].bias[3]
        saved.append((bias, bias.detach().clone()))
        with torch.no_grad():
            bias[cells] = -1e9
    out = lstm(x, packing)
    for bias, value in saved:
        with torch.no_grad():
            bias.copy_(value)
    return out


def test_pruned_bilstm_equals_the_original_with_cells_masked_both_directions_and_layers():
    torch.manual_seed(0)
    lstm = BiLSTM(5, [6, 4])
    packing = Packing.from_lengths([4, 3, 1])
    x = torch.randn(8, 5)
    # group 0/1: layer 1 left/right, group 2/3: layer 2 left/right
    keep = {0: torch.tensor([0, 1, 4]), 1: torch.tensor([2, 3, 4, 5]), 3: torch.tensor([0, 3])}
    removed = {g: torch.tensor([j for j in range(size) if j not in keep.get(g, range(size))])
               for g, size in enumerate(lstm.hidden_sizes()) if g in keep}
    full = lstm_outputs_with_cells_masked(lstm, x, packing, removed)
    columns = None
    for group, kept in keep.items():
        columns = lstm.keep_hidden(group, kept)
    assert lstm.hidden_sizes() == [3, 4, 4, 2] and lstm.out_features == 6
    # the last layer's surviving output columns: all of left (4), right cells 0 and 3
    assert columns.tolist() == [0, 1, 2, 3, 4, 7]
    torch.testing.assert_close(lstm(x, packing), full[:, columns])


def test_pruned_tagger_drops_the_output_columns_of_removed_cells():
    torch.manual_seed(0)
    tagger = Tagger(10, [3, 4], 5, [6], None, method().make_linear, 4, 2, 0.0)
    packing = Packing.from_lengths([3, 2])
    batch = Batch(torch.randint(0, 10, (5,)), torch.randint(0, 3, (5, 2)), torch.zeros(5, dtype=torch.long),
                  packing, [0, 1])
    tagger.eval()
    with torch.no_grad():
        tagger.lstm.layers[0][1].bias[3][[1, 4]] = -1e9  # right cells 1 and 4 masked
        expected = tagger(batch)
    tagger.keep_hidden(1, torch.tensor([0, 2, 3, 5]))
    assert tagger.hidden_sizes() == [6, 4] and tagger.output.weight.shape == (5, 10)
    torch.testing.assert_close(tagger(batch), expected)


def test_fit_to_sizes_rebuilds_a_pruned_model_for_its_checkpoint():
    torch.manual_seed(0)
    mlp = MLP(7, [6, 5], 3, method(3, "topk").make_linear)
    mlp.keep_hidden(0, torch.tensor([1, 3]))
    saved = mlp.state_dict()
    fresh = MLP(7, [6, 5], 3, method(3, "topk").make_linear)
    fit_to_sizes(fresh, mlp.hidden_sizes())
    fresh.load_state_dict(saved)
    x = torch.randn(2, 7)
    torch.testing.assert_close(fresh(x), mlp(x))
    with pytest.raises(ValueError, match="do not fit"):
        fit_to_sizes(fresh, [7, 5])


def test_the_shrink_record_gives_each_new_parameter_its_origin_and_cuts():
    torch.manual_seed(0)
    direction = LSTMDirection(3, 5)
    old_h = direction.weight_h[0]
    with tracking_shrink() as record:
        direction.keep_cells(torch.tensor([1, 4]))
    origin, slices = record.origin(direction.weight_h[0])
    assert origin is old_h and [d for d, _ in slices] == [0, 1]  # rows, then columns
    from meprop_cli.nn.shrink import apply_slices
    torch.testing.assert_close(apply_slices(old_h.detach(), slices), direction.weight_h[0].detach())
    assert len(record.origins) == 12  # 4 gates × (input weight, recurrent weight, bias)


def test_topk_record_counts_the_examples_whose_topk_held_each_output():
    torch.manual_seed(0)
    x = torch.randn(6, 4, requires_grad=True)
    w = torch.randn(5, 4, requires_grad=True)
    g = torch.randn(6, 5)
    g[0, :4] = 0  # example 0 has one nonzero entry: its top-2 takes a zero entry too
    counted = {}
    for count_zeros in (False, True):
        state = SelectionState()
        state.start_record(5, count_zeros)
        meprop_linear(x, w, None, 2, "topk", state=state).backward(g)
        counted[count_zeros] = state.hits.tolist()
        assert state.seen == 6
    top = g.abs().topk(2, dim=1).indices  # rows 1-5 have no ties; row 0's second pick is one of its zeros
    nonzero = top[g.gather(1, top) != 0]
    assert counted[False] == torch.bincount(nonzero, minlength=5).tolist()
    extra = [a - b for a, b in zip(counted[True], counted[False])]
    assert sum(extra) == 1 and extra.index(1) < 4  # the zero entry: counted only with count_zeros
    # k ≥ outputs: every example keeps every output; only its nonzero entries count
    full = SelectionState()
    full.start_record(5)
    meprop_linear(x, w, None, 5, "topk", state=full).backward(g)
    assert full.hits.tolist() == (g != 0).sum(0).tolist()
    # unified: one index set for the batch, each row's nonzero entries in it counted
    one = SelectionState()
    one.start_record(5)
    meprop_linear(x, w, None, 2, "unified", state=one).backward(g)
    cols = g.abs().sum(0).topk(2).indices
    expected = torch.zeros(5, dtype=torch.long)
    expected[cols] = (g[:, cols] != 0).sum(0)
    assert one.hits.tolist() == expected.tolist()


def test_lstm_products_hand_sparse_row_gradients_to_the_sparse_optimizer():
    torch.manual_seed(0)
    direction = LSTMDirection(4, 6, Sparsity(2, "topk", sparse_grad=True))
    out = direction(torch.randn(5, 4), [2, 2, 1])
    out.sum().backward()
    assert direction.weight_x[0].grad.is_sparse and direction.weight_h[0].grad.is_sparse
    assert direction.bias[0].grad.is_sparse


def test_selection_states_are_found_by_stable_names():
    lstm = BiLSTM(3, [2])
    mlp = MLP(3, [2], 2, method(1, "topk").make_linear)
    assert "layers.0.1.states_x.3" in selection_states(lstm)
    assert set(selection_states(mlp)) == {"hidden.0.state", "output.state"}
