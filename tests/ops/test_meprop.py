"""meprop_linear against the paper's formulas, written here independently of the implementation."""
import pytest
import torch
import torch.nn.functional as F

from meprop_cli.ops import SelectionState, meprop_linear, sparsify
from meprop_cli.ops.timing import linear_backward_timer


def reference_grads(x, w, b, g, keep):
    """∂L/∂W = top_k(g)ᵀ x, ∂L/∂x = top_k(g) W, ∂L/∂b = Σ top_k(g), with keep the 0/1 mask of top_k."""
    gs = g * keep
    return gs @ w, gs.t() @ x, gs.sum(0)


def per_example_topk_mask(score, k):
    mask = torch.zeros_like(score)
    for row in range(score.shape[0]):
        order = sorted(range(score.shape[1]), key=lambda j: -float(score[row, j]))
        for j in order[:k]:
            mask[row, j] = 1.0
    return mask


def run(x, w, b, g, k, mode, **kw):
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    y = meprop_linear(x, w, b, k, mode, **kw)
    y.backward(g)
    return y, x.grad, w.grad, b.grad


@pytest.fixture
def problem():
    torch.manual_seed(0)
    rows, n_in, n_out = 6, 7, 9
    return (torch.randn(rows, n_in, dtype=torch.float64), torch.randn(n_out, n_in, dtype=torch.float64),
            torch.randn(n_out, dtype=torch.float64), torch.randn(rows, n_out, dtype=torch.float64))


def test_paper_example_top2_keeps_the_two_largest_magnitudes():
    g = torch.tensor([[1.0, 2.0, 3.0, -4.0]])
    assert sparsify(g, 2).tolist() == [[0.0, 0.0, 3.0, -4.0]]


@pytest.mark.parametrize("k", [1, 3, 8])
def test_topk_gradients_match_the_formulas(problem, k):
    x, w, b, g = problem
    y, gx, gw, gb = run(x, w, b, g, k, "topk")
    assert torch.allclose(y, F.linear(x, w, b))
    rx, rw, rb = reference_grads(x, w, b, g, per_example_topk_mask(g.abs(), k))
    assert torch.allclose(gx, rx) and torch.allclose(gw, rw) and torch.allclose(gb, rb)
    assert int((gw.abs().sum(1) > 0).sum()) <= min(w.shape[0], k * x.shape[0])


@pytest.mark.parametrize("k", [1, 4])
def test_unified_uses_one_index_set_from_column_sums(problem, k):
    x, w, b, g = problem
    _, gx, gw, gb = run(x, w, b, g, k, "unified")
    columns = g.abs().sum(0).topk(k).indices
    keep = torch.zeros_like(g)
    keep[:, columns] = 1.0
    rx, rw, rb = reference_grads(x, w, b, g, keep)
    assert torch.allclose(gx, rx) and torch.allclose(gw, rw) and torch.allclose(gb, rb)
    assert int((gw.abs().sum(1) > 0).sum()) == k  # exactly k rows of W learn


def test_random_keeps_k_entries_per_example_at_random_positions(problem):
    x, w, b, g = problem
    torch.manual_seed(3)
    _, gx, gw, gb = run(x, w, b, g, 3, "random")
    torch.manual_seed(3)
    keep_idx = torch.rand(g.shape).topk(3, dim=1, sorted=False).indices  # the op's draw, replayed
    keep = torch.zeros_like(g).scatter_(1, keep_idx, 1.0)
    rx, rw, rb = reference_grads(x, w, b, g, keep)
    assert torch.allclose(gx, rx) and torch.allclose(gw, rw) and torch.allclose(gb, rb)
    topk_keep = per_example_topk_mask(g.abs(), 3)
    assert not torch.equal(keep, topk_keep)  # random is not the top-k (true for this seed)


@pytest.mark.parametrize("mode", ["topk", "unified", "random"])
@pytest.mark.parametrize("k", [None, 9, 50])
def test_k_at_least_out_features_is_exact_backprop(problem, mode, k):
    x, w, b, g = problem
    _, gx, gw, gb = run(x, w, b, g, k, mode)
    xd, wd, bd = (t.clone().requires_grad_(True) for t in (x, w, b))
    F.linear(xd, wd, bd).backward(g)
    assert torch.allclose(gx, xd.grad) and torch.allclose(gw, wd.grad) and torch.allclose(gb, bd.grad)


def test_leading_dimensions_are_rows_of_the_batch():
    torch.manual_seed(1)
    x, w, b = torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    g = torch.randn(2, 3, 8, dtype=torch.float64)
    _, gx, gw, _ = run(x, w, b, g, 2, "topk")
    rx, rw, _ = reference_grads(x.reshape(6, 5), w, b, g.reshape(6, 8), per_example_topk_mask(g.reshape(6, 8).abs(), 2))
    assert gx.shape == x.shape and torch.allclose(gx.reshape(6, 5), rx) and torch.allclose(gw, rw)


def test_ties_keep_exactly_k_entries_of_maximal_magnitude():
    g = torch.tensor([[1.0, -1.0, 1.0, 0.5, 1.0]])
    kept = sparsify(g, 2)
    assert int((kept != 0).sum()) == 2
    assert torch.all(kept[kept != 0].abs() == 1.0)


def test_decay_selects_on_run_grad_across_steps():
    state = SelectionState()
    w = torch.eye(3, dtype=torch.float64)
    x = torch.eye(3, dtype=torch.float64)[:1]
    first = torch.tensor([[10.0, 0.0, 1.0]], dtype=torch.float64)
    second = torch.tensor([[0.0, 2.0, 1.0]], dtype=torch.float64)
    decay = 0.6
    for g in (first, second):
        xg = x.clone().requires_grad_(True)
        meprop_linear(xg, w, None, 1, "topk", decay=decay, state=state).backward(g)
    # run_grad = 0.6·|first| + 0.4·|second| = [6, 0.8, 1]: index 0 wins although |second| is largest at 1
    assert torch.allclose(state.run_grad, torch.tensor([[6.0, 0.8, 1.0]], dtype=torch.float64))
    assert xg.grad.tolist() == [[0.0, 0.0, 0.0]]  # the current gradient is 0 at the chosen index
    plain = x.clone().requires_grad_(True)
    meprop_linear(plain, w, None, 1, "topk").backward(second)
    assert plain.grad.tolist() == [[0.0, 2.0, 0.0]]


def test_backward_time_is_accumulated_by_the_timer(problem):
    x, w, b, g = problem
    linear_backward_timer.reset()
    run(x, w, b, g, 2, "topk")
    assert linear_backward_timer.reset() > 0.0
    assert linear_backward_timer.reset() == 0.0


def test_invalid_arguments_are_rejected(problem):
    x, w, b, _ = problem
    with pytest.raises(ValueError, match="mode"):
        meprop_linear(x, w, b, 2, "best")
    with pytest.raises(ValueError, match="k must be"):
        meprop_linear(x, w, b, 0)
