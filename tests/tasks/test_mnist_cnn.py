"""The mnist_cnn task and the meprop_cnn method: config, model, result.json, real data."""
import json

import numpy as np
import pytest
import torch

from meprop_cli.config import validate
from meprop_cli.errors import ConfigError
from meprop_cli.methods import build_method
from meprop_cli.nn import MePropConv2d, MePropLinear
from meprop_cli.tasks.mnist_cnn import MnistCnnTask
from meprop_cli.train import train

FAST = ["task=mnist_cnn", "task.channels=[4,8]", "task.hidden=[16]", "trainer.progress=none",
        "trainer.threads=1", "trainer.checkpoint=false", "task.eval_batch_size=50"]


@pytest.fixture
def tiny_mnist(monkeypatch):
    """MnistCnnTask.load replaced by 28×28 images made here: a bright square whose side says the class."""
    def load(self):
        rng = np.random.default_rng(0)
        splits = {}
        for name, size in (("train", 200), ("dev", 40), ("test", 40)):
            y = rng.integers(0, 2, size).astype(np.int64)
            x = rng.integers(0, 40, (size, 28, 28)).astype(np.uint8)
            for image, label in zip(x, y):
                side = 6 if label == 0 else 14
                image[4:4 + side, 4:4 + side] = 255
            splits[name] = (x, y)
        self.set_splits(splits, scale=255.0)

    monkeypatch.setattr(MnistCnnTask, "load", load)


def test_the_issue_command_builds_sparse_convolutions_and_dense_fully_connected_layers(make_cfg):
    cfg = make_cfg(["task=mnist_cnn", "method=meprop_cnn", "topk_ratio=0.05", "decay=0.6"])
    validate(cfg)
    method = build_method(cfg)
    assert (method.topk_ratio, method.decay, method.mode) == (0.05, 0.6, None)
    task = MnistCnnTask(cfg.task, None)
    model = task.build_model(method)
    convs = [m for m in model.modules() if isinstance(m, MePropConv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [(1, 32, 5, 2), (32, 64, 5, 2)]
    assert all(c.topk_ratio == 0.05 and c.decay == 0.6 for c in convs)
    linears = [m for m in model.modules() if isinstance(m, MePropLinear)]
    assert [(m.in_features, m.out_features, m.sparsity) for m in linears] == [(3136, 1024, None), (1024, 10, None)]
    assert model(torch.zeros(2, 784)).shape == (2, 10)


def test_baseline_on_mnist_cnn_has_full_gradients_and_batch_norm_before_relu(make_cfg):
    cfg = make_cfg(["task=mnist_cnn", "method=baseline", "task.batch_norm=true"])
    validate(cfg)
    model = MnistCnnTask(cfg.task, None).build_model(build_method(cfg))
    assert all(c.topk_ratio is None and c.bias is None for c in model.convs)  # BN's shift replaces the bias
    assert [n.num_features for n in model.norms] == [32, 64]


@pytest.mark.parametrize("overrides, message", [
    (["method=meprop_cnn"], "needs a ratio: add topk_ratio"),
    (["method=meprop_cnn", "topk_ratio=0"], r"topk_ratio=0.0 must be in \(0, 1\]"),
    (["method=meprop_cnn", "topk_ratio=1.2"], r"must be in \(0, 1\]"),
])
def test_bad_ratios_are_rejected_with_what_to_change(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(["task=mnist_cnn", *overrides]))


def test_result_json_records_ratio_decay_batch_norm_and_conv_gradient_sparsity(make_cfg, tiny_mnist, tmp_path):
    cfg = make_cfg([*FAST, "method=meprop_cnn", "topk_ratio=0.1", "decay=0.6", "task.batch_norm=false",
                    "trainer.max_epochs=2"])
    record = train(cfg, tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "completed" and on_disk["dev"]["accuracy"] > 0.5
    assert (on_disk["topk_ratio"], on_disk["decay"], on_disk["batch_norm"]) == (0.1, 0.6, False)
    steps = 2 * 200 // 10
    for layer in ("conv1", "conv2"):
        stats = on_disk["conv_grad_nonzero"][layer]
        assert stats["steps"] == steps
        # ReLU and max-pooling leave at most a quarter of the output gradient; the top-k keeps at most 10%.
        assert 0 < stats["mean_nonzero_after_topk"] <= 0.1 + 1e-9
        assert stats["mean_nonzero_after_topk"] <= stats["mean_nonzero_before_topk"] <= 0.25
    assert on_disk["timing"]["linear_backward_s"] > 0


def test_batch_norm_makes_the_conv_gradient_dense_and_baseline_keeps_all_of_it(make_cfg, tiny_mnist, tmp_path):
    cfg = make_cfg([*FAST, "method=baseline", "task.batch_norm=true", "trainer.max_epochs=1"])
    on_disk = train(cfg, tmp_path)
    assert on_disk["topk_ratio"] is None and on_disk["batch_norm"] is True
    stats = on_disk["conv_grad_nonzero"]["conv2"]
    assert stats["mean_nonzero_before_topk"] == stats["mean_nonzero_after_topk"] > 0.9


@pytest.mark.real_data
def test_real_mnist_split_and_a_forward_pass(make_cfg, real_data):
    cfg = make_cfg(["task=mnist_cnn", "method=meprop_cnn", "topk_ratio=0.05"])
    task = MnistCnnTask(cfg.task, real_data)
    task.load()
    assert task.describe()["train_size"] == 55000 and task.describe()["dev_size"] == 5000
    assert task.describe()["test_size"] == 10000
    model = task.build_model(build_method(cfg))
    batch = next(task.train_batches(torch.Generator().manual_seed(0)))
    x = batch.inputs
    assert x.shape == (10, 784) and float(x.max()) <= 1.0
    loss, n = task.loss(model, batch)
    loss.backward()
    assert n == 10 and all(c.stats.steps == 1 for c in model.convs)
    assert model.convs[0].weight.grad is not None


def test_mesimp_on_the_cnn_is_one_sentence_naming_the_tasks_that_shrink(make_cfg, tiny_mnist, tmp_path):
    from meprop_cli.errors import ConfigError
    with pytest.raises(ConfigError, match="cannot shrink; use task=mnist_mlp, parse, pos or digits"):
        train(make_cfg([*FAST, "method=mesimp", "topk=8", "trainer.max_epochs=1"]), tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "failed"


def test_meact_on_the_cnn_is_one_sentence_naming_the_tasks_it_runs_on(make_cfg, tiny_mnist, tmp_path):
    from meprop_cli.errors import ConfigError
    with pytest.raises(ConfigError, match="needs a feed-forward network of hidden layers.*use task=mnist_mlp, parse "
                                          "or digits"):
        train(make_cfg([*FAST, "method=meact", "trainer.max_epochs=1"]), tmp_path)
