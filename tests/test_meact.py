"""meAct in the trainer (digits): warm-up equal to the baseline, active fractions, update sizes, resume."""
from __future__ import annotations

import pytest
import torch

from meprop_cli import results
from meprop_cli.errors import ConfigError
from meprop_cli.train import Run, train

from test_train import interrupted_in_epoch

# digits: 1,197 training images, batch 10 → 120 updates an epoch; hidden 100, 100
MEACT = ["method=meact", "trainer.progress=none", "method.threshold=0.01"]
STRIP = ("timing", "examples_per_s")


def lines_without_times(run_dir, drop=()):
    return [{k: v for k, v in line.items() if k not in (*STRIP, *drop)} for line in results.read_metrics(run_dir)]


def test_before_start_epoch_a_meact_run_is_the_baseline_bit_for_bit(make_cfg, tmp_path):
    base = ["trainer.max_epochs=2", "trainer.progress=none", "trainer.track_updates=true"]
    baseline = train(make_cfg(["method=baseline", *base]), tmp_path / "baseline")
    warm = train(make_cfg([*MEACT, *base, "method.start_epoch=3"]), tmp_path / "meact")
    assert warm["dev"] == baseline["dev"] and warm["test"] == baseline["test"]
    for a, b in zip(torch.load(tmp_path / "baseline" / "best.pt", weights_only=False)["model"].values(),
                    torch.load(tmp_path / "meact" / "best.pt", weights_only=False)["model"].values()):
        assert torch.equal(a, b)
    meact_lines = lines_without_times(tmp_path / "meact", (results.ACTIVE_FRACTION, results.MEACT_ACTING))
    assert meact_lines == lines_without_times(tmp_path / "baseline")  # losses and update sizes too


def test_meact_epochs_compute_fewer_neurons_and_are_recorded(make_cfg, tmp_path):
    record = train(make_cfg([*MEACT, "trainer.max_epochs=4", "method.start_epoch=2", "trainer.track_updates=true"]),
                   tmp_path)
    lines = results.read_metrics(tmp_path)
    assert [line[results.MEACT_ACTING] for line in lines] == [False, True, True, True]
    fractions = [line[results.ACTIVE_FRACTION] for line in lines]
    assert fractions[0] == [1.0, 1.0] and all(len(f) == 2 for f in fractions)
    assert all(0 < f < 1 for epoch in fractions[1:] for f in epoch)
    # the record only grows on active neurons: an example's share of an inactive one only falls
    assert all(a >= b for before, after in zip(fractions[1:], fractions[2:]) for a, b in zip(before, after))
    assert all(line[results.UPDATE_SIZE] > 0 for line in lines)
    assert set(lines[0][results.UPDATE_SIZE_BY_PARAM]) == {"hidden.0.weight", "hidden.0.bias", "hidden.1.weight",
                                                           "hidden.1.bias", "output.weight", "output.bias"}
    memory = record[results.MEACT_MEMORY]
    assert memory == {"examples": 1197, "neurons": [100, 100], "last_dtype": "float32",
                      "bytes": 1197 * 100 * 2 * (4 + 4)}
    assert record[results.ACTIVE_FRACTION] == pytest.approx([sum(f[i] for f in fractions[1:]) / 3 for i in (0, 1)])
    assert record["threshold"] == 0.01 and record["start_epoch"] == 2
    assert 0.0 <= record["test"]["accuracy"] <= 1.0 and record["dev"]["accuracy"] > 0.5


def test_the_update_size_is_the_mean_absolute_change_per_parameter(make_cfg, tmp_path):
    # SGD without momentum: Δw = −lr · ∂L/∂w, so the mean |Δw| of one update is lr · mean |grad|
    cfg = make_cfg(["optim=sgd", "optim.lr=0.1", "trainer.max_epochs=1", "trainer.max_steps_per_epoch=1",
                    "trainer.progress=none", "trainer.track_updates=true"])
    run = Run(cfg, tmp_path)
    run.setup()
    start = {name: p.detach().clone() for name, p in run.model.named_parameters()}
    run.train_epoch(1)
    line = results.read_metrics(tmp_path)[0]
    changes = {name: (p.detach() - start[name]).abs() for name, p in run.model.named_parameters()}
    count = sum(c.numel() for c in changes.values())
    assert line[results.UPDATE_SIZE] == pytest.approx(float(sum(c.sum() for c in changes.values())) / count, rel=1e-5)
    for name, change in changes.items():
        assert line[results.UPDATE_SIZE_BY_PARAM][name] == pytest.approx(float(change.mean()), rel=1e-5, abs=1e-12)


def test_a_meact_run_interrupted_after_it_started_resumes_to_the_uninterrupted_result(make_cfg, tmp_path, monkeypatch):
    args = [*MEACT, "trainer.max_epochs=4", "method.start_epoch=2"]
    full = train(make_cfg(args), tmp_path / "full")
    monkeypatch.setattr(Run, "train_epoch", interrupted_in_epoch(4, Run.train_epoch))
    cut = train(make_cfg(args), tmp_path / "cut")
    assert cut["status"] == "failed"
    saved = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["method"]["memories"]
    assert [m["grad_sum"].shape for m in saved] == [(1197, 100), (1197, 100)]
    monkeypatch.undo()
    resumed = train(make_cfg([*args, "trainer.resume=true"]), tmp_path / "cut")
    for key in ("dev", "test", results.ACTIVE_FRACTION, results.MEACT_MEMORY):
        assert resumed[key] == full[key], key
    assert lines_without_times(tmp_path / "cut") == lines_without_times(tmp_path / "full")


@pytest.mark.parametrize("args, message", [
    (["method.threshold=1.5"], "method.threshold=1.5 must be in"),
    (["method.start_epoch=0"], "method.start_epoch=0 must be at least 1"),
    (["method.mode=topk", "topk=10"], "leave method.mode=null"),
])
def test_bad_meact_settings_are_one_sentence(make_cfg, tmp_path, args, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg([*MEACT, "trainer.max_epochs=1", *args]), tmp_path / "run")


def test_a_saved_memory_of_another_size_is_one_sentence(make_cfg, tmp_path):
    from meprop_cli.errors import UserError
    from meprop_cli.ops.meact import ActivityMemory
    run = Run(make_cfg([*MEACT, "trainer.max_epochs=1"]), tmp_path)
    run.setup()
    method = run.method
    method.load_state_dict({"memories": [ActivityMemory(1297, 100, 0.01).state_dict()] * 2, "acting_epochs": []})
    with pytest.raises(UserError, match=r"last.pt cannot continue this run: its meAct memory of shape \(1297, 100\) "
                                        r"does not fit \(1197, 100\)"):
        method.bind(run.model, run.task)
