"""The trainer, called in process on the bundled digits: result contract, best-dev protocol, resume."""
import json
import re
from pathlib import Path

import pytest
import torch

from meprop_cli import results
from meprop_cli.errors import UserError
from meprop_cli.train import Run, train


def checkpoint_test_scores(cfg, checkpoint: Path, run_dir: Path) -> dict:
    """The test scores of a checkpoint's weights, loaded into a freshly set-up run of cfg."""
    run = Run(cfg, run_dir)
    run.setup()
    run.model.load_state_dict(torch.load(checkpoint, weights_only=False)["model"])
    run.model.eval()
    with torch.no_grad():
        return run.task.evaluate(run.model, "test")


def test_result_json_follows_the_contract(make_cfg, tmp_path):
    cfg = make_cfg(["method=meprop", "topk=20", "trainer.max_epochs=3", "trainer.progress=none"])
    record = train(cfg, tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert set(results.RESULT_KEYS) <= set(on_disk) and set(results.TIMING_KEYS) <= set(on_disk["timing"])
    assert on_disk["status"] == "completed" and on_disk["error"] is None
    assert (on_disk["task"], on_disk["method"], on_disk["k"], on_disk["k_output"]) == ("digits", "meprop", 20, 20)
    assert on_disk["hidden"] == [100, 100] and on_disk["params"] == 64 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert 0.0 <= on_disk["test"]["accuracy"] <= 1.0 and on_disk["dev"]["accuracy"] > 0.5
    t = on_disk["timing"]
    assert 0 < t["linear_backward_s"] <= t["backward_s"] < t["total_s"] and t["forward_s"] > 0 and t["update_s"] > 0
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "best.pt").is_file()


def test_test_score_comes_from_the_best_dev_epoch(make_cfg, tmp_path):
    cfg = make_cfg(["trainer.max_epochs=4", "trainer.progress=none"])
    record = train(cfg, tmp_path)
    lines = results.read_metrics(tmp_path)
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    best = max(lines, key=lambda line: line["dev"]["accuracy"])  # the first of equals wins
    assert record["best_epoch"] == best["epoch"] and record["dev"] == best["dev"]
    assert checkpoint_test_scores(cfg, tmp_path / "best.pt", tmp_path / "again") == record["test"]


def test_same_seed_gives_the_same_run(make_cfg, tmp_path):
    cfg = make_cfg(["method=random", "topk=10", "trainer.max_epochs=2", "trainer.progress=none", "seed=7"])
    first, second = train(cfg, tmp_path / "a"), train(cfg, tmp_path / "b")
    assert first["dev"] == second["dev"] and first["test"] == second["test"]


def test_max_steps_per_epoch_cuts_epochs_short(make_cfg, tmp_path):
    cfg = make_cfg(["trainer.max_epochs=2", "trainer.max_steps_per_epoch=7", "trainer.progress=none"])
    train(cfg, tmp_path)
    assert [line["step"] for line in results.read_metrics(tmp_path)] == [7, 14]


def test_eval_every_steps_adds_dev_evaluations(make_cfg, tmp_path):
    cfg = make_cfg(["trainer.max_epochs=1", "trainer.eval_every_steps=50", "trainer.progress=none"])
    train(cfg, tmp_path)
    steps = [line["step"] for line in results.read_metrics(tmp_path)]
    assert steps == [50, 100, 120]  # 1,197 training images in batches of 10 = 120 updates
    train(make_cfg(["trainer.max_epochs=1", "trainer.eval_every_steps=60", "trainer.progress=none"]), tmp_path / "b")
    assert [line["step"] for line in results.read_metrics(tmp_path / "b")] == [60, 120]  # the last step scored once


def interrupted_in_epoch(stop: int, original):
    """Run.train_epoch (the original), except that epoch `stop` is interrupted as Ctrl-C would."""
    def train_epoch(self, epoch):
        if epoch == stop:
            raise KeyboardInterrupt
        original(self, epoch)
    return train_epoch


def test_interrupted_run_keeps_its_best_and_resumes(make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg(["trainer.max_epochs=3", "trainer.progress=none"])
    full = train(cfg, tmp_path / "full")

    original = Run.train_epoch
    monkeypatch.setattr(Run, "train_epoch", interrupted_in_epoch(3, original))
    cut = train(cfg, tmp_path / "cut")
    assert cut["status"] == "failed" and "interrupted during epoch 3" in cut["error"]
    assert cut["epochs_run"] == 2 and cut["test"]  # best-so-far test score is not lost
    monkeypatch.setattr(Run, "train_epoch", original)

    resume_cfg = make_cfg(["trainer.max_epochs=3", "trainer.progress=none", "trainer.resume=true"])
    resumed = train(resume_cfg, tmp_path / "cut")
    assert resumed["status"] == "completed" and resumed["epochs_run"] == 3
    assert resumed["dev"] == full["dev"] and resumed["test"] == full["test"]  # same as never interrupted
    assert [line["epoch"] for line in results.read_metrics(tmp_path / "cut")] == [1, 2, 3]


def test_an_interrupt_while_setting_up_writes_a_failed_result_without_scoring(make_cfg, tmp_path, monkeypatch):
    from meprop_cli.tasks.digits import DigitsTask

    def load(self):
        raise KeyboardInterrupt  # as a Ctrl-C or SIGTERM arriving while the data loads

    monkeypatch.setattr(DigitsTask, "load", load)
    record = train(make_cfg(["trainer.progress=none"]), tmp_path)
    assert record[results.INTERRUPTED_BY] == "SIGINT" and record["status"] == "failed"
    assert "interrupted while setting up" in record["error"] and record["test"] == {}
    assert results.read_result(tmp_path)["error"] == record["error"]


def test_a_second_interrupt_while_test_is_scored_still_writes_the_result(make_cfg, tmp_path, monkeypatch):
    import meprop_cli.train as trainer

    original_step, original_evaluate, steps = trainer.timed_step, trainer.evaluate, [0]

    def timed_step(*args, **kwargs):
        steps[0] += 1
        if steps[0] == 130:  # epoch 2
            raise KeyboardInterrupt
        return original_step(*args, **kwargs)

    def evaluate(task, model, split):
        if split == "test":
            raise KeyboardInterrupt  # the second Ctrl-C
        return original_evaluate(task, model, split)

    monkeypatch.setattr(trainer, "timed_step", timed_step)
    monkeypatch.setattr(trainer, "evaluate", evaluate)
    record = train(make_cfg(["trainer.max_epochs=2", "trainer.progress=none"]), tmp_path)
    saved = results.read_result(tmp_path)
    assert saved["status"] == "failed" and "a second interrupt stopped the scoring of test" in saved["error"]
    assert saved["dev"] and saved["best_epoch"] == 1 and record[results.INTERRUPTED_BY] == "SIGINT"


def test_resume_without_a_checkpoint_is_a_clear_error(make_cfg, tmp_path):
    from meprop_cli.errors import UserError

    with pytest.raises(UserError, match="does not exist"):
        train(make_cfg(["trainer.resume=true"]), tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "failed"


def test_lr_decay_lowers_the_learning_rate_every_epoch_and_survives_a_resume(make_cfg, tmp_path, monkeypatch):
    overrides = ["trainer.max_epochs=3", "trainer.progress=none", "optim.lr=0.002", "optim.lr_decay=0.5"]
    train(make_cfg(overrides), tmp_path / "full")
    assert [line["lr"] for line in results.read_metrics(tmp_path / "full")] == [0.002, 0.001, 0.0005]

    original = Run.train_epoch
    monkeypatch.setattr(Run, "train_epoch", interrupted_in_epoch(3, original))
    train(make_cfg(overrides), tmp_path / "cut")
    monkeypatch.setattr(Run, "train_epoch", original)
    train(make_cfg([*overrides, "trainer.resume=true"]), tmp_path / "cut")
    assert [line["lr"] for line in results.read_metrics(tmp_path / "cut")] == [0.002, 0.001, 0.0005]


def test_lr_decay_outside_0_1_is_a_config_error(make_cfg, tmp_path):
    from meprop_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="optim.lr_decay=0.0 must be in"):
        train(make_cfg(["optim.lr_decay=0"]), tmp_path)


def test_average_decay_scores_dev_and_test_with_the_averaged_weights(make_cfg, tmp_path, monkeypatch):
    overrides = ["trainer.max_epochs=3", "trainer.progress=none", "trainer.average_decay=0.9"]
    cfg = make_cfg(overrides)
    full = train(cfg, tmp_path / "full")
    last = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    best = torch.load(tmp_path / "full" / "best.pt", weights_only=False)
    assert last["average"]["updates"] == 3 * 120
    assert full["best_epoch"] == 3  # so best.pt is the average after the last update, not the trained weights
    for name, a in zip(last["model"], last["average"]["average"]):
        torch.testing.assert_close(best["model"][name], a)
    assert any(not torch.equal(best["model"][n], last["model"][n]) for n in last["model"])
    assert checkpoint_test_scores(cfg, tmp_path / "full" / "best.pt", tmp_path / "again") == full["test"]
    train(make_cfg(["trainer.max_epochs=3", "trainer.progress=none"]), tmp_path / "plain")
    assert [m["dev"] for m in results.read_metrics(tmp_path / "plain")] != \
        [m["dev"] for m in results.read_metrics(tmp_path / "full")]

    original = Run.train_epoch  # an interrupted and resumed run ends as the uninterrupted one
    monkeypatch.setattr(Run, "train_epoch", interrupted_in_epoch(3, original))
    train(cfg, tmp_path / "cut")
    monkeypatch.setattr(Run, "train_epoch", original)
    resumed = train(make_cfg([*overrides, "trainer.resume=true"]), tmp_path / "cut")
    assert resumed["dev"] == full["dev"] and resumed["test"] == full["test"]


def test_resuming_a_run_without_averaging_with_averaging_is_a_clear_error(make_cfg, tmp_path, monkeypatch):
    from meprop_cli.errors import UserError

    monkeypatch.setattr(Run, "train_epoch", interrupted_in_epoch(2, Run.train_epoch))
    train(make_cfg(["trainer.max_epochs=2", "trainer.progress=none"]), tmp_path)
    monkeypatch.undo()
    with pytest.raises(UserError, match=r"changes trainer.average_decay=0.9 \(the run: 0.0\)"):
        train(make_cfg(["trainer.max_epochs=2", "trainer.progress=none", "trainer.resume=true",
                        "trainer.average_decay=0.9"]), tmp_path)


def test_average_decay_outside_0_1_is_a_config_error(make_cfg, tmp_path):
    from meprop_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.average_decay=1.0 must be in"):
        train(make_cfg(["trainer.average_decay=1"]), tmp_path)


@pytest.mark.parametrize("changed, named", [
    (["topk=10"], "topk=10 (the run: 20)"),
    (["task.hidden=[80,80]"], "task.hidden=[80, 80] (the run: [100, 100])"),
    (["method=baseline", "topk=20"], "method.mode=None (the run: topk)"),
])
def test_resume_refuses_settings_other_than_the_runs_naming_them(make_cfg, tmp_path, changed, named):
    args = ["method=meprop", "topk=20", "trainer.max_epochs=1", "trainer.progress=none", "trainer.max_steps_per_epoch=3"]
    train(make_cfg(args), tmp_path)
    saved = (tmp_path / "config.yaml").read_text()
    with pytest.raises(UserError, match="trainer.resume=true continues .* with its own settings, and this command "
                                        "changes .*" + re.escape(named)):
        train(make_cfg([*[a for a in args if a.split("=")[0] not in {c.split("=")[0] for c in changed}], *changed,
                        "trainer.resume=true"]), tmp_path)
    assert (tmp_path / "config.yaml").read_text() == saved  # nothing of the run was touched


def test_resume_may_change_length_threads_progress_and_data_root(make_cfg, tmp_path):
    args = ["trainer.progress=none", "trainer.max_steps_per_epoch=3"]
    train(make_cfg([*args, "trainer.max_epochs=1"]), tmp_path)
    resumed = train(make_cfg([*args, "trainer.max_epochs=2", "trainer.threads=1", "trainer.progress=log",
                              "trainer.log_every_steps=7", "trainer.resume=true"]), tmp_path)
    assert resumed["status"] == "completed" and resumed["epochs_run"] == 2


@pytest.mark.parametrize("args, loss", [
    (["optim=sgd", "optim.lr=1e6"], r"(nan|inf|[0-9.e+]+, above trainer.max_loss=1000.0 in 10 batches in a row)"),
    (["optim.lr=1e6"], r"[0-9.e+]+, above trainer.max_loss=1000.0 in 10 batches in a row"),  # Adam: finite, huge
])
def test_a_diverging_run_stops_as_failed_with_its_step_and_loss(make_cfg, tmp_path, args, loss):
    with pytest.raises(UserError, match=rf"training diverged at epoch \d+, step \d+: the batch loss is {loss}; "
                                        r"lower optim.lr \(now 1000000.0\)"):
        train(make_cfg([*args, "trainer.max_epochs=3", "trainer.progress=none"]), tmp_path)
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("training diverged at epoch")


def test_a_loss_above_max_loss_stops_only_when_the_bound_is_set(make_cfg, tmp_path):
    cfg = ["trainer.max_epochs=1", "trainer.progress=none", "trainer.max_steps_per_epoch=5"]
    # the loss is about log(10) at the start, above 1: the run stops after max_loss_batches such batches
    for batches in (1, 3):
        with pytest.raises(UserError, match=rf"step {batches}: the batch loss is 2\.\d+, above trainer.max_loss=1.0 "
                                            rf"in {batches} batches in a row;"):
            train(make_cfg([*cfg, "trainer.max_loss=1", f"trainer.max_loss_batches={batches}"]),
                  tmp_path / f"bounded{batches}")
    assert train(make_cfg([*cfg, "trainer.max_loss=null"]), tmp_path / "free")["status"] == "completed"
    with pytest.raises(UserError, match="trainer.max_loss=0.0 must be above 0"):
        train(make_cfg([*cfg, "trainer.max_loss=0"]), tmp_path / "zero")


def test_a_signal_whose_exception_was_swallowed_still_ends_the_run_at_the_next_step(make_cfg, tmp_path, monkeypatch):
    """A signal handler's exception raised inside a __del__ or a GC callback is dropped by Python; the run
    must still stop (once it trained on to the end and exited 0 after a SIGTERM)."""
    import signal as signals

    import meprop_cli.train as trainer
    original, calls = trainer.timed_step, []

    def step_then_swallowed_sigterm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # as if the handler ran but its exception was lost
            trainer.PendingSignal.signum = signals.SIGTERM
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "timed_step", step_then_swallowed_sigterm)
    record = train(make_cfg(["trainer.max_epochs=3", "trainer.progress=none"]), tmp_path)
    assert record["status"] == "failed" and record[results.INTERRUPTED_BY] == "SIGTERM"
    assert len(calls) == 5 and record["epochs_run"] == 0
    assert trainer.PendingSignal.signum is None


def test_run_from_last_reads_a_run_saved_before_newer_trainer_options(make_cfg, tmp_path):
    from meprop_cli.train import run_from_last
    train(make_cfg(["trainer.max_epochs=1", "trainer.progress=none", "trainer.max_steps_per_epoch=3"]), tmp_path)
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    for key in ("max_loss", "track_updates"):  # as an older run's config would be
        del last["config"]["trainer"][key]
    torch.save(last, tmp_path / "last.pt")
    run, _ = run_from_last(tmp_path)
    assert run.cfg.trainer.max_loss == 1000.0 and run.cfg.trainer.track_updates is False
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), last["model"].values()))
