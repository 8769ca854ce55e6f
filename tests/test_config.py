"""Configuration: composition as the CLI does it, and one-sentence errors for values that cannot run."""
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException

from meprop_cli.config import validate
from meprop_cli.errors import ConfigError
from meprop_cli.methods import build_method


def test_default_config_is_digits_baseline_with_adam(make_cfg):
    cfg = make_cfg()
    assert (cfg.task.name, cfg.method.name, cfg.optim.name) == ("digits", "baseline", "adam")
    assert cfg.optim.lr == 1e-3 and list(cfg.optim.betas) == [0.9, 0.999] and cfg.optim.eps == 1e-8
    validate(cfg)


def test_topk_shortcut_reaches_hidden_and_output_layers(make_cfg):
    cfg = make_cfg(["task=mnist_mlp", "method=meprop", "topk=30"])
    method = build_method(cfg)
    assert (method.k, method.k_output, method.hidden) == (30, 30, [500, 500])
    assert method.sparsity("hidden").k == 30 and method.sparsity("hidden").mode == "topk"


def test_topk_output_can_differ_and_decay_reaches_the_selection(make_cfg):
    cfg = make_cfg(["method=meprop_unified", "topk=10", "topk_output=5", "decay=0.6"])
    s = build_method(cfg).sparsity("output")
    assert (s.k, s.mode, s.decay) == (5, "unified", 0.6)


def test_weight_averaging_defaults_to_the_tasks_setting_and_can_be_overridden(make_cfg):
    assert make_cfg().trainer.average_decay == 0.0
    assert make_cfg(["task=parse"]).trainer.average_decay == 0.999
    assert make_cfg(["task=parse", "trainer.average_decay=0"]).trainer.average_decay == 0.0
    assert make_cfg(["task=mnist_mlp", "trainer.average_decay=0.99"]).trainer.average_decay == 0.99


def test_small_method_sets_hidden_to_k_and_trains_fully(make_cfg):
    method = build_method(make_cfg(["task=mnist_mlp", "method=small", "topk=20"]))
    assert method.hidden == [20, 20] and method.sparsity("hidden") is None


def test_baseline_has_no_sparsity(make_cfg):
    method = build_method(make_cfg(["method=baseline", "topk=20"]))
    assert method.sparsity("hidden") is None and method.sparsity("output") is None and method.k is None


def test_adagrad_takes_the_task_learning_rate(make_cfg):
    cfg = make_cfg(["task=mnist_mlp", "optim=adagrad"])
    assert cfg.optim.lr == 0.1 and cfg.optim.eps == 1e-6


@pytest.mark.parametrize("overrides, message", [
    (["method=meprop", "topk=0"], "topk=0 must be a positive integer"),
    (["method=meprop", "topk=101"], "topk=101 is larger than the hidden layer (100 units)"),
    (["method=random", "topk=-3"], "topk=-3 must be a positive integer"),
    (["decay=1.0"], "decay=1.0 must be in [0, 1)"),
    (["method=meprop", "topk_output=0"], "topk_output=0 must be a positive integer"),
    (["task.batch_size=0"], "task.batch_size=0 must be at least 1"),
])
def test_invalid_values_fail_with_one_sentence(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(make_cfg(overrides))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("override", ["task=nope", "method=nope", "no_such_key=1", "topk=abc", "trainer.max_epochs=x"])
def test_unknown_or_mistyped_keys_fail_at_composition(make_cfg, override):
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)):
        make_cfg([override])
