"""Typed configuration schemas, registered in Hydra's ConfigStore, and the checks run before training.

Every option has a type and a one-line meaning here; a wrong key or type fails when Hydra composes
the config, and values that are well typed but inconsistent fail in validate() with one sentence.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from meprop_cli.errors import ConfigError
from meprop_cli.nn.linear import INITS
from meprop_cli.ops import MODES
from meprop_cli.ops.activations import ACTIVATIONS
from meprop_cli.ops.meact import MEMORY_DTYPES

# The choices of the options that have a fixed set of values, as enums: Hydra rejects any other value when it
# composes the config ("Invalid value 'x', expected one of [...]"). A StrEnum equals its string, so the code,
# config.yaml and result.json see plain names.
Activation = StrEnum("Activation", {name: name for name in ACTIVATIONS})
Mode = StrEnum("Mode", {name: name for name in MODES})
MemoryDtype = StrEnum("MemoryDtype", {name: name for name in MEMORY_DTYPES})
TagColumn = StrEnum("TagColumn", {"xpos": "xpos", "upos": "upos"})  # which CoNLL-U column the POS task learns
OptimizerName = StrEnum("OptimizerName", {name: name for name in ("adam", "adagrad", "sgd")})
Progress = StrEnum("Progress", {name: name for name in ("auto", "bar", "log", "none")})
Init = StrEnum("Init", {name: name for name in INITS})
BiasGrad = StrEnum("BiasGrad", {"sparse": "sparse", "dense": "dense"})
LossReduction = StrEnum("LossReduction", {"mean": "mean", "sum": "sum"})
OptimizerImplementation = StrEnum("OptimizerImplementation", {name: name for name in ("fused", "foreach", "for_loop")})
Device = StrEnum("Device", {name: name for name in ("auto", "cpu", "cuda")})
LoggerName = StrEnum("LoggerName", {name: name for name in ("tensorboard", "mlflow")})  # trainer.loggers (loggers.py)


@dataclass
class TaskConfig:
    name: str = MISSING  # registry key in meprop_cli.tasks
    batch_size: int = 10  # training examples per update
    eval_batch_size: int = 1000  # examples per forward pass when scoring dev/test
    hidden: list[int] = field(default_factory=lambda: [500, 500])  # hidden layer sizes (depth = length)
    activation: Activation = Activation.relu  # relu | tanh | sigmoid | cube
    dropout: float = 0.0  # dropout after each hidden activation (0 = none)
    topk: Optional[int] = 20  # the task's default k for hidden layers (top-level `topk` overrides)
    topk_output: Optional[int] = None  # the task's default k for the output layer (null = full gradient)
    adagrad_lr: float = 0.1  # AdaGrad learning rate of the papers for this task
    average_decay: float = 0.0  # the task's default for trainer.average_decay (0 = score the weights as trained)
    init: Init = Init.torch  # linear layers start as torch's nn.Linear | lancopku_csharp | lancopku_pytorch (docs)
    # the torch threads trainer.threads=0 gives this task, at most the job's cores (0: all of them). Small steps
    # are slower on a second thread (batch 10: 2.2 -> 4.1 ms a step; docs/kernels.md, "Threads")
    auto_threads: int = 1


@dataclass
class DigitsTaskConfig(TaskConfig):
    name: str = "digits"
    split_seed: int = 0  # fixed permutation that splits the 1,797 images into train/dev/test
    dev_size: int = 300
    test_size: int = 300


@dataclass
class MnistMlpTaskConfig(TaskConfig):
    name: str = "mnist_mlp"
    dev_size: int = 5000  # the first dev_size training images are the dev set (the papers' split)


@dataclass
class PosTaskConfig(TaskConfig):
    name: str = "pos"
    tagset: TagColumn = TagColumn.xpos  # xpos (Penn-style, the paper's tag set) | upos (the 17 universal tags)
    dataset: str = "ud-english-ewt"  # folder under data_root holding the three CoNLL-U files
    train_file: str = "en_ewt-ud-train.conllu"
    dev_file: str = "en_ewt-ud-dev.conllu"
    test_file: str = "en_ewt-ud-test.conllu"
    batch_size: int = 16  # sentences per update (the paper: 1)
    eval_batch_size: int = 256  # sentences per forward pass when scoring dev/test
    hidden: list[int] = field(default_factory=lambda: [500])  # LSTM units per direction, one per BiLSTM layer
    dropout: float = 0.25  # on the 190-dim input, between layers and on the BiLSTM output
    topk: Optional[int] = 5  # k per LSTM gate (the paper's POS k)
    adagrad_lr: float = 0.01
    word_dim: int = 50  # word embedding size (the paper: 50)
    feature_dim: int = 20  # size of each of the 7 feature embeddings (the paper: 20)
    word_dropout: float = 0.25  # α: a training word seen c times becomes UNK with probability α/(α+c)
    min_feature_count: int = 2  # feature values rarer than this in train map to UNK
    bucket: int = 20  # batches per pool of shuffled sentences sorted by length: a batch runs max-length steps


@dataclass
class ParseTaskConfig(TaskConfig):
    name: str = "parse"
    dataset: str = "ud-english-ewt"  # folder under data_root holding the treebank
    file_prefix: str = "en_ewt-ud"  # files are PREFIX-train/dev/test.conllu
    labeled: bool = True  # left/right-arc per universal DEPREL; false: 3 unlabeled transitions
    embed_dim: int = 50  # size of each of the 48 feature embeddings (Chen & Manning)
    embed_init: float = 1.0  # embeddings start uniform in ±embed_init; C&M's ±0.01 left Adam ~5x slower to start
    min_word_count: int = 2  # rarer training words are UNK, so UNK gets trained
    word_dropout: float = 0.0  # α: a training word seen c times becomes UNK with probability α/(α+c)
    normalize_words: bool = False  # look words up lowercased, digits as 0
    pos_source: str = "gold"  # gold XPOS, or a POS run folder: parse test (and dev) with its predicted tags
    auto_threads: int = 0  # batch 10,000: two threads make a step 1.9x faster (docs/kernels.md, "Threads")


@dataclass
class MnistCnnTaskConfig(TaskConfig):
    name: str = "mnist_cnn"
    dev_size: int = 5000  # the first dev_size training images are the dev set (same split as mnist_mlp)
    channels: list[int] = field(default_factory=lambda: [32, 64])  # feature maps of each conv (+ 2×2 max-pool)
    kernel_size: int = 5  # square kernels, stride 1, same padding
    batch_norm: bool = False  # batch norm after each convolution, before the ReLU
    hidden: list[int] = field(default_factory=lambda: [1024])  # fully connected layers after the convolutions
    topk: Optional[int] = None  # no top-k on the fully connected layers unless given


@dataclass
class MethodConfig:
    name: str = MISSING  # baseline | meprop | meprop_unified | random | small
    mode: Optional[Mode] = None  # meProp selection: topk | unified | random; null = full back propagation
    hidden_is_k: bool = False  # small-hidden baseline: every hidden layer gets size topk, trained normally
    conv_topk: bool = False  # meProp-CNN: keep topk_ratio of each conv feature map's output gradient
    bias_grad: BiasGrad = BiasGrad.sparse  # meProp's bias gradient: the kept entries only | dense (the authors' code)


@dataclass
class MeSimpMethodConfig(MethodConfig):
    name: str = "mesimp"
    mode: Optional[Mode] = Mode.topk  # the top-k whose record decides which neurons stay
    prune_rate: float = 0.1  # a check removes a neuron kept by fewer than prune_rate of the examples since the last
    prune_checks_per_epoch: int = 8  # checks per epoch, evenly spaced (the reference's IterPerEpoch)
    cycle_epochs: int = 5  # stage length: simplify this many epochs, then train normally as many, and so on
    count_zero_gradients: bool = False  # count kept top-k entries whose gradient is 0 as hits (the reference code)


@dataclass
class MeActMethodConfig(MethodConfig):
    name: str = "meact"
    start_epoch: int = 6  # the first epoch whose examples compute only their active neurons (before: the baseline)
    threshold: float = 0.001  # a neuron is inactive for an example when its share of the example's gradient sum is below
    memory_dtype: MemoryDtype = MemoryDtype.float32  # of the cached activations: float32 | float16 | bfloat16 (the sums stay float32)


@dataclass
class OptimConfig:
    name: OptimizerName = OptimizerName.adam  # adam | adagrad | sgd
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam
    eps: float = 1e-8  # Adam 1e-8, AdaGrad 1e-6 (the papers)
    momentum: float = 0.0  # SGD
    weight_decay: float = 0.0
    sparse_update: bool = False  # update only the rows meProp gave gradient (lazy Adam/AdaGrad, optim.py)
    lr_decay: float = 1.0  # epoch e trains at lr · lr_decay^(e−1); 1 keeps it constant (the papers)
    clip: Optional[float] = None  # clip every gradient element to ±clip before the step (the C# code: 5); null = off
    # torch's kernels for the dense optimizer step: fused | foreach | for_loop (torch's CPU default, and this
    # project's before 2026-12-02). fused is one pass over each parameter: the MNIST whole step's update takes 0.66 ms
    # against 2.73 ms (scripts/bench_backprop.py --whole-step --optim-implementation fused|for_loop).
    implementation: OptimizerImplementation = OptimizerImplementation.fused


@dataclass
class TrainerConfig:
    max_epochs: int = 20  # epochs over the training set
    max_steps_per_epoch: Optional[int] = None  # cut each epoch short (smoke runs); null = whole epoch
    eval_every_steps: int = 0  # also score dev every N updates (0 = only at epoch ends)
    threads: int = 0  # torch CPU threads (0: the job's share of the cores, at most task.auto_threads; launch.py)
    # where the model trains: auto (cuda when torch sees a GPU, else cpu) | cpu | cuda. The compiled meProp kernels
    # are CPU-only: on a GPU the meProp backward runs torch's dense-gather paths
    device: Device = Device.auto
    progress: Progress = Progress.auto  # auto (bar on a terminal, log lines otherwise) | bar | log | none
    log_every_steps: int = 1000  # with plain log lines: one line every N updates
    checkpoint: bool = True  # keep best.pt (best dev) and last.pt (for resume) in the run folder
    checkpoint_every_steps: int = 0  # also save last.pt every N updates inside an epoch (0 = only at epoch ends)
    checkpoint_every_minutes: float = 0.0  # also save last.pt inside an epoch once this long has passed (0 = off)
    resume: bool = False  # continue from last.pt in the run folder (hydra.run.dir=<that run>)
    average_decay: float = 0.0  # score dev/test with a moving average of the weights, this decay per update (0 = off)
    max_loss: Optional[float] = 1000.0  # stop as failed when a batch's loss is not finite, or exceeds this (null: never) ...
    # ... in this many batches in a row: AdaGrad at MNIST's lr 0.1 spikes to a loss of 1484 at step 2, then learns
    max_loss_batches: int = 10
    loss_reduction: LossReduction = LossReduction.mean  # back-propagate the batch's mean loss | sum (the C# code)
    diagnostics: bool = False  # write per hidden layer activation, dead-unit and gradient-sign statistics (diagnostics.py)
    track_updates: bool = False  # write the mean |Δw| per parameter per update of each epoch to metrics.jsonl (meAct's figure)
    # also send every metrics.jsonl record, the config and the result to: tensorboard (event files in <run>/tensorboard)
    # and/or mlflow (pip extra [loggers]); metrics.jsonl stays the record `meprop table` reads
    loggers: list[LoggerName] = field(default_factory=list)
    mlflow_uri: Optional[str] = None  # MLflow tracking store; null: the sqlite file <run>/mlflow.db


@dataclass
class Config:
    task: Any = MISSING
    method: MethodConfig = MISSING
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 1  # seeds torch, numpy and python: a run is repeatable
    topk: Optional[int] = None  # k of top-k for hidden layers (defaults to the task's)
    topk_output: Optional[int] = None  # k for the output layer (defaults to the task's; ≥ outputs = full)
    decay: float = 0.0  # run_grad momentum of the top-k selection (0 = plain top-k)
    topk_ratio: Optional[float] = None  # meProp-CNN: share of each conv feature map's gradient kept (0.05 = 5%)
    data_root: str = "data"  # folder holding mnist/ and ud-english-ewt/ (env MEPROP_DATA)
    hidden_from: Optional[str] = None  # a run folder: start at the hidden sizes its tested model had (meSimp)


NAME_MAX = 255  # bytes in one file name on Linux and macOS file systems


def short_name(name: str, limit: int = NAME_MAX - 40) -> str:
    """A sweep job's folder name, kept below the file system's limit (the job number is put in front): a longer
    one keeps its start and ends in a hash of the whole, so the same overrides always give the same folder."""
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return name.encode()[:limit - 13].decode(errors="ignore") + "-" + digest


def register_configs() -> None:
    OmegaConf.register_new_resolver("short_name", short_name, replace=True)  # conf/config.yaml: hydra.sweep.subdir
    # The schemas are stored outside every config group, so that the groups (task=, method=, optim=) list only the
    # YAML files in conf/, in --help and in errors: each YAML file extends its schema from its defaults list
    # (`- /base_digits@_here_`), which types its values and rejects a key the schema lacks.
    cs = ConfigStore.instance()
    for name, node in (("base_config", Config),
                       ("base_digits", DigitsTaskConfig), ("base_mnist_mlp", MnistMlpTaskConfig),
                       ("base_pos", PosTaskConfig), ("base_parse", ParseTaskConfig),
                       ("base_mnist_cnn", MnistCnnTaskConfig),
                       ("base_method", MethodConfig), ("base_mesimp", MeSimpMethodConfig),
                       ("base_meact", MeActMethodConfig), ("base_optim", OptimConfig)):
        cs.store(name=name, node=node)


@dataclass(frozen=True)
class Bound:
    """The values a numeric option may take: low ≤ v (low < v when low_open), v ≤ high (v < high when high_open)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    hint: str = ""  # what a value means, said after the range

    def holds(self, value: float) -> bool:
        return ((self.low is None or (value > self.low if self.low_open else value >= self.low))
                and (self.high is None or (value < self.high if self.high_open else value <= self.high)))

    def describe(self) -> str:
        low, high = (f"{v:,}" if float(v).is_integer() else f"{v:g}" for v in (self.low or 0, self.high or 0))
        if self.high is None:
            return f"{'above' if self.low_open else 'at least'} {low}"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


POSITIVE = Bound(1)
NOT_NEGATIVE = Bound(0)
ABOVE_ZERO = Bound(0, low_open=True)
SHARE = Bound(0, 1, high_open=True)  # a probability or decay: 0 ≤ v < 1

# Every numeric option's range, by its dotted key; a key the run's task or method lacks is skipped, null passes
# (the schema says which options may be null), and a list's every element must be in range.
BOUNDS: dict[str, Bound] = {
    "seed": Bound(0, 2**32 - 1, hint="numpy's seed range"),
    "topk": POSITIVE, "topk_output": POSITIVE,
    "decay": Bound(0, 1, high_open=True, hint="0 is plain top-k"),
    "topk_ratio": Bound(0, 1, low_open=True, hint="0.05 keeps 5% of each feature map"),
    "task.batch_size": POSITIVE, "task.eval_batch_size": POSITIVE, "task.hidden": POSITIVE,
    "task.dropout": SHARE, "task.topk": POSITIVE, "task.topk_output": POSITIVE, "task.adagrad_lr": ABOVE_ZERO,
    "task.average_decay": SHARE,
    "task.split_seed": NOT_NEGATIVE,
    "task.word_dim": POSITIVE, "task.feature_dim": POSITIVE, "task.embed_dim": POSITIVE,
    "task.word_dropout": Bound(0, hint="α of word dropout; 0 turns it off"),
    "task.min_feature_count": POSITIVE, "task.min_word_count": POSITIVE, "task.bucket": POSITIVE,
    "task.embed_init": ABOVE_ZERO,
    "task.channels": POSITIVE, "task.kernel_size": POSITIVE,
    "optim.lr": ABOVE_ZERO, "optim.eps": ABOVE_ZERO, "optim.betas": SHARE, "optim.momentum": NOT_NEGATIVE,
    "optim.weight_decay": NOT_NEGATIVE, "optim.clip": ABOVE_ZERO,
    "optim.lr_decay": Bound(0, 1, low_open=True, hint="1 keeps the learning rate constant"),
    "trainer.max_epochs": POSITIVE, "trainer.max_steps_per_epoch": POSITIVE, "trainer.eval_every_steps": NOT_NEGATIVE,
    "trainer.threads": Bound(0, hint="0 chooses: the job's share of the cores, at most task.auto_threads"),
    "task.auto_threads": Bound(0, hint="0 gives the task all the job's cores"),
    "trainer.checkpoint_every_steps": Bound(0, hint="0 saves last.pt only at epoch ends"),
    "trainer.checkpoint_every_minutes": Bound(0, hint="0 saves last.pt only at epoch ends"), "trainer.log_every_steps": POSITIVE,
    "trainer.average_decay": Bound(0, 1, high_open=True, hint="0 scores the weights as trained, 0.999 an average "
                                   "over about the last 1,000 updates"),
    "trainer.max_loss": Bound(0, low_open=True, hint="null stops only on a loss that is not finite"),
    "trainer.max_loss_batches": POSITIVE,
    "method.prune_rate": Bound(0, 1, high_open=True, hint="0.1 removes neurons that fewer than 10% of the examples "
                               "since the last check kept in their top-k"),
    "method.prune_checks_per_epoch": POSITIVE, "method.cycle_epochs": POSITIVE,
    "method.start_epoch": Bound(1, hint="1: meAct from the first epoch; every example's first encounter then "
                                "computes all neurons"),
    "method.threshold": Bound(0, 1, high_open=True, hint="0.001 deactivates a neuron holding less than 0.1% of the "
                              "example's accumulated gradient in its layer"),
}


def check_bounds(cfg: Any) -> None:
    for key, bound in BOUNDS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        values = list(value) if OmegaConf.is_list(value) or isinstance(value, list) else [value]
        if not all(bound.holds(v) for v in values):
            shown = list(values) if len(values) != 1 or OmegaConf.is_list(value) else values[0]
            what = "must hold values that are" if OmegaConf.is_list(value) else "must be"
            hint = f": {bound.hint}" if bound.hint else ""
            raise ConfigError(f"{key}={shown} {what} {bound.describe()}{hint}")


def validate(cfg: Any) -> None:
    """Reject values that type-check but cannot run, each with one sentence saying what to change.

    Ranges come from BOUNDS; below are the checks that relate two options, or a list's length."""
    check_bounds(cfg)
    method, task = cfg.method, cfg.task
    if not task.hidden:
        raise ConfigError("task.hidden=[] has no hidden layer; give at least one size (for example task.hidden=[500])")
    if "channels" in task and not task.channels:
        raise ConfigError("task.channels=[] has no convolution; give at least one (for example task.channels=[32,64])")
    if "kernel_size" in task and task.kernel_size % 2 == 0:
        raise ConfigError(f"task.kernel_size={task.kernel_size} must be odd: same padding keeps the image size only "
                          "for odd kernels")
    if len(cfg.optim.betas) != 2:
        raise ConfigError(f"optim.betas={list(cfg.optim.betas)} must be two numbers in [0, 1), for example "
                          "optim.betas=[0.9,0.999]")
    needs_k = method.mode is not None or method.hidden_is_k
    if needs_k:
        if cfg.topk is None:
            raise ConfigError(f"method={method.name} needs k: add topk=K (for example topk=20)")
        widest = max(task.hidden)
        if method.mode is not None and cfg.topk > widest:
            raise ConfigError(f"topk={cfg.topk} is larger than the hidden layer ({widest} units); "
                              f"use topk between 1 and {widest}")
    if method.conv_topk and cfg.topk_ratio is None:
        raise ConfigError(f"method={method.name} needs a ratio: add topk_ratio=R (for example topk_ratio=0.05)")
    if method.name == "meact" and method.mode is not None:
        raise ConfigError("method=meact trains its active neurons with full gradients: leave method.mode=null")


def ignored_options(cfg: Any) -> list[str]:
    """The options set to something other than their default that this run's method or optimizer does not use.

    They are warnings, not errors: a sweep over methods legitimately crosses them with the methods' own axes
    (`method=baseline,meprop topk=10,20` gives the baseline a k it does not use)."""
    method, optim = cfg.method, cfg.optim
    unused = []
    if method.mode is None and not method.hidden_is_k and cfg.topk != cfg.task.topk:
        unused.append(f"topk={cfg.topk}")
    if method.mode is None and cfg.topk_output != cfg.task.topk_output:
        unused.append(f"topk_output={cfg.topk_output}")
    if method.mode not in ("topk", "unified") and not method.conv_topk and cfg.decay != 0:  # random-k ignores it
        unused.append(f"decay={cfg.decay}")
    if not method.conv_topk and cfg.topk_ratio is not None:
        unused.append(f"topk_ratio={cfg.topk_ratio}")
    defaults = OptimConfig()
    if optim.name != "adam" and list(optim.betas) != defaults.betas:
        unused.append(f"optim.betas={list(optim.betas)}")
    if optim.name != "sgd" and optim.momentum != defaults.momentum:
        unused.append(f"optim.momentum={optim.momentum}")
    return [f"method={method.name} with optim={optim.name} does not use {', '.join(unused)}"] if unused else []
