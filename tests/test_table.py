"""`meprop table` on run folders written by the test: exact cells, skipped runs, every kind and format."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from fake_runs import timing, write_run
from meprop_cli import results, table
from meprop_cli.errors import UserError


def rows_by(built: table.Table, **match: str) -> list[dict[str, str]]:
    """The display rows whose cells equal match (header -> cell), as header -> cell dicts."""
    rows = [dict(zip(built.headers, row)) for row in built.rows]
    return [row for row in rows if all(row[h] == v for h, v in match.items())]


def one(built: table.Table, **match: str) -> dict[str, str]:
    found = rows_by(built, **match)
    assert len(found) == 1, (match, built.rows)
    return found[0]


@pytest.fixture
def sweep(tmp_path):
    """Two optimizers; Adam with two seeds; a failed run, an unfinished run and a run missing its timing."""
    root = tmp_path / "sweep"
    write_run(root, "adam/0", method="baseline", seed=1, dev=0.98, test=0.97, best_epoch=3, timing=timing(100.0))
    write_run(root, "adam/1", method="baseline", seed=2, dev=0.97, test=0.96, best_epoch=5, timing=timing(120.0))
    write_run(root, "adam/2", method="meprop", k=20, seed=1, dev=0.985, test=0.98, best_epoch=2, timing=timing(10.0))
    write_run(root, "adam/3", method="meprop", k=20, seed=2, dev=0.975, test=0.97, best_epoch=4, timing=timing(12.0))
    write_run(root, "adagrad/0", method="baseline", optimizer="adagrad", dev=0.96, test=0.95, best_epoch=7,
              timing=timing(90.0))
    write_run(root, "adagrad/1", method="meprop", optimizer="adagrad", k=10, dev=0.97, test=0.9512, best_epoch=6,
              timing=timing(3.0))
    write_run(root, "adagrad/2", method="meprop", optimizer="adagrad", k=40, dev=0.95, test=0.94, drop=("timing",))
    write_run(root, "broken/0", method="meprop", k=30, status="failed", error="ConfigError: topk=900 is larger")
    write_run(root, "broken/1", method="meprop", k=50, status=None,
              metrics=[{"epoch": 1, "step": 10, "train_loss": 0.5, "dev": {"accuracy": 0.9}}])
    return root


def test_main_table_has_the_papers_cells_with_seeds_aggregated(sweep):
    built, kind = table.make_table([sweep])
    assert kind == "main"
    assert built.headers == ["task", "optimizer", "method", "h", "k", "Iter", "backprop time (s)", "dev (%)",
                             "test (%)", "n"]
    base = one(built, optimizer="adam", method="baseline")
    assert base == {"task": "mnist_mlp", "optimizer": "adam", "method": "baseline", "h": "500", "k": "-",
                    "Iter": "4.0 ± 1.4", "backprop time (s)": "110.0 ± 14.1", "dev (%)": "97.50 ± 0.71",
                    "test (%)": "96.50 ± 0.71", "n": "2"}
    meprop = one(built, optimizer="adam", method="meprop")
    assert meprop["k"] == "20" and meprop["Iter"] == "3.0 ± 1.4"
    assert meprop["backprop time (s)"] == "11.0 ± 1.4 (10.0x)"  # 100/10 and 120/12, per seed
    assert meprop["dev (%)"] == "98.00 ± 0.71 (+0.50)" and meprop["test (%)"] == "97.50 ± 0.71 (+1.00)"


def test_each_optimizer_is_compared_with_its_own_baseline(sweep):
    built, _ = table.make_table([sweep], "main")
    ada = one(built, optimizer="adagrad", k="10")
    assert ada["backprop time (s)"] == "3.00 (30.0x)" and ada["Iter"] == "6"
    assert ada["dev (%)"] == "97.00 (+1.00)" and ada["test (%)"] == "95.12 (+0.12)"
    assert one(built, optimizer="adagrad", method="baseline")["backprop time (s)"] == "90.0"
    # rows: baselines first within an optimizer, then k ascending
    assert [(r[1], r[2], r[4]) for r in built.rows] == [
        ("adagrad", "baseline", "-"), ("adagrad", "meprop", "10"), ("adagrad", "meprop", "40"),
        ("adam", "baseline", "-"), ("adam", "meprop", "20")]


def test_a_missing_field_is_a_dash_not_a_crash(sweep):
    built, _ = table.make_table([sweep], "main")
    row = one(built, optimizer="adagrad", k="40")
    assert row["backprop time (s)"] == "-" and row["dev (%)"] == "95.00 (-1.00)"


def test_failed_and_unfinished_runs_are_listed_under_the_table_with_their_reason(sweep):
    built, _ = table.make_table([sweep], "main")
    assert len(built.rows) == 5  # neither broken run is a row
    notes = "\n".join(built.notes)
    assert f"{sweep / 'broken/0'}: failed: ConfigError: topk=900 is larger (after 20 epoch(s))" in notes
    assert f"{sweep / 'broken/1'}: unfinished: no result.json (still running, or killed): 1 epoch(s)" in notes
    text = table.render(built, "markdown")
    assert text.index("| adam | meprop |") < text.index("broken/0") and "broken/1" in text


def test_a_corrupt_result_json_is_reported_not_fatal(tmp_path):
    write_run(tmp_path, "good", method="baseline")
    bad = write_run(tmp_path, "bad", method="meprop")
    (bad / "result.json").write_text('{"task": "mnist_mlp", "meth')
    built, _ = table.make_table([tmp_path], "main")
    assert len(built.rows) == 1 and any(n.startswith(f"{bad}: unreadable: result.json is not JSON (Unterminated string")
                                        for n in built.notes)


def test_runs_without_a_baseline_of_the_same_seed_get_no_delta_and_a_note(tmp_path):
    write_run(tmp_path, "b", method="baseline", seed=1)
    write_run(tmp_path, "m", method="meprop", seed=7)
    built, _ = table.make_table([tmp_path], "main")
    assert "(" not in one(built, method="meprop")["test (%)"]
    assert any("1 run(s) have no baseline run" in note and str(tmp_path / "m") in note for note in built.notes)


def test_a_run_cut_short_keeps_its_speedup_with_a_note_that_its_epochs_differ(tmp_path):
    write_run(tmp_path, "b", method="baseline")
    write_run(tmp_path, "m", method="meprop", extra_result={"epochs_run": 12})  # interrupted, say
    write_run(tmp_path, "even", method="meprop", k=40)
    built, _ = table.make_table([tmp_path], "main")
    assert one(built, k="20")["backprop time (s)"] == "15.0 (1.0x)"
    uneven = [note for note in built.notes if "different number of epochs" in note]
    assert len(uneven) == 1 and f"{tmp_path / 'm'} (12 epochs, baseline 20)" in uneven[0]
    assert str(tmp_path / "even") not in uneven[0]


def test_settings_that_differ_outside_the_kinds_columns_get_their_own_column(tmp_path):
    write_run(tmp_path, "a", method="meprop", max_epochs=20, test=0.97)
    write_run(tmp_path, "b", method="meprop", max_epochs=5, test=0.93)
    built, _ = table.make_table([tmp_path], "main")
    assert "trainer.max_epochs" in built.headers and len(built.rows) == 2
    assert {r["trainer.max_epochs"]: r["test (%)"] for r in rows_by(built)} == {"20": "97.00", "5": "93.00"}


def test_weight_averaging_splits_settings_by_the_decay_used_not_by_where_its_default_came_from(tmp_path):
    write_run(tmp_path, "b", method="baseline", test=0.97, extra_config={"trainer.average_decay": 0.999})
    write_run(tmp_path, "m", method="meprop", test=0.96,
              extra_config={"trainer.average_decay": 0.999, "task.average_decay": 0.999})
    write_run(tmp_path, "plain", method="meprop", test=0.95, extra_config={"trainer.average_decay": 0.0})
    built, _ = table.make_table([tmp_path], "main")
    assert "task.average_decay" not in built.headers and "trainer.average_decay" in built.headers
    rows = {r["trainer.average_decay"]: r["test (%)"] for r in rows_by(built) if r["method"] == "meprop"}
    assert rows == {"0.999": "96.00 (-1.00)", "0": "95.00"}  # only the averaged run has an averaged baseline


def test_tasks_with_different_metrics_name_them(tmp_path):
    write_run(tmp_path, "m", method="baseline", test=0.97)
    parse = write_run(tmp_path, "p", task="parse", method="baseline")
    record = json.loads((parse / "result.json").read_text())
    record.update(dev={"uas": 0.9, "las": 0.8}, test={"uas": 0.8895, "las": 0.7})
    (parse / "result.json").write_text(json.dumps(record))
    built, _ = table.make_table([tmp_path], "main")
    assert built.headers[:2] == ["task", "metric"]
    assert one(built, task="parse")["metric"] == "uas" and one(built, task="parse")["test (%)"] == "88.95"
    assert one(built, task="mnist_mlp")["metric"] == "accuracy"


def test_the_same_seed_twice_is_flagged(tmp_path):
    write_run(tmp_path, "a", method="baseline", seed=1)
    write_run(tmp_path, "b", method="baseline", seed=1)
    built, _ = table.make_table([tmp_path], "main")
    assert one(built, method="baseline")["n"] == "2"
    assert any("seeds [1, 1]: the same seed twice" in note for note in built.notes)


def test_overall_time_table(sweep):
    built, _ = table.make_table([sweep], "overall")
    assert built.headers[5:] == ["forward (s)", "backward (s)", "update (s)", "total (s)", "wall (s)", "n"]
    ada = one(built, optimizer="adagrad", k="10")
    assert ada["backward (s)"] == "20.0 (1.0x)" and ada["total (s)"] == "35.0 (1.0x)" and ada["wall (s)"] == "36.0"


def test_same_k_and_h_table_pairs_small_networks_with_meprop_of_that_k(tmp_path):
    write_run(tmp_path, "b", method="baseline", test=0.978)
    write_run(tmp_path, "s", method="small", k=20, test=0.9577)
    write_run(tmp_path, "m20", method="meprop", k=20, test=0.9801)
    write_run(tmp_path, "m40", method="meprop", k=40, test=0.98)
    built, _ = table.make_table([tmp_path], "same_kh")
    assert [(r[2], r[3], r[4], r[7]) for r in built.rows] == [
        ("small", "20", "-", "95.77 (-2.03)"), ("meprop", "500", "20", "98.01 (+0.21)")]


def test_dropout_table_compares_with_the_baseline_of_the_same_dropout(tmp_path):
    for p, base, mep in ((0.0, 0.978, 0.980), (0.2, 0.9809, 0.9832)):
        write_run(tmp_path, f"b{p}", method="baseline", dropout=p, test=base)
        write_run(tmp_path, f"m{p}", method="meprop", k=25, dropout=p, test=mep)
    built, _ = table.make_table([tmp_path], "dropout")
    assert built.headers[:6] == ["task", "optimizer", "dropout", "method", "h", "k"]
    assert one(built, dropout="0.2", method="meprop")["test (%)"] == "98.32 (+0.23)"
    assert one(built, dropout="0", method="meprop")["test (%)"] == "98.00 (+0.20)"


def test_layers_table_has_one_block_per_depth(tmp_path):
    for layers, base, mep in ((2, 0.9797, 0.9808), (5, 0.9809, 0.9836)):
        write_run(tmp_path, f"b{layers}", method="baseline", hidden=[500] * layers, dropout=0.1, test=base)
        write_run(tmp_path, f"m{layers}", method="meprop", k=25, hidden=[500] * layers, dropout=0.1, test=mep)
    built, _ = table.make_table([tmp_path], "layers")
    assert [(r[2], r[3], r[9]) for r in built.rows] == [
        ("2", "baseline", "97.97"), ("2", "meprop", "98.08 (+0.11)"),
        ("5", "baseline", "98.09"), ("5", "meprop", "98.36 (+0.27)")]


def test_unified_table_shows_overall_backprop_time_and_leaves_out_other_methods(tmp_path):
    write_run(tmp_path, "b", method="baseline", batch_size=50, timing=timing(8.0, backward=30.0))
    write_run(tmp_path, "u", method="meprop_unified", k=30, batch_size=50, timing=timing(1.0, backward=12.0))
    write_run(tmp_path, "m", method="meprop", k=30, batch_size=50)
    built, _ = table.make_table([tmp_path], "unified")
    assert [r[4] for r in built.rows] == ["baseline", "meprop_unified"]
    assert one(built, method="meprop_unified")["overall backprop time (s)"] == "12.0 (2.5x)"
    assert one(built, method="meprop_unified")["batch"] == "50"


MESIMP_HEADERS = ["task", "optimizer", "method", "h (initial)", "k", "prune rate", "h (tested)", "h (end)",
                  "% of original", "params", "Iter", "dev (%)", "test (%)", "decode speedup", "n"]


@pytest.fixture
def mesimp_study(tmp_path):
    """The reference MNIST study, two seeds: baseline, meProp k=160, meSimp k=160 and, for each meSimp run, a
    baseline built at its tested sizes (hidden_from); plus runs the table leaves out."""
    root = tmp_path / "study"
    for seed, base, mep, simp, scratch, tested, speedup in ((1, 0.981, 0.9813, 0.9793, 0.9828, [439, 250], 1.3),
                                                            (2, 0.983, 0.9833, 0.9813, 0.9808, [421, 262], 1.5)):
        write_run(root, f"base/{seed}", method="baseline", seed=seed, batch_size=100, test=base)
        write_run(root, f"meprop/{seed}", method="meprop", k=160, seed=seed, batch_size=100, test=mep)
        source = write_run(root, f"mesimp/{seed}", method="mesimp", k=160, seed=seed, batch_size=100, test=simp,
                           tested=tested, final=[289, 248], decode=speedup)
        write_run(root, f"scratch/{seed}", method="baseline", seed=seed, batch_size=100, test=scratch,
                  initial=tested, hidden_from=str(source))
    write_run(root, "other/meprop20", method="meprop", k=20, batch_size=100)  # another k
    write_run(root, "other/batch10", method="baseline", batch_size=10)  # another context
    return root


def test_mesimp_table_has_sizes_share_params_decode_and_the_runs_it_is_compared_with(mesimp_study):
    built, kind = table.make_table([mesimp_study])
    assert kind == "mesimp" and built.headers == MESIMP_HEADERS
    assert [row[2] for row in built.rows] == ["baseline", "meprop", "mesimp", "baseline (from scratch)"]
    simp = one(built, method="mesimp")
    assert simp == {"task": "mnist_mlp", "optimizer": "adam", "method": "mesimp", "h (initial)": "500", "k": "160",
                    "prune rate": "0.1", "h (tested)": "430 ± 13, 256 ± 8", "h (end)": "289,248",
                    "% of original": "68.6 ± 0.4", "params": "686,000 ± 4,243", "Iter": "3.0 ± 0.0",
                    "dev (%)": "98.00 ± 0.00 (+0.00)", "test (%)": "98.03 ± 0.14 (-0.17)",
                    "decode speedup": "1.40x ± 0.14", "n": "2"}
    assert one(built, method="meprop")["test (%)"] == "98.23 ± 0.14 (+0.03)"
    base = one(built, method="baseline")
    assert (base["h (tested)"], base["% of original"], base["params"], base["decode speedup"]) == \
        ("500,500", "100.0 ± 0.0", "1,000,000 ± 0", "-")
    scratch = one(built, method="baseline (from scratch)")
    assert scratch["n"] == "2" and scratch["test (%)"] == "98.18 ± 0.14"
    assert scratch["h (initial)"] == scratch["h (tested)"] == scratch["h (end)"] == "430 ± 13, 256 ± 8"
    assert scratch["% of original"] == "68.6 ± 0.4"  # of its meSimp runs' initial sizes, not of its own
    assert not any("other" in cell for row in built.rows for cell in row)


def test_mesimp_table_shows_the_tested_sizes_not_the_final_ones(tmp_path):
    write_run(tmp_path, "s", method="mesimp", k=160, tested=[300, 200], final=[100, 50], test=0.97)
    row = one(built := table.make_table([tmp_path], "mesimp")[0], method="mesimp")
    assert (row["h (tested)"], row["h (end)"], row["% of original"], row["params"]) == \
        ("300,200", "100,50", "50.0", "500,000")
    assert row["decode speedup"] == "-" and built.headers == MESIMP_HEADERS


def test_each_from_scratch_row_follows_its_own_mesimp_row(tmp_path):
    for rate, tested in ((0.05, [112, 115]), (0.1, [69, 72])):
        source = write_run(tmp_path, f"simp{rate}", task="parse", method="mesimp", k=20, prune_rate=rate,
                           tested=tested)
        write_run(tmp_path, f"scratch{rate}", task="parse", method="baseline", initial=tested,
                  hidden_from=str(source))
    built, _ = table.make_table([tmp_path], "mesimp")
    assert [(r[2], r[5], r[6]) for r in built.rows] == [
        ("mesimp", "0.05", "112,115"), ("baseline (from scratch)", "-", "112,115"),
        ("mesimp", "0.1", "69,72"), ("baseline (from scratch)", "-", "69,72")]


def test_hidden_from_relative_to_where_the_run_was_trained_is_found(tmp_path):
    source = write_run(tmp_path, "runs/paper/simp", method="mesimp", k=160, tested=[154, 96])
    write_run(tmp_path, "runs/paper/scratch", method="baseline", initial=[154, 96], hidden_from="runs/paper/simp")
    write_run(tmp_path, "runs/paper/elsewhere", method="baseline", initial=[154, 96], hidden_from="/gone/simp")
    built, _ = table.make_table([source.parent], "mesimp")
    assert rows_by(built, method="baseline (from scratch)")[0]["% of original"] == "25.0"
    # a hidden_from naming no run under the paths is a baseline of other sizes: not this meSimp run's comparison
    assert [r[2] for r in built.rows] == ["mesimp", "baseline (from scratch)"]


def test_without_hidden_from_a_baseline_at_the_tested_sizes_is_the_from_scratch_run(tmp_path):
    write_run(tmp_path, "simp", method="mesimp", k=160, tested=[154, 96])
    write_run(tmp_path, "same", method="baseline", hidden=[154, 96], drop=(results.HIDDEN_FROM,))
    write_run(tmp_path, "unpruned", method="mesimp", k=160, prune_rate=0.0, optimizer="adagrad")
    write_run(tmp_path, "full", method="baseline", optimizer="adagrad")  # = the unpruned sizes: the full baseline
    built, _ = table.make_table([tmp_path], "mesimp")
    assert [(r[1], r[2], r[6]) for r in built.rows] == [
        ("adagrad", "baseline", "500,500"), ("adagrad", "mesimp", "500,500"),
        ("adam", "mesimp", "154,96"), ("adam", "baseline (from scratch)", "154,96")]


def test_mesimp_csv_holds_sizes_per_group_and_the_numbers(mesimp_study):
    parsed = pd.read_csv(io.StringIO(table.render(table.make_table([mesimp_study], "mesimp")[0], "csv")))
    simp = parsed[parsed["method"] == "mesimp"].iloc[0]
    assert simp["h (tested)"] == "430,256" and simp["h (tested) std"] == "12.73,8.49"
    assert simp["decode speedup"] == pytest.approx(1.4) and simp["% of original"] == pytest.approx(68.6)
    assert simp["params"] == pytest.approx(686000) and simp["test (%) delta"] == pytest.approx(-0.17)


def test_guessed_size_keys_are_not_read(tmp_path):
    """Sizes come from results.HIDDEN_TESTED / HIDDEN_INITIAL only: an unknown key such as "sizes" is ignored."""
    write_run(tmp_path, "s", method="mesimp", k=160, extra_result={"sizes": [1, 1]}, drop=(results.HIDDEN_TESTED,))
    assert one(table.make_table([tmp_path], "mesimp")[0], method="mesimp")["h (tested)"] == "500,500"


def test_cnn_table_shows_ratio_decay_and_batch_norm(tmp_path):
    for bn in (False, True):
        write_run(tmp_path, f"b{bn}", task="mnist_cnn", method="baseline", test=0.9928 if bn else 0.9902,
                  extra_result={"batch_norm": bn, "topk_ratio": None})
        write_run(tmp_path, f"m{bn}", task="mnist_cnn", method="meprop", test=0.9939 if bn else 0.9927,
                  extra_result={"batch_norm": bn, "topk_ratio": 0.05, "decay": 0.6})
    built, kind = table.make_table([tmp_path])
    assert kind == "cnn"
    assert built.headers[:6] == ["task", "optimizer", "method", "top-k %", "decay", "batch norm"]
    row = one(built, method="meprop", **{"batch norm": "yes"})
    assert (row["top-k %"], row["decay"], row["test (%)"]) == ("5", "0.6", "99.39 (+0.11)")
    assert one(built, method="baseline", **{"batch norm": "no"})["top-k %"] == "-"


BENCH = [{"batch": 1024, "in": 8192, "out": 8192, "k": 8, "mode": "unified", "dense_ms": 36.8, "sparse_ms": 1.0},
         {"batch": 1024, "in": 8192, "out": 8192, "k": 8, "mode": "unified", "dense_ms": 36.8, "sparse_ms": 1.0},
         {"batch": 1024, "in": 8192, "out": 8192, "k": 512, "mode": "unified", "dense_ms": 44.0, "sparse_ms": 10.0}]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_synthetic_table_from_the_benchmark_records(tmp_path, suffix):
    path = tmp_path / f"bench{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in BENCH))
    else:
        pd.DataFrame(BENCH).to_csv(path, index=False)
    built, kind = table.make_table([path])
    assert kind == "synthetic"
    assert built.headers == ["mode", "batch", "in", "out", "k", "k/out (%)", "dense (ms)", "sparse (ms)", "speedup",
                             "n"]
    assert built.rows == [["unified", "1024", "8192", "8192", "8", "0.10", "36.80 ± 0.00", "1.00 ± 0.00", "36.8x", "2"],
                          ["unified", "1024", "8192", "8192", "512", "6.25", "44.00", "10.00", "4.4x", "1"]]


def test_synthetic_table_keeps_the_benchmarks_names_and_labels(tmp_path):
    path = tmp_path / "bench.csv"
    pd.DataFrame([{"name": "MNIST layer 1", "batch": 10, "in": 784, "out": 500, "k": 20, "mode": "topk, sparse dW",
                   "dense_ms": 0.5, "sparse_ms": 0.1, "threads": 1}]).to_csv(path, index=False)
    built, _ = table.make_table([path], "synthetic")
    assert built.headers[:7] == ["name", "mode", "batch", "in", "out", "k", "threads"]
    assert built.rows == [["MNIST layer 1", "topk, sparse dW", "10", "784", "500", "20", "1", "4.00", "0.50", "0.10",
                           "5.0x", "1"]]


def test_benchmark_records_missing_a_column_are_a_user_error(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"batch": 1, "in": 2, "out": 3, "k": 1, "mode": "topk", "dense_ms": 1.0}) + "\n")
    with pytest.raises(UserError, match="lacks sparse_ms"):
        table.make_table([path], "synthetic")


@pytest.mark.parametrize("kind", [k for k in table.KINDS if k != "synthetic"])
@pytest.mark.parametrize("fmt", table.FORMATS)
def test_every_kind_renders_in_every_format(sweep, kind, fmt):
    write_run(sweep, "extra/small", method="small", k=20)
    write_run(sweep, "extra/unified", method="meprop_unified", k=20)
    built, _ = table.make_table([sweep], kind)
    assert built.rows, kind
    text = table.render(built, fmt)
    if fmt == "markdown":
        assert text.startswith("| task |") and "broken/0" in text
    elif fmt == "latex":
        assert text.startswith("\\begin{tabular}") and "\\bottomrule" in text and "mnist\\_mlp" in text
        assert "±" not in text.split("\\end{tabular}")[0]
    else:
        parsed = pd.read_csv(io.StringIO(text))
        assert len(parsed) == len(built.rows) and "n" in parsed and "broken" not in text


def test_csv_holds_numbers_mean_std_and_deltas(sweep):
    parsed = pd.read_csv(io.StringIO(table.render(table.make_table([sweep], "main")[0], "csv")))
    row = parsed[(parsed["optimizer"] == "adam") & (parsed["method"] == "meprop")].iloc[0]
    assert row["test (%)"] == pytest.approx(97.5) and row["test (%) std"] == pytest.approx(0.707107)
    assert row["test (%) delta"] == pytest.approx(1.0) and row["backprop time (s) speedup"] == pytest.approx(10.0)
    assert row["seeds"] == "1 2" and row["n"] == 2


def test_latex_escapes_and_comments_the_notes(sweep):
    text = table.render(table.make_table([sweep], "main")[0], "latex")
    assert "97.50 $\\pm$ 0.71" in text
    assert any(line.startswith("% not in the table") and "broken/0" in line for line in text.splitlines())


def test_paths_that_do_not_exist_or_hold_no_runs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        table.make_table([tmp_path / "nope"])
    with pytest.raises(UserError, match="no run folders"):
        table.make_table([tmp_path])


def test_load_runs_finds_nested_sweeps_but_not_hydra_folders(sweep):
    (sweep / "adam/0/.hydra").mkdir()
    (sweep / "adam/0/.hydra/config.yaml").write_text("a: 1\n")
    found = results.load_runs(sweep)
    assert len(found) == 9 and all(run.path.name != ".hydra" for run in found)
    assert sorted(run.status for run in found).count("completed") == 7


def test_a_job_that_died_before_training_is_listed(sweep):
    (sweep / "adam/9/.hydra").mkdir(parents=True)
    built, _ = table.make_table([sweep], "main")
    assert any(note.startswith(f"{sweep / 'adam/9'}: failed: the job started but wrote neither") for note in built.notes)
