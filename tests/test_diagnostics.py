"""trainer.diagnostics: the per-layer statistics of activations and of the kept gradient, exact on known tensors
and sensible in a run (full back propagation keeps every entry: cosine 1, the same sign shares)."""
from __future__ import annotations

import pytest
import torch

from meprop_cli import results
from meprop_cli.diagnostics import Diagnostics, LayerWatch
from meprop_cli.errors import ConfigError
from meprop_cli.methods import build_method
from meprop_cli.train import train

FIELDS = {"mean_abs_activation", "dead_fraction", "nonzero_negative_fraction", "kept_negative_fraction",
          "gradient_cosine"}


def test_a_watch_reports_the_exact_shares_of_what_it_saw_and_starts_again():
    watch = LayerWatch()
    watch.observe_activations(torch.tensor([[0.0, 2.0, 0.0], [0.0, -4.0, 1.0]]))
    g = torch.tensor([[3.0, -4.0, 0.0], [0.0, 0.0, -1.0]])
    kept = torch.tensor([[-4.0], [-1.0]])  # top-1 of each row
    watch.observe_gradient(g, kept)
    report = watch.report()
    assert report == {"mean_abs_activation": 7.0 / 6, "dead_fraction": pytest.approx(1 / 3),
                      "nonzero_negative_fraction": 2 / 3, "kept_negative_fraction": 1.0,
                      "gradient_cosine": pytest.approx((4 / 5 + 1) / 2)}
    assert set(watch.report().values()) == {None}  # nothing seen since the report


def metrics(run_dir):
    return results.read_metrics(run_dir)


def test_full_back_propagation_keeps_every_entry_and_the_diagnostics_change_no_result(make_cfg, tmp_path):
    args = ["trainer.max_epochs=2", "trainer.progress=none", "trainer.eval_every_steps=50"]
    watched = train(make_cfg([*args, "trainer.diagnostics=true"]), tmp_path / "watched")
    plain = train(make_cfg(args), tmp_path / "plain")
    assert (watched["dev"], watched["test"]) == (plain["dev"], plain["test"])
    assert all(results.DIAGNOSTICS not in line for line in metrics(tmp_path / "plain"))
    lines = metrics(tmp_path / "watched")
    assert [line["step"] for line in lines] == [50, 100, 120, 150, 200, 240]  # each reports the steps since the last
    for line in lines:
        assert len(line[results.DIAGNOSTICS]) == 2  # digits: two hidden layers
        for layer in line[results.DIAGNOSTICS]:
            assert set(layer) == FIELDS and layer["gradient_cosine"] == pytest.approx(1.0)
            assert layer["kept_negative_fraction"] == layer["nonzero_negative_fraction"]
            assert layer["mean_abs_activation"] > 0 and 0 <= layer["dead_fraction"] < 1


def test_per_example_top_k_keeps_part_of_the_gradient_and_the_shares_are_fractions(make_cfg, tmp_path):
    train(make_cfg(["method=meprop", "topk=5", "trainer.max_epochs=1", "trainer.progress=none",
                    "trainer.diagnostics=true"]), tmp_path)
    [line] = metrics(tmp_path)
    for layer in line[results.DIAGNOSTICS]:
        assert 0 < layer["gradient_cosine"] < 1
        assert all(0 <= layer[key] <= 1 for key in ("dead_fraction", "nonzero_negative_fraction",
                                                    "kept_negative_fraction"))


@pytest.mark.parametrize("task", ["mnist_cnn", "pos"])
def test_diagnostics_on_a_model_without_feed_forward_hidden_layers_is_one_sentence(make_cfg, tmp_path, task):
    from meprop_cli.tasks import build_task

    cfg = make_cfg([f"task={task}", "trainer.diagnostics=true", "trainer.progress=none"])
    task_obj = build_task(cfg.task, tmp_path)
    with pytest.raises(ConfigError, match="trainer.diagnostics watches the hidden layers of a feed-forward network"):
        model = task_obj.build_model(build_method(cfg)) if task == "mnist_cnn" else torch.nn.LSTM(2, 2)
        Diagnostics(model, task)
