"""Task registry: the name used in `task=NAME` (conf/task/NAME.yaml) → the Task class."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from meprop_cli.errors import ConfigError
from meprop_cli.tasks.base import Task
from meprop_cli.tasks.digits import DigitsTask
from meprop_cli.tasks.mnist import MnistMlpTask
from meprop_cli.tasks.pos import PosTask
from meprop_cli.tasks.parse import ParseTask
from meprop_cli.tasks.mnist_cnn import MnistCnnTask

TASKS: dict[str, type[Task]] = {
    "digits": DigitsTask,
    "mnist_mlp": MnistMlpTask,
    "pos": PosTask,
    "parse": ParseTask,
    "mnist_cnn": MnistCnnTask,
}


def build_task(cfg: Any, data_root: Path) -> Task:
    if cfg.name not in TASKS:
        raise ConfigError(f"task.name={cfg.name} is not a known task; use one of {', '.join(TASKS)}")
    return TASKS[cfg.name](cfg, data_root)
