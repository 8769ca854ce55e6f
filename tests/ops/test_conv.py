"""meprop_conv2d against the meProp-CNN paper's rule, with the per-feature-map top-k written here by loops."""
import pytest
import torch
import torch.nn.functional as F

from meprop_cli.ops import SelectionState, native
from meprop_cli.ops.conv import GradientStats, feature_map_sparsify, keep_count, meprop_conv2d


def reference_keep_mask(score, k):
    """0/1 mask: for each channel c, the k largest of score[:, c] over all (example, row, column), by loops."""
    batch, channels, height, width = score.shape
    mask = torch.zeros_like(score)
    for c in range(channels):
        cells = [(n, i, j) for n in range(batch) for i in range(height) for j in range(width)]
        cells.sort(key=lambda cell: -float(score[cell[0], c, cell[1], cell[2]]))
        for n, i, j in cells[:k]:
            mask[n, c, i, j] = 1.0
    return mask


def grads(x, w, b, g, stride=1, padding=2, ratio=None, **kw):
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    meprop_conv2d(x, w, b, stride, padding, ratio, **kw).backward(g)
    return x.grad, w.grad, b.grad


def dense_grads(x, w, b, g, stride=1, padding=2):
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    F.conv2d(x, w, b, stride, padding).backward(g)
    return x.grad, w.grad, b.grad


@pytest.fixture
def problem():
    torch.manual_seed(0)
    x = torch.randn(3, 2, 9, 9, dtype=torch.float64)
    w = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    g = torch.randn(3, 4, 9, 9, dtype=torch.float64)  # the output gradient for stride 1, padding 2
    return x, w, b, g


@pytest.mark.parametrize("ratio, size, k", [
    (0.05, 1000, 50),  # the paper's example: 5% of 1000 is 50
    (0.05, 7840, 392),  # conv1 of the MNIST CNN at batch 10: 10·28·28 per feature map
    (0.05, 1960, 98),  # conv2: 10·14·14
    (0.07, 50, 4),  # 3.5 rounds half up
    (0.3, 7, 2),  # 2.1 rounds down
    (0.05, 10, 1),  # 0.5 rounds up to 1
    (0.01, 10, 1),  # never fewer than one entry per map
    (1.0, 243, 243),
])
def test_keep_count_rounds_the_ratio_to_the_nearest_integer(ratio, size, k):
    assert keep_count(ratio, size) == k


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.01])
def test_keep_count_rejects_ratios_outside_zero_to_one(ratio):
    with pytest.raises(ValueError, match="topk_ratio"):
        keep_count(ratio, 100)


@pytest.mark.parametrize("shape, ratio", [((3, 4, 9, 9), 0.1), ((1, 3, 5, 7), 0.3), ((2, 1, 4, 4), 0.5)])
def test_top_k_is_taken_per_feature_map_over_batch_and_positions(shape, ratio):
    torch.manual_seed(1)
    g = torch.randn(shape, dtype=torch.float64)
    k = keep_count(ratio, shape[0] * shape[2] * shape[3])
    expected = g * reference_keep_mask(g.abs(), k)
    kept = feature_map_sparsify(g, ratio)
    assert kept.shape == g.shape and torch.equal(kept, expected)
    assert ((kept != 0).sum(dim=(0, 2, 3)) == k).all()


def test_a_loud_feature_map_does_not_take_the_quiet_maps_share():
    g = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    g[:, 0] *= 1000.0  # a single top-k over all maps would keep only map 0
    kept = feature_map_sparsify(g, 0.25)
    assert ((kept != 0).sum(dim=(0, 2, 3)) == 8).all()


def test_ties_keep_exactly_k_entries_of_the_largest_magnitude():
    g = torch.tensor([[[[3.0, -3.0], [3.0, 1.0]]], [[[-3.0, 0.5], [2.0, 3.0]]]])  # five |3| in one map of 8
    kept = feature_map_sparsify(g, 0.25)  # k = 2
    assert int((kept != 0).sum()) == 2
    assert sorted(kept[kept != 0].abs().tolist()) == [3.0, 3.0]
    assert torch.equal(kept[kept != 0], g[kept != 0])  # kept entries keep their value and sign


@pytest.mark.parametrize("stride, padding, side", [(1, 2, 9), (2, 1, 4), (1, 0, 5)])
def test_gradients_are_the_dense_convolutions_on_the_sparsified_gradient(problem, stride, padding, side):
    x, w, b, _ = problem
    g = torch.randn(3, 4, side, side, dtype=torch.float64)
    k = keep_count(0.1, 3 * side * side)
    expected = dense_grads(x, w, b, g * reference_keep_mask(g.abs(), k), stride, padding)
    for got, want in zip(grads(x, w, b, g, stride, padding, 0.1), expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("ratio", [None, 1.0])
def test_ratio_one_or_none_is_dense_autograd(problem, ratio):
    x, w, b, g = problem
    for got, want in zip(grads(x, w, b, g, ratio=ratio), dense_grads(x, w, b, g)):
        torch.testing.assert_close(got, want)


def test_run_grad_decays_across_two_steps_and_chooses_the_kept_entries(problem):
    x, w, b, _ = problem
    decay, ratio = 0.6, 0.1
    k = keep_count(ratio, 3 * 9 * 9)
    torch.manual_seed(2)
    g1 = torch.randn(3, 4, 9, 9, dtype=torch.float64) * 10.0  # a loud first step that run_grad remembers
    g2 = torch.randn(3, 4, 9, 9, dtype=torch.float64)
    state = SelectionState()
    grads(x, w, b, g1, ratio=ratio, decay=decay, state=state)
    torch.testing.assert_close(state.run_grad, g1.abs().transpose(0, 1).reshape(4, -1))  # step 1: |g1|
    _, w_grad, b_grad = grads(x, w, b, g2, ratio=ratio, decay=decay, state=state)
    run_grad = decay * g1.abs() + (1 - decay) * g2.abs()  # eq. 15
    torch.testing.assert_close(state.run_grad, run_grad.transpose(0, 1).reshape(4, -1))
    mask = reference_keep_mask(run_grad, k)
    assert not torch.equal(mask, reference_keep_mask(g2.abs(), k))  # the decay changed the choice
    _, want_w, want_b = dense_grads(x, w, b, g2 * mask)
    torch.testing.assert_close(w_grad, want_w)
    torch.testing.assert_close(b_grad, want_b)


def test_decay_zero_ignores_the_previous_step(problem):
    x, w, b, g = problem
    state = SelectionState()
    grads(x, w, b, g * 100.0, ratio=0.1, state=state)
    _, w_grad, _ = grads(x, w, b, g.flip(0), ratio=0.1, state=state)
    g2 = g.flip(0)
    _, want, _ = dense_grads(x, w, b, g2 * reference_keep_mask(g2.abs(), keep_count(0.1, 243)))
    torch.testing.assert_close(w_grad, want)


def test_stats_count_nonzero_gradient_before_and_after_the_top_k(problem):
    x, w, b, g = problem
    g = g.clone()
    g[:, :, :, :6] = 0.0  # a third of every map is already zero (as ReLU and max-pooling make it)
    stats = GradientStats()
    grads(x, w, b, g, ratio=0.1, stats=stats)
    k = keep_count(0.1, 243)
    summary = stats.summary()
    assert summary["steps"] == 1
    assert summary["first_step_nonzero"] == pytest.approx(1 / 3)
    assert summary["mean_nonzero_after_topk"] == pytest.approx(4 * k / g.numel())


def test_maps_already_sparser_than_k_keep_all_their_nonzero_entries(problem):
    x, w, b, g = problem
    g = g.clone()
    g[:, 1:] *= (torch.rand(3, 3, 9, 9, generator=torch.Generator().manual_seed(3)) < 0.03).double()  # few left
    k = keep_count(0.1, 243)
    assert ((g != 0).sum(dim=(0, 2, 3))[1:] <= k).all() and int((g[:, 0] != 0).sum()) > k
    expected = g * reference_keep_mask(g.abs(), k)
    assert torch.equal(feature_map_sparsify(g, 0.1), expected)
    for got, want in zip(grads(x, w, b, g, ratio=0.1), dense_grads(x, w, b, expected)):
        torch.testing.assert_close(got, want)



# -- float32: the compiled kernels (kernels.c) and their torch twins -----------------------------------

def sparse_gradient(shape, zero_fraction, seed):
    """A float32 gradient with about zero_fraction of its entries exactly zero (as ReLU + pooling leave it)."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(shape, generator=gen)
    return g * (torch.rand(shape, generator=gen) >= zero_fraction)


def assert_close32(got, want):
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(b.abs().max())))


@pytest.mark.parametrize("zero_fraction", [0.0, 0.8, 0.99])
@pytest.mark.parametrize("shape, ratio", [((3, 4, 9, 9), 0.1), ((10, 6, 14, 14), 0.05), ((2, 3, 5, 7), 0.5)])
def test_float32_selection_keeps_the_reference_entries(backend, shape, ratio, zero_fraction):
    g = sparse_gradient(shape, zero_fraction, seed=shape[1])
    k = keep_count(ratio, shape[0] * shape[2] * shape[3])
    kept = feature_map_sparsify(g, ratio)  # ties are only among zeros here, so the kept values are unique
    assert torch.equal(kept, g * reference_keep_mask(g.abs(), k))


@pytest.mark.parametrize("zero_fraction", [0.0, 0.9])
@pytest.mark.parametrize("stride, padding, side, c_in", [(1, 2, 9, 2), (2, 1, 4, 3), (1, 0, 5, 1), (2, 2, 5, 32)])
def test_float32_gradients_are_the_dense_convolutions_on_the_sparsified_gradient(backend, stride, padding, side,
                                                                                  c_in, zero_fraction):
    torch.manual_seed(side + c_in)
    x, w, b = torch.randn(3, c_in, 9, 9), torch.randn(5, c_in, 5, 5), torch.randn(5)
    g = sparse_gradient((3, 5, side, side), zero_fraction, seed=side)
    mask = reference_keep_mask(g.abs(), keep_count(0.1, 3 * side * side))
    assert_close32(grads(x, w, b, g, stride, padding, 0.1), dense_grads(x, w, b, g * mask, stride, padding))


def test_float32_first_layer_needs_no_input_gradient(backend):
    torch.manual_seed(4)
    x, w, b, g = torch.randn(2, 1, 8, 8), torch.randn(3, 1, 5, 5), torch.randn(3), torch.randn(2, 3, 8, 8)
    w, b = w.requires_grad_(), b.requires_grad_()
    meprop_conv2d(x, w, b, 1, 2, 0.2).backward(g)
    mask = reference_keep_mask(g.abs(), keep_count(0.2, 128))
    _, want_w, want_b = dense_grads(x, w.detach(), b.detach(), g * mask)
    assert x.grad is None
    assert_close32((w.grad, b.grad), (want_w, want_b))


def test_float32_decay_selects_on_run_grad(backend):
    torch.manual_seed(5)
    x, w, b = torch.randn(3, 2, 9, 9), torch.randn(4, 2, 5, 5), torch.randn(4)
    g1, g2 = torch.randn(3, 4, 9, 9) * 10.0, torch.randn(3, 4, 9, 9)
    state = SelectionState()
    grads(x, w, b, g1, ratio=0.1, decay=0.6, state=state)
    got = grads(x, w, b, g2, ratio=0.1, decay=0.6, state=state)
    mask = reference_keep_mask(0.6 * g1.abs() + 0.4 * g2.abs(), keep_count(0.1, 243))
    assert_close32(got, dense_grads(x, w, b, g2 * mask))


def test_float32_conv_kernels_use_threads_and_match(backend):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(6)
        x, w, b = torch.randn(16, 32, 14, 14), torch.randn(64, 32, 5, 5), torch.randn(64)
        g = sparse_gradient((16, 64, 14, 14), 0.9, seed=6)
        g_maps = g.transpose(0, 1).reshape(64, -1)  # the reference by torch.topk (ties only among zeros)
        kept_maps = torch.zeros_like(g_maps)
        top = g_maps.abs().topk(keep_count(0.05, 16 * 196), dim=1).indices
        kept_maps.scatter_(1, top, g_maps.gather(1, top))
        kept = kept_maps.reshape(64, 16, 14, 14).transpose(0, 1)
        assert torch.equal(feature_map_sparsify(g, 0.05), kept)
        assert_close32(grads(x, w, b, g, 1, 2, 0.05), dense_grads(x, w, b, kept))
    finally:
        torch.set_num_threads(threads)


def test_compiled_selection_gives_ties_to_the_lower_position():
    if native.library() is None:
        pytest.skip("no C compiler")
    g = torch.tensor([[[[0.0, -2.0, 2.0, 1.0]]], [[[2.0, 0.0, -2.0, 0.0]]]])  # one map: 8 positions, four |2|
    positions, values = native.select_maps(g, 3)
    assert positions.tolist() == [[1, 2, 4]] and values.tolist() == [[-2.0, 2.0, 2.0]]
    positions, values = native.select_maps(g, 6)  # five nonzero: the lowest zero position fills the sixth
    assert positions.tolist() == [[0, 1, 2, 3, 4, 6]] and values.tolist() == [[0.0, -2.0, 2.0, 1.0, 2.0, -2.0]]
