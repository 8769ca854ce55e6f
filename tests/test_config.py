"""Configuration: composition as the CLI does it, and one-sentence errors for values that cannot run."""
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from meprop_cli.config import BOUNDS, ignored_options, validate
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
    (["method=meprop", "topk=0"], "topk=0 must be at least 1"),
    (["method=meprop", "topk=101"], "topk=101 is larger than the hidden layer (100 units)"),
    (["method=random", "topk=-3"], "topk=-3 must be at least 1"),
    (["decay=1.0"], "decay=1.0 must be in [0, 1)"),
    (["method=meprop", "topk_output=0"], "topk_output=0 must be at least 1"),
    (["task.batch_size=0"], "task.batch_size=0 must be at least 1"),
    (["optim.lr=-0.1"], "optim.lr=-0.1 must be above 0"),
    (["optim.eps=-1e-8"], "optim.eps=-1e-08 must be above 0"),
    (["optim.betas=[0.9]"], "optim.betas=[0.9] must be two numbers in [0, 1)"),
    (["optim.betas=[0.9,1.5]"], "optim.betas=[0.9, 1.5] must hold values that are in [0, 1)"),
    (["seed=-1"], "seed=-1 must be in [0, 4,294,967,295]"),
    (["trainer.log_every_steps=0"], "trainer.log_every_steps=0 must be at least 1"),
    (["task.eval_batch_size=0"], "task.eval_batch_size=0 must be at least 1"),
    (["task=mnist_cnn", "task.kernel_size=0"], "task.kernel_size=0 must be at least 1"),
    (["task=mnist_cnn", "task.kernel_size=4"], "task.kernel_size=4 must be odd"),
    (["task=mnist_cnn", "task.channels=[]"], "task.channels=[] has no convolution"),
    (["task.hidden=[]"], "task.hidden=[] has no hidden layer"),
    (["task.hidden=[100,0]"], "task.hidden=[100, 0] must hold values that are at least 1"),
    (["task=pos", "task.bucket=0"], "task.bucket=0 must be at least 1"),
    (["task=parse", "task.embed_init=0"], "task.embed_init=0.0 must be above 0"),
    (["method=meact", "method.threshold=1"], "method.threshold=1.0 must be in [0, 1)"),
])
def test_invalid_values_fail_with_one_sentence(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(make_cfg(overrides))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("override", ["task=nope", "method=nope", "no_such_key=1", "topk=abc", "trainer.max_epochs=x"])
def test_unknown_or_mistyped_keys_fail_at_composition(make_cfg, override):
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)):
        make_cfg([override])


# Out-of-range values for every key of BOUNDS, on a task and method that have it.
TASK_OF = {"task.split_seed": "digits", "task.word_dim": "pos", "task.feature_dim": "pos", "task.bucket": "pos",
           "task.min_feature_count": "pos", "task.embed_dim": "parse", "task.min_word_count": "parse",
           "task.embed_init": "parse", "task.word_dropout": "parse", "task.channels": "mnist_cnn",
           "task.kernel_size": "mnist_cnn"}
METHOD_OF = {"method.prune_rate": "mesimp", "method.prune_checks_per_epoch": "mesimp",
             "method.cycle_epochs": "mesimp", "method.start_epoch": "meact", "method.threshold": "meact"}


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_every_bounded_option_rejects_a_value_out_of_range_naming_it(make_cfg, key):
    bound = BOUNDS[key]
    bad = bound.low - 1 if bound.low is not None else bound.high + 1
    cfg = make_cfg([f"task={TASK_OF.get(key, 'digits')}", f"method={METHOD_OF.get(key, 'meprop')}", "topk=10"])
    current = OmegaConf.select(cfg, key)
    OmegaConf.update(cfg, key, [bad] * len(current) if OmegaConf.is_list(current) else bad, force_add=False)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    named = str(error.value).split("=")[0]
    assert named in (key, key.removeprefix("task.")) and "\n" not in str(error.value)  # topk_output=${task.topk_output}


@pytest.mark.parametrize("task", ["digits", "mnist_mlp", "mnist_cnn", "pos", "parse"])
@pytest.mark.parametrize("method", ["baseline", "meprop", "meprop_unified", "random", "small", "mesimp", "meact",
                                    "meprop_cnn"])
def test_every_shipped_task_and_method_config_passes_validation(make_cfg, task, method):
    extra = ["topk=10"] if task == "mnist_cnn" and method in ("meprop", "meprop_unified", "random", "small",
                                                              "mesimp") else []
    extra += ["topk_ratio=0.05"] if method == "meprop_cnn" else []
    validate(make_cfg([f"task={task}", f"method={method}", *extra]))


@pytest.mark.parametrize("override, choices", [
    ("task.activation=softplus", "relu, tanh, sigmoid, cube"), ("task=pos task.tagset=ptb", "xpos, upos"),
    ("method.mode=top", "topk, unified, random"), ("optim.name=rmsprop", "adam, adagrad, sgd"),
    ("trainer.progress=quiet", "auto, bar, log, none"), ("method=meact method.memory_dtype=int8", "float32"),
])
def test_options_with_fixed_choices_reject_others_when_composed_naming_the_choices(make_cfg, override, choices):
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)) as error:
        make_cfg(override.split())
    assert choices in str(error.value.__cause__ or error.value)


@pytest.mark.parametrize("overrides, unused", [
    (["method=baseline", "topk=5"], "topk=5"),
    (["method=baseline", "decay=0.5"], "decay=0.5"),
    (["method=random", "topk=5", "decay=0.5"], "decay=0.5"),
    (["method=small", "topk=5", "topk_output=3"], "topk_output=3"),
    (["method=meprop", "topk=5", "topk_ratio=0.1"], "topk_ratio=0.1"),
    (["optim=adagrad", "optim.betas=[0.8,0.9]"], "optim.betas=[0.8, 0.9]"),
    (["optim.momentum=0.9"], "optim.momentum=0.9"),
])
def test_options_the_method_or_optimizer_ignores_are_named_in_one_warning(make_cfg, overrides, unused):
    (warning,) = ignored_options(make_cfg(overrides))
    assert unused in warning and "does not use" in warning


@pytest.mark.parametrize("overrides", [[], ["method=meprop", "topk=5", "decay=0.5", "topk_output=3"],
                                       ["method=small", "topk=5"], ["optim=sgd", "optim.momentum=0.9"],
                                       ["experiment=lancopku_pytorch"]])  # its baseline: bias_grad is moot, no warning
def test_options_the_method_uses_give_no_warning(make_cfg, overrides):
    assert ignored_options(make_cfg(overrides)) == []
