"""Sweeps under Hydra's joblib and submitit launchers (meprop_cli/launch.py), end to end in subprocesses.

The launchers are optional extras: their tests are skipped when the plugin is not installed."""
import datetime
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_meprop

from meprop_cli import launch, results


def installed(plugin: str) -> bool:
    return importlib.util.find_spec(f"hydra_plugins.{plugin}") is not None


needs_joblib = pytest.mark.skipif(not installed("hydra_joblib_launcher"),
                                  reason="pip install 'meprop-cli[parallel]' (hydra-joblib-launcher)")
needs_submitit = pytest.mark.skipif(not installed("hydra_submitit_launcher"),
                                    reason="pip install 'meprop-cli[slurm]' (hydra-submitit-launcher)")
QUIET = ["trainer.progress=none"]


def result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def epochs(run_dir: Path) -> list[int]:
    return [line["epoch"] for line in map(json.loads, (run_dir / "metrics.jsonl").open())]


def started_sweep(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "meprop_cli", "train", "-m", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def written_lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def stop_group(proc: subprocess.Popen) -> None:
    """After a test that failed half-way: the sweep it started and its workers (its own process group) end."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_parallel_jobs_threads_stay_within_the_cores():
    assert launch.job_threads(0, {"n_jobs": -1}, 8) == (1, [])  # one job per core, a thread each
    assert launch.job_threads(0, {"n_jobs": 2}, 8) == (4, [])
    assert launch.job_threads(0, {"n_jobs": -2}, 8) == (1, [])  # 7 jobs
    assert launch.job_threads(3, {"n_jobs": 2}, 8) == (3, [])  # given, and 6 ≤ 8
    assert launch.job_threads(4, {"n_jobs": 4}, 8) == (4, [(
        "trainer.threads=4 in 4 jobs at once (hydra.launcher.n_jobs=4) is 16 threads on 8 cores: the jobs wait for "
        "each other's cores; trainer.threads=0 gives each job 2")])
    assert launch.job_threads(0, {"n_jobs": 16}, 8) == (1, [(
        "hydra.launcher.n_jobs=16 runs 16 jobs at once on 8 cores: the jobs wait for each other's cores; use n_jobs "
        "at most 8")])
    assert launch.job_threads(0, {"cpus_per_task": 4}, 64) == (4, [])  # submitit: the job's cores
    assert launch.job_threads(2, {"cpus_per_task": 4}, 64) == (2, [])
    assert launch.job_threads(6, {"cpus_per_task": 4}, 64)[1] == [(
        "trainer.threads=6 is more than the job's cores (hydra.launcher.cpus_per_task=4): its threads wait for each "
        "other's cores; trainer.threads=0 gives it 4")]
    # submitit_local runs its jobs at once, SLURM gives one core: unsaid cores are one
    assert launch.job_threads(0, {"cpus_per_task": None}, 64) == (1, [])
    assert launch.job_threads(2, {"cpus_per_task": None}, 64)[1] == [(
        "trainer.threads=2 is more than the job's cores (hydra.launcher.cpus_per_task=None): its threads wait for "
        "each other's cores; trainer.threads=0 gives it 1")]
    assert launch.job_threads(0, {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8) == (8, [])


def test_a_small_task_takes_one_thread_and_a_large_one_the_jobs_share_of_the_cores():
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert launch.job_threads(0, basic, 8, task_threads=1) == (1, [])  # batch 10: slower on a second thread
    assert launch.job_threads(0, basic, 8, task_threads=0) == (8, [])  # batch 10,000: all the cores
    assert launch.job_threads(0, {"n_jobs": 2}, 8, task_threads=0) == (4, [])
    assert launch.job_threads(0, {"n_jobs": 2}, 8, task_threads=2) == (2, [])
    assert launch.job_threads(0, {"cpus_per_task": 4}, 64, task_threads=1) == (1, [])
    assert launch.job_threads(3, basic, 8, task_threads=1) == (3, [])  # given: kept
    assert launch.job_threads(4, {"n_jobs": 4}, 8, task_threads=1)[1][0].endswith("trainer.threads=0 gives each job 1")


def test_the_tasks_auto_threads_follow_the_measurement(make_cfg):
    """Tasks with small steps train on one thread by default; parsing (batch 10,000) on all the cores."""
    from meprop_cli.tasks import TASKS
    auto = {name: make_cfg([f"task={name}"]).task.auto_threads for name in TASKS}
    assert auto.pop("parse") == 0 and set(auto.values()) == {1}, auto


def test_a_callers_warning_and_the_threads_used_are_in_result_json(make_cfg, tmp_path):
    from meprop_cli.train import train
    record = train(make_cfg(["trainer.max_epochs=1", "trainer.max_steps_per_epoch=2", "trainer.threads=1", *QUIET]),
                   tmp_path, warnings=["the launcher's warning"])
    saved = result(tmp_path)
    assert saved[results.WARNINGS] == record[results.WARNINGS] == ["the launcher's warning"]
    assert saved[results.THREADS] == 1
    started, ended = (datetime.datetime.fromisoformat(saved[key]) for key in (results.STARTED_AT, results.ENDED_AT))
    assert started <= ended and ended.tzinfo is not None


def test_a_launcher_that_is_not_installed_says_which_extra_brings_it(tmp_path):
    proc = run_meprop(["train", "-m", "hydra/launcher=nosuch", "seed=1,2"], cwd=tmp_path)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("meprop: error: In 'hydra/config': Could not find 'hydra/launcher/nosuch' (hydra/launcher="
                           "joblib needs pip install 'meprop-cli[parallel]'; slurm and submitit_local need "
                           "'meprop-cli[slurm]'); use one of basic")


@needs_joblib
def test_a_joblib_sweep_runs_its_jobs_at_once_and_names_the_job_that_failed(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_meprop(["train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "method=meprop",
                       "topk=5,10,1000", "trainer.max_epochs=3", *QUIET, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    failed = sweep / "2_method=meprop,topk=1000"  # k above the hidden layer's 100 units
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"meprop: error: 1 job(s) of the sweep failed; their result.json says why: {failed}")
    assert result(failed)["status"] == "failed" and "topk=1000" in result(failed)["error"]
    ran = [sweep / "0_method=meprop,topk=5", sweep / "1_method=meprop,topk=10"]
    records = [result(run_dir) for run_dir in ran]  # the failed job lost neither of the others' results
    assert [r["status"] for r in records] == ["completed", "completed"] and [r["k"] for r in records] == [5, 10]
    spans = [[datetime.datetime.fromisoformat(r[key]) for key in (results.STARTED_AT, results.ENDED_AT)]
             for r in records]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans  # at once, not one after another
    threads, warnings = launch.job_threads(0, {"n_jobs": 2}, launch.cores())  # 2 cores here: a thread each
    assert all(r[results.THREADS] == threads and r[results.WARNINGS] == warnings for r in records)
    assert not (sweep / launch.STATE_DIR).exists()


@needs_joblib
@pytest.mark.parametrize("to_group", [False, True], ids=["to the sweep", "to its process group"])
def test_sigterm_to_a_joblib_sweep_ends_its_running_jobs_with_their_results_and_starts_no_more(tmp_path, to_group):
    """`kill PID` reaches the sweep, which passes it on; `kill -- -PGID` (a scheduler, `timeout`) reaches each job
    twice, directly and passed on: the second must not cut the scoring of test short."""
    sweep = tmp_path / "sweep"
    proc = started_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2,3",
                         "trainer.max_epochs=5000", "trainer.threads=1", *QUIET, f"hydra.sweep.dir={sweep}")
    running = [sweep / "0_seed=1", sweep / "1_seed=2"]
    try:
        wait_for(lambda: all(written_lines(run_dir / "metrics.jsonl") >= 2 for run_dir in running))
        if to_group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)  # as `kill` does: to the sweep's process alone, which passes it on
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        stop_group(proc)
    assert proc.returncode == 143, stderr[-3000:]
    for run_dir in running:
        record = result(run_dir)
        assert record[results.INTERRUPTED_BY] == "SIGTERM" and "interrupted during epoch" in record["error"]
        assert record["test"]["accuracy"] > 0.5  # scored with the best epoch so far
    assert f"not started (a SIGTERM stopped the sweep): {sweep / '2_seed=3'}" in stdout
    assert not (sweep / "2_seed=3").exists()  # Hydra's folder for it is removed: nothing to list in a table


@needs_submitit
def test_the_slurm_preset_sets_the_fields_it_documents(tmp_path):
    proc = run_meprop(["train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra"],
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import yaml
    launcher = yaml.safe_load(proc.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert {key: launcher[key] for key in ("partition", "timeout_min", "cpus_per_task", "gpus_per_node", "mem_gb",
                                           "array_parallelism", "signal_delay_s", "max_num_timeout")} == {
        "partition": "gpu", "timeout_min": 240, "cpus_per_task": 4, "gpus_per_node": None, "mem_gb": 8,
        "array_parallelism": 64, "signal_delay_s": 120, "max_num_timeout": 3}


@needs_submitit
def test_a_submitit_local_sweep_writes_folders_that_meprop_table_reads(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_meprop(["train", "-m", "hydra/launcher=submitit_local", "method=meprop", "topk=5,10,1000",
                       "trainer.max_epochs=2", "trainer.max_steps_per_epoch=10", "trainer.threads=1", *QUIET,
                       f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # the jobs run as subprocesses: the sweep still names the failed one
    assert proc.stderr.strip().splitlines()[-1] == ("meprop: error: 1 job(s) of the sweep failed; their result.json "
                                                    f"says why: {sweep / '2_method=meprop,topk=1000'}")
    assert [result(sweep / f"{i}_method=meprop,topk={k}")["status"] for i, k in ((0, 5), (1, 10))] == ["completed"] * 2
    table = run_meprop(["table", str(sweep), "--format", "csv"], cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = [line.split(",") for line in table.stdout.strip().splitlines()]
    header, body = rows[0], rows[1:]
    assert sorted(row[header.index("k")] for row in body) == ["10", "5"]
    assert "topk=1000" in table.stderr  # the failed job is listed under the table, with its reason


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@needs_submitit
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the job's process through /proc")
def test_a_preempted_submitit_job_is_requeued_and_continues_from_last_pt(make_cfg, tmp_path):
    """SIGUSR2 is what SLURM sends before a time limit (and at a preemption): the run saves last.pt at its next
    step, submitit requeues the job with the same overrides, and the job continues from last.pt."""
    sweep = tmp_path / "sweep"
    settings = ["seed=1", "trainer.max_epochs=40", "trainer.max_steps_per_epoch=20", "trainer.threads=1", *QUIET]
    proc = started_sweep(tmp_path, "hydra/launcher=submitit_local", *settings, f"hydra.sweep.dir={sweep}")
    run_dir = sweep / "0_seed=1"
    try:
        wait_for(lambda: written_lines(run_dir / "metrics.jsonl") >= 2)
        [job] = [path for path in (sweep / ".submitit").iterdir() if path.name.isdigit()]  # the controller's pid
        [task] = children(int(job.name))  # the process running the job
        os.kill(task, signal.SIGUSR2)
        _, stderr = proc.communicate(timeout=240)
    finally:
        stop_group(proc)
    assert proc.returncode == 0, stderr[-3000:]
    job_log = (job / f"{job.name}_0_log.out").read_text()
    assert "Requeued job" in job_log and "stopped by SIGUSR2" in (job / f"{job.name}_0_log.err").read_text()
    assert f"resumed from {run_dir / 'last.pt'}" in (run_dir / "train.log").read_text()
    record = result(run_dir)
    assert record["status"] == "completed" and record["epochs_run"] == 40
    assert epochs(run_dir) == list(range(1, 41))  # each epoch once: it continued, it did not start over
    uninterrupted = tmp_path / "uninterrupted"
    from meprop_cli.train import train
    train(make_cfg(settings), uninterrupted)
    assert [line["dev"] for line in map(json.loads, (run_dir / "metrics.jsonl").open())] == \
        [line["dev"] for line in map(json.loads, (uninterrupted / "metrics.jsonl").open())]
    assert record["test"] == result(uninterrupted)["test"]
