"""The run-folder contract's readers: a file of the wrong shape makes its run unreadable with a reason (never a
traceback in `meprop table` / `meprop plot`), benchmark records and checkpoints are checked where they are read."""
from __future__ import annotations

import json
import os

import pytest
import torch

from fake_runs import write_run
from meprop_cli import plot, results, table
from meprop_cli.errors import DataError, UserError


def curve(scores: list[float]) -> list[dict]:
    return [{"epoch": e, "step": 100 * e, "train_loss": 1.0 / e, "dev": {"accuracy": s}} for e, s in enumerate(scores, 1)]


def good_runs(root) -> None:
    """Runs that every plot kind can draw: Fig. 4's methods, a meSimp run whose sizes change, a meAct run, a run
    with diagnostics."""
    write_run(root, "b", method="baseline", metrics=curve([0.95, 0.97]))
    write_run(root, "m", method="meprop", k=20, test=0.98, metrics=curve([0.96, 0.975]))
    write_run(root, "r", method="random", k=20, test=0.93)
    write_run(root, "s", method="small", k=20, test=0.95)
    write_run(root, "simp", method="mesimp", k=160, tested=[300, 200],
              metrics=[dict(line, **{results.SIZES: s}) for line, s in zip(curve([0.9, 0.95]), ([400, 300], [300, 200]))])
    write_run(root, "act", method="meact", k=None,
              metrics=[dict(line, **{results.ACTIVE_FRACTION: [f], results.UPDATE_SIZE: u, results.MEACT_ACTING: a})
                       for line, f, u, a in zip(curve([0.97, 0.98]), (1.0, 0.3), (1e-3, 2e-4), (False, True))])
    watch = {"mean_abs_activation": 2.0, "dead_fraction": 0.1, "nonzero_negative_fraction": 0.5,
             "kept_negative_fraction": 0.6, "gradient_cosine": None}  # None: no update since the last line
    write_run(root, "watched", method="meprop", k=20,
              metrics=[dict(line, **{results.DIAGNOSTICS: [watch]}) for line in curve([0.9, 0.95])])


UNSET = object()


def bad_run(root, *, result=UNSET, metrics: str | None = None, config: str | None = None):
    """A completed meprop run whose result.json is replaced by `result` (a JSON value, or a dict merged into the
    record), whose metrics.jsonl or config.yaml is replaced by that text."""
    run = write_run(root, "bad", method="meprop", k=20, seed=9, metrics=curve([0.9, 0.95]))
    if result is not UNSET:
        record = json.loads((run / results.RESULT_FILE).read_text())
        record = {**record, **result} if isinstance(result, dict) else result
        (run / results.RESULT_FILE).write_text(json.dumps(record))
    if metrics is not None:
        (run / results.METRICS_FILE).write_text(metrics)
    if config is not None:
        (run / results.CONFIG_FILE).write_text(config)
    return run


LINE = {"epoch": 1, "step": 10, "train_loss": 0.5, "dev": {"accuracy": 0.5}}
BROKEN = {  # what is wrong -> (bad_run arguments, the reason load_run gives)
    "result a list": ({"result": [1, 2]}, "result.json is unreadable (it holds a list, not a mapping of keys to values)"),
    "result a string": ({"result": "done"}, "result.json is unreadable (it holds a string, not a mapping"),
    "result a number": ({"result": 3}, "result.json is unreadable (it holds an integer, not a mapping"),
    "result null": ({"result": None}, "result.json is unreadable (it holds null, not a mapping"),
    "dev a string": ({"result": {"dev": "high"}}, '("dev" is a string, not a mapping of names to numbers)'),
    "test a list": ({"result": {"test": [0.9]}}, '("test" is a list, not a mapping of names to numbers)'),
    "a score a string": ({"result": {"dev": {"accuracy": "0.9"}}}, '("dev.accuracy" is a string, not a number)'),
    "timing a list": ({"result": {"timing": [1.0]}}, '("timing" is a list, not a mapping of names to numbers)'),
    "status a number": ({"result": {"status": 1}}, '("status" is an integer, not a string)'),
    "best_epoch a string": ({"result": {"best_epoch": "3"}}, '("best_epoch" is a string, not an integer)'),
    "hidden a mapping": ({"result": {"hidden": {"a": 1}}}, '("hidden" is a mapping, not a list of integers)'),
    "hidden of strings": ({"result": {"hidden": ["500"]}}, '("hidden[0]" is a string, not an integer)'),
    "k a string": ({"result": {"k": "20"}}, '("k" is a string, not a number)'),
    "seed a list": ({"result": {"seed": [1]}}, '("seed" is a list, not an integer)'),
    "seed a boolean": ({"result": {"seed": True}}, '("seed" is true or false, not an integer)'),
    "decode a list": ({"result": {results.DECODE: [2.0]}}, '("decode" is a list, not a mapping of names to numbers)'),
    "epochs_run a string": ({"result": {"epochs_run": "20"}}, '("epochs_run" is a string, not an integer)'),
    "error a list": ({"result": {"status": "failed", "error": ["x"]}}, '("error" is a list, not a string)'),
    "metrics line a list": ({"metrics": "[1, 2]\n"}, "metrics.jsonl is unreadable (line 1: it holds a list, not a "
                                                     "mapping of keys to values)"),
    "metrics dev a string": ({"metrics": json.dumps({**LINE, "dev": "x"}) + "\n"},
                             'metrics.jsonl is unreadable (line 1: "dev" is a string, not a mapping of names to numbers)'),
    "metrics epoch a string": ({"metrics": json.dumps(LINE) + "\n" + json.dumps({**LINE, "epoch": "2"}) + "\n"},
                               'metrics.jsonl is unreadable (line 2: "epoch" is a string, not an integer)'),
    "prune check a number": ({"metrics": json.dumps({**LINE, results.PRUNE_CHECKS: [1]}) + "\n"},
                             '(line 1: "prune_checks[0]" is an integer, not a mapping)'),
    "active fraction a mapping": ({"metrics": json.dumps({**LINE, results.ACTIVE_FRACTION: {"a": 1}}) + "\n"},
                                  '(line 1: "active_fraction" is a mapping, not a list of numbers)'),
    "diagnostics a mapping": ({"metrics": json.dumps({**LINE, results.DIAGNOSTICS: {"a": 1}}) + "\n"},
                              '(line 1: "diagnostics" is a mapping, not a list of layers\' statistics)'),
    "metrics not UTF-8": ({"metrics": "\udcff"}, "metrics.jsonl is not UTF-8 text (byte 0xff at offset 0)"),
    "config a list": ({"config": "- 1\n- 2\n"}, "config.yaml is unreadable (it holds a list, not a mapping"),
    "config a number": ({"config": "3\n"}, "config.yaml is unreadable (Invalid loaded object type: int)"),
    "config task a string": ({"config": "task: mnist\n"}, 'config.yaml is unreadable ("task" is a string, not a mapping)'),
    "config hidden of strings": ({"config": "task:\n  hidden: [a]\n"},
                                 'config.yaml is unreadable ("task.hidden[0]" is a string, not an integer)'),
    "config not YAML": ({"config": "a: [1\n"}, "config.yaml is unreadable (while parsing a flow sequence in"),
}


def write_broken(root, case: str):
    args, _ = BROKEN[case]
    run = bad_run(root, **{k: v for k, v in args.items() if k != "metrics" or "\udcff" not in v})
    if "\udcff" in args.get("metrics", ""):
        (run / results.METRICS_FILE).write_bytes(b"\xff\xfe garbage\n")
    return run


@pytest.mark.parametrize("case", BROKEN)
def test_a_file_of_the_wrong_shape_makes_its_run_unreadable_with_the_reason(tmp_path, case):
    run = results.load_run(write_broken(tmp_path, case))
    assert run.status == "unreadable" and BROKEN[case][1] in run.reason and "\n" not in run.reason


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Good runs beside one broken run of each BROKEN case (each in its own folder): root, {case: run folder}."""
    root = tmp_path_factory.mktemp("mixed")
    good_runs(root / "good")
    return root, {case: write_broken(root / case.replace(" ", "_"), case) for case in BROKEN}


@pytest.mark.parametrize("kind", [k for k in table.KINDS if k != "synthetic"])
def test_every_table_kind_and_format_lists_the_broken_runs_and_goes_on(mixed, kind):
    root, broken = mixed
    built, _ = table.make_table([root], kind)
    assert built.rows
    for case, run in broken.items():
        assert any(note.startswith(f"{run}: unreadable: ") and BROKEN[case][1] in note for note in built.notes), case
    for fmt in table.FORMATS:
        table.render(built, fmt)


@pytest.mark.parametrize("kind", plot.KINDS)
def test_every_plot_kind_leaves_the_broken_runs_out_and_draws_the_others(mixed, tmp_path, kind):
    root, broken = mixed
    left_out = plot.make_plot([root], kind, tmp_path / f"{kind}.png")
    assert sorted(run.path for run in left_out) == sorted(broken.values())
    assert (tmp_path / f"{kind}.png").stat().st_size > 1000


def test_a_good_run_and_older_or_null_values_still_read(tmp_path):
    run = write_run(tmp_path, "r", method="meprop", k=20, drop=("timing", "hidden"),
                    extra_result={"best_epoch": None, "test": {"accuracy": None}, results.DECODE: None},
                    metrics=[{**LINE, "dev": {"accuracy": None}}, {**LINE, "epoch": 2, "step": 20}])
    (run / results.METRICS_FILE).write_text((run / results.METRICS_FILE).read_text() + '{"epoch": 2, "ste')
    loaded = results.load_run(run)
    assert loaded.status == "completed" and len(loaded.metrics) == 2  # the torn last line is skipped
    assert plot.make_plot([tmp_path], "curves", tmp_path / "c.png") == []  # a null dev score is no point, no error


@pytest.mark.parametrize("value", [[1], "done", 3, None])
def test_read_result_raises_value_error_for_a_record_that_is_not_a_mapping(tmp_path, value):
    (tmp_path / results.RESULT_FILE).write_text(json.dumps(value))
    with pytest.raises(ValueError, match="not a mapping of keys to values"):
        results.read_result(tmp_path)


def test_a_result_json_that_is_a_folder_or_not_utf8_is_unreadable(tmp_path):
    folder = write_run(tmp_path, "folder", status=None)
    (folder / results.RESULT_FILE).mkdir()
    binary = write_run(tmp_path, "binary")
    (binary / results.RESULT_FILE).write_bytes(b"\xff{}")
    reasons = {run.path.name: run.reason for run in results.load_runs(tmp_path)}
    assert reasons == {"folder": "result.json cannot be read (Is a directory)",
                       "binary": "result.json is not UTF-8 text (byte 0xff at offset 0)"}


def test_a_huge_score_is_no_number_rather_than_infinity(tmp_path):
    write_run(tmp_path, "b", method="baseline")
    write_run(tmp_path, "m", method="meprop", test=1e308)  # finite, but not in %
    built, _ = table.make_table([tmp_path], "main")
    assert [row[-2] for row in built.rows] == ["97.00", "-"]


def test_a_folder_that_cannot_be_listed_is_listed_as_unreadable(tmp_path, monkeypatch):
    write_run(tmp_path, "ok")
    closed = tmp_path / "closed"
    write_run(closed, "run")
    real_scandir = os.scandir

    def scandir(path="."):  # as for a folder without read permission (chmod has no effect for root)
        if os.fspath(path) == str(closed):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = {run.path.name: (run.status, run.reason) for run in results.load_runs(tmp_path)}
    assert found == {"ok": ("completed", None), "closed": ("unreadable", "the folder cannot be listed (Permission "
                                                           "denied), so its runs cannot be read")}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_files_without_read_permission_make_their_run_unreadable(tmp_path):
    write_run(tmp_path, "ok")
    for name in (results.RESULT_FILE, results.CONFIG_FILE):
        run = write_run(tmp_path, name.split(".")[0])
        (run / name).chmod(0)
    closed = write_run(tmp_path, "closed")
    closed.chmod(0)
    try:
        found = {run.path.name: run.reason for run in results.load_runs(tmp_path)}
    finally:
        closed.chmod(0o755)
    assert found == {"ok": None, "result": "result.json cannot be read (Permission denied)",
                     "config": "config.yaml cannot be read (Permission denied)",
                     "closed": "the folder cannot be listed (Permission denied), so its runs cannot be read"}


# -- benchmark records ----------------------------------------------------------------------------

RECORD = {"batch": 10, "in": 784, "out": 500, "k": 20, "mode": "topk", "dense_ms": 0.5, "sparse_ms": 0.1}
BAD_BENCH = {  # file text -> the UserError's message
    "{not json\n": "bench.jsonl line 1 is not JSON (Expecting property name enclosed in double quotes)",
    "[1, 2]\n": "bench.jsonl record 1 is a list, not a mapping of columns to values",
    json.dumps({**RECORD, "batch": "x"}) + "\n": "bench.jsonl record 1: batch is 'x', not a positive whole number",
    json.dumps({**RECORD, "out": 0}) + "\n": "bench.jsonl record 1: out is 0, not a positive whole number",
    json.dumps({**RECORD, "k": 2.5}) + "\n": "bench.jsonl record 1: k is 2.5, not a positive whole number",
    json.dumps({**RECORD, "k": True}) + "\n": "bench.jsonl record 1: k is True, not a positive whole number",
    json.dumps({**RECORD, "sparse_ms": 0}) + "\n": "record 1: sparse_ms is 0, not a positive number of milliseconds",
    json.dumps({**RECORD, "dense_ms": float("nan")}) + "\n": "dense_ms is nan, not a positive number of milliseconds",
    json.dumps({"batch": 1}) + "\n": "bench.jsonl record 1 lacks in, out, k, mode, dense_ms, sparse_ms",
    "\n\n": "bench.jsonl holds no benchmark records; give the file scripts/bench_backprop.py wrote",
}


@pytest.mark.parametrize("text", BAD_BENCH)
def test_a_malformed_benchmark_file_is_one_sentence(tmp_path, text):
    path = tmp_path / "bench.jsonl"
    path.write_text(text)
    with pytest.raises(UserError, match=BAD_BENCH[text].replace("(", r"\(").replace(")", r"\)")):
        table.make_table([path], "synthetic")


def test_csv_benchmark_counts_may_be_written_as_floats_and_bad_bytes_name_the_file(tmp_path):
    path = tmp_path / "bench.csv"
    path.write_text("batch,in,out,k,mode,dense_ms,sparse_ms\n10.0,784,500,20,topk,0.5,0.1\n")
    assert table.make_table([path], "synthetic")[0].rows[0][:5] == ["topk", "10", "784", "500", "20"]
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match=f"{path} is not UTF-8 text; give the benchmark's .jsonl or .csv file"):
        table.make_table([path], "synthetic")


# -- checkpoints ---------------------------------------------------------------------------------

def checkpoint_files(tmp_path) -> dict[str, tuple]:
    """name -> (path, the start of read_checkpoint's message after the path)."""
    real = tmp_path / "real.pt"
    torch.save({"model": {"w": torch.zeros(200, 200)}, "config": {"task": {"name": "digits"}}}, real)
    data = real.read_bytes()
    files = {"text.pt": b"hello\n", "empty.pt": b"", "half.pt": data[: len(data) // 2], "result.json": b'{"a": 1}',
             "random.pt": bytes(range(256)) * 4}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"model": {}}, tmp_path / "no_config.pt")
    torch.save({"model": {}, "config": "task=pos"}, tmp_path / "config_text.pt")
    cannot = "is not a meprop checkpoint (torch cannot load it: "
    return {"text": ("text.pt", cannot), "empty": ("empty.pt", cannot + "the file is empty)"),
            "half of a real one": ("half.pt", cannot), "a result.json": ("result.json", cannot),
            "random bytes": ("random.pt", cannot),
            "a tensor": ("tensor.pt", "is not a meprop checkpoint (it holds a Tensor, not a mapping)"),
            "no config": ("no_config.pt", "is not a meprop checkpoint (its config is missing or not a mapping)"),
            "config text": ("config_text.pt", "is not a meprop checkpoint (its config is missing or not a mapping)"),
            "a folder": (".", "is a folder, not a checkpoint; give the best.pt file of a run"),
            "missing": ("none.pt", "")}


@pytest.mark.parametrize("case", ["text", "empty", "half of a real one", "a result.json", "random bytes", "a tensor",
                                  "no config", "config text", "a folder", "missing"])
def test_read_checkpoint_refuses_what_is_not_a_checkpoint_in_one_sentence(tmp_path, case):
    name, message = checkpoint_files(tmp_path)[case]
    path = tmp_path / name
    with pytest.raises(DataError) as caught:
        results.read_checkpoint(path)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 400
    if case == "missing":
        assert text == f"checkpoint {path} not found; give the best.pt file of a run"
    else:
        assert text.startswith(f"{path} {message}")
    if "cannot load" in message:
        assert text.endswith("it may be truncated or another kind of file: give the best.pt or last.pt a meprop "
                             "run wrote")


def test_read_checkpoint_gives_the_saved_dict(tmp_path):
    torch.save({"model": {"w": torch.ones(2)}, "config": {"task": {"name": "digits"}}, "sizes": None}, tmp_path / "a.pt")
    payload = results.read_checkpoint(tmp_path / "a.pt")
    assert payload["config"] == {"task": {"name": "digits"}} and torch.equal(payload["model"]["w"], torch.ones(2))


def test_scores_are_printed_as_the_tables_print_them(tmp_path):
    """The end-of-run line (results.best_epoch_text) shows each score as the table's dev and test cells do."""
    write_run(tmp_path, "r", dev=0.9334, test=0.9285, best_epoch=4)
    built, _ = table.make_table([tmp_path], "main")
    [row] = built.rows
    assert row[-3:-1] == ["93.34", "92.85"]  # the table's dev (%) and test (%) cells
    record = results.read_result(tmp_path / "r")
    assert results.best_epoch_text(record) == f"best epoch 4: dev accuracy {row[-3]}, test accuracy {row[-2]}"
    assert results.scores_text({"uas": 0.85123, "las": 0.8, "uas_nopunct": 0.86}) == "uas 85.12 las 80.00 uas_nopunct 86.00"
    assert results.best_epoch_text({"best_epoch": 2, "dev": {"accuracy": 0.5}, "test": {}}) == (
        "best epoch 2: dev accuracy 50.00, test not scored")  # a second Ctrl-C stopped the scoring of test
    assert results.best_epoch_text({"best_epoch": None, "dev": {}, "test": {}}) == "no epoch scored"
