"""Typed configuration schemas, registered in Hydra's ConfigStore, and the checks run before training.

Every option has a type and a one-line meaning here; a wrong key or type fails when Hydra composes
the config, and values that are well typed but inconsistent fail in validate() with one sentence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from meprop_cli.errors import ConfigError
from meprop_cli.ops import MODES
from meprop_cli.ops.meact import MEMORY_DTYPES


@dataclass
class TaskConfig:
    name: str = MISSING  # registry key in meprop_cli.tasks
    batch_size: int = 10  # training examples per update
    eval_batch_size: int = 1000  # examples per forward pass when scoring dev/test
    hidden: list[int] = field(default_factory=lambda: [500, 500])  # hidden layer sizes (depth = length)
    activation: str = "relu"  # relu | tanh | sigmoid | cube
    dropout: float = 0.0  # dropout after each hidden activation (0 = none)
    topk: Optional[int] = 20  # the task's default k for hidden layers (top-level `topk` overrides)
    topk_output: Optional[int] = None  # the task's default k for the output layer (null = full gradient)
    adagrad_lr: float = 0.1  # AdaGrad learning rate of the papers for this task
    average_decay: float = 0.0  # the task's default for trainer.average_decay (0 = score the weights as trained)


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
    tagset: str = "xpos"  # xpos (Penn-style, the paper's tag set) | upos (the 17 universal tags)
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
    mode: Optional[str] = None  # meProp selection: topk | unified | random; null = full back propagation
    hidden_is_k: bool = False  # small-hidden baseline: every hidden layer gets size topk, trained normally
    conv_topk: bool = False  # meProp-CNN: keep topk_ratio of each conv feature map's output gradient


@dataclass
class MeSimpMethodConfig(MethodConfig):
    name: str = "mesimp"
    mode: Optional[str] = "topk"  # the top-k whose record decides which neurons stay
    prune_rate: float = 0.1  # a check removes a neuron kept by fewer than prune_rate of the examples since the last
    prune_checks_per_epoch: int = 8  # checks per epoch, evenly spaced (the reference's IterPerEpoch)
    cycle_epochs: int = 5  # stage length: simplify this many epochs, then train normally as many, and so on
    count_zero_gradients: bool = False  # count kept top-k entries whose gradient is 0 as hits (the reference code)


@dataclass
class MeActMethodConfig(MethodConfig):
    name: str = "meact"
    start_epoch: int = 6  # the first epoch whose examples compute only their active neurons (before: the baseline)
    threshold: float = 0.001  # a neuron is inactive for an example when its share of the example's gradient sum is below
    memory_dtype: str = "float32"  # of the cached activations: float32 | float16 | bfloat16 (the sums stay float32)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adagrad | sgd
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam
    eps: float = 1e-8  # Adam 1e-8, AdaGrad 1e-6 (the papers)
    momentum: float = 0.0  # SGD
    weight_decay: float = 0.0
    sparse_update: bool = False  # update only the rows meProp gave gradient (lazy Adam/AdaGrad, optim.py)
    lr_decay: float = 1.0  # epoch e trains at lr · lr_decay^(e−1); 1 keeps it constant (the papers)


@dataclass
class TrainerConfig:
    max_epochs: int = 20  # epochs over the training set
    max_steps_per_epoch: Optional[int] = None  # cut each epoch short (smoke runs); null = whole epoch
    eval_every_steps: int = 0  # also score dev every N updates (0 = only at epoch ends)
    threads: int = 0  # torch CPU threads (0 = torch's default)
    progress: str = "auto"  # auto (bar on a terminal, log lines otherwise) | bar | log | none
    log_every_steps: int = 1000  # with plain log lines: one line every N updates
    checkpoint: bool = True  # keep best.pt (best dev) and last.pt (for resume) in the run folder
    resume: bool = False  # continue from last.pt in the run folder (hydra.run.dir=<that run>)
    average_decay: float = 0.0  # score dev/test with a moving average of the weights, this decay per update (0 = off)
    max_loss: Optional[float] = 1000.0  # stop as failed when a batch's loss exceeds this or is not finite (null: only the latter)
    track_updates: bool = False  # write the mean |Δw| per parameter per update of each epoch to metrics.jsonl (meAct's figure)


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


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="task", name="base_digits", node=DigitsTaskConfig)
    cs.store(group="task", name="base_mnist_mlp", node=MnistMlpTaskConfig)
    cs.store(group="task", name="base_pos", node=PosTaskConfig)
    cs.store(group="task", name="base_parse", node=ParseTaskConfig)
    cs.store(group="task", name="base_mnist_cnn", node=MnistCnnTaskConfig)
    cs.store(group="method", name="base_method", node=MethodConfig)
    cs.store(group="method", name="base_mesimp", node=MeSimpMethodConfig)
    cs.store(group="method", name="base_meact", node=MeActMethodConfig)
    cs.store(group="optim", name="base_optim", node=OptimConfig)


OPTIMIZERS = ("adam", "adagrad", "sgd")
PROGRESS = ("auto", "bar", "log", "none")


def validate(cfg: Any) -> None:
    """Reject values that type-check but cannot run, each with one sentence saying what to change."""
    method = cfg.method
    if method.mode is not None and method.mode not in MODES:
        raise ConfigError(f"method.mode={method.mode} is unknown; use one of {', '.join(MODES)}")
    needs_k = method.mode is not None or method.hidden_is_k
    if needs_k:
        if cfg.topk is None:
            raise ConfigError(f"method={method.name} needs k: add topk=K (for example topk=20)")
        if cfg.topk < 1:
            raise ConfigError(f"topk={cfg.topk} must be a positive integer")
        widest = max(cfg.task.hidden) if cfg.task.hidden else 0
        if method.mode is not None and cfg.topk > widest:
            raise ConfigError(f"topk={cfg.topk} is larger than the hidden layer ({widest} units); "
                              f"use topk between 1 and {widest}")
    if cfg.topk_ratio is not None and not 0.0 < cfg.topk_ratio <= 1.0:
        raise ConfigError(f"topk_ratio={cfg.topk_ratio} must be in (0, 1]: 0.05 keeps 5% of each feature map")
    if method.conv_topk and cfg.topk_ratio is None:
        raise ConfigError(f"method={method.name} needs a ratio: add topk_ratio=R (for example topk_ratio=0.05)")
    if cfg.topk_output is not None and cfg.topk_output < 1:
        raise ConfigError(f"topk_output={cfg.topk_output} must be a positive integer (or null for full gradient)")
    if not 0.0 <= cfg.decay < 1.0:
        raise ConfigError(f"decay={cfg.decay} must be in [0, 1): 0 is plain top-k")
    if any(h < 1 for h in cfg.task.hidden):
        raise ConfigError(f"task.hidden={list(cfg.task.hidden)} must hold positive sizes")
    if cfg.task.batch_size < 1:
        raise ConfigError(f"task.batch_size={cfg.task.batch_size} must be at least 1")
    if not 0.0 <= cfg.task.dropout < 1.0:
        raise ConfigError(f"task.dropout={cfg.task.dropout} must be in [0, 1)")
    if cfg.optim.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name={cfg.optim.name} is unknown; use one of {', '.join(OPTIMIZERS)}")
    if not 0.0 < cfg.optim.lr_decay <= 1.0:
        raise ConfigError(f"optim.lr_decay={cfg.optim.lr_decay} must be in (0, 1]: 1 keeps the learning rate constant")
    if cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs={cfg.trainer.max_epochs} must be at least 1")
    if not 0.0 <= cfg.trainer.average_decay < 1.0:
        raise ConfigError(f"trainer.average_decay={cfg.trainer.average_decay} must be in [0, 1): 0 scores the "
                          "weights as trained, 0.999 an average over about the last 1,000 updates")
    if method.name == "mesimp":
        if not 0.0 <= method.prune_rate < 1.0:
            raise ConfigError(f"method.prune_rate={method.prune_rate} must be in [0, 1): 0.1 removes neurons that "
                              "fewer than 10% of the examples since the last check kept in their top-k")
        if method.prune_checks_per_epoch < 1 or method.cycle_epochs < 1:
            raise ConfigError("method.prune_checks_per_epoch and method.cycle_epochs must be at least 1")
    if cfg.trainer.max_loss is not None and not cfg.trainer.max_loss > 0:
        raise ConfigError(f"trainer.max_loss={cfg.trainer.max_loss} must be positive (or null: stop only on a "
                          "loss that is not finite)")
    if method.name == "meact":
        if method.start_epoch < 1:
            raise ConfigError(f"method.start_epoch={method.start_epoch} must be at least 1 (1: meAct from the first "
                              "epoch; every example's first encounter then computes all neurons)")
        if not 0.0 <= method.threshold < 1.0:
            raise ConfigError(f"method.threshold={method.threshold} must be in [0, 1): 0.001 deactivates a neuron "
                              "holding less than 0.1% of the example's accumulated gradient in its layer")
        if method.memory_dtype not in MEMORY_DTYPES:
            raise ConfigError(f"method.memory_dtype={method.memory_dtype} is unknown; use one of "
                              f"{', '.join(MEMORY_DTYPES)}")
        if method.mode is not None:
            raise ConfigError("method=meact trains its active neurons with full gradients: leave method.mode=null")
    if cfg.trainer.progress not in PROGRESS:
        raise ConfigError(f"trainer.progress={cfg.trainer.progress} is unknown; use one of {', '.join(PROGRESS)}")
