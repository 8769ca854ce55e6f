"""The sparse backward kernels (compiled C and their torch twins) give the reference gradients.

The reference is the dense masked formula: top_k(g) as a dense matrix with zeros (ops.sparsify, or a
mask built from the indices a kernel chose), multiplied out in full.
"""
import pytest
import torch
import torch.nn.functional as F

from meprop_cli.ops import SelectionState, meprop_linear, native, sparsify

def grads(x, w, b, g, k, mode="topk", **kwargs):
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    meprop_linear(x, w, b, k, mode, **kwargs).backward(g)
    return x.grad, w.grad, b.grad


def reference(x, w, g_kept):
    """∂L/∂x, ∂L/∂W, ∂L/∂b of y = x Wᵀ + b for the dense masked output gradient g_kept."""
    g2, x2 = g_kept.reshape(-1, w.shape[0]), x.reshape(-1, w.shape[1])
    return (g2 @ w).reshape(x.shape), g2.t() @ x2, g2.sum(0)


def assert_close(got, want):
    """Equal up to float32 rounding, which grows with the size of the values summed in another order."""
    for a, b in zip(got, want):
        scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
        torch.testing.assert_close(a.to_dense() if a.is_sparse else a, b, rtol=1e-5, atol=2e-6 * scale)


SHAPES = [(1, 7, 5), (3, 33, 17), (10, 500, 784), (64, 41, 130), (257, 20, 9)]  # (batch, out, in)


@pytest.mark.parametrize("batch,n,m", SHAPES)
@pytest.mark.parametrize("k_of", [lambda n: 1, lambda n: max(1, n // 3), lambda n: n - 1, lambda n: n],
                         ids=["k=1", "k=n/3", "k=n-1", "k=n"])
def test_topk_gradients_equal_the_masked_reference(backend, batch, n, m, k_of):
    torch.manual_seed(batch * n + m)
    k = k_of(n)
    x, w, b, g = torch.randn(batch, m), torch.randn(n, m), torch.randn(n), torch.randn(batch, n)
    assert_close(grads(x, w, b, g, k), reference(x, w, sparsify(g, k)))


@pytest.mark.parametrize("sparse_grad", [False, True])
def test_unified_gradients_equal_the_masked_reference(backend, sparse_grad, monkeypatch):
    monkeypatch.setattr(native, "THIN_C_MIN", 0)  # the C products and scores even at this size
    monkeypatch.setattr(native, "COLUMN_SUM_C_MIN", 0)
    torch.manual_seed(3)
    x, w, b, g = torch.randn(50, 60), torch.randn(40, 60), torch.randn(40), torch.randn(50, 40)
    got = grads(x, w, b, g, 7, "unified", sparse_grad=sparse_grad)
    assert_close(got, reference(x, w, sparsify(g, 7, "unified")))
    assert got[1].is_sparse == sparse_grad


def test_ties_select_a_valid_topk_and_the_gradients_follow_it(backend):
    torch.manual_seed(4)
    g = torch.randint(-2, 3, (30, 25)).float()  # magnitudes 0, 1, 2 only: ties everywhere
    k = 6
    idx, val = native.select_topk(g, k)
    assert idx.shape == (30, k) and all(len(set(row)) == k for row in idx.tolist())
    kept = torch.zeros_like(g, dtype=torch.bool).scatter_(1, idx, True)
    weakest_kept = g.abs().masked_fill(~kept, float("inf")).min(1).values
    strongest_dropped = g.abs().masked_fill(kept, -1).max(1).values
    assert (weakest_kept >= strongest_dropped).all()
    assert torch.equal(val, g.gather(1, idx))
    x, w, b = torch.randn(30, 11), torch.randn(25, 11), torch.randn(25)
    assert_close(grads(x, w, b, g, k), reference(x, w, g * kept))


def test_compiled_ties_go_to_the_lower_index():
    if native.library() is None:
        pytest.skip("no C compiler")
    g = torch.tensor([[1.0, -3.0, 3.0, 2.0, -3.0, 3.0]])
    idx, val = native.select_topk(g, 3)
    assert idx.tolist() == [[1, 2, 4]] and val.tolist() == [[-3.0, 3.0, -3.0]]


@pytest.mark.parametrize("n, k", [(25, 6), (500, 20), (500, 200), (7, 7), (10, 1), (13, 5), (64, 63)])
def test_compiled_selection_is_the_order_larger_then_lower_index(n, k):
    """The k kept per row are those of a stable sort by descending |g| (ties to the lower index), ascending;
    rows with few distinct magnitudes, with all-zero rows, and rows of n not a multiple of k included (at 500,
    from 66 to 500 candidates a row: kth_largest's partition rounds on both sides of the pivot and its ranking)."""
    if native.library() is None:
        pytest.skip("no C compiler")
    torch.manual_seed(n * 100 + k)
    g = torch.cat([torch.randn(20, n), torch.randint(-2, 3, (20, n)).float(), torch.zeros(2, n)])
    idx, val = native.select_topk(g, k)
    order = torch.sort(g.abs(), dim=1, descending=True, stable=True).indices[:, :k]
    assert torch.equal(idx, order.sort(dim=1).values)
    assert torch.equal(val, g.gather(1, idx))
    score = torch.rand(g.shape)  # a given score (random-k, run_grad): its order, g's values
    idx, val = native.select_topk(g, k, score)
    order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :k]
    assert torch.equal(idx, order.sort(dim=1).values) and torch.equal(val, g.gather(1, idx))


def test_non_contiguous_inputs_weight_and_gradient(backend):
    torch.manual_seed(5)
    x = torch.randn(40, 12).t()  # (12, 40), a transposed view
    w = torch.randn(30, 80)[:, ::2]  # (30, 40), every other column
    b = torch.randn(30)
    g = torch.randn(30, 12).t()  # (12, 30)
    assert not (x.is_contiguous() or w.is_contiguous() or g.is_contiguous())
    assert_close(grads(x, w, b, g, 4), reference(x, w, sparsify(g.contiguous(), 4)))


def test_leading_dimensions_are_rows(backend):
    torch.manual_seed(6)
    x, w, b, g = torch.randn(2, 5, 9), torch.randn(13, 9), torch.randn(13), torch.randn(2, 5, 13)
    kept = sparsify(g.reshape(-1, 13), 3).reshape(g.shape)
    assert_close(grads(x, w, b, g, 3), reference(x, w, kept))


def test_float64_takes_the_torch_path_and_matches(backend):
    torch.manual_seed(7)
    x, w, b, g = (torch.randn(*s, dtype=torch.float64) for s in [(8, 6), (10, 6), (10,), (8, 10)])
    got = grads(x, w, b, g, 3)
    want = reference(x, w, sparsify(g, 3))
    for a, c in zip(got, want):
        torch.testing.assert_close(a, c)


def test_random_mode_keeps_the_k_entries_drawn_from_torch_rng(backend):
    torch.manual_seed(8)
    x, w, b, g = torch.randn(16, 9), torch.randn(30, 9), torch.randn(30), torch.randn(16, 30)
    torch.manual_seed(99)
    got = grads(x, w, b, g, 5, "random")
    torch.manual_seed(99)
    idx = torch.rand(g.shape).topk(5, dim=1).indices  # the draw the backward makes, selected the same way
    kept = torch.zeros_like(g, dtype=torch.bool).scatter_(1, idx, True)
    assert_close(got, reference(x, w, g * kept))


def test_decay_selects_on_run_grad_like_the_reference(backend):
    torch.manual_seed(9)
    x, w, b = torch.randn(6, 8), torch.randn(20, 8), torch.randn(20)
    state, ref_state = SelectionState(), SelectionState()
    for step in range(3):
        g = torch.randn(6, 20)
        got = grads(x, w, b, g, 4, decay=0.6, state=state)
        assert_close(got, reference(x, w, sparsify(g, 4, decay=0.6, state=ref_state)))
    torch.testing.assert_close(state.run_grad, ref_state.run_grad)


@pytest.mark.parametrize("mode", ["topk", "random", "unified"])
def test_sparse_grad_holds_exactly_the_touched_rows(backend, mode):
    torch.manual_seed(10)
    x, w, b, g = torch.randn(4, 15), torch.randn(50, 15), torch.randn(50), torch.randn(4, 50)
    torch.manual_seed(1)
    dense = grads(x, w, b, g, 3, mode)
    torch.manual_seed(1)
    sparse = grads(x, w, b, g, 3, mode, sparse_grad=True)
    assert sparse[1].is_sparse and sparse[2].is_sparse and not sparse[0].is_sparse
    assert_close(sparse, dense)
    rows = sparse[1].coalesce().indices()[0]
    touched = torch.nonzero(dense[1].abs().sum(1)).flatten()
    assert set(rows.tolist()) >= set(touched.tolist()) and len(rows) <= 4 * 3
    assert torch.equal(rows, sparse[2].coalesce().indices()[0])


@pytest.mark.parametrize("touched_only", [False, True])
@pytest.mark.parametrize("need", [(True, True, True), (False, True, False), (True, False, True)])
def test_the_one_call_backward_equals_the_four_kernels_in_turn(backend, touched_only, need):
    torch.manual_seed(11)
    x, w, g = torch.randn(6, 21), torch.randn(40, 21), torch.randn(6, 40)
    score = torch.rand(6, 40)
    idx, val, dx, dw, db, rows = native.topk_backward(g, 5, score, w, x, *need, touched_only=touched_only)
    want_idx, want_val = native.select_topk(g, 5, score)
    assert torch.equal(idx, want_idx) and torch.equal(val, want_val)
    want_rows, pos = native.touched_rows(idx, 40) if touched_only else (None, None)
    assert (rows is None) == (not touched_only) and (rows is None or torch.equal(rows, want_rows))
    want = (native.grad_input(idx, val, w), native.grad_weight(idx, val, x, 40, want_rows, pos),
            native.grad_bias(idx, val, 40, want_rows, pos))
    for got, wanted, needed in zip((dx, dw, db), want, need):
        assert (got is None) == (not needed)
        if needed:
            torch.testing.assert_close(got, wanted, rtol=0, atol=0)


def test_k_at_least_n_is_exact_backprop(backend):
    torch.manual_seed(11)
    x, w, b, g = torch.randn(5, 7), torch.randn(9, 7), torch.randn(9), torch.randn(5, 9)
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    F.linear(xr, wr, br).backward(g)
    assert_close(grads(x, w, b, g, 9), (xr.grad, wr.grad, br.grad))


def test_large_problem_uses_threads_and_matches(backend):
    """Big enough for the compiled kernels to split the work between threads."""
    torch.manual_seed(12)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, w, b, g = torch.randn(600, 300), torch.randn(200, 300), torch.randn(200), torch.randn(600, 200)
        assert_close(grads(x, w, b, g, 20), reference(x, w, sparsify(g, 20)))
        assert_close(grads(x, w, b, g, 20, sparse_grad=True), reference(x, w, sparsify(g, 20)))
    finally:
        torch.set_num_threads(threads)


# (rows, k, m) on and off the C tiles: 4 rows x 32 columns, 64 rows of dx per task, 16 rows of x per dW_k pass;
# the last three are big enough for two threads (rows * k * m >= 2^20)
THIN_SHAPES = [(1, 1, 1), (3, 5, 31), (70, 7, 33), (130, 4, 64), (17, 20, 100), (257, 13, 330), (600, 9, 300),
               (300, 3, 2400)]


@pytest.mark.parametrize("rows,k,m", THIN_SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_unified_thin_products_equal_the_dense_ones(backend, rows, k, m, threads, monkeypatch):
    monkeypatch.setattr(native, "THIN_C_MIN", 0)  # C at every size (by default only large products go to C)
    torch.manual_seed(rows + k + m)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g_k, w_k, x = torch.randn(rows, k), torch.randn(k, m), torch.randn(rows, m)
        out = torch.full((rows, m), float("nan"))
        assert native.thin_product(g_k, w_k, out=out) is out
        want_x, want_w = (g_k.double() @ w_k.double()).float(), (g_k.double().t() @ x.double()).float()
        assert_close([out, native.thin_product(g_k, w_k), native.thin_product_t(g_k, x)], [want_x, want_x, want_w])
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("rows,n", [(1, 1), (5, 7), (33, 8), (1000, 500)])
def test_unified_scores_are_the_column_sums_of_abs_g(backend, rows, n, monkeypatch):
    monkeypatch.setattr(native, "COLUMN_SUM_C_MIN", 0)
    torch.manual_seed(rows * n)
    g = torch.randn(rows, n)
    torch.testing.assert_close(native.column_abs_sum(g), g.double().abs().sum(0).float(), rtol=1e-5, atol=1e-5)


def test_missing_compiler_falls_back_to_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("MEPROP_KERNEL_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    assert native.backend() == "torch"
    x, w, b, g = torch.randn(3, 4), torch.randn(6, 4), torch.randn(6), torch.randn(3, 6)
    assert_close(grads(x, w, b, g, 2), reference(x, w, sparsify(g, 2)))
    monkeypatch.setattr(native, "_tried", False)  # let later tests build again
