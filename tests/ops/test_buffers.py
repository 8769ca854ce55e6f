"""Reused backward outputs: the same memory step after step, never memory someone still holds."""
import pytest
import torch

from meprop_cli.ops import buffers, meprop_linear


@pytest.fixture
def small_reuse(monkeypatch):
    """Reuse from 1 KiB on, so that test-sized tensors take the large-output path."""
    monkeypatch.setattr(buffers, "REUSE_BYTES", 1024)
    buffers.clear()
    yield
    buffers.clear()


def test_a_released_buffer_is_handed_out_again(small_reuse):
    first = buffers.output((64, 32), torch.float32, torch.device("cpu"))
    address = first.data_ptr()
    del first
    assert buffers.output((64, 32), torch.float32, torch.device("cpu")).data_ptr() == address


def test_a_buffer_still_held_is_not_handed_out(small_reuse):
    held = buffers.output((64, 32), torch.float32, torch.device("cpu"))
    view = held.view(-1)  # a view holds the storage as well
    del held
    again = buffers.output((64, 32), torch.float32, torch.device("cpu"))
    assert again.data_ptr() != view.data_ptr()


def test_small_outputs_are_not_cached():
    buffers.clear()
    buffers.output((4, 4), torch.float32, torch.device("cpu"))
    assert not buffers._cache.by_key


@pytest.mark.parametrize("k, mode", [(None, "topk"), (3, "topk"), (3, "unified")])
def test_a_kept_input_gradient_survives_the_next_backward(small_reuse, k, mode):
    """x is not a leaf (as the embeddings' output is in parsing): its gradient comes out of the cache. One that a
    hook keeps must keep its values through the next step, and the next step's gradient must be right too."""
    torch.manual_seed(0)
    leaf = torch.randn(64, 16, requires_grad=True)
    w = torch.randn(9, 16, requires_grad=True)
    b = torch.randn(9, requires_grad=True)
    kept = []

    def step(g):
        x = leaf * 1.0
        x.register_hook(kept.append)
        meprop_linear(x, w, b, k, mode).backward(g)
        leaf.grad = None

    g1, g2 = torch.randn(64, 9), torch.randn(64, 9)
    step(g1)
    first = kept[0].clone()
    step(g2)
    assert kept[0].data_ptr() != kept[1].data_ptr()
    assert torch.equal(kept[0], first)
    x = leaf.detach().clone().requires_grad_()
    meprop_linear(x, w.detach(), b.detach(), k, mode).backward(g2)
    assert torch.allclose(kept[1], x.grad)


def test_released_input_gradients_reuse_one_buffer(small_reuse):
    """Nothing keeps the gradient (the usual training step): every step writes into the same memory."""
    torch.manual_seed(0)
    leaf = torch.randn(64, 16, requires_grad=True)
    w = torch.randn(9, 16)
    addresses = []

    def record(grad):
        addresses.append(grad.data_ptr())

    for _ in range(3):
        x = leaf * 1.0
        x.register_hook(record)  # reads the address only; the hook's argument is dropped after it returns
        meprop_linear(x, w, None, 3, "topk").backward(torch.randn(64, 9))
        leaf.grad = None
    assert len(set(addresses)) == 1
