"""The digits split: sizes that numpy would cut silently are one sentence with the allowed range."""
from __future__ import annotations

import pytest

from meprop_cli.errors import ConfigError
from meprop_cli.tasks import build_task


@pytest.mark.parametrize("overrides, message", [
    (["task.dev_size=1797"], "task.dev_size=1797 and task.test_size=300 must each be at least 1 and together at "
                             "most 1,796, so that some of the 1,797 digits are left to train on"),
    (["task.dev_size=900", "task.test_size=897"], "task.dev_size=900 and task.test_size=897 must"),
    (["task.test_size=-1"], "task.test_size=-1 must each be at least 1"),
    (["task.dev_size=0"], "task.dev_size=0 and"),
])
def test_a_split_that_cannot_be_made_is_a_config_error(make_cfg, tmp_path, overrides, message):
    cfg = make_cfg(["task=digits", *overrides])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_task(cfg.task, tmp_path).load()


def test_the_default_split_keeps_its_sizes(make_cfg, tmp_path):
    task = build_task(make_cfg(["task=digits"]).task, tmp_path)
    task.load()
    assert task.describe() == {"dev_size": 300, "test_size": 300, "train_size": 1197}
    task = build_task(make_cfg(["task=digits", "task.dev_size=1", "task.test_size=1795"]).task, tmp_path)
    task.load()
    assert task.describe() == {"dev_size": 1, "test_size": 1795, "train_size": 1}
