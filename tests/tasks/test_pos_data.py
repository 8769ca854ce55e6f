"""The POS task's checks of its tag column: `_` is an error; a dev/test tag unseen in training is scored wrong, and said."""
from __future__ import annotations

import logging

import pytest
import torch

from meprop_cli.errors import DataError
from meprop_cli.tasks import build_task

from test_pos import TINY, write_tiny_ewt


def load(make_cfg, root, *extra):
    cfg = make_cfg([*TINY, f"data_root={root}", *extra])
    task = build_task(cfg.task, root)
    task.load()
    return task


def replace_tag(path, line_no: int, column: int, tag: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    fields = lines[line_no - 1].split("\t")
    fields[column] = tag
    lines[line_no - 1] = "\t".join(fields)
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.mark.parametrize("tagset, column, other", [("xpos", 4, "upos"), ("upos", 3, "xpos")])
def test_a_word_without_a_tag_is_an_error_at_its_line(make_cfg, tmp_path, tagset, column, other):
    root = write_tiny_ewt(tmp_path / "data")
    path = root / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    replace_tag(path, 4, column, "_")  # lines 1-2 are comments: line 4 is the second word
    with pytest.raises(DataError, match=f"the word has no {tagset.upper()} \\(`_`\\); tag every word, or train on "
                                        f"the other tag column with task.tagset={other}") as error:
        load(make_cfg, root, f"task.tagset={tagset}")
    assert str(error.value).startswith(f"{path}:4: ")


def test_a_dev_tag_unseen_in_training_counts_as_wrong_and_is_logged_once(make_cfg, tmp_path, caplog):
    root = write_tiny_ewt(tmp_path / "data")
    dev = root / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
    replace_tag(dev, 3, 4, "ZZ")
    replace_tag(dev, 4, 4, "ZZ")
    with caplog.at_level(logging.WARNING, logger="meprop"):
        task = load(make_cfg, root)
    warnings = [r.getMessage() for r in caplog.records if "never occurs in training" in r.getMessage()]
    assert warnings == ["pos: dev has 2 token(s) whose gold tag never occurs in training (ZZ ×2); they count as wrong"]
    assert task.describe()["dev_unseen_tag_tokens"] == 2 and task.describe()["test_unseen_tag_tokens"] == 0

    def oracle(batch):  # scores the gold tag highest wherever there is one the tagger knows
        return torch.nn.functional.one_hot(batch.tags.clamp(min=0), len(task.tags)).float()

    tokens = task.describe()["dev_tokens"]
    assert task.evaluate(oracle, "dev")["accuracy"] == pytest.approx((tokens - 2) / tokens)
    assert task.evaluate(oracle, "test")["accuracy"] == 1.0
