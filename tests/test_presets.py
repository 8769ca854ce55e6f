"""conf/experiment/: the paper presets (one name per table setting) and the reference-code presets."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO, run_meprop
from omegaconf import OmegaConf

from meprop_cli.config import validate

PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))

MNIST_ADAM = {"task.name": "mnist_mlp", "optim.name": "adam", "optim.lr": 1e-3, "task.hidden": [500, 500],
              "task.batch_size": 10}
# Each paper preset's setting, as docs/methods.md (the papers) and scripts/ give it: the keys that define the table.
PAPER_SETTINGS = {
    "table1_mnist_mlp_adam": {**MNIST_ADAM, "topk": 20, "topk_output": 20},
    "table1_mnist_mlp_adagrad": {**MNIST_ADAM, "optim.name": "adagrad", "optim.lr": 0.1, "optim.eps": 1e-6,
                                 "topk": 10, "topk_output": 10},
    "table1_pos_adam": {"task.name": "pos", "optim.name": "adam", "optim.lr": 1e-3, "task.hidden": [500],
                        "topk": 5, "topk_output": None},
    "table1_pos_adagrad": {"task.name": "pos", "optim.name": "adagrad", "optim.lr": 0.01, "topk": 5},
    "table1_parse_adam": {"task.name": "parse", "optim.name": "adam", "task.hidden": [500, 500],
                          "task.batch_size": 10000, "topk": 20, "topk_output": 20},
    "table1_parse_adagrad": {"task.name": "parse", "optim.name": "adagrad", "optim.lr": 0.01, "topk": 20},
    "table4_dropout": {**MNIST_ADAM, "topk": 25, "task.dropout": 0.2},
    "table5_layers": {**MNIST_ADAM, "topk": 25, "task.dropout": 0.1},
    "table6_unified_2layers": {**MNIST_ADAM, "task.batch_size": 50, "topk": 30},
    "table6_unified_5layers": {**MNIST_ADAM, "task.batch_size": 50, "topk": 50, "task.hidden": [500] * 5},
    "table_cnn": {"task.name": "mnist_cnn", "optim.name": "adam", "task.channels": [32, 64], "task.hidden": [1024],
                  "task.batch_size": 10},
    "table_mesimp": {**MNIST_ADAM, "task.batch_size": 100, "topk": 160},
    "fig_meact": {**MNIST_ADAM, "trainer.track_updates": True},
}


def test_every_paper_preset_has_its_setting_checked_here():
    assert set(PRESETS) - {"lancopku_pytorch", "lancopku_pytorch_unified", "lancopku_csharp"} == set(PAPER_SETTINGS)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_composes_and_passes_validation(make_cfg, name):
    cfg = make_cfg([f"experiment={name}"])
    validate(cfg)
    assert OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


@pytest.mark.parametrize("name, setting", PAPER_SETTINGS.items(), ids=list(PAPER_SETTINGS))
def test_each_paper_preset_holds_its_tables_setting(make_cfg, name, setting):
    cfg = make_cfg([f"experiment={name}"])
    held = {key: OmegaConf.to_container(value) if OmegaConf.is_list(value) else value
            for key, value in ((key, OmegaConf.select(cfg, key)) for key in setting)}
    assert held == setting


def test_the_command_line_wins_over_a_preset(make_cfg):
    """A script sweeps a table's axes over its preset: values given on the command line replace the preset's."""
    cfg = make_cfg(["experiment=table4_dropout", "topk=40", "task.dropout=0", "optim=sgd"])
    assert (cfg.task.name, cfg.topk, cfg.task.dropout, cfg.optim.name) == ("mnist_mlp", 40, 0.0, "sgd")


def test_cfg_job_of_a_preset_through_the_cli(tmp_path):
    proc = run_meprop(["train", "--cfg", "job", "experiment=table6_unified_5layers", "method=meprop_unified"],
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cfg = OmegaConf.create(proc.stdout)
    assert cfg.task.hidden == [500] * 5 and cfg.task.batch_size == 50 and cfg.topk == 50
    assert cfg.method.mode == "unified" and not (tmp_path / "runs").exists()


@pytest.fixture
def digits_as_mnist(monkeypatch):
    """MNIST's loader replaced by scikit-learn's 8×8 digits padded to 28×28: the preset's model, digits-sized work."""
    from sklearn.datasets import load_digits

    from meprop_cli.tasks.mnist import MnistMlpTask

    def load(self):
        digits = load_digits()
        images = np.pad(digits.images * 15, ((0, 0), (10, 10), (10, 10))).astype(np.uint8)
        labels = digits.target.astype(np.int64)
        self.set_splits({"train": (images[600:], labels[600:]), "dev": (images[:300], labels[:300]),
                         "test": (images[300:600], labels[300:600])}, scale=255.0)

    monkeypatch.setattr(MnistMlpTask, "load", load)


def test_a_tiny_run_of_a_paper_preset(make_cfg, digits_as_mnist, tmp_path):
    from meprop_cli.train import train

    cfg = make_cfg(["experiment=table4_dropout", "method=meprop", "trainer.max_epochs=1",
                    "trainer.max_steps_per_epoch=30", "trainer.progress=none", "trainer.checkpoint=false"])
    record = train(cfg, tmp_path)
    assert record["status"] == "completed" and record["task"] == "mnist_mlp" and record["method"] == "meprop"
    assert (record["k"], record["hidden"], record["batch_size"]) == (25, [500, 500], 10)
    assert record["test"]["accuracy"] > 0.3  # ten classes: 30 updates of digits learn well above chance
    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert saved.task.dropout == 0.2 and saved.topk == 25 and saved.optim.name == "adam"


@pytest.mark.real_data
def test_the_readmes_preset_sweep_on_real_mnist(tmp_path, real_data):
    sweep = tmp_path / "sweep"
    proc = run_meprop(["train", "-m", "experiment=table1_mnist_mlp_adam", "method=baseline,meprop",
                       "trainer.max_epochs=1", "trainer.max_steps_per_epoch=20", "trainer.threads=1",
                       "trainer.progress=none", "trainer.checkpoint=false", f"hydra.sweep.dir={sweep}"],
                      cwd=tmp_path, env={"MEPROP_DATA": str(real_data)})
    assert proc.returncode == 0, proc.stderr
    records = sorted((json.loads(p.read_text()) for p in sweep.glob("*/result.json")), key=lambda r: r["method"])
    assert [(r["method"], r["k"], r["status"]) for r in records] == [("baseline", None, "completed"),
                                                                    ("meprop", 20, "completed")]
    shown = run_meprop(["table", str(sweep)], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "| mnist_mlp | adam | baseline | 500 | - |" in shown.stdout
    assert "| mnist_mlp | adam | meprop | 500 | 20 |" in shown.stdout
