"""scripts/: one script per paper table or figure, each stating its wall time and offering --quick."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted(p for p in (Path(__file__).resolve().parent.parent / "scripts").glob("*.sh") if p.name != "common.sh")


def test_there_is_a_script_for_every_paper_table_and_figure():
    names = {p.stem for p in SCRIPTS}
    assert {"table1_main", "table2_overall", "table3_same_kh", "table4_dropout", "table5_layers", "table6_unified",
            "table7_synthetic", "fig4_ratio", "fig4_random", "fig4_small", "fig_curves", "table_mesimp",
            "fig_meact", "table_cnn"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_states_its_wall_time_parses_and_offers_quick(script, tmp_path):
    header = script.read_text().split("source ")[0]
    assert "Expected wall time on a 2-core CPU" in header or "Expected wall time:" in header
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0 and "--quick" in shown.stdout
    wrong = subprocess.run(["bash", str(script), "--fast"], capture_output=True, text=True, cwd=tmp_path,
                           env={"MEPROP": "false", "PATH": "/usr/bin:/bin"})
    assert wrong.returncode == 2 and "unknown option --fast" in wrong.stderr
    assert not any(tmp_path.iterdir())  # neither --help nor a wrong option starts a sweep


def test_table7_quick_runs_the_benchmark_and_builds_its_table(tmp_path):
    """The one script that trains nothing runs end to end: benchmark records → the synthetic table."""
    script = next(p for p in SCRIPTS if p.name == "table7_synthetic.sh")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHON": sys.executable, "MEPROP": str(bin_dir / "meprop"), "OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(script), "--quick"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "out" / "table7_synthetic.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| Table 7 synthetic 1024 |")]
    assert len(rows) == 5 * 2  # five modes × k = 8, 32
    assert (tmp_path / "out" / "bench_backprop.jsonl").read_text().count("\n") == 10


def test_gradient_nonzeros_reports_each_hidden_layer_against_k(make_cfg, tmp_path, capsys):
    from conftest import load_script
    from meprop_cli.train import train
    train(make_cfg(["method=mesimp", "topk=90", "trainer.max_epochs=1", "trainer.progress=none"]), tmp_path)
    load_script("gradient_nonzeros").main([str(tmp_path), "--batches", "2"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("layer")]
    assert len(lines) == 2 and all("examples with fewer than k=90" in line for line in lines)
    # ReLU zeroes part of each example's gradient: fewer than 100 of the (at most) 100 entries are nonzero
    assert all(float(line.split("per example ")[1].split(",")[0]) < 100 for line in lines)


def test_meact_drift_compares_cached_and_fresh_activations_of_a_meact_run(make_cfg, tmp_path, capsys):
    from conftest import load_script
    from meprop_cli.train import train
    train(make_cfg(["method=meact", "method.start_epoch=2", "method.threshold=0.01", "trainer.max_epochs=2",
                    "trainer.progress=none"]), tmp_path)
    load_script("meact_drift").main([str(tmp_path), "--batches", "3"])
    out = capsys.readouterr().out
    layers = [line for line in out.splitlines() if line.startswith("layer")]
    assert len(layers) == 2 and all("active fraction 0." in line and "mean |fresh - cached|" in line for line in layers)
    assert "normal forward (as dev/test): train loss" in out and "meAct forward (cached inactive): train loss" in out
    assert "30 training examples" in out


def test_meact_drift_refuses_a_run_of_another_method(make_cfg, tmp_path):
    from conftest import load_script
    from meprop_cli.train import train
    train(make_cfg(["trainer.max_epochs=1", "trainer.progress=none", "trainer.max_steps_per_epoch=2"]), tmp_path)
    with pytest.raises(SystemExit, match="method=baseline run; this script reads meAct runs"):
        load_script("meact_drift").main([str(tmp_path)])
