"""`meprop table` and `meprop plot` end to end, as a user runs them, on tiny real sweeps."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from conftest import run_meprop

SWEEP = ["method=baseline,meprop", "topk=20", "seed=1,2", "trainer.max_epochs=1", "trainer.threads=1",
         "trainer.progress=none"]


def sweep(tmp_path, overrides: list[str], env=None):
    done = run_meprop(["train", "-m", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp_path / "sweep"


def test_table_and_plot_of_a_real_digits_sweep(tmp_path):
    root = sweep(tmp_path, SWEEP)
    # a job that failed: its result.json says why, and the table lists it
    failed = root / "9_failed"
    failed.mkdir()
    (failed / "result.json").write_text(json.dumps({"task": "digits", "method": "meprop", "status": "failed",
                                                    "error": "ConfigError: topk=900 is too large",
                                                    "epochs_run": 0}))
    shown = run_meprop(["table", str(root)], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "| task | optimizer | method | h | k | Iter | backprop time (s) | dev (%) | test (%) | n |"
    assert lines[2].startswith("| digits | adam | baseline | 100 | - |") and lines[2].endswith("| 2 |")
    assert lines[3].startswith("| digits | adam | meprop | 100 | 20 |") and "x) |" in lines[3]
    records = [json.loads((d / "result.json").read_text()) for d in sorted(root.glob("[0-3]_*"))]
    tests = sorted(100 * r["test"]["accuracy"] for r in records if r["method"] == "meprop")
    assert f"{sum(tests) / 2:.2f} ± " in lines[3]  # the mean over the two seeds
    assert f"- {failed}: failed: ConfigError: topk=900 is too large (after 0 epoch(s))" in shown.stdout

    out = tmp_path / "t1.csv"
    written = run_meprop(["table", str(root), "--format", "csv", "--out", str(out)], cwd=tmp_path)
    assert written.returncode == 0 and "main table, 2 row(s)" in written.stdout
    assert "9_failed: failed" in written.stderr
    parsed = pd.read_csv(io.StringIO(out.read_text()))
    assert list(parsed["method"]) == ["baseline", "meprop"] and list(parsed["n"]) == [2, 2]

    for kind in ("curves",):  # every kind is drawn in test_plot.py; here the command itself
        png = tmp_path / f"{kind}.png"
        drawn = run_meprop(["plot", str(root), "--kind", kind, "--out", str(png)], cwd=tmp_path)
        assert drawn.returncode == 0, drawn.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.real_data
def test_table_of_a_tiny_real_mnist_sweep(tmp_path, real_data):
    root = sweep(tmp_path, ["task=mnist_mlp", "method=baseline,meprop", "topk=20", "trainer.max_epochs=1",
                            "trainer.max_steps_per_epoch=30", "trainer.threads=1", "trainer.progress=none",
                            "trainer.checkpoint=false"], env={"MEPROP_DATA": str(real_data)})
    shown = run_meprop(["table", str(root), "--kind", "overall", "--format", "latex"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "mnist\\_mlp & adam & baseline & 500 & - &" in shown.stdout
    assert "mnist\\_mlp & adam & meprop & 500 & 20 &" in shown.stdout


def test_user_errors_are_one_line(tmp_path):
    for args in (["table", str(tmp_path / "nope")], ["table", str(tmp_path)],
                 ["plot", str(tmp_path), "--kind", "curves"]):
        done = run_meprop(args, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        assert done.stderr.startswith("meprop: error: ")
    help_text = run_meprop(["--help"], cwd=tmp_path).stdout
    assert "  table " in help_text and "  plot " in help_text
