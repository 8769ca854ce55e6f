"""`meprop` end to end in subprocesses, as a user runs it from any working directory."""
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_meprop


def test_train_on_digits_writes_a_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = run_meprop(["train", "method=meprop", "topk=20", "trainer.max_epochs=2", f"hydra.run.dir={out}"],
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and result["task"] == "digits" and result["method"] == "meprop"
    assert result["best_epoch"] in (1, 2) and 0.3 < result["test"]["accuracy"] <= 1.0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    # the closing line prints the scores as the tables do (%, two decimals), not as a Python dict
    dev, test = (f"{100 * result[split]['accuracy']:.2f}" for split in ("dev", "test"))
    assert (f"completed: digits meprop, best epoch {result['best_epoch']}: dev accuracy {dev}, test accuracy {test} "
            f"-> {out}") in proc.stdout.splitlines()


def test_default_run_folder_is_under_runs_of_the_working_directory(tmp_path):
    proc = run_meprop(["train", "trainer.max_epochs=1", "trainer.max_steps_per_epoch=3"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [result] = list((tmp_path / "runs" / "digits" / "baseline").glob("*/result.json"))
    assert json.loads(result.read_text())["status"] == "completed"


def test_multirun_writes_one_folder_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_meprop(["train", "-m", "method=meprop,random", "topk=5,10", "trainer.max_epochs=1",
                       "trainer.max_steps_per_epoch=5", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folders = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # Folder names say what the job changed; smoke-run switches (steps per epoch) and the length are left out,
    # so that a sweep run again with more epochs continues in the same folders.
    assert folders == [f"{i}_method={m},topk={k}"
                       for i, (m, k) in enumerate([("meprop", 5), ("meprop", 10), ("random", 5), ("random", 10)])]
    ks = sorted(json.loads((sweep / f / "result.json").read_text())["k"] for f in folders)
    assert ks == [5, 5, 10, 10]


def test_user_errors_are_one_line_and_exit_non_zero(tmp_path):
    proc = run_meprop(["train", "method=meprop", "topk=1000", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("meprop: error: topk=1000 is larger than the hidden layer (100 units); "
                                   "use topk between 1 and 100")
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["status"] == "failed" and "topk=1000" in result["error"]


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=abc", "Error merging override trainer.max_epochs=abc: Value 'abc' of type 'str' could not be "
                               "converted to Integer"),
    ("trainer.nosuch=1", "Could not override 'trainer.nosuch': Key 'nosuch' not in 'TrainerConfig'"),
    ("task=nosuch", "Could not find 'task/nosuch'; use one of digits, mnist_cnn, mnist_mlp, parse, pos"),
    ("task.activation=soft", "Invalid value 'soft', expected one of [relu, tanh, sigmoid, cube]"),
    ("topk=[1,", "no viable alternative at input '[1,'"),
])
def test_a_config_hydra_cannot_compose_is_one_line_and_exit_2(tmp_path, override, message):
    proc = run_meprop(["train", override, f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("meprop: error: ") and message in line and "base_" not in line


def test_help_lists_only_the_yaml_choices_of_each_group(tmp_path):
    """The ConfigStore schemas (base_digits, base_method, ...) sit outside the groups: they are not choices."""
    proc = run_meprop(["train", "--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    groups = dict(line.split(": ", 1) for line in proc.stdout.split("== Configuration groups ==")[1]
                  .split("== Config ==")[0].splitlines() if ": " in line and not line.startswith("Compose"))
    assert groups["task"] == "digits, mnist_cnn, mnist_mlp, parse, pos"
    assert groups["method"] == "baseline, meact, meprop, meprop_cnn, meprop_unified, mesimp, random, small"
    assert groups["optim"] == "adagrad, adam, sgd"
    assert set(groups) == {"task", "method", "optim", "experiment"} and "base_" not in proc.stdout


@pytest.mark.parametrize("override, choices", [
    ("task=base_digits", "digits, mnist_cnn, mnist_mlp, parse, pos"),
    ("method=base_mesimp", "baseline, meact, meprop, meprop_cnn, meprop_unified, mesimp, random, small"),
    ("optim=base_optim", "adagrad, adam, sgd"),
])
def test_a_schema_is_not_a_runnable_choice(tmp_path, override, choices):
    group, name = override.split("=")
    proc = run_meprop(["train", override, f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert proc.returncode == 2 and not (tmp_path / "r").exists()
    assert proc.stderr.strip() == (f"meprop: error: In 'config': Could not find '{group}/{name}'; "
                                   f"use one of {choices}")


def test_the_yaml_choices_are_still_typed_by_their_schema(make_cfg):
    """Moving the schemas out of the groups keeps each YAML file typed: a wrong type or key fails to compose."""
    from hydra.errors import ConfigCompositionException
    cfg = make_cfg(["task=pos", "method=mesimp"])
    assert type(cfg.task.bucket) is int and cfg.method.prune_rate == 0.1
    with pytest.raises(ConfigCompositionException) as wrong_type:
        make_cfg(["task=pos", "task.bucket=many"])
    assert "could not be converted to Integer" in str(wrong_type.value.__cause__)
    with pytest.raises(ConfigCompositionException) as wrong_key:
        make_cfg(["method=meprop", "method.prune_rate=0.1"])  # a meSimp field: not in meProp's schema
    assert "Key 'prune_rate' not in 'MethodConfig'" in str(wrong_key.value.__cause__)


def test_a_run_folder_that_cannot_be_made_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    proc = run_meprop(["train", f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"meprop: error: cannot write {tmp_path / 'a_file' / 'run'}: Not a directory; "
                                   "choose a writable hydra.run.dir (hydra.sweep.dir for a sweep)")


def test_a_sweep_job_whose_overrides_make_a_name_too_long_for_a_folder_gets_a_hashed_one(tmp_path):
    from meprop_cli.config import NAME_MAX, short_name

    long_hidden = "task.hidden=[" + ",".join(["7"] * 150) + "]"
    proc = run_meprop(["train", "-m", long_hidden, "trainer.max_epochs=1", "trainer.max_steps_per_epoch=2",
                       f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [job] = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]
    assert len(job.name.encode()) < NAME_MAX and job.name.startswith("0_task.hidden=[7,7,")
    assert (job / "result.json").is_file()
    assert short_name("x" * 1000) == short_name("x" * 1000) != short_name("x" * 999 + "y")  # stable: re-runs find it
    assert short_name("topk=5") == "topk=5"


def test_missing_data_names_the_setting(tmp_path):
    proc = run_meprop(["train", "task=mnist_mlp", f"data_root={tmp_path / 'nowhere'}",
                       f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "not found" in line and "data_root" in line and "MEPROP_DATA" in line and "meprop data fetch" in line


def test_help_and_cfg_job_work(tmp_path):
    proc = run_meprop(["train", "--help"], cwd=tmp_path)
    assert proc.returncode == 0 and "meprop train" in proc.stdout and "topk" in proc.stdout
    proc = run_meprop(["train", "--cfg", "job", "task=mnist_mlp", "method=meprop", "topk=20"], cwd=tmp_path)
    assert proc.returncode == 0 and "name: mnist_mlp" in proc.stdout and "topk: 20" in proc.stdout


def test_cfg_with_a_sweep_is_one_sentence(tmp_path):
    proc = run_meprop(["train", "-m", "--cfg", "job", "seed=1,2"], cwd=tmp_path)
    assert proc.returncode == 2 and not proc.stdout
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("meprop: error: Only one of --run, --multirun") and "drop -m to see a job's config" in line
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "runs").exists()  # nothing was started


def test_unknown_command_is_one_line(tmp_path):
    proc = run_meprop(["trian"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("meprop: error: unknown command 'trian'")


def test_a_killed_run_still_scores_test_and_writes_its_result(tmp_path):
    """SIGTERM (kill, a scheduler's time limit) is handled like Ctrl-C: no result is lost."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "meprop_cli", "train", "trainer.max_epochs=1000",
                             "trainer.progress=none", "trainer.threads=1", f"hydra.run.dir={run_dir}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    # a scheduler sees the kill; on failure the message shows what the run printed
    assert proc.returncode == 143 and "interrupted during epoch" in stderr, (proc.returncode, stdout, stderr[-3000:])
    record = json.loads((run_dir / "result.json").read_text())
    assert record["interrupted_by"] == "SIGTERM"
    assert record["status"] == "failed" and "interrupted during epoch" in record["error"]
    assert record["epochs_run"] >= 2 and record["test"]["accuracy"] > 0.5  # test at the best epoch so far
    assert "resume with trainer.resume=true" in record["error"]


def started_run(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """`meprop train` on digits in a subprocess, returned once it has written two metrics lines."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "meprop_cli", "train", "trainer.max_epochs=1000",
                             "trainer.progress=none", "trainer.threads=1", f"hydra.run.dir={run_dir}", *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc, run_dir


def test_ctrl_c_writes_the_result_and_exits_130(tmp_path):
    proc, run_dir = started_run(tmp_path)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted during epoch" in stderr, (proc.returncode, stdout, stderr[-3000:])
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "failed" and record["interrupted_by"] == "SIGINT" and record["test"]["accuracy"] > 0.5


def test_sigterm_stops_a_sweep_after_the_running_job_wrote_its_result(tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "meprop_cli", "train", "-m", "seed=1,2,3", "trainer.max_epochs=1000",
                             "trainer.progress=none", "trainer.threads=1", f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120

    def jobs() -> list[Path]:  # job folders are named N_OVERRIDES
        return sorted(p for p in sweep.glob("*") if p.is_dir() and p.name[0].isdigit())

    while not (jobs() and (jobs()[0] / "metrics.jsonl").exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert [job.name[0] for job in jobs()] == ["0"]  # the rest of the sweep did not start
    assert json.loads((jobs()[0] / "result.json").read_text())["interrupted_by"] == "SIGTERM"


def test_a_diverging_run_is_one_line_and_exit_2(tmp_path):
    proc = run_meprop(["train", "optim=sgd", "optim.lr=1e6", "trainer.max_epochs=2", "trainer.progress=none",
                       f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("meprop: error: training diverged at epoch 1, step ")
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "failed"


def test_a_folder_that_holds_a_run_is_never_written_over(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "trainer.max_epochs=1", "trainer.progress=none", f"hydra.run.dir={run_dir}"]
    assert run_meprop(args, cwd=tmp_path).returncode == 0
    before = {name: (run_dir / name).read_bytes() for name in ("result.json", "metrics.jsonl", "config.yaml")}
    again = run_meprop([*args, "seed=2"], cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.startswith(f"meprop: error: {run_dir} already holds a run")
    assert "continue it with trainer.resume=true, or choose a new hydra.run.dir" in again.stderr
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def test_a_sweep_run_again_keeps_its_completed_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "seed=1,2", "trainer.max_epochs=1", "trainer.progress=none", f"hydra.sweep.dir={sweep}"]
    assert run_meprop(args, cwd=tmp_path).returncode == 0
    results_before = {p: p.read_bytes() for p in sweep.glob("*/result.json")}
    assert len(results_before) == 2
    again = run_meprop(args, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipped (completed before)") == 2
    assert {p: p.read_bytes() for p in sweep.glob("*/result.json")} == results_before


def test_two_runs_at_once_into_one_folder_are_refused(make_cfg, tmp_path):
    from meprop_cli.errors import UserError
    from meprop_cli.train import run_lock, train
    with run_lock(tmp_path):  # another run holds the folder
        with pytest.raises(UserError, match="is in use by another meprop run"):
            train(make_cfg(["trainer.max_epochs=1", "trainer.progress=none"]), tmp_path)
    assert not (tmp_path / "result.json").exists()


def test_a_sweep_run_again_with_more_epochs_continues_its_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "seed=1,2", "trainer.progress=none", "trainer.max_steps_per_epoch=5",
            f"hydra.sweep.dir={sweep}"]
    assert run_meprop([*args, "trainer.max_epochs=1"], cwd=tmp_path).returncode == 0
    again = run_meprop([*args, "trainer.max_epochs=2"], cwd=tmp_path)
    assert again.returncode == 0 and "skipped" not in again.stdout
    for result in sweep.glob("*/result.json"):
        record = json.loads(result.read_text())
        assert record["status"] == "completed" and record["epochs_run"] == 2
        assert [line["epoch"] for line in map(json.loads, (result.parent / "metrics.jsonl").open())] == [1, 2]
