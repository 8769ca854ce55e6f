"""scripts/: one script per paper table or figure, each stating its wall time and offering --quick."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (REPO / "scripts").glob("*.sh") if p.name != "common.sh")
SWEEPING = [p for p in SCRIPTS if p.name != "table7_synthetic.sh"]  # the scripts that train (table 7 benchmarks)
PRESETS = {p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")}

# A stand-in for the CLI that records each call and writes what the scripts read back: a sweep folder with one
# completed job (for the .finished marker, and the runs table_mesimp.sh trains again from scratch) and the --out
# file of a `table` or `plot`.
FAKE_MEPROP = """#!{python}
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
for arg in args:
    if arg.startswith("hydra.sweep.dir="):
        job = Path(arg.split("=", 1)[1]) / "0"
        job.mkdir(parents=True, exist_ok=True)
        (job / "result.json").write_text(json.dumps({{"status": "completed", "seed": 1}}))
if "--out" in args:
    Path(args[args.index("--out") + 1]).write_text("recorded\\n")
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """{script name: the argument lists of its `meprop` calls}, each script run with --quick against FAKE_MEPROP;
    table1 and table2 with all three tasks (TASKS="mnist_mlp pos parse")."""
    root = tmp_path_factory.mktemp("scripts")
    fake = root / "meprop"
    fake.write_text(FAKE_MEPROP.format(python=sys.executable))
    fake.chmod(0o755)
    calls = {}
    for script in SWEEPING:
        log = root / f"{script.stem}.jsonl"
        env = {**os.environ, "MEPROP": str(fake), "FAKE_LOG": str(log), "OUT": str(root / script.stem),
               "TASKS": "mnist_mlp pos parse", "PYTHON": sys.executable}
        done = subprocess.run(["bash", str(script), "--quick"], check=False, capture_output=True, text=True, env=env,
                              cwd=root)
        assert done.returncode == 0, (script.name, done.stderr)
        calls[script.name] = [json.loads(line) for line in log.read_text().splitlines()]
    return calls


def sweep_jobs(args: list[str]) -> list[list[str]]:
    """The overrides of each job of a `train -m` call (Hydra's basic sweeper: the product of the sweep values)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
               else [o.input_line] for o in OverridesParser.create().parse_overrides(args)]
    return [list(job) for job in itertools.product(*choices)]


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
    assert len(rows) == 7 * 2  # five modes and the authors' two functions × k = 8, 32
    assert (tmp_path / "out" / "bench_backprop.jsonl").read_text().count("\n") == 14


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


@pytest.mark.parametrize("script", [p.name for p in SWEEPING])
def test_each_sweep_names_its_paper_preset_instead_of_repeating_its_settings(recorded, script):
    trains = [args for args in recorded[script] if args[0] == "train"]
    assert trains and all(args[1] == "-m" for args in trains)
    for args in trains:
        [preset] = [a.split("=", 1)[1] for a in args if a.startswith("experiment=")]
        assert preset in PRESETS
        assert not [a for a in args if a.split("=")[0] in ("task", "optim")], args  # the preset sets them


@pytest.mark.parametrize("script", [p.name for p in SWEEPING])
def test_every_job_of_every_sweep_composes_and_passes_validation(recorded, script, make_cfg):
    from meprop_cli.config import validate

    jobs = [job for args in recorded[script] if args[0] == "train" for job in sweep_jobs(args[2:])]
    for job in jobs:
        cfg = make_cfg([o for o in job if not o.startswith("hydra.")])
        validate(cfg)
        assert cfg.trainer.max_epochs <= 2 and cfg.trainer.max_steps_per_epoch == 300  # --quick reached the job
    assert len(jobs) >= 2


def test_a_sweep_shared_by_scripts_is_the_same_command_in_each(recorded):
    """Scripts reuse each other's sweeps by folder name (main_mnist_mlp_adam: Tables 1-3, Fig. 4, the curves):
    one folder must always hold one setting."""
    by_folder: dict[str, set[tuple[str, ...]]] = {}
    for calls in recorded.values():
        for args in calls:
            if args[0] == "train":
                folder = next(a for a in args if a.startswith("hydra.sweep.dir=")).split("/sweeps/")[1]
                by_folder.setdefault(folder, set()).add(tuple(a for a in args if not a.startswith("hydra.sweep.dir=")))
    assert all(len(commands) == 1 for commands in by_folder.values()), by_folder
    assert {"main_mnist_mlp_adam", "main_pos_adagrad", "main_parse_adam"} <= set(by_folder)
    assert any(folder.startswith("mesimp_mnist_mlp_scratch/") for folder in by_folder)  # hidden_from= the meSimp run


def test_table1_runs_each_task_and_optimizer_as_its_preset(recorded):
    presets = [next(a for a in args if a.startswith("experiment=")) for args in recorded["table1_main.sh"]
               if args[0] == "train"]
    assert presets == [f"experiment=table1_{task}_{optim}" for task in ("mnist_mlp", "pos", "parse")
                       for optim in ("adam", "adagrad")]
    [table] = [args for args in recorded["table1_main.sh"] if args[0] == "table"]
    assert table[-4:-2] == ["--kind", "main"] and len(table) == 1 + 6 + 4
