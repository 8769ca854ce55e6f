"""scripts/bench_backprop.py runs and prints its tables (shapes shrunk by --quick; no timing checked)."""
import contextlib

import pytest
import torch

from conftest import copy_from_torch, load_script
from meprop_cli.results import read_benchmark
from meprop_cli.table import build_synthetic


@pytest.fixture
def bench():
    return load_script("bench_backprop")


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| setting") and not line.startswith("| task")]


def test_linear_table_has_every_setting_and_mode(bench, capsys):
    bench.main(["--quick", "--reps", "1"])
    rows = table_rows(capsys.readouterr().out)
    names = [r[0] for r in rows]
    for setting in ("MNIST layer 1", "MNIST layer 2", "parsing layer 1", "POS LSTM gates, 25 steps"):
        assert setting in names
    table7 = [r for r in rows if r[0].startswith("Table 7")]
    assert [r[3] for r in table7] == ["8", "32"]
    for r in rows:
        assert float(r[4]) == int(r[2].split("→")[1]) / int(r[3])  # ideal n/k
        assert len(r) == 13 and all(cell.endswith("x)") for cell in r[6:])  # each mode and peer: time (speedup)


@pytest.mark.parametrize("peer, mode", [("AuthorsLinearUnified", "unified"), ("AuthorsLinear", "topk")])
def test_the_authors_functions_compute_our_gradients(bench, peer, mode):
    """The ported peer is the same computation: dx and dW equal ours; db is the dense column sum in their code."""
    import torch
    from meprop_cli.ops import meprop_linear

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(7, 30, generator=gen, requires_grad=True)
    w = torch.randn(20, 30, generator=gen, requires_grad=True)
    b = torch.randn(20, generator=gen, requires_grad=True)
    g = torch.randn(7, 20, generator=gen)
    meprop_linear(x, w, b, 5, mode).backward(g)
    ours = x.grad.clone(), w.grad.clone()
    x.grad = None
    w_in_out = w.detach().t().contiguous().requires_grad_()
    b2 = b.detach().clone().requires_grad_()
    getattr(bench, peer).apply(x, w_in_out, b2, 5).backward(g)
    torch.testing.assert_close(x.grad, ours[0])
    torch.testing.assert_close(w_in_out.grad.t(), ours[1])
    torch.testing.assert_close(b2.grad, g.sum(0))
    assert (ours[1].abs().sum(1) > 0).sum() < 20  # the selection dropped rows: the check is not of a dense product


def test_out_appends_records_that_the_synthetic_table_reads(bench, capsys, tmp_path):
    out = tmp_path / "bench.jsonl"
    for _ in range(2):
        bench.main(["--quick", "--reps", "1", "--only", "Table 7", "--modes", "topk", "unified", "--out", str(out)])
    records = read_benchmark(out)
    assert len(records) == 2 * 2 * 2  # two runs × k 8, 32 × two modes
    assert {(r["k"], r["mode"]) for r in records} == {(8, "topk"), (32, "topk"), (8, "unified"), (32, "unified")}
    assert all(r["batch"] == 128 and r["in"] == r["out"] == 1024 and r["sparse_ms"] > 0 for r in records)
    table = build_synthetic(records)
    assert table.headers[:2] == ["name", "mode"]
    assert [row[-1] for row in table.rows] == ["2"] * 4  # each setting measured twice


def test_whole_step_compares_meprop_with_both_dense_paths_and_the_bound_on_the_parsing_shape(bench, capsys):
    bench.main(["--whole-step", "--quick", "--reps", "1", "--tasks", "parse_synthetic", "--heavy-steps", "1"])
    rows = table_rows(capsys.readouterr().out)
    assert [r[1] for r in rows] == ["baseline", bench.TORCH_LINEAR, "meprop", "meprop + sparse update",
                                    bench.FREE_LINEAR, bench.FREE_UPDATE]
    steps = [float(r[6]) for r in rows]
    assert all(step > 0 for step in steps)
    faster = min(steps[:2])  # the speedups are against the faster dense row
    # (from the printed, rounded steps: within a rounding of the script's own ratios)
    assert [float(r[-1].rstrip("x")) for r in rows] == pytest.approx([faster / step for step in steps], abs=0.011)
    linear_part = [float(r[4].split("(")[1].rstrip(")")) for r in rows[:5]]
    assert linear_part[1] == 0 and linear_part[4] == 0  # torch's path and the free one: untimed
    assert all(t > 0 for t in linear_part[:4] if t != linear_part[1])
    bound = rows[4]
    assert float(rows[5][6]) == pytest.approx(float(bound[3]) + float(bound[4].split()[0]), abs=0.02)  # no update


def test_the_free_linear_backward_gives_zero_gradients_of_every_shape(bench):
    """The bound's layers: F.linear's output, and a backward that only writes zeros (fresh dW and db)."""
    x = torch.randn(4, 6, requires_grad=True)
    w = torch.randn(3, 6, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    y = bench.FreeLinearProducts.apply(x, w, b)
    torch.testing.assert_close(y, torch.nn.functional.linear(x, w, b))
    y.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and b.grad.shape == b.shape
    assert not (x.grad.any() or w.grad.any() or b.grad.any())
    w2 = torch.randn(2, 3, requires_grad=True)
    x.grad = w.grad = None
    bench.FreeLinearProducts.apply(torch.relu(bench.FreeLinearProducts.apply(x, w, b)), w2, None).sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and w2.grad.shape == w2.shape  # through two layers


def test_torch_linear_trains_the_dense_layers_on_f_linear_with_the_same_gradients(bench):
    from meprop_cli.methods import Method
    from meprop_cli.ops import linear_backward_timer
    task = bench.SyntheticParsingTask(8, 12, 3)
    method = Method("baseline", None, [6], None, None)
    batch = next(task.train_batches(torch.Generator().manual_seed(0)))
    grads = []
    for dense_path in (False, True):
        torch.manual_seed(0)
        model = task.build_model(method)
        linear_backward_timer.reset()
        with bench.linear_path("torch") if dense_path else contextlib.nullcontext():
            task.loss(model, batch)[0].backward()
        timed = linear_backward_timer.reset()
        assert (timed == 0) == dense_path  # F.linear's backward is torch's, outside meProp's timer
        grads.append([p.grad for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_whole_step_reports_a_task_it_cannot_load(bench, capsys, tmp_path):
    bench.main(["--whole-step", "--quick", "--reps", "1", "--tasks", "mnist_mlp", "--data-root", str(tmp_path)])
    rows = table_rows(capsys.readouterr().out)
    assert rows[0][0] == "mnist_mlp" and rows[0][1].startswith("skipped: DataError")


def test_whole_step_compares_meprop_cnn_on_the_cnn(bench, capsys, real_data):
    bench.main(["--whole-step", "--reps", "1", "--steps", "2", "--tasks", "mnist_cnn", "--data-root", str(real_data)])
    rows = table_rows(capsys.readouterr().out)
    assert [r[1] for r in rows] == ["baseline", "meprop_cnn 5%", "meprop_cnn 5%, decay 0.6"]
    assert all(float(r[6]) > 0 for r in rows)


def test_the_torch_lstm_baseline_computes_the_bilstm_it_replaces(bench):
    """The POS row "baseline, torch.nn.LSTM" times torch's LSTM on the same function as the project's BiLSTM."""
    from meprop_cli.nn.lstm import BiLSTM, Packing

    torch.manual_seed(0)
    ours, packing = BiLSTM(6, [4]), Packing.from_lengths([3, 2, 2])
    theirs = bench.TorchBiLSTM(ours)
    copy_from_torch(ours.layers[0][0], theirs.lstm, "")
    copy_from_torch(ours.layers[0][1], theirs.lstm, "_reverse")
    x = torch.randn(7, 6)
    assert theirs.out_features == ours.out_features == 8
    torch.testing.assert_close(theirs(x, packing), ours(x, packing))


def test_the_torch_lstm_baseline_refuses_layers_of_different_sizes(bench):
    from meprop_cli.nn.lstm import BiLSTM

    with pytest.raises(ValueError, match="one hidden size"):
        bench.TorchBiLSTM(BiLSTM(6, [4, 3]))
