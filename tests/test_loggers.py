"""trainer.loggers: what TensorBoard and MLflow hold, read back with their own readers, equals the run folder's
metrics.jsonl, config.yaml and result.json; a resumed run logs no step twice; a missing package or a failing
logger is one sentence. Skipped only where the [loggers] extra is not installed."""
from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest

from meprop_cli import loggers, results
from meprop_cli.errors import ConfigError
from meprop_cli.train import flat_config, train

# digits, 2 epochs of 5 updates, dev also every 2: evaluations at steps 2, 4, 5, 6, 8, 10
SHORT = ["trainer.max_epochs=2", "trainer.max_steps_per_epoch=5", "trainer.progress=none"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def needs(*modules: str) -> None:
    for module in modules:
        pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[loggers]'")


def expected_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every number of every metrics.jsonl line, and of result.json under result/, by name, as (step, value)."""
    series: dict[str, list[tuple[int, float]]] = {}
    for line in results.read_metrics(run_dir):
        for name, value in loggers.evaluation_scalars(line).items():
            series.setdefault(name, []).append((line["step"], value))
    record = results.read_result(run_dir)
    last_step = results.read_metrics(run_dir)[-1]["step"]
    for name, value in loggers.result_scalars(record).items():
        series.setdefault(name, []).append((last_step, value))
    return series


def tensorboard_events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / loggers.TENSORBOARD_DIR), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def tensorboard_series(events) -> dict[str, list[tuple[int, float]]]:
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_run(run_dir: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run_dir / loggers.MLFLOW_DB}")
    return client, client.get_run(json.loads((run_dir / loggers.MLFLOW_RUN_FILE).read_text())["run_id"])


def mlflow_series(client, run) -> dict[str, list[tuple[int, float]]]:
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics}


def assert_same_series(logged: dict, expected: dict, float32: bool = False) -> None:
    assert sorted(logged) == sorted(expected)
    for name, points in expected.items():
        assert [step for step, _ in logged[name]] == [step for step, _ in points], name
        values = [value for _, value in points]
        assert [value for _, value in logged[name]] == (pytest.approx(values, rel=1e-6) if float32 else values), name


def test_tensorboard_holds_every_metrics_record_the_config_and_the_result(make_cfg, tmp_path):
    needs("tensorboard")
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = tmp_path / "run"
    record = train(make_cfg([*SHORT, "trainer.eval_every_steps=2", "trainer.diagnostics=true",
                             "trainer.loggers=[tensorboard]"]), run)
    events = tensorboard_events(run)
    logged = tensorboard_series(events)
    assert_same_series(logged, expected_series(run), float32=True)  # TensorBoard keeps float32
    lines = results.read_metrics(run)
    assert [step for step, _ in logged["dev/accuracy"]] == [2, 4, 5, 6, 8, 10]
    assert logged["train_loss"] == [(5, pytest.approx(lines[2]["train_loss"])), (10, pytest.approx(lines[5]["train_loss"]))]
    assert logged["timing/forward_s"][0] == (5, pytest.approx(lines[2]["timing"]["forward_s"]))
    assert logged["diagnostics/1/dead_fraction"][-1] == (10, pytest.approx(lines[5]["diagnostics"][1]["dead_fraction"]))
    assert logged["result/test/accuracy"] == [(10, pytest.approx(record["test"]["accuracy"]))]

    config = flat_config(results.read_config(run))  # the hyper-parameters are config.yaml, key by key
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    shown = {key: getattr(value, value.WhichOneof("kind")) for key, value in hparams.items()}
    assert shown == {key: value if isinstance(value, str) else float(value) if isinstance(value, (int, float))
                     else json.dumps(value) for key, value in config.items() if value is not None}
    assert shown["optim.lr"] == 0.001 and shown["task.hidden"] == "[100, 100]"
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.replace("\n    ", "\n").removeprefix("    ") == (run / results.CONFIG_FILE).read_text().rstrip()


def test_mlflow_run_in_the_run_folder_holds_the_metrics_params_and_result(make_cfg, tmp_path, monkeypatch):
    needs("mlflow", "sqlalchemy", "alembic")
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory (MLflow's default ./mlruns)
    run = tmp_path / "run"
    record = train(make_cfg([*SHORT, "trainer.eval_every_steps=2", "trainer.loggers=[mlflow]"]), run)
    client, logged = mlflow_run(run)
    assert_same_series(mlflow_series(client, logged), expected_series(run))
    config = flat_config(results.read_config(run))
    assert logged.data.params == {key: value if isinstance(value, str) else json.dumps(value)
                                  for key, value in config.items()}
    assert (logged.data.params["optim.lr"], logged.data.params["trainer.loggers"]) == ("0.001", '["mlflow"]')
    assert logged.data.metrics["result/test/accuracy"] == record["test"]["accuracy"]
    assert (logged.info.status, logged.info.run_name) == ("FINISHED", "baseline/run")
    assert logged.data.tags["meprop.status"] == "completed" and logged.data.tags["meprop.run_dir"] == str(run)
    assert client.get_experiment(logged.info.experiment_id).name == "digits"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


class Killed(BaseException):
    """Stands for SIGKILL in this process: no handler of the trainer catches it, so nothing is scored or written."""


def test_a_killed_run_resumed_continues_the_same_logs_without_logging_a_step_twice(make_cfg, tmp_path, monkeypatch):
    """Killed where it hurts: epoch 2's record is written and logged, its last.pt not yet (test_checkpoints kills a
    real process there)."""
    needs("tensorboard", "mlflow", "sqlalchemy", "alembic")
    renames = []

    def kill_before_the_second_last_pt(path: Path) -> None:
        renames.append(path.name)
        if renames.count(results.LAST_CHECKPOINT) == 2:
            raise Killed

    args = [*SHORT, "trainer.max_epochs=3", "trainer.loggers=[tensorboard,mlflow]"]
    monkeypatch.setattr(results, "_fault_point", kill_before_the_second_last_pt)
    with pytest.raises(Killed):
        train(make_cfg(args), tmp_path)
    monkeypatch.undo()
    client, before = mlflow_run(tmp_path)
    assert [m.step for m in client.get_metric_history(before.info.run_id, "epoch")] == [5, 10]  # 10: not in last.pt

    train(make_cfg([*args, "trainer.resume=true"]), tmp_path)
    assert [line["step"] for line in results.read_metrics(tmp_path)] == [5, 10, 15]
    expected = expected_series(tmp_path)
    # TensorBoard drops what the killed session logged from last.pt's step on: it equals metrics.jsonl, timings too
    assert_same_series(tensorboard_series(tensorboard_events(tmp_path)), expected, float32=True)
    assert len(list((tmp_path / loggers.TENSORBOARD_DIR).iterdir())) == 2  # one event file per session, one folder

    client, after = mlflow_run(tmp_path)
    assert after.info.run_id == before.info.run_id and after.info.status == "FINISHED"
    assert len(client.search_runs([after.info.experiment_id])) == 1
    logged = mlflow_series(client, after)
    # MLflow cannot delete: step 10 keeps the killed session's values, the same scores but that session's timings
    timed = {name for name in expected if name.startswith(("timing/", "examples_per_s"))}
    assert_same_series({k: v for k, v in logged.items() if k not in timed},
                       {k: v for k, v in expected.items() if k not in timed})
    for name in timed:
        assert [step for step, _ in logged[name]] == [step for step, _ in expected[name]], name
        assert [p for p in logged[name] if p[0] != 10] == [p for p in expected[name] if p[0] != 10], name


def test_a_logger_added_on_resume_gets_the_whole_run_from_metrics_jsonl(make_cfg, tmp_path):
    needs("tensorboard")
    train(make_cfg([*SHORT, "trainer.max_epochs=1"]), tmp_path)
    train(make_cfg([*SHORT, "trainer.resume=true", "trainer.loggers=[tensorboard]"]), tmp_path)
    events = tensorboard_events(tmp_path)
    assert_same_series(tensorboard_series(events), expected_series(tmp_path), float32=True)
    assert [step for step, _ in tensorboard_series(events)["dev/accuracy"]] == [5, 10]
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


@pytest.mark.parametrize("name, module", [("tensorboard", "torch.utils.tensorboard"), ("mlflow", "mlflow.tracking")])
def test_a_logger_whose_package_is_missing_stops_the_run_at_start_naming_the_extra(make_cfg, tmp_path, monkeypatch,
                                                                                   name, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it raises ImportError
    with pytest.raises(ConfigError, match=rf"^trainer\.loggers=\[{name}\] needs the .*: install the extra: pip install "
                                          r"-e '\.\[loggers\]' in a source checkout, pip install 'meprop-cli\[loggers\]' "
                                          r"otherwise$"):
        train(make_cfg([*SHORT, f"trainer.loggers=[{name}]"]), tmp_path)
    assert not (tmp_path / results.METRICS_FILE).exists()  # stopped before training
    assert "pip install 'meprop-cli[loggers]'" in results.read_result(tmp_path)["error"]


def test_a_logger_failing_mid_run_is_one_warning_and_the_run_completes(make_cfg, tmp_path, monkeypatch):
    needs("tensorboard")
    real_log, calls = loggers.TensorBoardLogger.log, [0]

    def log(self, values, step):  # the disk fills at the second evaluation
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_log(self, values, step)

    monkeypatch.setattr(loggers.TensorBoardLogger, "log", log)
    record = train(make_cfg([*SHORT, "trainer.loggers=[tensorboard]"]), tmp_path)
    assert record["status"] == "completed" and [line["step"] for line in results.read_metrics(tmp_path)] == [5, 10]
    warning = ("trainer.loggers: tensorboard failed at step 10 (OSError: [Errno 28] No space left on device) and is "
               "off for the rest of the run; metrics.jsonl and result.json hold everything")
    assert results.read_result(tmp_path)[results.WARNINGS] == [warning]
    assert [step for step, _ in tensorboard_series(tensorboard_events(tmp_path))["dev/accuracy"]] == [5]


OPEN_AND_LOG = """
import sys
from pathlib import Path
from meprop_cli.loggers import Loggers, Start
run_dir, uri = Path(sys.argv[1]), sys.argv[2]
run_dir.mkdir()
chosen = Loggers.build({"loggers": ["mlflow"], "mlflow_uri": uri}, run_dir, print)
chosen.open(Start(run_dir, "digits", "baseline", {"seed": 1}, "seed: 1", ("accuracy",), None), [])
chosen.evaluation({"epoch": 1, "step": 5, "dev": {"accuracy": 0.5}})
chosen.close({"status": "completed"})
"""


def test_two_jobs_opening_one_new_shared_mlflow_store_at_once_both_log(tmp_path):
    """A parallel sweep with trainer.mlflow_uri: without the store's lock, one of them fails creating its tables."""
    needs("mlflow", "sqlalchemy", "alembic")
    import subprocess

    from conftest import REPO

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # its folder is made too
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    jobs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LOG, str(tmp_path / f"job{i}"), uri], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    outcomes = [job.communicate(timeout=240) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err[-500:] for _, err in outcomes]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("digits").experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["baseline/job1", "baseline/job2"]
    assert all(run.data.metrics["dev/accuracy"] == 0.5 and run.info.status == "FINISHED" for run in runs)
