"""Checkpoints inside an epoch (trainer.checkpoint_every_steps): a run stopped between two of them continues from
the last one exactly as if it had never stopped, for every method and task whose state a step changes."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from meprop_cli import results
from meprop_cli import train as trainer
from meprop_cli.train import train

sys.path.insert(0, str(Path(__file__).parent / "tasks"))
sys.path.insert(0, str(Path(__file__).parent / "tasks" / "parse"))
from test_parse_task import tiny_overrides, write_treebank, TREES, NONPROJECTIVE  # noqa: E402
from test_pos import TINY, write_tiny_ewt  # noqa: E402

STRIP = ("timing", "examples_per_s")


def metrics_without_times(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in line.items() if k not in STRIP} for line in results.read_metrics(run_dir)]


def stop_at_step(monkeypatch, step: int) -> None:
    """The run is interrupted (as by Ctrl-C) when its update number `step` (counted in this process) begins."""
    original, started = trainer.timed_step, [0]

    def timed_step(*args, **kwargs):
        started[0] += 1
        if started[0] == step:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "timed_step", timed_step)


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / results.LAST_CHECKPOINT, weights_only=False)["model"]


def assert_same_run(resumed: dict, full: dict, cut_dir: Path, full_dir: Path) -> None:
    assert resumed["status"] == "completed"
    assert (resumed["dev"], resumed["test"], resumed["best_epoch"]) == (full["dev"], full["test"], full["best_epoch"])
    assert metrics_without_times(cut_dir) == metrics_without_times(full_dir)
    for name, weight in last_weights(full_dir).items():
        assert torch.equal(last_weights(cut_dir)[name], weight), name


# digits: 1,197 training images in batches of 10 = 120 updates an epoch
DIGITS = {
    "dropout": ["task.dropout=0.3"],  # torch's generator, drawn in every forward
    "meprop_decay": ["method=meprop", "topk=10", "decay=0.6"],  # run_grad, kept across steps
    "random_k": ["method=random", "topk=10"],
    "mesimp": ["method=mesimp", "topk=10", "method.cycle_epochs=1"],  # prune checks inside both epochs
    "meact": ["method=meact", "method.start_epoch=2", "method.threshold=0.01", "trainer.track_updates=true"],
    "average_and_step_evals": ["trainer.average_decay=0.9", "trainer.eval_every_steps=40", "optim=adagrad"],
    "diagnostics": ["method=meprop", "topk=10", "trainer.diagnostics=true"],  # the watch's sums inside the epoch
}


@pytest.mark.parametrize("name", sorted(DIGITS))
def test_a_run_stopped_inside_an_epoch_continues_from_its_step_checkpoint_exactly(make_cfg, tmp_path, monkeypatch,
                                                                                  name):
    args = ["trainer.max_epochs=2", "trainer.progress=none", *DIGITS[name]]
    plain = train(make_cfg(args), tmp_path / "plain")
    full = train(make_cfg([*args, "trainer.checkpoint_every_steps=25"]), tmp_path / "full")
    assert (full["dev"], full["test"]) == (plain["dev"], plain["test"])  # saving changes nothing

    stop_at_step(monkeypatch, 170)  # epoch 2, step 50: the last checkpoint was after step 150 (epoch 2, step 30)
    cut = train(make_cfg([*args, "trainer.checkpoint_every_steps=25"]), tmp_path / "cut")
    assert cut[results.INTERRUPTED_BY] == "SIGINT"
    saved = torch.load(tmp_path / "cut" / results.LAST_CHECKPOINT, weights_only=False)
    assert (saved["step"], saved["epoch"], saved["progress"]["steps"]) == (150, 1, 30)
    monkeypatch.undo()

    resumed = train(make_cfg([*args, "trainer.checkpoint_every_steps=25", "trainer.resume=true"]), tmp_path / "cut")
    assert_same_run(resumed, full, tmp_path / "cut", tmp_path / "full")


@pytest.mark.parametrize("task", ["pos", "parse"])
def test_step_checkpoints_continue_exactly_on_the_tasks_whose_batches_draw_word_dropout(make_cfg, tmp_path,
                                                                                       monkeypatch, task):
    if task == "pos":
        args = [*TINY, f"data_root={write_tiny_ewt(tmp_path / 'data')}", "method=meprop", "topk=3"]
    else:
        root = tmp_path / "data"
        for split in ("train", "dev", "test"):
            write_treebank(root / "ud-english-ewt" / f"en_ewt-ud-{split}.conllu", [*TREES, NONPROJECTIVE] * 3)
        args = tiny_overrides(root, "task.word_dropout=0.25", "method=meprop")
    args = [*args, "trainer.max_epochs=2", "trainer.checkpoint_every_steps=2"]
    full = train(make_cfg(args), tmp_path / "full")
    per_epoch = results.read_metrics(tmp_path / "full")[0]["step"]
    stop = per_epoch + 3  # a checkpoint was taken one or two updates before, inside epoch 2
    stop_at_step(monkeypatch, stop)
    train(make_cfg(args), tmp_path / "cut")
    saved = torch.load(tmp_path / "cut" / results.LAST_CHECKPOINT, weights_only=False)
    assert saved["epoch"] == 1 and saved["step"] == (stop - 1) // 2 * 2 > per_epoch
    monkeypatch.undo()
    resumed = train(make_cfg([*args, "trainer.resume=true"]), tmp_path / "cut")
    assert_same_run(resumed, full, tmp_path / "cut", tmp_path / "full")


def test_checkpoints_hold_plain_values_not_this_versions_config_classes(make_cfg, tmp_path):
    import pickle

    from test_pos import TINY as POS

    train(make_cfg([*POS, f"data_root={write_tiny_ewt(tmp_path / 'data')}", "trainer.max_epochs=1"]), tmp_path / "run")
    for name in (results.BEST_CHECKPOINT, results.LAST_CHECKPOINT):
        saved = torch.load(tmp_path / "run" / name, weights_only=False)
        assert b"meprop_cli.config" not in pickle.dumps(saved), name  # the enums were saved as their strings


def test_a_checkpoint_every_few_minutes_is_taken_inside_the_epoch(make_cfg, tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(trainer.time, "monotonic", lambda: clock[0])
    original = trainer.timed_step

    def timed_step(*args, **kwargs):
        clock[0] += 6.0  # every update "takes" 6 s: a 1-minute interval saves after every 10th
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "timed_step", timed_step)
    saves = []
    save_last = trainer.Run.save_last
    monkeypatch.setattr(trainer.Run, "save_last", lambda self, progress=None: (
        saves.append(progress.steps if progress else "end"), save_last(self, progress)))
    train(make_cfg(["trainer.max_epochs=1", "trainer.progress=none", "trainer.checkpoint_every_minutes=1"]), tmp_path)
    assert saves == [*range(10, 120, 10), "end"]  # the 120th, the last, is the epoch's own checkpoint


def test_a_kill_after_an_evaluation_but_before_its_checkpoint_lists_the_evaluation_once_after_resume(make_cfg,
                                                                                                     tmp_path):
    """The fault is injected where a kill hurts: epoch 2's metrics line is written, its last.pt not yet."""
    from conftest import run_meprop

    args = ["train", "trainer.max_epochs=3", "trainer.progress=none", f"hydra.run.dir={tmp_path / 'run'}"]
    killed = run_meprop(args, tmp_path, env={results.KILL_BEFORE_RENAME: "last.pt:2"})
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "run"
    assert [line["epoch"] for line in results.read_metrics(run)] == [1, 2]  # ahead of last.pt (epoch 1)
    assert torch.load(run / results.LAST_CHECKPOINT, weights_only=False)["epoch"] == 1

    resumed = run_meprop([*args, "trainer.resume=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert [line["epoch"] for line in results.read_metrics(run)] == [1, 2, 3]
    full = run_meprop(["train", "trainer.max_epochs=3", "trainer.progress=none",
                       f"hydra.run.dir={tmp_path / 'full'}"], tmp_path)
    assert full.returncode == 0
    assert metrics_without_times(run) == metrics_without_times(tmp_path / "full")


def test_a_checkpoint_that_cannot_be_written_keeps_the_previous_one_and_no_temp_file(make_cfg, tmp_path,
                                                                                      monkeypatch):
    import errno

    from meprop_cli.errors import OutputError

    args = ["trainer.max_epochs=2", "trainer.progress=none"]
    real_save, saves = torch.save, [0]

    def save(payload, f, *rest, **kwargs):  # the disk fills while epoch 2's last.pt is written
        saves[0] += 1
        if saves[0] == 4:  # best.pt, last.pt (epoch 1), best.pt, then last.pt of epoch 2
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(payload, f, *rest, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OutputError, match=r"could not write .*last\.pt: No space left on device"):
        train(make_cfg(args), tmp_path)
    assert torch.load(tmp_path / results.LAST_CHECKPOINT, weights_only=False)["epoch"] == 1
    assert not list(tmp_path.glob("*.tmp"))
    assert results.read_result(tmp_path)["status"] == "failed"


def test_a_truncated_last_checkpoint_is_one_sentence_on_resume(make_cfg, tmp_path):
    from meprop_cli.errors import DataError

    train(make_cfg(["trainer.max_epochs=1", "trainer.progress=none"]), tmp_path)
    last = tmp_path / results.LAST_CHECKPOINT
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # as a copy cut short
    with pytest.raises(DataError, match=r"last\.pt is not a meprop checkpoint \(torch cannot load it"):
        train(make_cfg(["trainer.max_epochs=2", "trainer.progress=none", "trainer.resume=true"]), tmp_path)
