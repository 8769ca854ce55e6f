"""meSimp in the trainer (digits): the pruning rule, stages, optimizer state, checkpoints, resume, hooks."""
from __future__ import annotations


import pytest
import torch

from meprop_cli import results
from meprop_cli.errors import ConfigError, UserError
from meprop_cli.methods import METHODS, Method
from meprop_cli.methods.mesimp import check_steps, kept_neurons
from meprop_cli.train import Run, train

from test_train import interrupted_in_epoch

# digits: 1,197 training images, batch 10 → 120 updates an epoch; k=20 of 100 per hidden layer
MESIMP = ["method=mesimp", "topk=20", "trainer.progress=none", "method.prune_checks_per_epoch=4",
          "method.cycle_epochs=2"]


def test_the_reference_rule_keeps_neurons_hit_at_least_floor_rate_times_seen():
    hits = torch.tensor([10, 9, 0, 30, 11])
    assert kept_neurons(hits, 100, 0.1).tolist() == [0, 3, 4]  # floor(100 × 0.1) = 10
    assert kept_neurons(hits, 109, 0.1).tolist() == [0, 3, 4]  # floor(10.9) = 10
    assert kept_neurons(torch.tensor([1, 3, 2]), 100, 0.5).tolist() == [1]  # never empty: the most active
    assert check_steps(120, 4) == {30, 60, 90, 120} and check_steps(10, 3) == {4, 7, 10}


def test_mesimp_shrinks_in_simplification_stages_only_and_records_sizes(make_cfg, tmp_path):
    cfg = make_cfg([*MESIMP, "trainer.max_epochs=5"])
    record = train(cfg, tmp_path)
    lines = results.read_metrics(tmp_path)
    checks = [c for line in lines for c in line[results.PRUNE_CHECKS]]
    assert [c["step"] for c in checks] == [30 * i for i in range(1, 21)]  # 4 checks an epoch
    assert [c["pruned"] for c in checks] == [True] * 8 + [False] * 8 + [True] * 4  # stages of 2 epochs
    sizes = [c[results.SIZES] for c in checks]
    assert sizes[7] == sizes[8] == sizes[15]  # normal training (epochs 3-4) removes nothing
    assert all(a >= b for before, after in zip(sizes, sizes[1:]) for a, b in zip(before, after))
    assert record[results.HIDDEN_INITIAL] == [100, 100]
    assert record[results.HIDDEN_FINAL] == sizes[-1] and max(sizes[-1]) < 100
    final = sizes[-1]
    assert record[results.PARAMS_FINAL] == 64 * final[0] + final[0] + final[0] * final[1] + final[1] + final[1] * 10 + 10
    assert record[results.PRUNE_CHECK_COUNT] == 20 and record["prune_rate"] == 0.1
    tested = record[results.HIDDEN_TESTED]
    assert tested == lines[record["best_epoch"] - 1][results.SIZES]
    assert record[results.DECODE]["test_s"] > 0 and record[results.DECODE]["test_s_initial"] > 0
    # best.pt holds the tested (pruned) model: it loads for test scoring
    assert torch.load(tmp_path / "best.pt", weights_only=False)["sizes"] == tested
    assert checkpoint_test_scores_pruned(cfg, tmp_path) == record["test"]


def checkpoint_test_scores_pruned(cfg, run_dir):
    from meprop_cli.nn.shrink import fit_to_sizes
    payload = torch.load(run_dir / "best.pt", weights_only=False)
    run = Run(cfg, run_dir / "again")
    run.setup()
    fit_to_sizes(run.model, payload["sizes"])
    run.model.load_state_dict(payload["model"])
    run.model.eval()
    with torch.no_grad():
        return run.task.evaluate(run.model, "test")


def test_optimizer_state_is_cut_at_checks_and_reset_at_stage_starts(make_cfg, tmp_path, monkeypatch):
    seen = []
    original_apply = Run.apply

    def apply(self, change):
        before = {id(p): self.optimizer.state[p]["step"] for p in self.model.parameters() if p in self.optimizer.state}
        original_apply(self, change)
        if change is None:
            return
        state = self.optimizer.state
        for p in self.model.parameters():  # every state tensor matches its (maybe cut) parameter
            if p in state:
                assert state[p]["exp_avg"].shape == p.shape and state[p]["exp_avg_sq"].shape == p.shape
        seen.append((change.reset_optimizer, len(state), bool(before)))

    monkeypatch.setattr(Run, "apply", apply)
    train(make_cfg([*MESIMP, "trainer.max_epochs=3"]), tmp_path)
    resets = [s for s in seen if s[0]]
    assert len(resets) == 1 and resets[0][1] == 0  # epoch 3 starts a stage: Adam starts afresh
    cuts = [s for s in seen if not s[0]]
    assert cuts and all(n > 0 for _, n, _ in cuts)  # a check that removed neurons kept the survivors' moments


def test_cut_optimizer_state_equals_the_old_state_of_the_surviving_rows(make_cfg, tmp_path):
    run = Run(make_cfg([*MESIMP, "trainer.max_epochs=1"]), tmp_path)
    run.setup()
    batch = next(run.task.train_batches(torch.Generator().manual_seed(0)))
    loss, _ = run.task.loss(run.model, batch)
    loss.backward()
    run.optimizer.step()
    layer = run.model.hidden[0]
    old = run.optimizer.state[layer.weight]["exp_avg"].clone()
    old_next = run.optimizer.state[run.model.hidden[1].weight]["exp_avg"].clone()
    from meprop_cli.methods import Change
    from meprop_cli.nn.shrink import tracking_shrink
    keep = torch.tensor([3, 7, 50])
    with tracking_shrink() as shrink:
        run.model.keep_hidden(0, keep)
    run.apply(Change(shrink=shrink, reason="test"))
    torch.testing.assert_close(run.optimizer.state[layer.weight]["exp_avg"], old[keep])
    torch.testing.assert_close(run.optimizer.state[run.model.hidden[1].weight]["exp_avg"], old_next[:, keep])


def test_a_mesimp_run_killed_mid_stage_resumes_to_the_uninterrupted_result(make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg([*MESIMP, "trainer.max_epochs=4", "trainer.average_decay=0.99"])
    full = train(cfg, tmp_path / "full")
    monkeypatch.setattr(Run, "train_epoch", interrupted_in_epoch(2, Run.train_epoch))  # epoch 2 of stage 1
    cut = train(cfg, tmp_path / "cut")
    assert cut["status"] == "failed"
    monkeypatch.undo()
    resumed = train(make_cfg([*MESIMP, "trainer.max_epochs=4", "trainer.average_decay=0.99",
                              "trainer.resume=true"]), tmp_path / "cut")
    for key in ("dev", "test", results.HIDDEN_FINAL, results.HIDDEN_TESTED, results.PRUNE_CHECK_COUNT):
        assert resumed[key] == full[key], key
    strip = lambda lines: [{k: v for k, v in line.items() if k not in ("timing", "examples_per_s")} for line in lines]
    assert strip(results.read_metrics(tmp_path / "cut")) == strip(results.read_metrics(tmp_path / "full"))


def test_run_grad_of_decayed_topk_survives_a_resume(make_cfg, tmp_path, monkeypatch):
    args = ["method=meprop", "topk=10", "decay=0.6", "trainer.max_epochs=3", "trainer.progress=none"]
    full = train(make_cfg(args), tmp_path / "full")
    monkeypatch.setattr(Run, "train_epoch", interrupted_in_epoch(3, Run.train_epoch))
    train(make_cfg(args), tmp_path / "cut")
    saved = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["selection"]
    assert saved["hidden.0.state"]["run_grad"] is not None
    monkeypatch.undo()
    resumed = train(make_cfg([*args, "trainer.resume=true"]), tmp_path / "cut")
    assert resumed["dev"] == full["dev"] and resumed["test"] == full["test"]


def test_hidden_from_starts_a_baseline_at_a_mesimp_runs_tested_sizes(make_cfg, tmp_path):
    simp = train(make_cfg([*MESIMP, "trainer.max_epochs=2"]), tmp_path / "simp")
    scratch = train(make_cfg(["trainer.max_epochs=1", "trainer.progress=none",
                              f"hidden_from={tmp_path / 'simp'}"]), tmp_path / "scratch")
    assert scratch[results.HIDDEN_INITIAL] == scratch[results.HIDDEN_TESTED] == simp[results.HIDDEN_TESTED]
    assert scratch[results.HIDDEN_FROM] == str(tmp_path / "simp") and results.DECODE not in scratch
    with pytest.raises(UserError, match="hidden_from"):
        train(make_cfg(["trainer.progress=none", f"hidden_from={tmp_path}"]), tmp_path / "bad")


def test_prune_rate_outside_0_1_is_a_config_error(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="prune_rate"):
        train(make_cfg([*MESIMP, "method.prune_rate=1.5"]), tmp_path)


class CountingMethod(Method):
    """A method that only watches: every hook is called, nothing changes."""

    calls: dict

    def bind(self, model, task):
        self.calls = {"bind": 1, "epoch_start": 0, "batch": 0, "step": 0, "epoch_end": 0, "ids": set()}

    def on_epoch_start(self, epoch):
        self.calls["epoch_start"] += 1

    def on_batch_start(self, example_ids):
        self.calls["batch"] += 1
        self.calls["ids"].update(example_ids.tolist())

    def on_step_end(self, where):
        self.calls["step"] += 1
        assert where.steps_in_epoch == 120 and 1 <= where.step_in_epoch <= 120

    def on_epoch_end(self, epoch):
        self.calls["epoch_end"] += 1

    def metrics(self):
        return {"watched_steps": self.calls["step"]}

    def result_fields(self):
        return {"watched_examples": len(self.calls["ids"])}


def test_hooks_serve_a_method_that_does_not_prune(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "baseline", CountingMethod)
    record = train(make_cfg(["trainer.max_epochs=2", "trainer.progress=none"]), tmp_path)
    assert record["watched_examples"] == 1197  # every training example, by its stable id
    assert [line["watched_steps"] for line in results.read_metrics(tmp_path)] == [120, 240]
    assert record[results.HIDDEN_FINAL] == [100, 100] and results.DECODE not in record
